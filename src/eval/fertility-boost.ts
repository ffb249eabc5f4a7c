// FertilityBoost: the share of positions where the model picks a NEW token when it reads a text
// through the original tokenizer (teacher-forced, as the research measured it). Unlike the research,
// the first new id counts too (the research compared id > len(tokenizer), missing id == len).
import type { EvalEngine, ProgressFn } from './engine-api.ts';
import { sampleMany, seededRandom } from './sampling.ts';
import { argmax } from '../runtime/sampling.ts';
import { meanStd } from './text-metrics.ts';
import { HackError } from '../io/errors.ts';

export interface FertilityBoostOptions {
  /** Sampling temperature for the stochastic variant (default 0.8). */
  temperature?: number;
  /** Runs at that temperature (default 10). */
  runs?: number;
  seed?: number;
  /** Longest sequence fed at once (default 512, the demo model's training context). */
  maxTokens?: number;
  onProgress?: ProgressFn;
}

export interface FertilityBoostResult {
  /** Mean over runs at `temperature` of the per-text share of new-token picks, averaged over texts. */
  mean: number;
  std: number;
  temperature: number;
  runs: number;
  per_run: number[];
  /** Greedy (T = 0) share, averaged over texts. */
  greedy: number;
  /** Greedy share over all positions pooled. */
  greedy_pooled: number;
  n_texts: number;
  n_positions: number;
}

/**
 * @param inputs each text as ORIGINAL-tokenizer ids
 * @param isNew whether an id is one of the added tokens
 */
export async function fertilityBoost(engine: EvalEngine, inputs: number[][], isNew: (id: number) => boolean, opts: FertilityBoostOptions = {}): Promise<FertilityBoostResult> {
  const temperature = opts.temperature ?? 0.8;
  const runs = opts.runs ?? 10;
  const maxTokens = opts.maxTokens ?? 512;
  const rand = seededRandom(opts.seed ?? 1234);
  const texts = inputs.map((ids) => ids.slice(0, maxTokens)).filter((ids) => ids.length > 0);
  if (texts.length === 0) throw new HackError('EMPTY_TEXT', 'fertility-boost needs at least one non-empty text');
  const V = engine.vocabRows;
  const scratch = new Float64Array(V);
  const greedyShares: number[] = [];
  const runShares: number[][] = Array.from({ length: runs }, () => []);
  let pooledNew = 0;
  let positions = 0;
  for (let t = 0; t < texts.length; t++) {
    const ids = texts[t];
    const logits = await engine.logits(ids);
    const seq = ids.length;
    if (logits.length !== seq * V) throw new Error(`engine returned ${logits.length} logits for ${seq} positions x ${V}`);
    let greedyNew = 0;
    const runNew = new Array<number>(runs).fill(0);
    for (let p = 0; p < seq; p++) {
      if (isNew(argmax(logits, p * V, V))) greedyNew++;
      if (runs > 0) {
        const draws = Array.from({ length: runs }, () => rand());
        const picks = sampleMany(logits, p * V, V, temperature, draws, scratch);
        for (let r = 0; r < runs; r++) if (isNew(picks[r])) runNew[r]++;
      }
    }
    greedyShares.push(greedyNew / seq);
    for (let r = 0; r < runs; r++) runShares[r].push(runNew[r] / seq);
    pooledNew += greedyNew;
    positions += seq;
    opts.onProgress?.(t + 1, texts.length);
  }
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const perRun = runShares.map(avg);
  const { mean, std } = meanStd(perRun);
  return {
    mean: runs > 0 ? mean : avg(greedyShares), std: runs > 0 ? std : 0, temperature, runs, per_run: perRun,
    greedy: avg(greedyShares), greedy_pooled: pooledNew / positions, n_texts: texts.length, n_positions: positions,
  };
}
