// Many independent generations: uses the engine's batched generation when it has one.
// Prompts are batched by length (shortest first), so a batch pads to a similar length instead of
// to the longest prompt of a random mix; outputs come back in the input order.
import type { EvalEngine, EvalGenerateOptions } from '../engine-api.ts';

type BatchGen = (prompts: number[][], opts: EvalGenerateOptions) => Promise<number[][]>;

/** Consecutive groups of `order` with at most `maxBatch` prompts and `tokenBudget` padded prompt tokens each. */
export function lengthBatches(lengths: number[], maxBatch: number, tokenBudget: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const batches: number[][] = [];
  let cur: number[] = [];
  for (const i of order) {
    // sorted ascending, so the newest prompt is the longest of the batch
    if (cur.length > 0 && (cur.length >= maxBatch || (cur.length + 1) * lengths[i] > tokenBudget)) {
      batches.push(cur);
      cur = [];
    }
    cur.push(i);
  }
  if (cur.length) batches.push(cur);
  return batches;
}

export async function generateMany(
  engine: EvalEngine, prompts: number[][], opts: EvalGenerateOptions, onProgress?: (done: number) => void,
  batch = 32, tokenBudget = 4096,
): Promise<number[][]> {
  const batched = (engine as unknown as { generateBatch?: BatchGen }).generateBatch;
  const out = new Array<number[]>(prompts.length);
  let done = 0;
  if (typeof batched === 'function') {
    for (const group of lengthBatches(prompts.map((p) => p.length), batch, tokenBudget)) {
      const res = await batched.call(engine, group.map((i) => prompts[i]), opts);
      group.forEach((i, k) => { out[i] = res[k]; });
      done += group.length;
      onProgress?.(done);
    }
    return out;
  }
  for (let i = 0; i < prompts.length; i++) {
    out[i] = await engine.generate(prompts[i], opts);
    onProgress?.(++done);
  }
  return out;
}
