// The parts of a BPE tokenizer.json our trainer and extender need, in a form that is fast to
// use: the vocabulary, the merge ranks, and how a pre-tokenized word becomes initial symbols.
// Two families are supported: byte-level BPE (GPT-2, SmolLM2, Qwen, Llama-3) and
// SentencePiece-style BPE (Llama-2, Mistral: '▁' for spaces, <0xNN> byte fallback).
import type { TokenizerJson } from '../io/model-dir.ts';
import { CHAR_TO_BYTE, fromByteLevel } from './byte-level.ts';
import { HackError } from '../io/errors.ts';

export type BpeKind = 'byte-level' | 'sentencepiece';

export class UnsupportedTokenizerError extends HackError {
  constructor(message: string) {
    super('UNSUPPORTED_TOKENIZER', message);
    this.name = 'UnsupportedTokenizerError';
  }
}

/** Pair key: two ids packed in one safe integer (ids < 2^21). */
export const PAIR_SHIFT = 2 ** 21;
export const pairKey = (a: number, b: number): number => a * PAIR_SHIFT + b;

export interface BpeModel {
  kind: BpeKind;
  /** vocab string -> id (model vocabulary only, not added tokens). */
  vocab: Map<string, number>;
  /** id -> vocab string (holes for ids used by added tokens). */
  idToToken: string[];
  /** pairKey(left, right) -> rank; mergeResult[rank] is the id the merge produces. */
  mergeRank: Map<number, number>;
  mergeResult: number[];
  merges: Array<[string, string]>;
  /** Merges are stored as "a b" strings (true) or [a, b] pairs (false) in the file. */
  mergesAsStrings: boolean;
  ignoreMerges: boolean;
  byteFallback: boolean;
  /** SentencePiece byte fallback tokens: byte -> id (-1 when missing). */
  byteIds: Int32Array;
  /** One past the largest id used by the model vocabulary or the added tokens. */
  size: number;
  /** Ids of every added token (special or not). */
  addedIds: Set<number>;
  unkId: number;
}

function preTokenizerTypes(x: unknown, out: string[] = []): string[] {
  if (!x || typeof x !== 'object') return out;
  const o = x as { type?: string; pretokenizers?: unknown[] };
  if (o.type === 'Sequence') for (const p of o.pretokenizers ?? []) preTokenizerTypes(p, out);
  else if (o.type) out.push(o.type);
  return out;
}

function normalizerText(x: unknown): string {
  return JSON.stringify(x ?? null);
}

/** Which BPE family a tokenizer.json belongs to; a clear error for the ones we do not handle. */
export function bpeKindOf(json: TokenizerJson): BpeKind {
  const type = json.model?.type;
  if (type === 'WordPiece' || type === 'Unigram' || type === 'WordLevel') {
    throw new UnsupportedTokenizerError(`${type} tokenizers are not supported yet (supported: byte-level BPE and SentencePiece-style BPE)`);
  }
  if (type !== 'BPE') throw new UnsupportedTokenizerError(`unknown tokenizer model type "${type}" (supported: BPE)`);
  if (json.model.continuing_subword_prefix || json.model.end_of_word_suffix) {
    throw new UnsupportedTokenizerError('BPE with continuing_subword_prefix / end_of_word_suffix is not supported yet');
  }
  const pre = preTokenizerTypes(json.pre_tokenizer);
  if (pre.includes('ByteLevel')) return 'byte-level';
  if (pre.includes('Metaspace') || normalizerText(json.normalizer).includes('\u2581') || json.model.byte_fallback === true) {
    return 'sentencepiece';
  }
  throw new UnsupportedTokenizerError(
    `BPE tokenizer without a ByteLevel or Metaspace pre-tokenizer (pre-tokenizer: ${JSON.stringify(pre)}) is not supported yet`,
  );
}

