// Tokenizers through Hugging Face's Rust binding (`tokenizers` on npm), with the raw
// tokenizer.json kept beside it for the parts the binding does not expose (model type, merges).
import { Tokenizer } from 'tokenizers';
import { readTokenizerJson, tokenizerSizeOf, type TokenizerJson } from '../io/model-dir.ts';
import { HackError } from '../io/errors.ts';

export interface LoadedTokenizer {
  /** Where it came from (a file path or a label). */
  source: string;
  json: TokenizerJson;
  native: Tokenizer;
  /** One past the largest id (added tokens included). */
  size: number;
  /** Ids of special added tokens. */
  specialIds: Set<number>;
}

export class TokenizerError extends HackError {
  constructor(readonly source: string, message: string) {
    super('BAD_TOKENIZER', message, { file: source });
    this.name = 'TokenizerError';
  }
}

export function tokenizerFromJson(json: TokenizerJson, source = '<tokenizer.json>'): LoadedTokenizer {
  let native: Tokenizer;
  try {
    native = Tokenizer.fromString(JSON.stringify(json));
  } catch (e) {
    throw new TokenizerError(source, `the tokenizers library rejected this tokenizer.json (${(e as Error).message})`);
  }
  const specialIds = new Set((json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
  return { source, json, native, size: tokenizerSizeOf(json), specialIds };
}

export async function loadTokenizer(file: string): Promise<LoadedTokenizer> {
  return tokenizerFromJson(await readTokenizerJson(file), file);
}

/** Token ids of a text, without special tokens (BOS/EOS) unless asked. */
export async function encode(tok: LoadedTokenizer, text: string, addSpecialTokens = false): Promise<number[]> {
  const enc = await tok.native.encode(text, null, { addSpecialTokens });
  return enc.getIds();
}

export async function encodeBatch(tok: LoadedTokenizer, texts: string[], addSpecialTokens = false): Promise<number[][]> {
  if (texts.length === 0) return [];
  const encs = await tok.native.encodeBatch(texts, { addSpecialTokens });
  return encs.map((e) => e.getIds());
}

export async function encodeWithTokens(tok: LoadedTokenizer, text: string): Promise<{ ids: number[]; tokens: string[]; offsets: Array<[number, number]> }> {
  const enc = await tok.native.encode(text, null, { addSpecialTokens: false });
  return { ids: enc.getIds(), tokens: enc.getTokens(), offsets: enc.getOffsets() as Array<[number, number]> };
}

export async function decode(tok: LoadedTokenizer, ids: number[], skipSpecialTokens = true): Promise<string> {
  return tok.native.decode(ids, skipSpecialTokens);
}

