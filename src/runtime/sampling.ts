// Next-token choice from logits: greedy (temperature 0, ties to the lowest id as torch.argmax),
import { seededRandom } from '../io/seeded-random.ts';
// or temperature / top-k / top-p sampling with a seeded PRNG (reproducible per seed).

export interface SamplingOptions { temperature?: number; topK?: number; topP?: number }

export { seededRandom } from '../io/seeded-random.ts';

/** The largest of `width` logits from `offset`, as an index relative to `offset` (ties to the lowest, as torch.argmax). */
export function argmax(row: Float32Array, offset = 0, width = row.length - offset): number {
  let best = 0;
  let bestV = -Infinity;
  for (let j = 0; j < width; j++) {
    const v = row[offset + j];
    if (v > bestV) { bestV = v; best = j; }
  }
  return best;
}

/** One entry of log softmax over `width` logits from `offset` (`target` relative to `offset`), without the whole vector. */
export function logProbAt(row: Float32Array, target: number, offset = 0, width = row.length - offset): number {
  let max = -Infinity;
  for (let j = 0; j < width; j++) if (row[offset + j] > max) max = row[offset + j];
  let s = 0;
  for (let j = 0; j < width; j++) s += Math.exp(row[offset + j] - max);
  return row[offset + target] - max - Math.log(s);
}

export function logSoftmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/** Pick the next id; `rand` is only used when temperature > 0. */
export function sampleNext(logits: Float32Array, opts: SamplingOptions, rand: () => number): number {
  const t = opts.temperature ?? 0;
  if (!(t > 0)) return argmax(logits);
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  // Probabilities over the whole vocabulary (exact normalization), O(V).
  const w = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) { w[i] = Math.exp((logits[i] - max) / t); total += w[i]; }
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, n) : n;
  const p = opts.topP ?? 1;
  if (k === n && p >= 1) return pick(w, null, total, rand);
  // Only tokens that can be in the top-k / nucleus need sorting: those with weight >= 1e-12 of the max
  // hold all but a negligible mass; sort everything if they do not reach top-p.
  let cand: number[] = [];
  for (let i = 0; i < n; i++) if (w[i] >= 1e-12) cand.push(i);
  let candMass = 0;
  for (const i of cand) candMass += w[i];
  if (cand.length < k && candMass / total < p) cand = Array.from({ length: n }, (_, i) => i);
  cand.sort((a, b) => w[b] - w[a] || a - b);
  cand = cand.slice(0, k);
  if (p < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < cand.length) { acc += w[cand[keep++]] / total; if (acc >= p) break; }
    cand = cand.slice(0, keep);
  }
  let mass = 0;
  for (const i of cand) mass += w[i];
  return pick(w, cand, mass, rand);
}

function pick(w: Float64Array, cand: number[] | null, mass: number, rand: () => number): number {
  let r = rand() * mass;
  if (!cand) {
    for (let i = 0; i < w.length; i++) { r -= w[i]; if (r < 0) return i; }
    return w.length - 1;
  }
  for (const i of cand) { r -= w[i]; if (r < 0) return i; }
  return cand[cand.length - 1];
}
