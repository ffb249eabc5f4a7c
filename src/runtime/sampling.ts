// Next-token choice from logits: greedy (temperature 0, ties to the lowest id as torch.argmax),
// or temperature / top-k / top-p sampling with a seeded PRNG (reproducible per seed).

export interface SamplingOptions { temperature?: number; topK?: number; topP?: number }

/** Mulberry32: small deterministic PRNG in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: Float32Array, limit = logits.length): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < limit; i++) if (logits[i] > bestV) { bestV = logits[i]; best = i; }
  return best;
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
  let idx = Array.from({ length: n }, (_, i) => i);
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, n) : n;
  idx.sort((a, b) => logits[b] - logits[a] || a - b);
  idx = idx.slice(0, k);
  const max = logits[idx[0]];
  let probs = idx.map((i) => Math.exp((logits[i] - max) / t));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  const p = opts.topP ?? 1;
  if (p < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length) { acc += probs[keep++]; if (acc >= p) break; }
    idx = idx.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((q) => q / sum);
  }
  let r = rand();
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i];
    if (r < 0) return idx[i];
  }
  return idx[idx.length - 1];
}