export function bpeModelOf(json: TokenizerJson): BpeModel {
  const kind = bpeKindOf(json);
  const rawVocab = json.model.vocab as Record<string, number>;
  const vocab = new Map<string, number>();
  const idToToken: string[] = [];
  let size = 0;
  for (const [tok, id] of Object.entries(rawVocab)) {
    vocab.set(tok, id);
    idToToken[id] = tok;
    if (id + 1 > size) size = id + 1;
  }
  const addedIds = new Set<number>();
  for (const t of json.added_tokens ?? []) {
    addedIds.add(t.id);
    if (t.id + 1 > size) size = t.id + 1;
  }
  if (size >= PAIR_SHIFT) throw new UnsupportedTokenizerError(`vocabulary of ${size} ids is too large (max ${PAIR_SHIFT})`);
  const rawMerges = json.model.merges ?? [];
  const mergesAsStrings = rawMerges.length === 0 || typeof rawMerges[0] === 'string';
  const merges: Array<[string, string]> = [];
  const mergeRank = new Map<number, number>();
  const mergeResult: number[] = new Array(rawMerges.length).fill(-1);
  for (let r = 0; r < rawMerges.length; r++) {
    const m = rawMerges[r];
    let pair: [string, string];
    if (typeof m === 'string') {
      const sp = m.indexOf(' ', 1);
      pair = [m.slice(0, sp), m.slice(sp + 1)];
    } else pair = [m[0], m[1]];
    merges.push(pair);
    const a = vocab.get(pair[0]);
    const b = vocab.get(pair[1]);
    const c = vocab.get(pair[0] + pair[1]);
    if (a === undefined || b === undefined || c === undefined) continue; // HF ignores these too (it errors, in fact); keep going
    const key = pairKey(a, b);
    if (!mergeRank.has(key)) mergeRank.set(key, r);
    mergeResult[r] = c;
  }
  const byteIds = new Int32Array(256).fill(-1);
  if (kind === 'sentencepiece') {
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      if (id !== undefined) byteIds[b] = id;
    }
  }
  const unk = json.model.unk_token;
  return {
    kind,
    vocab,
    idToToken,
    mergeRank,
    mergeResult,
    merges,
    mergesAsStrings,
    ignoreMerges: json.model.ignore_merges === true,
    byteFallback: json.model.byte_fallback === true,
    byteIds,
    size,
    addedIds,
    unkId: typeof unk === 'string' ? (vocab.get(unk) ?? -1) : -1,
  };
}

/** Initial symbols of a word (vocab-form string, e.g. 'Ġdeputados' or '▁deputados') as ids. */
export function initialSymbols(model: BpeModel, word: string): number[] {
  const out: number[] = [];
  for (const ch of word) {
    const id = model.vocab.get(ch);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    if (model.kind === 'sentencepiece' && model.byteFallback) {
      const bytes = Buffer.from(ch, 'utf8');
      let ok = true;
      for (const b of bytes) if (model.byteIds[b] < 0) ok = false;
      if (ok) {
        for (const b of bytes) out.push(model.byteIds[b]);
        continue;
      }
    }
    if (model.unkId >= 0) out.push(model.unkId);
    else throw new UnsupportedTokenizerError(`character ${JSON.stringify(ch)} is not in the vocabulary and there is no byte fallback or unk token`);
  }
  return out;
}

/**
 * The model's own BPE segmentation of one pre-tokenized word: repeatedly apply the
 * lowest-ranked merge (leftmost on ties), as the tokenizers library does.
 */
export function segmentWord(model: BpeModel, word: string): number[] {
  if (model.ignoreMerges) {
    const whole = model.vocab.get(word);
    if (whole !== undefined) return [whole];
  }
  const sym = initialSymbols(model, word);
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < sym.length; i++) {
      const r = model.mergeRank.get(pairKey(sym[i], sym[i + 1]));
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return sym;
    sym.splice(best, 2, model.mergeResult[bestRank]);
  }
}

/** The text a vocab-form token stands for ('Ġdeputados' -> ' deputados'); null if not valid UTF-8 on its own. */
export function tokenText(kind: BpeKind, token: string): string | null {
  if (kind === 'byte-level') {
    const bytes = fromByteLevel(token);
    if (!bytes) return null;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return null;
    }
  }
  if (/^<0x[0-9A-F]{2}>$/.test(token)) return null;
  return token.replace(/\u2581/g, ' ');
}

