// `hack-tokenizer tokens`: learn new tokens for a tokenizer from a target-language corpus.
import type { Command } from 'commander';
import { loadTokenizer } from '../tokenizer/load.ts';
import { learnTokensFromCorpus, type LearnOptions } from '../tokenizer/learn.ts';
import { tokenizerSourceFromFlags } from '../tokenizer/source.ts';
import { writeTokensFile, type NewTokenList, type TokensRank } from '../tokenizer/tokens-file.ts';
import { progressBar, info, type Progress } from './progress.ts';
import { numberFlag } from './flags.ts';

export interface LearnFlags {
  corpus?: string[];
  numTokens?: string;
  method?: string;
  minFrequency?: string;
  maxTokenChars?: string;
  dropPrefixes?: boolean;
  rank?: string;
}

/** Parse the learning flags shared by `tokens` and `extend`. */
export function learnOptionsFromFlags(f: LearnFlags): LearnOptions {
  const numTokens = numberFlag('--num-tokens', f.numTokens, { int: true, min: 1 });
  if (numTokens === undefined) throw new Error('missing --num-tokens N (how many new tokens to learn)');
  const method = f.method ?? 'continue';
  if (method !== 'fresh' && method !== 'continue') throw new Error(`--method must be "fresh" or "continue" (got "${method}")`);
  const rank = f.rank;
  if (rank !== undefined && rank !== 'frequency' && rank !== 'saved') throw new Error(`--rank must be "frequency" or "saved" (got "${rank}")`);
  return {
    method,
    numTokens,
    minFrequency: numberFlag('--min-frequency', f.minFrequency, { int: true, min: 1 }),
    maxTokenChars: numberFlag('--max-token-chars', f.maxTokenChars, { int: true, min: 1 }),
    dropPrefixes: f.dropPrefixes === true,
    rank: rank as TokensRank | undefined,
  };
}

/** Learn tokens with progress bars on stderr. */
export async function learnWithProgress(tokenizerPath: string, corpus: string[], opts: LearnOptions): Promise<NewTokenList> {
  const tok = await loadTokenizer(tokenizerPath);
  let read: Progress | null = null;
  let train: Progress | null = null;
  const list = await learnTokensFromCorpus(tok, tokenizerPath, corpus, {
    ...opts,
    onCorpusProgress: (p) => {
      read ??= progressBar('reading corpus', Math.max(1, Math.round(p.totalBytes / 1e6)), 'MB');
      read.update(Math.round(p.bytesRead / 1e6));
    },
    onProgress: (p) => {
      if (read) {
        read.stop();
        read = null;
        train = progressBar(`learning ${opts.method} BPE merges`, p.target, 'new tokens');
      }
      train ??= progressBar(`learning ${opts.method} BPE merges`, p.target, 'new tokens');
      train.setTotal(p.target);
      train.update(p.accepted);
    },
  });
  (read as Progress | null)?.stop();
  (train as Progress | null)?.stop();
  return list;
}

export function summarize(list: NewTokenList): Record<string, unknown> {
  return {
    method: list.method,
    numTokens: list.numTokens,
    filters: list.filters,
    stats: list.stats,
    first: list.tokens.slice(0, 10).map((t) => t.text ?? t.token),
  };
}

export function register(program: Command): void {
  program
    .command('tokens')
    .description('Learn new tokens from a target-language corpus (BPE trained with the model tokenizer\'s own pre-tokenizer)')
    .option('--model <dir|hub id>', 'model directory or Hugging Face repo id whose tokenizer.json to extend')
    .option('--tokenizer <tokenizer.json>', 'a tokenizer.json file (instead of --model)')
    .option('--corpus <files...>', 'corpus files: plain text or .gz, one document or sentence per line')
    .option('--num-tokens <N>', 'number of new tokens to learn')
    .option('--method <fresh|continue>', 'fresh: BPE from characters, keep the tokens the model lacks; continue: N further merges on top of the model\'s own', 'continue')
    .option('--min-frequency <F>', 'never merge a pair seen fewer than F times (default 2)')
    .option('--max-token-chars <L>', 'drop candidates longer than L characters')
    .option('--drop-prefixes', 'drop candidates that are a prefix of an existing token (the research\'s filter for added tokens)')
    .option('--rank <frequency|saved>', 'order of a fresh list: corpus frequency or tokens saved (continue lists are in merge order)')
    .option('--out <tokens.json>', 'where to write the token list')
    .action(async (o: LearnFlags & { model?: string; tokenizer?: string; out?: string }) => {
      if (!o.out) throw new Error('missing --out <tokens.json>');
      if (!o.corpus || o.corpus.length === 0) throw new Error('missing --corpus <file...>');
      const opts = learnOptionsFromFlags(o);
      const src = await tokenizerSourceFromFlags(o);
      const list = await learnWithProgress(src.tokenizerPath, o.corpus, opts);
      if (list.tokens.length < opts.numTokens) info(`warning: only ${list.tokens.length} of ${opts.numTokens} tokens could be learned from this corpus`);
      await writeTokensFile(o.out, list);
      info(`wrote ${list.tokens.length} tokens to ${o.out}`);
      process.stdout.write(JSON.stringify(summarize(list), null, 2) + '\n');
    });
}
