// `hack-tokenizer tokens`: learn new tokens for a tokenizer from a target-language corpus.
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { snakeKeys } from '../io/json-keys.ts';
import { checkOutput } from '../io/output.ts';
import { emptyStats, type TextStats } from '../io/text.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { learnTokensFromCorpus, type LearnOptions } from '../tokenizer/learn.ts';
import type { CorpusReadOptions } from '../tokenizer/corpus.ts';
import { tokenizerSourceFromFlags } from '../tokenizer/source.ts';
import { writeTokensOutput, type NewTokenList, type TokensMethod, type TokensRank } from '../tokenizer/tokens-file.ts';
import { progressBar, info, type Progress } from './progress.ts';
import { ALLOW_INVALID_UTF8, CORPUS, FORCE, MODEL, NUM_TOKENS, OUT, command, type OptionSpec } from './options.ts';

export interface LearnFlags {
  corpus?: string[];
  numTokens?: number;
  method?: string;
  minFrequency?: number;
  maxTokenChars?: number;
  dropPrefixes?: boolean;
  rank?: string;
}

/** The learning options from checked option values (readOptions). */
export function learnOptionsFromFlags(f: LearnFlags): LearnOptions {
  if (f.numTokens === undefined) throw new HackError('MISSING_OPTION', 'missing (how many new tokens to learn)', { option: 'numTokens' });
  return {
    method: (f.method ?? 'continue') as TokensMethod,
    numTokens: f.numTokens,
    minFrequency: f.minFrequency,
    maxTokenChars: f.maxTokenChars,
    dropPrefixes: f.dropPrefixes === true,
    rank: f.rank as TokensRank | undefined,
  };
}

/** Learn tokens with progress bars on stderr. */
export async function learnWithProgress(tokenizerPath: string, corpus: string[], opts: LearnOptions & CorpusReadOptions): Promise<NewTokenList> {
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

/** The learning options shared by `tokens`, `extend` and `adapt`. */
export const LEARN_OPTIONS: OptionSpec[] = [
  { key: 'method', kind: 'choice', choices: ['continue', 'fresh'], default: 'continue', doc: 'continue: N further merges on top of the model\'s own; fresh: BPE from characters, keep the tokens the model lacks' },
  { key: 'minFrequency', kind: 'int', min: 1, default: 2, arg: '<F>', doc: 'never merge a pair seen fewer than F times' },
  { key: 'maxTokenChars', kind: 'int', min: 1, arg: '<L>', doc: 'drop candidates longer than L characters' },
  { key: 'dropPrefixes', kind: 'bool', doc: 'drop candidates that are a prefix of an existing token (the research\'s filter for added tokens)' },
  { key: 'rank', kind: 'choice', choices: ['frequency', 'saved'], doc: 'order of a fresh list: corpus frequency (default) or tokens saved; continue lists are in merge order' },
  ALLOW_INVALID_UTF8,
];

export function register(program: Command): void {
  command(program, 'tokens', 'Learn new tokens from a target-language corpus (BPE trained with the model tokenizer\'s own pre-tokenizer)', [
    MODEL('model directory or Hugging Face repo id whose tokenizer to extend', false),
    { key: 'tokenizer', kind: 'string', arg: '<tokenizer.json>', doc: 'a tokenizer.json file (instead of --model)' },
    CORPUS(),
    NUM_TOKENS('number of new tokens to learn', true),
    ...LEARN_OPTIONS,
    OUT('<tokens.json>', 'where to write the token list'),
    FORCE,
  ], async (o) => {
    const opts = learnOptionsFromFlags(o);
    const src = await tokenizerSourceFromFlags(o as { model?: string; tokenizer?: string });
    const corpus = o.corpus as string[];
    // the output is checked before any work (not an input, writable, not someone else's file)
    await checkOutput({ path: o.out as string, kind: 'file', command: 'tokens', inputs: [src.tokenizerPath, src.modelDir, ...corpus], force: o.force as boolean });
    const stats = emptyStats();
    const list = await learnWithProgress(src.tokenizerPath, corpus, { ...opts, allowInvalidUtf8: o.allowInvalidUtf8 as boolean, stats });
    reportInvalidText(stats, corpus);
    if (list.tokens.length < opts.numTokens) {
      throw new HackError('TOO_FEW_TOKENS', `only ${list.tokens.length} of the ${opts.numTokens} requested tokens can be learned from this corpus (${stats.lines} lines); give more text or ask for fewer`, { option: 'numTokens' });
    }
    await writeTokensOutput(o.out as string, list, { inputs: [src.tokenizerPath, src.modelDir ?? '', ...corpus].filter((x) => x !== ''), force: o.force as boolean });
    info(`wrote ${list.tokens.length} tokens to ${o.out}`);
    process.stdout.write(JSON.stringify(snakeKeys(summarize(list), ['filters']), null, 2) + '\n');
  });
}

/** The warning a command prints when invalid text was accepted (--allow-invalid-utf8). */
export function reportInvalidText(stats: TextStats, files: string[]): void {
  if (stats.invalidSequences || stats.nulBytes) {
    info(`warning: ${files.join(', ')}: ${stats.invalidSequences} invalid UTF-8 sequence(s) replaced by U+FFFD and ${stats.nulBytes} NUL byte(s) dropped (--allow-invalid-utf8)`);
  }
}
