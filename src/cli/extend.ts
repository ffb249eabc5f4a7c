// `hack-tokenizer extend`: extend a tokenizer (added tokens or real BPE merges) with new tokens,
// learned here from a corpus or read from tokens.json. The tokenizer part is `buildExtension`, a
// library-style call that the model-weights part (embeddings) can reuse.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { writeDirAtomic } from '../io/atomic.ts';
import { readTokenizerJson, type TokenizerJson } from '../io/model-dir.ts';
import { extendTokenizer, extendTokenizerConfig, writeTokenizerFiles, type ExtendMode, type ExtendResult } from '../tokenizer/extend.ts';
import { tokenizerFromJson } from '../tokenizer/load.ts';
import { tokenizerSourceFromFlags, type TokenizerSource } from '../tokenizer/source.ts';
import { readTokensFile, writeTokensFile, type NewTokenList } from '../tokenizer/tokens-file.ts';
import { info } from './progress.ts';
import { learnOptionsFromFlags, learnWithProgress, type LearnFlags } from './tokens.ts';

export interface ExtendFlags extends LearnFlags {
  model?: string;
  tokenizer?: string;
  tokens?: string;
  mode?: string;
  out?: string;
}

export interface Extension {
  source: TokenizerSource;
  original: TokenizerJson;
  list: NewTokenList;
  mode: ExtendMode;
  result: ExtendResult;
  /** tokenizer_config.json for the output (null when the source had none). */
  config: Record<string, unknown> | null;
}

async function readJsonIfExists(file: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${file}: could not read (${(e as Error).message})`);
  }
}

/** Resolve the tokenizer, get the token list (file or corpus), and extend the tokenizer in memory. */
export async function buildExtension(o: ExtendFlags, firstId?: number): Promise<Extension> {
  const mode = o.mode;
  if (mode !== 'added' && mode !== 'merges') throw new Error(`--mode must be "added" or "merges" (got ${mode === undefined ? 'nothing' : `"${mode}"`})`);
  if (o.tokens && o.corpus) throw new Error('give either --tokens or --corpus, not both');
  const source = await tokenizerSourceFromFlags(o);
  let list: NewTokenList;
  if (o.tokens) {
    list = await readTokensFile(o.tokens);
    if (o.numTokens !== undefined) {
      const n = Number(o.numTokens);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--num-tokens must be a positive integer (got "${o.numTokens}")`);
      list = { ...list, tokens: list.tokens.slice(0, n), numTokens: Math.min(n, list.tokens.length) };
    }
  } else if (o.corpus && o.corpus.length > 0) {
    list = await learnWithProgress(source.tokenizerPath, o.corpus, learnOptionsFromFlags(o));
  } else {
    throw new Error('missing --tokens <tokens.json> or --corpus <file...> --num-tokens N');
  }
  if (mode === 'merges' && list.rank !== 'merge') {
    info(`note: ${o.tokens ?? 'the token list'} is ranked by ${list.rank}, not in merge order; tokens whose merge needs a later token are skipped`);
  }
  const original = await readTokenizerJson(source.tokenizerPath);
  const result = extendTokenizer(original, list.tokens, { mode, firstId });
  tokenizerFromJson(result.json, 'extended tokenizer'); // the tokenizers library must accept it
  const configDir = source.modelDir ?? path.dirname(source.tokenizerPath);
  const config = extendTokenizerConfig(await readJsonIfExists(path.join(configDir, 'tokenizer_config.json')), result.addedEntries);
  return { source, original, list, mode, result, config };
}

export function extensionReport(ext: Extension): Record<string, unknown> {
  const reasons: Record<string, number> = {};
  for (const s of ext.result.skipped) reasons[s.reason] = (reasons[s.reason] ?? 0) + 1;
  const ids = ext.result.newIds.filter((id) => id >= 0);
  return {
    tokenizer: ext.source.tokenizerPath,
    mode: ext.mode,
    requested: ext.list.tokens.length,
    added: ids.length,
    firstId: ids.length ? Math.min(...ids) : null,
    lastId: ids.length ? Math.max(...ids) : null,
    skipped: ext.result.skipped.length,
    skippedReasons: reasons,
  };
}

export function register(program: Command): void {
  program
    .command('extend')
    .description('Extend a tokenizer with new tokens: as added tokens, or as real BPE tokens with merges after the existing ones')
    .option('--model <dir|hub id>', 'model directory (tokenizer files are written; model weights are not extended by this command yet)')
    .option('--tokenizer <tokenizer.json>', 'a tokenizer.json file (instead of --model)')
    .option('--tokens <tokens.json>', 'token list written by `hack-tokenizer tokens` (with --num-tokens: its first N)')
    .option('--corpus <files...>', 'learn the tokens from these corpus files instead (plain or .gz)')
    .option('--num-tokens <N>', 'number of new tokens')
    .option('--method <fresh|continue>', 'how to learn them from --corpus (see `tokens --help`)', 'continue')
    .option('--min-frequency <F>', 'with --corpus: never merge a pair seen fewer than F times (default 2)')
    .option('--max-token-chars <L>', 'with --corpus: drop candidates longer than L characters')
    .option('--drop-prefixes', 'with --corpus: drop candidates that are a prefix of an existing token')
    .option('--rank <frequency|saved>', 'with --corpus --method fresh: order of the list')
    .option('--mode <added|merges>', 'added: added tokens (normalized, not special); merges: vocabulary entries + merges after the existing ones')
    .option('--out <dir>', 'output directory (tokenizer.json, tokenizer_config.json, tokens.json, extend.json)')
    .action(async (o: ExtendFlags) => {
      if (!o.out) throw new Error('missing --out <dir>');
      const ext = await buildExtension(o);
      const report = extensionReport(ext);
      await writeDirAtomic(o.out, async (tmp) => {
        await writeTokenizerFiles(tmp, ext.result.json, ext.config);
        await writeTokensFile(path.join(tmp, 'tokens.json'), ext.list);
        await fsp.writeFile(path.join(tmp, 'extend.json'), JSON.stringify({ ...report, newIds: ext.result.newIds, skippedTokens: ext.result.skipped }, null, 2) + '\n');
      });
      if (ext.source.modelDir) info('note: model weights are not extended by this command yet; wrote the tokenizer files only');
      info(`wrote ${o.out}: ${report.added} new tokens (${report.skipped} skipped)`);
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    });
}
