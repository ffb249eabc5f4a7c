// Extended-vocabulary decoding ("inference adaptation"): the model reads its input through the
// ORIGINAL tokenizer but may emit any row of its (extended) vocabulary. An emitted new token is
// fed back as its original sub-token ids, as a short prefill on the KV cache, so each step costs
// one (or a few) positions instead of re-encoding the whole text. The loop is the engine's one
// generation loop (GenerateOptions.readAs); this module builds and checks the new-token map and
// adapts an engine to it.
import { HackError } from '../io/errors.ts';
import type { Engine, GenerateOptions } from './engine.ts';
import { decode, encode, type LoadedTokenizer } from '../tokenizer/load.ts';
import { toByteLevel } from '../tokenizer/byte-level.ts';
import { bpeModelOf, segmentWord, type BpeModel } from '../tokenizer/bpe-model.ts';

/** Check a new-token map: every new id has original sub-ids, none of them a new id itself. */
export function checkTokenMap(newTokenOriginalIds: ReadonlyMap<number, readonly number[]>): void {
  for (const [id, sub] of newTokenOriginalIds) {
    if (sub.length === 0) throw new HackError('BAD_TOKEN_MAP', `extended decoding: new token ${id} has no original sub-token ids`);
    for (const s of sub) {
      if (newTokenOriginalIds.has(s)) throw new HackError('BAD_TOKEN_MAP', `extended decoding: sub-token ${s} of new token ${id} is itself a new token`);
    }
  }
}

/**
 * The engine with extended-vocabulary decoding: its generation (generate, generateBatch: the
 * engine's one loop, stopping criteria included) reads each emitted new token as its original
 * sub-ids; scoring, logits and hidden states are the engine's own.
 */
export function extendedDecoding(engine: Engine, newTokenOriginalIds: ReadonlyMap<number, readonly number[]>): Engine {
  checkTokenMap(newTokenOriginalIds);
  const withMap = (opts: GenerateOptions): GenerateOptions => ({ ...opts, readAs: newTokenOriginalIds });
  return {
    get model() { return engine.model; },
    get vocabRows() { return engine.vocabRows; },
    get eosIds() { return engine.eosIds; },
    tokenLogprobs: (batch) => engine.tokenLogprobs(batch),
    scoreContinuations: (items) => engine.scoreContinuations(items),
    lastLogits: (batch) => engine.lastLogits(batch),
    logits: (ids) => engine.logits(ids),
    hiddenStates: (batch) => engine.hiddenStates(batch),
    generate: (prompt, opts) => engine.generate(prompt, withMap(opts)),
    generateBatch: (prompts, opts) => engine.generateBatch(prompts, withMap(opts)),
    decoder: (batchSize) => engine.decoder(batchSize),
    dispose: () => engine.dispose(),
  };
}

/** One extended-vocabulary generation (see extendedDecoding). */
export async function generateExtended(
  engine: Engine,
  newTokenOriginalIds: ReadonlyMap<number, readonly number[]>,
  prompt: number[],
  opts: GenerateOptions,
): Promise<{ ids: number[] }> {
  return { ids: await extendedDecoding(engine, newTokenOriginalIds).generate(prompt, opts) };
}

/** What the model reads for a sequence of emitted ids: new tokens expanded into their original sub-ids. */
export function expandToOriginal(ids: number[], newTokenOriginalIds: Map<number, number[]>): number[] {
  return ids.flatMap((id) => newTokenOriginalIds.get(id) ?? [id]);
}

/**
 * Map each id the extended tokenizer has beyond the original one (ids >= original size, as
 * extendTokenizer assigns them) to its original sub-token ids: the original BPE model's segmentation
 * of the token (as `tokens` computes `originalIds` and the embedding initializers use them). Added
 * tokens hold text, which is turned into the vocabulary form first. Tokenizers that are not BPE fall
 * back to encoding the token's decoded text with the original tokenizer.
 */
export async function newTokenMap(extended: LoadedTokenizer, original: LoadedTokenizer): Promise<Map<number, number[]>> {
  const map = new Map<number, number[]>();
  const vocab = extended.json.model.vocab;
  const idToToken = new Map<number, string>();
  if (Array.isArray(vocab)) vocab.forEach(([t], i) => idToToken.set(i, t));
  else for (const [t, i] of Object.entries(vocab)) idToToken.set(i, t);
  const added = new Set<number>();
  for (const t of extended.json.added_tokens ?? []) { idToToken.set(t.id, t.content); added.add(t.id); }
  let bpe: BpeModel | null = null;
  try {
    bpe = bpeModelOf(original.json);
  } catch {
    bpe = null;
  }
  for (const [id, token] of idToToken) {
    if (id < original.size || extended.specialIds.has(id)) continue;
    let sub: number[] = [];
    try {
      if (bpe) {
        const word = !added.has(id) ? token : bpe.kind === 'byte-level' ? toByteLevel(token) : token.replace(/ /g, '\u2581');
        sub = segmentWord(bpe, word);
      } else {
        sub = await encode(original, await decode(extended, [id], false), false);
      }
    } catch (e) {
      throw new HackError('NOT_EXPRESSIBLE', `token ${JSON.stringify(token)} (id ${id}) cannot be written with the original tokenizer: ${(e as Error).message}`);
    }
    if (sub.length === 0) throw new HackError('NOT_EXPRESSIBLE', `token ${JSON.stringify(token)} (id ${id}) cannot be written with the original tokenizer`);
    map.set(id, sub);
  }
  return map;
}
