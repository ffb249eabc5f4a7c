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
import { info, progressBar } from './progress.ts';
import { resolveModel } from '../io/hub.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { VALID_FORMS, parseInitMethod } from '../embeddings/init-methods.ts';
import { modelFirstId, resolveInitMethods, writeModelExtension } from '../embeddings/extend-model.ts';
import { learnOptionsFromFlags, learnWithProgress, type LearnFlags } from './tokens.ts';
import { numberFlag } from './flags.ts';

export interface ExtendFlags extends LearnFlags {
  model?: string;
  tokenizer?: string;
  tokens?: string;
  mode?: string;
  out?: string;
  // model weights (issue #4): given --init, a complete model directory is written
  init?: string;
  initOutput?: string;
  usePaddingRows?: boolean;
  padToMultipleOf?: string;
  seed?: string;
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
      const n = numberFlag('--num-tokens', o.numTokens, { int: true, min: 1 })!;
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
    .option('--out <dir>', 'output directory (tokenizer.json, tokenizer_config.json, tokens.json, extend.json; with --init the whole model)')
    .option('--init <method>', `initialize the new tokens' embedding rows and write a complete model directory (needs --model). Methods: ${VALID_FORMS.join('; ')}`)
    .option('--init-output <method>', 'method for the output (lm_head) rows of untied models (default: --init); tied models have one matrix, set by --init')
    .option('--use-padding-rows', 'with --init: give new tokens the free padding rows past the tokenizer first (default: append after every existing row)')
    .option('--pad-to-multiple-of <M>', 'with --init: round the new vocabulary size up to a multiple of M (e.g. 64); extra rows hold the mean row')
    .option('--seed <S>', 'with --init: seed of the random and hf-mean-resizing methods', '0')
    .addHelpText('after', INIT_HELP)
    .action(async (o: ExtendFlags) => {
      if (!o.out) throw new Error('missing --out <dir>');
      if (o.init !== undefined) return extendWithWeights(o);
      if (o.initOutput !== undefined || o.usePaddingRows || o.padToMultipleOf !== undefined) {
        throw new Error('--init-output, --use-padding-rows and --pad-to-multiple-of need --init <method> (they shape the model weights)');
      }
      const ext = await buildExtension(o);
      const report = extensionReport(ext);
      await writeDirAtomic(o.out, async (tmp) => {
        await writeTokenizerFiles(tmp, ext.result.json, ext.config);
        await writeTokensFile(path.join(tmp, 'tokens.json'), ext.list);
        await fsp.writeFile(path.join(tmp, 'extend.json'), JSON.stringify({ ...report, newIds: ext.result.newIds, skippedTokens: ext.result.skipped }, null, 2) + '\n');
      });
      if (ext.source.modelDir) info('note: wrote the tokenizer files only; add --init <method> (e.g. --init "weighted_drop(2)") to write the model weights too');
      info(`wrote ${o.out}: ${report.added} new tokens (${report.skipped} skipped)`);
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    });
}

// ------------------------------------------------------------------ model weights (issue #4)

const INIT_HELP = `
Embedding initialization (--init, --init-output): each new token's row is computed from the rows of
its sub-tokens, i.e. its tokenization by the ORIGINAL tokenizer (special tokens never included):
  mean, min, max          per-dimension mean / minimum / maximum of the sub-token rows
  quantile(q)             per-dimension q-quantile (linear interpolation), 0 <= q <= 1
  weighted_drop(K)        weights K^n ... K^1 over the n sub-tokens, normalized; K > 1 favours the first
  first, last             the first / last sub-token's row
  zero                    a zero row
  random                  uniform within each dimension's [min, max] over the existing rows (seeded)
  hf-mean-resizing        as transformers' resize_token_embeddings(mean_resizing=True): a sample of
                          N(mean, 1e-9 * covariance) of the existing rows (the mean if not positive definite)
Untied models (separate lm_head): output rows use the same methods on the lm_head rows (--init-output,
default --init). Tied models have one matrix, so --init sets both the input row and the output row;
as an output row, a linear method makes the new token's logit the same combination of its sub-tokens'
logits (mean: their average; weighted_drop(K): mostly the first sub-token's; first/last: exactly that
sub-token's logit), min/max/quantile act per dimension (not on logits), zero gives logit 0 in every
context, random / hf-mean-resizing ignore the sub-tokens (hf-mean-resizing ~ the average row's logit).
Old rows are copied byte for byte; new ids start after every existing row (padding rows kept) unless
--use-padding-rows.`;

async function extendWithWeights(o: ExtendFlags): Promise<void> {
  if (!o.model) throw new Error('--init writes model weights: give --model <model dir|hub id> (not --tokenizer)');
  const init = parseInitMethod(o.init!);
  const initOutput = o.initOutput === undefined ? undefined : parseInitMethod(o.initOutput);
  const seed = numberFlag('--seed', o.seed, { int: true, min: 0 }) ?? 0;
  const padToMultipleOf = numberFlag('--pad-to-multiple-of', o.padToMultipleOf, { int: true, min: 1 });
  const model = await loadModelDir(await resolveModel(o.model));
  resolveInitMethods(model, init, initOutput);
  const ext = await buildExtension(o, modelFirstId(model, o.usePaddingRows === true));
  const report = extensionReport(ext);
  const bar = progressBar('writing model', 100, '%');
  let written!: Awaited<ReturnType<typeof writeModelExtension>>;
  await writeDirAtomic(o.out!, async (tmp) => {
    written = await writeModelExtension(model, tmp, {
      tokens: ext.list.tokens, result: ext.result, tokenizerConfig: ext.config, init, initOutput,
      usePaddingRows: o.usePaddingRows === true, padToMultipleOf, seed,
      onProgress: (done, total) => bar.update(Math.floor((100 * done) / total)),
    });
    await writeTokensFile(path.join(tmp, 'tokens.json'), ext.list);
    const weights = { init: written.init, initOutput: written.initOutput, tied: model.tied, oldRows: written.plan.oldRows, rows: written.plan.rows, seed };
    await fsp.writeFile(path.join(tmp, 'extend.json'), JSON.stringify({ ...report, weights, newIds: ext.result.newIds, skippedTokens: ext.result.skipped }, null, 2) + '\n');
  });
  bar.stop();
  info(`wrote ${o.out}: model with ${written.plan.rows} embedding rows (${written.plan.oldRows} before), ${report.added} new tokens (${report.skipped} skipped)`);
  process.stdout.write(JSON.stringify({ ...report, init: written.init, initOutput: written.initOutput, tied: model.tied, rows: written.plan.rows }, null, 2) + '\n');
}
