// Tokenizer-independent text metrics: word matching as Python's Unicode `\w+`, repetition of
// word 4-grams in generations, compression.

/** Python's `\w` on str: Unicode letters, digits and the underscore (marks kept inside words). */
export const WORD_RE = /[\p{L}\p{N}_][\p{L}\p{M}\p{N}_]*/gu;
export const WORD_CHAR_RE = /[\p{L}\p{M}\p{N}_]/u;

export function words(text: string): string[] {
  return text.match(WORD_RE) ?? [];
}

const WORD = /[\p{L}\p{N}_][\p{L}\p{M}\p{N}_]*/u;

export function firstWord(text: string): string | null {
  const m = text.match(WORD);
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
  const m = WORD.exec(stable);
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

/** UTF-8 bytes per token over a set of texts and their token counts. */
export function compression(bytes: number, tokens: number): number {
  return tokens > 0 ? bytes / tokens : NaN;
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
