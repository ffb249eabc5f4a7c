// Extending a tokenizer.json with new tokens, in one of two ways:
//  - 'added':  the research's way: added tokens (normalized, not special), matched in the text
//              before BPE runs.
//  - 'merges': real BPE tokens: appended to the model vocabulary with the merge that builds each,
//              ranked after every existing merge, so BPE itself produces them.
// Existing ids and strings never change; special and chat tokens are untouched.
//
// How 'added' handles the two BPE families (the tokenizers library matches added tokens on the
// normalized text and decodes them through the model's decoder):
//  - byte-level: the content is the decoded text (' deputados', with its leading space). A token
//    whose text is made only of characters of the byte-level alphabet with at least one non-ASCII
//    character ('ção') is skipped: the ByteLevel decoder would read those characters as bytes and
//    decode(encode(x)) would no longer give x. Tokens that are not valid UTF-8 alone are skipped.
//  - SentencePiece with a Prepend('▁') normalizer (Llama-2): refused. The normalizer also runs
//    on the content ('deputados' -> '▁deputados', ' deputados' -> '▁▁deputados'), so tokens
//    without a leading '▁' cannot be expressed, and @huggingface/tokenizers matches the others
//    inside words where the Rust library does not (different ids for the same text).
//    With a Metaspace pre-tokenizer (no Prepend normalizer) the content is the text, as for byte-level.
import { HackError } from '../io/errors.ts';
import { tokenizerSizeOf, type TokenizerJson } from '../io/model-dir.ts';
import { CHAR_TO_BYTE } from './byte-level.ts';
import { bpeModelOf, pairKey, segmentWord, type BpeModel } from './bpe-model.ts';
import type { NewToken } from './tokens-file.ts';

export type ExtendMode = 'added' | 'merges';

export interface ExtendOptions {
  mode: ExtendMode;
  /** Id of the first new token (default: the tokenizer's size). Must not collide with existing ids. */
  firstId?: number;
  /**
   * Stop once this many tokens are added (default: all). Candidates that cannot be added are
   * skipped and the next ranked ones taken, so a user who asks for N gets N when the list allows.
   */
  count?: number;
}

export interface SkippedToken {
  index: number;
  token: string;
  reason: string;
}

export interface ExtendResult {
  json: TokenizerJson;
  /** Id of tokens[i] in the extended tokenizer, or -1 when it was skipped. */
  newIds: number[];
  skipped: SkippedToken[];
  /** Added-token entries that were appended (mode 'added'), for tokenizer_config.json. */
  addedEntries: TokenizerJson['added_tokens'];
}

export class ExtendError extends HackError {
  constructor(message: string, option?: string) {
    super('EXTEND', message, { option });
    this.name = 'ExtendError';
  }
}

/** True when the ByteLevel decoder would turn `text` back into itself. */
function byteLevelDecodable(text: string): boolean {
  let allInTable = true;
  let nonAscii = false;
  for (const ch of text) {
    if (!CHAR_TO_BYTE.has(ch)) allInTable = false;
    if (ch.codePointAt(0)! >= 0x80) nonAscii = true;
  }
  // A character outside the table makes the decoder fall back to the token's UTF-8 bytes.
  return !allInTable || !nonAscii;
}

function hasPrependNormalizer(json: TokenizerJson): boolean {
  return JSON.stringify(json.normalizer ?? null).includes('"Prepend"');
}

function addedContent(model: BpeModel, json: TokenizerJson, t: NewToken): { content: string } | { reason: string } {
  if (t.text === null || t.text.length === 0) return { reason: 'not valid UTF-8 on its own' };
  if (model.kind === 'byte-level') {
    if (!byteLevelDecodable(t.text)) return { reason: 'byte-level decoder cannot decode it as an added token (use --mode merges)' };
    return { content: t.text };
  }
  return { content: t.text };
}

/** A deep copy (tokenizer.json is plain JSON). */
function clone(json: TokenizerJson): TokenizerJson {
  return JSON.parse(JSON.stringify(json));
}

