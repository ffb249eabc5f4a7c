// Learning new tokens for a tokenizer from a word-frequency table.
//  - fresh:    BPE from characters (the model's own words), keep the tokens the model lacks (dV),
//              N of them, ranked by corpus frequency or tokens saved.
//  - continue: BPE continued from the model's own segmentation, N further merges on top of the
//              existing ones, so every new token is reachable through the merge table.
import type { LoadedTokenizer } from './load.ts';
import { bpeModelOf, segmentWord, tokenText, type BpeModel } from './bpe-model.ts';
import { BpeTrainer, type WordTable } from './bpe-train.ts';
import { countWords, type CorpusProgress, type CorpusReadOptions, type WordFrequencies } from './corpus.ts';
import { HackError } from '../io/errors.ts';
import { emptyStats } from '../io/text.ts';
import type { NewToken, NewTokenList, TokensMethod, TokensRank } from './tokens-file.ts';
import { tokenizerFingerprint } from './fingerprint.ts';

export interface LearnOptions {
  method: TokensMethod;
  numTokens: number;
  /** Pairs seen fewer times are never merged; fresh candidates used fewer times are dropped. Default 2. */
  minFrequency?: number;
  /** Drop candidates whose text is longer than this many characters. */
  maxTokenChars?: number;
  /** Drop candidates that are a prefix of an existing token (as the research did for added tokens). */
  dropPrefixes?: boolean;
  /** Order of the fresh list (continue lists are always in merge order). Default 'frequency'. */
  rank?: TokensRank;
  onProgress?: (p: { merges: number; accepted: number; target: number }) => void;
}

export interface LearnResult {
  tokens: NewToken[];
  filters: Record<string, number>;
  mergesLearned: number;
  rank: TokensRank;
}

function textLength(kind: BpeModel['kind'], token: string): number {
  const t = tokenText(kind, token);
  return t === null ? [...token].length : [...t].length;
}

function prefixSet(model: BpeModel): Set<string> {
  const s = new Set<string>();
  for (const tok of model.vocab.keys()) {
    const chars = [...tok];
    let p = '';
    for (let i = 0; i < chars.length - 1; i++) {
      p += chars[i];
      s.add(p);
    }
  }
  return s;
}

function rankTokens(tokens: NewToken[], rank: TokensRank): NewToken[] {
  if (rank === 'merge') return tokens;
  const key = rank === 'saved' ? (t: NewToken) => t.saved : (t: NewToken) => t.frequency;
  return tokens
    .map((t, i) => ({ t, i }))
    .sort((x, y) => key(y.t) - key(x.t) || (x.t.token < y.t.token ? -1 : x.t.token > y.t.token ? 1 : x.i - y.i))
    .map((x) => x.t);
}

function describe(model: BpeModel, token: string, frequency: number, merge: [string, string] | null): NewToken {
  const originalIds = segmentWord(model, token);
  return {
    token,
    text: tokenText(model.kind, token),
    originalIds,
    frequency,
    saved: frequency * Math.max(0, originalIds.length - 1),
    merge,
  };
}

export function learnTokens(tok: LoadedTokenizer, freq: WordFrequencies, opts: LearnOptions, bpe?: BpeModel): LearnResult {
  if (!Number.isInteger(opts.numTokens) || opts.numTokens < 1) throw new HackError('BAD_OPTION_VALUE', `${opts.numTokens}: expected an integer >= 1`, { option: 'numTokens' });
  if (freq.words.length === 0) throw new HackError('EMPTY_CORPUS', 'the corpus has no words (empty corpus?)', { option: 'corpus' });
  const model = bpe ?? bpeModelOf(tok.json);
  return opts.method === 'continue' ? learnContinue(model, freq, opts) : learnFresh(model, freq, opts);
}

function learnContinue(model: BpeModel, freq: WordFrequencies, opts: LearnOptions): LearnResult {
  const tokens: string[] = model.idToToken.slice();
  tokens.length = model.size;
  const frozen = new Uint8Array(model.size);
  for (let b = 0; b < 256; b++) if (model.byteIds[b] >= 0) frozen[model.byteIds[b]] = 1;
  if (model.unkId >= 0) frozen[model.unkId] = 1;
  for (const id of model.addedIds) frozen[id] = 1;
  const table: WordTable = { words: freq.words.map((w) => segmentWord(model, w)), counts: freq.counts };
  const prefixes = opts.dropPrefixes ? prefixSet(model) : null;
  const trainer = new BpeTrainer(table, {
    tokens,
    frozen: (id) => id < frozen.length && frozen[id] === 1,
    minFrequency: opts.minFrequency ?? 2,
    forbidExistingResult: true,
    forbidOrphans: true,
    veto: (str) => {
      if (opts.maxTokenChars !== undefined && textLength(model.kind, str) > opts.maxTokenChars) return 'maxTokenChars';
      if (prefixes?.has(str)) return 'dropPrefixes';
      return null;
    },
  });
  const learned: Array<{ id: number; left: number; right: number }> = [];
  let merges = 0;
  while (learned.length < opts.numTokens) {
    const m = trainer.step();
    if (!m) break;
    merges++;
    if (m.created) learned.push(m);
    if ((merges & 255) === 0) opts.onProgress?.({ merges, accepted: learned.length, target: opts.numTokens });
  }
  opts.onProgress?.({ merges, accepted: learned.length, target: opts.numTokens });
  const out = learned.map((m) => describe(model, tokens[m.id], trainer.tokenCount(m.id), [tokens[m.left], tokens[m.right]]));
  return { tokens: out, filters: { ...trainer.refused }, mergesLearned: merges, rank: 'merge' };
}

