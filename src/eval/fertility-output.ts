// FertilityOutput (the research's): how many generated tokens the model needs to produce its first
// complete word, over prefixes of texts. Fixed: texts without words and generations without a
// complete word are counted apart instead of crashing or dividing by zero.
import type { EvalEngine, ProgressFn, TextCodec } from './engine-api.ts';
import { WORD, WORD_CHAR } from '../tokenizer/fertility.ts';

/**
 * Tokens spanned by the first complete word of a generation.
 * @param cumulative decoded text after 1, 2, ... generated tokens (cumulative[k] = decode(ids[0..k]))
 * @param promptEndsInWord a word at the very start then continues the prompt's last word: skipped
 * @returns the number of tokens from the one holding the word's first character to the one holding
 *   its last; null when no word is completed (followed by a non-word character) in the generation
 */
export function tokensForFirstWord(cumulative: string[], promptEndsInWord: boolean): number | null {
  if (cumulative.length === 0) return null;
  const text = cumulative[cumulative.length - 1];
  const re = new RegExp(WORD.source, 'gu');
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const start = m.index;
    const end = start + m[0].length;
    if (start === 0 && promptEndsInWord) continue;
    if (end >= text.length) return null; // the word may go on: not complete
    const startTok = cumulative.findIndex((s) => s.length > start);
    const endTok = cumulative.findIndex((s) => s.length >= end);
    return endTok - startTok + 1;
  }
  return null;
}

export interface FertilityOutputOptions {
  /** Shortest prefix in tokens (the research starts at 6). */
  minPrefix?: number;
  /** At most this many prefixes per text, spread evenly (the research used all; default 8). */
  maxPrefixes?: number;
  maxNewTokens?: number;
  onProgress?: ProgressFn;
}

export interface FertilityOutputResult {
  /** Mean over texts of the mean tokens per first complete word. */
  mean: number;
  n_texts: number;
  n_samples: number;
  /** Texts skipped because they contain no word. */
  texts_without_words: number;
  /** Generations without a complete word within maxNewTokens (not averaged in). */
  no_complete_word: number;
}

export function prefixLengths(numTokens: number, minPrefix: number, maxPrefixes: number): number[] {
  const all: number[] = [];
  for (let n = minPrefix; n <= numTokens; n++) all.push(n);
  if (all.length <= maxPrefixes) return all;
  const out = new Set<number>();
  for (let i = 0; i < maxPrefixes; i++) out.add(all[Math.round((i * (all.length - 1)) / Math.max(1, maxPrefixes - 1))]);
  return [...out];
}

export async function fertilityOutput(engine: EvalEngine, codec: TextCodec, texts: string[], opts: FertilityOutputOptions = {}): Promise<FertilityOutputResult> {
  const minPrefix = opts.minPrefix ?? 6;
  const maxPrefixes = opts.maxPrefixes ?? 8;
  const maxNew = opts.maxNewTokens ?? 10;
  const perText: number[] = [];
  let samples = 0;
  let noWord = 0;
  let withoutWords = 0;
  for (let t = 0; t < texts.length; t++) {
    const text = texts[t];
    if (!WORD_CHAR.test(text)) { withoutWords++; opts.onProgress?.(t + 1, texts.length); continue; }
    const ids = await codec.encode(text);
    const counts: number[] = [];
    for (const n of prefixLengths(ids.length, minPrefix, maxPrefixes)) {
      const prompt = ids.slice(0, n);
      const out = await engine.generate(prompt, { maxNewTokens: maxNew, temperature: 0 });
      const promptText = await codec.decode(prompt);
      const cumulative: string[] = [];
      for (let k = 1; k <= out.length; k++) cumulative.push(await codec.decode(out.slice(0, k)));
      const lastChar = promptText.slice(-1);
      const c = tokensForFirstWord(cumulative, lastChar !== '' && WORD_CHAR.test(lastChar));
      samples++;
      if (c === null) noWord++; else counts.push(c);
    }
    if (counts.length > 0) perText.push(counts.reduce((a, b) => a + b, 0) / counts.length);
    opts.onProgress?.(t + 1, texts.length);
  }
  return {
    mean: perText.length > 0 ? perText.reduce((a, b) => a + b, 0) / perText.length : NaN,
    n_texts: perText.length, n_samples: samples, texts_without_words: withoutWords, no_complete_word: noWord,
  };
}