export function extendTokenizer(original: TokenizerJson, tokens: NewToken[], opts: ExtendOptions): ExtendResult {
  const model = bpeModelOf(original); // throws "not supported yet" for WordPiece / Unigram
  const size = tokenizerSizeOf(original);
  const firstId = opts.firstId ?? size;
  if (!Number.isInteger(firstId) || firstId < size) {
    throw new ExtendError(`first new id ${firstId} would collide with existing ids (the tokenizer uses ids up to ${size - 1})`);
  }
  const json = clone(original);
  const newIds: number[] = new Array(tokens.length).fill(-1);
  const skipped: SkippedToken[] = [];
  const addedEntries: TokenizerJson['added_tokens'] = [];
  let nextId = firstId;
  const want = opts.count ?? tokens.length;
  const seen = new Set<string>();
  if (opts.mode === 'added') {
    if (model.kind === 'sentencepiece' && hasPrependNormalizer(json)) {
      throw new ExtendError(
        "added is not supported for tokenizers with a Prepend('▁') normalizer (Llama-2 style): the normalizer also runs on " +
          'added-token contents, so most tokens cannot be expressed, and the tokenizers library and @huggingface/tokenizers match ' +
          'the rest differently (different ids for the same text). Use mode merges',
        'mode');
    }
    const existingContent = new Set((json.added_tokens ?? []).map((t) => t.content));
    for (const [i, t] of tokens.entries()) {
      if (nextId - firstId >= want) break;
      if (model.vocab.has(t.token)) {
        skipped.push({ index: i, token: t.token, reason: 'already in the vocabulary' });
        continue;
      }
      const c = addedContent(model, json, t);
      if ('reason' in c) {
        skipped.push({ index: i, token: t.token, reason: c.reason });
        continue;
      }
      if (model.vocab.has(c.content)) {
        skipped.push({ index: i, token: t.token, reason: `its added-token content ${JSON.stringify(c.content)} is already a vocabulary entry` });
        continue;
      }
      if (existingContent.has(c.content) || seen.has(c.content)) {
        skipped.push({ index: i, token: t.token, reason: 'already an added token' });
        continue;
      }
      seen.add(c.content);
      const entry = { id: nextId, content: c.content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };
      json.added_tokens.push(entry);
      addedEntries.push(entry);
      newIds[i] = nextId++;
    }
    pinAddedTokenIds(json);
    return { json, newIds, skipped, addedEntries };
  }

  // merges
  const vocab = json.model.vocab as Record<string, number>;
  const merges = (json.model.merges ??= []) as Array<string | [string, string]>;
  const asStrings = model.mergesAsStrings;
  for (const [i, t] of tokens.entries()) {
    if (nextId - firstId >= want) break;
    if (model.vocab.has(t.token)) {
      skipped.push({ index: i, token: t.token, reason: 'already in the vocabulary' });
      continue;
    }
    let pair = t.merge;
    if (!pair || !model.vocab.has(pair[0]) || !model.vocab.has(pair[1]) || pair[0] + pair[1] !== t.token) {
      // No usable merge recorded: if the current (extended) BPE splits the token in exactly two, merge those.
      const seg = segmentWord(model, t.token);
      pair = seg.length === 2 ? [model.idToToken[seg[0]], model.idToToken[seg[1]]] : null;
    }
    if (!pair) {
      skipped.push({ index: i, token: t.token, reason: 'no merge of two existing tokens builds it' });
      continue;
    }
    if (asStrings && (pair[0].includes(' ') || pair[1].includes(' '))) {
      skipped.push({ index: i, token: t.token, reason: 'contains a space, which the "a b" merge format cannot hold' });
      continue;
    }
    const a = model.vocab.get(pair[0])!;
    const b = model.vocab.get(pair[1])!;
    const key = pairKey(a, b);
    if (model.mergeRank.has(key)) {
      skipped.push({ index: i, token: t.token, reason: `the merge ${pair[0]} + ${pair[1]} already exists` });
      continue;
    }
    const id = nextId++;
    vocab[t.token] = id;
    merges.push(asStrings ? `${pair[0]} ${pair[1]}` : [pair[0], pair[1]]);
    // Keep the working model in step so later tokens can build on this one.
    model.vocab.set(t.token, id);
    model.idToToken[id] = t.token;
    model.mergeRank.set(key, model.merges.length);
    model.merges.push(pair);
    model.mergeResult.push(id);
    newIds[i] = id;
  }
  pinAddedTokenIds(json);
  return { json, newIds, skipped, addedEntries };
}

/**
 * The ids the tokenizers library gives added tokens when it loads a tokenizer.json: it ignores the
 * stored ids and assigns, in order, the model-vocabulary id of the content when there is one, else
 * the next id after the model vocabulary's length (or after the largest added id).
 */
export function rustAddedTokenIds(json: TokenizerJson): number[] {
  const vocab = json.model.vocab as Record<string, number>;
  const vocabSize = Object.keys(vocab).length;
  const assigned = new Map<string, number>();
  let max = -1;
  return (json.added_tokens ?? []).map((t) => {
    let id = assigned.get(t.content) ?? (Object.prototype.hasOwnProperty.call(vocab, t.content) ? vocab[t.content] : undefined);
    if (id === undefined) id = max < 0 ? vocabSize : max >= vocabSize ? max + 1 : vocabSize;
    assigned.set(t.content, id);
    if (id > max) max = id;
    return id;
  });
}

/**
 * Appending vocabulary entries after added tokens (Qwen, Llama-3 keep their specials after the
 * vocabulary), or leaving a gap of padding rows, would make the tokenizers library renumber the
 * added tokens on load. When that would happen, every added token is also entered in the model
 * vocabulary under its own id, which the library then uses as is (BPE never produces these
 * entries: no merge builds them, and added tokens are split off before the model runs).
 */
export function pinAddedTokenIds(json: TokenizerJson): void {
  const want = (json.added_tokens ?? []).map((t) => t.id);
  const got = rustAddedTokenIds(json);
  if (want.every((id, i) => got[i] === id)) return;
  const vocab = json.model.vocab as Record<string, number>;
  for (const t of json.added_tokens) if (!Object.prototype.hasOwnProperty.call(vocab, t.content)) vocab[t.content] = t.id;
  const again = rustAddedTokenIds(json);
  if (!want.every((id, i) => again[i] === id)) throw new ExtendError('could not keep the ids of the added tokens stable (duplicate added-token contents?)');
}

/** tokenizer_config.json for the extended tokenizer: the new added tokens listed in added_tokens_decoder. */
export function extendTokenizerConfig(config: Record<string, unknown> | null, added: TokenizerJson['added_tokens']): Record<string, unknown> | null {
  if (!config) return null;
  const out = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  if (added.length > 0 && out.added_tokens_decoder && typeof out.added_tokens_decoder === 'object') {
    const dec = out.added_tokens_decoder as Record<string, unknown>;
    for (const t of added) {
      dec[String(t.id)] = { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special };
    }
  }
  return out;
}

/** Write tokenizer.json (+ tokenizer_config.json when there is one) into a directory. */
export async function writeTokenizerFiles(dir: string, json: TokenizerJson, config: Record<string, unknown> | null): Promise<void> {
  const { promises: fsp } = await import('node:fs');
  const path = await import('node:path');
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(json, null, 2) + '\n');
  if (config) await fsp.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
}
