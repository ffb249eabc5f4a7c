// Tokenizer-independent text metrics: the first word of a generation (words as in fertility: Python's
// `\w+`), repetition of word 4-grams in generations, the research's efficiency gain.
import { WORD } from '../tokenizer/fertility.ts';

const FIRST_WORD = new RegExp(WORD.source, 'u');

export function firstWord(text: string): string | null {
  const m = text.match(FIRST_WORD);
  return m ? m[0] : null;
}

/**
 * True when no continuation of `text` can change firstWord(text): the first word is followed by
 * a character that ends it, and no undecoded bytes (U+FFFD, a partial UTF-8 sequence at a token
 * boundary) come before that character. Lets a generation stop as soon as its answer is known.
 */
export function firstWordSettled(text: string): boolean {
  const cut = text.indexOf('\uFFFD');
  const stable = cut < 0 ? text : text.slice(0, cut);
  const m = FIRST_WORD.exec(stable);
  return m !== null && m.index + m[0].length < stable.length;
}

/**
 * Share of repeated word 4-grams in a set of generations: for each generation, the 4-grams that
 * repeat an earlier 4-gram of the same generation, summed over generations, divided by all 4-grams.
 * Words (not tokens) keep it comparable across tokenizers.
 */
export function repetitionRate(generations: string[], n = 4): { rate: number; repeated: number; total: number } {
  let repeated = 0;
  let total = 0;
  for (const g of generations) {
    const w = g.split(/\s+/).filter((x) => x.length > 0);
    const seen = new Set<string>();
    for (let i = 0; i + n <= w.length; i++) {
      const key = w.slice(i, i + n).join('\u0001');
      total++;
      if (seen.has(key)) repeated++;
      else seen.add(key);
    }
  }
  return { rate: total > 0 ? repeated / total : 0, repeated, total };
}

/**
 * The research's efficiency gain: (F_orig / F_new - 1) x FertilityBoost, where F is input fertility
 * (tokens per word) under the original and the extended tokenizer.
 */
export function efficiencyGain(fertilityOriginal: number, fertilityNew: number, fertilityBoost: number): number {
  return (fertilityOriginal / fertilityNew - 1) * fertilityBoost;
}

export function meanStd(xs: number[]): { mean: number; std: number } {
  if (xs.length === 0) return { mean: NaN, std: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return { mean, std: Math.sqrt(v) };
}
