// Extended-vocabulary decoding ("inference adaptation"): the model reads its input through the
// ORIGINAL tokenizer but may emit any row of its (extended) vocabulary. An emitted new token is
// fed back as its original sub-token ids, as a short prefill on the KV cache, so each step costs
// one (or a few) positions instead of re-encoding the whole text.
import type { Engine, GenerateOptions } from './engine.ts';
import { sampleNext, seededRandom } from './sampling.ts';
import { decode, encode, type LoadedTokenizer } from '../tokenizer/load.ts';
import { BYTE_TO_CHAR, fromByteLevel } from '../tokenizer/byte-level.ts';

export async function generateExtended(
  engine: Engine,
  newTokenOriginalIds: Map<number, number[]>,
  prompt: number[],
  opts: GenerateOptions,
): Promise<{ ids: number[] }> {
  if (prompt.length === 0) throw new Error('generateExtended: the prompt is empty (no token ids)');
  for (const [id, sub] of newTokenOriginalIds) {
    if (sub.length === 0) throw new Error(`generateExtended: new token ${id} has no original sub-token ids`);
    for (const s of sub) {
      if (newTokenOriginalIds.has(s)) throw new Error(`generateExtended: sub-token ${s} of new token ${id} is itself a new token`);
    }
  }
  const eos = new Set(opts.eosIds ?? engine.eosIds);
  const rand = seededRandom(opts.seed ?? 0);
  const ids: number[] = [];
  if (opts.maxNewTokens <= 0) return { ids };
  const dec = engine.decoder(1);
  let [logits] = await dec.feed([prompt]);
  for (;;) {
    const id = sampleNext(logits, opts, rand);
    ids.push(id);
    const stop = (await opts.onToken?.(id)) === true;
    if (stop || eos.has(id) || ids.length >= opts.maxNewTokens) return { ids };
    [logits] = await dec.feed([newTokenOriginalIds.get(id) ?? [id]]);
  }
}

/** What the model reads for a sequence of emitted ids: new tokens expanded into their original sub-ids. */
export function expandToOriginal(ids: number[], newTokenOriginalIds: Map<number, number[]>): number[] {
  return ids.flatMap((id) => newTokenOriginalIds.get(id) ?? [id]);
}

/**
 * Map each id the extended tokenizer has beyond the original one (ids >= original size, as
 * extendTokenizer assigns them) to the original tokenizer's ids of the same text.
 * Byte-level tokens that are not valid UTF-8 on their own map to the original's byte tokens.
 */
export async function newTokenMap(extended: LoadedTokenizer, original: LoadedTokenizer): Promise<Map<number, number[]>> {
  const map = new Map<number, number[]>();
  const vocab = extended.json.model.vocab;
  const idToToken = new Map<number, string>();
  if (Array.isArray(vocab)) vocab.forEach(([t], i) => idToToken.set(i, t));
  else for (const [t, i] of Object.entries(vocab)) idToToken.set(i, t);
  for (const t of extended.json.added_tokens ?? []) idToToken.set(t.id, t.content);
  const origVocab = original.json.model.vocab;
  const origByteIds = new Map<string, number>();
  if (!Array.isArray(origVocab)) for (const [t, i] of Object.entries(origVocab)) if ([...t].length === 1) origByteIds.set(t, i);
  for (const [id, token] of idToToken) {
    if (id < original.size) continue;
    if (extended.specialIds.has(id)) continue;
    const text = await decode(extended, [id], false);
    let sub: number[];
    if (!text.includes('\uFFFD')) sub = await encode(original, text, false);
    else {
      const bytes = fromByteLevel(token);
      sub = bytes ? [...bytes].map((b) => origByteIds.get(BYTE_TO_CHAR[b]) ?? -1) : [];
      if (sub.includes(-1)) sub = [];
    }
    if (sub.length === 0) throw new Error(`token ${JSON.stringify(token)} (id ${id}) cannot be written with the original tokenizer`);
    map.set(id, sub);
  }
  return map;
}
