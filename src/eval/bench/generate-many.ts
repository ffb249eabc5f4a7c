// Many independent generations: uses the engine's batched generation when it has one.
import type { EvalEngine, EvalGenerateOptions } from '../engine-api.ts';

type BatchGen = (prompts: number[][], opts: EvalGenerateOptions) => Promise<number[][]>;

export async function generateMany(engine: EvalEngine, prompts: number[][], opts: EvalGenerateOptions, onProgress?: (done: number) => void, batch = 32): Promise<number[][]> {
  const batched = (engine as unknown as { generateBatch?: BatchGen }).generateBatch;
  const out: number[][] = [];
  if (typeof batched === 'function') {
    for (let i = 0; i < prompts.length; i += batch) {
      out.push(...(await batched.call(engine, prompts.slice(i, i + batch), opts)));
      onProgress?.(out.length);
    }
    return out;
  }
  for (const p of prompts) {
    out.push(await engine.generate(p, opts));
    onProgress?.(out.length);
  }
  return out;
}