function learnFresh(model: BpeModel, freq: WordFrequencies, opts: LearnOptions): LearnResult {
  const tokens: string[] = [];
  const charId = new Map<string, number>();
  const words = freq.words.map((w) => {
    const ids: number[] = [];
    for (const ch of w) {
      let id = charId.get(ch);
      if (id === undefined) {
        id = tokens.length;
        tokens.push(ch);
        charId.set(ch, id);
      }
      ids.push(id);
    }
    return ids;
  });
  const minFrequency = opts.minFrequency ?? 2;
  const trainer = new BpeTrainer({ words, counts: freq.counts }, { tokens, minFrequency });
  const prefixes = opts.dropPrefixes ? prefixSet(model) : null;
  const filters: Record<string, number> = { inVocabulary: 0, invalidUtf8: 0 };
  if (opts.maxTokenChars !== undefined) filters.maxTokenChars = 0;
  if (prefixes) filters.dropPrefixes = 0;
  const candidates: Array<{ id: number; left: number; right: number }> = [];
  let merges = 0;
  let target = opts.numTokens;
  let good: Array<{ id: number; left: number; right: number }> = [];
  let exhausted = false;
  for (;;) {
    while (!exhausted && candidates.length < target) {
      const m = trainer.step();
      if (!m) {
        exhausted = true;
        break;
      }
      merges++;
      if ((merges & 255) === 0) opts.onProgress?.({ merges, accepted: candidates.length, target });
      if (!m.created) continue;
      const str = tokens[m.id];
      if (model.vocab.has(str)) filters.inVocabulary++;
      else if (tokenText(model.kind, str) === null) filters.invalidUtf8++;
      else if (opts.maxTokenChars !== undefined && textLength(model.kind, str) > opts.maxTokenChars) filters.maxTokenChars++;
      else if (prefixes?.has(str)) filters.dropPrefixes++;
      else candidates.push(m);
    }
    // Later merges may use up every occurrence of an earlier candidate: keep the ones still used.
    good = candidates.filter((c) => trainer.tokenCount(c.id) >= Math.max(1, minFrequency));
    if (good.length >= opts.numTokens || exhausted) break;
    target += opts.numTokens - good.length;
  }
  filters.minFrequency = candidates.length - good.length;
  opts.onProgress?.({ merges, accepted: good.length, target });
  good = good.slice(0, opts.numTokens);
  const rank = opts.rank ?? 'frequency';
  const out = good.map((m) => describe(model, tokens[m.id], trainer.tokenCount(m.id), [tokens[m.left], tokens[m.right]]));
  return { tokens: rankTokens(out, rank), filters, mergesLearned: merges, rank };
}

/** The tokens.json document for a learning run. */
export function tokenList(
  tok: LoadedTokenizer,
  tokenizerPath: string,
  corpus: string[],
  opts: LearnOptions,
  result: LearnResult,
  freq: WordFrequencies,
  seconds: number,
): NewTokenList {
  return {
    version: 1,
    tokenizer: tokenizerPath,
    tokenizerFingerprint: tokenizerFingerprint(tok.json),
    method: opts.method,
    corpus,
    numTokens: result.tokens.length,
    rank: result.rank,
    filters: result.filters,
    stats: { lines: freq.lines, words: freq.total, distinctWords: freq.words.length, mergesLearned: result.mergesLearned, seconds },
    tokens: result.tokens,
  };
}

/** Count the corpus words with the tokenizer's own pre-tokenizer, learn the tokens, build tokens.json. */
export async function learnTokensFromCorpus(
  tok: LoadedTokenizer,
  tokenizerPath: string,
  corpus: string[],
  opts: LearnOptions & { onCorpusProgress?: (p: CorpusProgress) => void } & CorpusReadOptions,
): Promise<NewTokenList> {
  if (corpus.length === 0) throw new HackError('MISSING_OPTION', 'missing (give at least one corpus file)', { option: 'corpus' });
  const t0 = performance.now();
  const model = bpeModelOf(tok.json);
  const stats = opts.stats ?? emptyStats();
  const freq = await countWords(tok, model.kind, corpus, opts.onCorpusProgress, { allowInvalidUtf8: opts.allowInvalidUtf8, stats });
  if (freq.words.length === 0) throw new HackError('EMPTY_CORPUS', `${corpus.join(' ')}: no text (empty corpus)`, { option: 'corpus' });
  const result = learnTokens(tok, freq, opts, model);
  return tokenList(tok, tokenizerPath, corpus, opts, result, freq, (performance.now() - t0) / 1000);
}
