// TextCodec over a loaded tokenizer (no special tokens added on encode, skipped on decode).
import { decode, encode, encodeBatch, type LoadedTokenizer } from '../tokenizer/load.ts';
import type { TextCodec } from './engine-api.ts';

export function codecOf(tok: LoadedTokenizer): TextCodec {
  return {
    encode: (text) => encode(tok, text, false),
    encodeBatch: (texts) => encodeBatch(tok, texts, false),
    decode: (ids) => decode(tok, ids, true),
  };
}

/** Ids present in `extended` but not in `original` (by id): the added tokens. */
function vocabIds(tok: LoadedTokenizer): number[] {
  const v = tok.json.model.vocab;
  return Array.isArray(v) ? v.map((_, i) => i) : Object.values(v);
}

export function addedIds(original: LoadedTokenizer, extended: LoadedTokenizer): Set<number> {
  const orig = new Set<number>(vocabIds(original));
  for (const t of original.json.added_tokens ?? []) orig.add(t.id);
  const out = new Set<number>();
  for (const id of vocabIds(extended)) if (!orig.has(id)) out.add(id);
  for (const t of extended.json.added_tokens ?? []) if (!orig.has(t.id)) out.add(t.id);
  return out;
}
