// Decode speed: characters generated per decode step and per second, for the same prompts under two
// setups (the extended model and the original one), plus the repetition of word 4-grams in them.
import { repetitionRate } from './text-metrics.ts';

export interface DecodeRun {
  chars_per_step: number;
  chars_per_second: number;
  steps: number;
  chars: number;
  seconds: number;
  /** Share of repeated word 4-grams in the generations. */
  repetition: number;
}

/** @param generate returns the new ids and their decoded text for one prompt */
export async function measureDecode(prompts: string[], generate: (prompt: string) => Promise<{ ids: number[]; text: string }>, onProgress?: (done: number, total: number) => void): Promise<DecodeRun & { generations: string[] }> {
  let steps = 0;
  let chars = 0;
  const generations: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < prompts.length; i++) {
    const g = await generate(prompts[i]);
    steps += g.ids.length;
    chars += [...g.text].length;
    generations.push(g.text);
    onProgress?.(i + 1, prompts.length);
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    chars_per_step: steps > 0 ? chars / steps : NaN, chars_per_second: seconds > 0 ? chars / seconds : NaN,
    steps, chars, seconds, repetition: repetitionRate(generations).rate, generations,
  };
}

/** Prompts for generation metrics: the first `words` words of the first `n` lines that have enough words. */
export function promptsFromText(text: string, n: number, words = 12): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const w = line.trim().split(/\s+/);
    if (w.length < words + 4) continue;
    out.push(w.slice(0, words).join(' '));
    if (out.length >= n) break;
  }
  return out;
}
