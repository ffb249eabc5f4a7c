// Initialization methods for the embedding rows of new tokens: one registry, each method a small
import { HackError } from '../io/errors.ts';
import { seededRandom } from '../io/seeded-random.ts';
// pure function. A new token's "sub-token rows" are the rows (of the matrix being initialized) of
// its tokenization by the ORIGINAL tokenizer, special tokens never included. Methods that do not
// look at sub-tokens (random, hf-mean-resizing) read statistics of the existing rows and a seeded
// random source from the context instead.

/** Statistics over the existing rows of one matrix (only what the chosen methods need). */
export interface RowStats {
  rows: number;
  hidden: number;
  /** Per-dimension minimum / maximum (for `random`). */
  min: Float32Array;
  max: Float32Array;
  /** Per-dimension mean (for `hf-mean-resizing` and padding rows). */
  mean: Float64Array;
  /**
   * Lower Cholesky factor (row-major hidden x hidden) of the scaled covariance 1e-9 * Σ used by
   * `hf-mean-resizing`; null when Σ is not positive definite (then the mean is used, as transformers does).
   */
  cholesky: Float64Array | null;
}

export interface InitContext {
  hidden: number;
  /** Present when the method needs it (see `needs`). */
  stats: RowStats | null;
  /** Uniform [0, 1) source, seeded by the caller. */
  random: () => number;
}

export type MethodName =
  | 'mean' | 'min' | 'max' | 'quantile' | 'weighted_drop' | 'random' | 'hf-mean-resizing' | 'zero' | 'first' | 'last';

export interface InitMethod {
  /** Canonical spelling, e.g. `quantile(0.25)`. */
  spec: string;
  name: MethodName;
  param: number | null;
  /** What the method reads: the sub-token rows, the per-dimension range, the mean + covariance, or nothing. */
  needs: 'subtokens' | 'range' | 'gaussian' | 'none';
  /** Write the new row into `out` (length hidden). */
  init(sub: readonly Float32Array[], ctx: InitContext, out: Float32Array): void;
  /** Methods that ignore sub-tokens may fill `count` rows at once (same result as `count` init calls, only faster). */
  initBatch?(count: number, ctx: InitContext, out: Float32Array): void;
}

export class InitMethodError extends HackError {
  constructor(message: string, option?: string) {
    super('BAD_INIT_METHOD', message, { option });
    this.name = 'InitMethodError';
  }
}

/** transformers scales the covariance by this before sampling (`_init_added_embeddings_weights_with_mean`). */
export const HF_COVARIANCE_SCALE = 1e-9;

export const VALID_FORMS = [
  'mean', 'min', 'max', 'quantile(q) with 0 <= q <= 1, e.g. quantile(0.25)',
  'weighted_drop(K) with K > 0, e.g. weighted_drop(2)', 'random', 'hf-mean-resizing', 'zero', 'first', 'last',
];

function requireSub(sub: readonly Float32Array[], spec: string): void {
  if (sub.length === 0) throw new InitMethodError(`${spec}: the new token has no sub-tokens to initialize from`);
}

/** Σ a[ia + k] * b[ib + k] for k < n, with four independent accumulators (no add-latency chain). */
export function dot(a: Float64Array, ia: number, b: Float64Array, ib: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[ia + k] * b[ib + k];
    s1 += a[ia + k + 1] * b[ib + k + 1];
    s2 += a[ia + k + 2] * b[ib + k + 2];
    s3 += a[ia + k + 3] * b[ib + k + 3];
  }
  for (; k < n; k++) s0 += a[ia + k] * b[ib + k];
  return (s0 + s1) + (s2 + s3);
}

// ------------------------------------------------------------------ the methods (pure)

export function initMean(sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'mean');
  const h = out.length;
  for (let d = 0; d < h; d++) {
    let s = 0;
    for (const r of sub) s += r[d];
    out[d] = s / sub.length;
  }
}

export function initMin(sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'min');
  out.set(sub[0].subarray(0, out.length));
  for (let i = 1; i < sub.length; i++) for (let d = 0; d < out.length; d++) if (sub[i][d] < out[d]) out[d] = sub[i][d];
}

export function initMax(sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'max');
  out.set(sub[0].subarray(0, out.length));
  for (let i = 1; i < sub.length; i++) for (let d = 0; d < out.length; d++) if (sub[i][d] > out[d]) out[d] = sub[i][d];
}

/** Per-dimension quantile with linear interpolation between order statistics (numpy/torch default). */
export function initQuantile(q: number, sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'quantile');
  const n = sub.length;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const frac = pos - lo;
  const col = new Float64Array(n);
  for (let d = 0; d < out.length; d++) {
    // insertion sort: n (sub-tokens per token) is small
    for (let i = 0; i < n; i++) {
      const v = sub[i][d];
      let j = i - 1;
      while (j >= 0 && col[j] > v) { col[j + 1] = col[j]; j--; }
      col[j + 1] = v;
    }
    out[d] = col[lo] + (col[hi] - col[lo]) * frac;
  }
}

/** Weights K^n, K^(n-1), ..., K^1 over the n sub-tokens in order, normalized to sum 1. */
export function weightedDropWeights(k: number, n: number): Float64Array {
  const w = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) { w[i] = Math.pow(k, n - i); s += w[i]; }
  for (let i = 0; i < n; i++) w[i] /= s;
  return w;
}

export function initWeightedDrop(k: number, sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'weighted_drop');
  const w = weightedDropWeights(k, sub.length);
  for (let d = 0; d < out.length; d++) {
    let s = 0;
    for (let i = 0; i < sub.length; i++) s += w[i] * sub[i][d];
    out[d] = s;
  }
}

/** Uniform within each dimension's [min, max] over the existing rows. */
export function initRandom(stats: RowStats, random: () => number, out: Float32Array): void {
  for (let d = 0; d < out.length; d++) out[d] = stats.min[d] + (stats.max[d] - stats.min[d]) * random();
}

/** Standard normal via Box-Muller (one value per call; deterministic for the source). */
export function normal(random: () => number): number {
  let u = random();
  while (u <= 0) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** A sample of N(mean, 1e-9 Σ) (or the mean when Σ is not positive definite), as transformers' mean resizing. */
export function initHfMeanResizing(stats: RowStats, random: () => number, out: Float32Array): void {
  sampleHfMeanResizing(stats, random, 1, out);
}

/**
 * `count` samples at once into `out` (count x hidden, row-major): the same draws, in the same order,
 * as `count` calls of initHfMeanResizing, with the triangular product blocked over 4 samples.
 */
export function sampleHfMeanResizing(stats: RowStats, random: () => number, count: number, out: Float32Array): void {
  const h = stats.hidden;
  const mean = stats.mean;
  const L = stats.cholesky;
  if (!L) {
    for (let t = 0; t < count; t++) for (let d = 0; d < h; d++) out[t * h + d] = mean[d];
    return;
  }
  const z = new Float64Array(count * h);
  for (let k = 0; k < z.length; k++) z[k] = normal(random);
  let t = 0;
  for (; t + 3 < count; t += 4) {
    const z0 = t * h;
    const z1 = z0 + h;
    const z2 = z1 + h;
    const z3 = z2 + h;
    for (let i = 0; i < h; i++) {
      const row = i * h;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let j = 0; j <= i; j++) {
        const l = L[row + j];
        s0 += l * z[z0 + j]; s1 += l * z[z1 + j]; s2 += l * z[z2 + j]; s3 += l * z[z3 + j];
      }
      out[z0 + i] = mean[i] + s0;
      out[z1 + i] = mean[i] + s1;
      out[z2 + i] = mean[i] + s2;
      out[z3 + i] = mean[i] + s3;
    }
  }
  for (; t < count; t++) {
    const zt = t * h;
    for (let i = 0; i < h; i++) {
      const row = i * h;
      let s = 0;
      for (let j = 0; j <= i; j++) s += L[row + j] * z[zt + j];
      out[zt + i] = mean[i] + s;
    }
  }
}

export function initZero(out: Float32Array): void {
  out.fill(0);
}

export function initFirst(sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'first');
  out.set(sub[0].subarray(0, out.length));
}

export function initLast(sub: readonly Float32Array[], out: Float32Array): void {
  requireSub(sub, 'last');
  out.set(sub[sub.length - 1].subarray(0, out.length));
}

function needStats(ctx: InitContext, spec: string): RowStats {
  if (!ctx.stats) throw new InitMethodError(`${spec}: statistics of the existing rows were not computed`);
  return ctx.stats;
}

// ------------------------------------------------------------------ registry + parser

const SIMPLE: Record<string, Omit<InitMethod, 'spec' | 'param'>> = {
  mean: { name: 'mean', needs: 'subtokens', init: (s, _c, o) => initMean(s, o) },
  min: { name: 'min', needs: 'subtokens', init: (s, _c, o) => initMin(s, o) },
  max: { name: 'max', needs: 'subtokens', init: (s, _c, o) => initMax(s, o) },
  random: { name: 'random', needs: 'range', init: (_s, c, o) => initRandom(needStats(c, 'random'), c.random, o) },
  'hf-mean-resizing': {
    name: 'hf-mean-resizing', needs: 'gaussian',
    init: (_s, c, o) => initHfMeanResizing(needStats(c, 'hf-mean-resizing'), c.random, o),
    initBatch: (n, c, o) => sampleHfMeanResizing(needStats(c, 'hf-mean-resizing'), c.random, n, o),
  },
  zero: { name: 'zero', needs: 'none', init: (_s, _c, o) => initZero(o) },
  first: { name: 'first', needs: 'subtokens', init: (s, _c, o) => initFirst(s, o) },
  last: { name: 'last', needs: 'subtokens', init: (s, _c, o) => initLast(s, o) },
};

/** Every method name, in documentation order (parameterized ones with their research defaults). */
export const ALL_METHODS = ['mean', 'min', 'max', 'quantile(0.5)', 'weighted_drop(2)', 'random', 'hf-mean-resizing', 'zero', 'first', 'last'];

const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function invalid(spec: string, why: string): InitMethodError {
  return new InitMethodError(`invalid init method ${JSON.stringify(spec)}: ${why}. Valid forms: ${VALID_FORMS.join('; ')}`);
}

/** Parse a method string strictly: `mean`, `quantile(0.25)`, `weighted_drop(1.5)`, ... */
export function parseInitMethod(spec: string): InitMethod {
  if (typeof spec !== 'string') throw invalid(String(spec), 'expected a string');
  const simple = SIMPLE[spec];
  if (simple && Object.prototype.hasOwnProperty.call(SIMPLE, spec)) return { ...simple, spec, param: null };
  const m = /^(quantile|weighted_drop)\((.*)\)$/.exec(spec);
  if (!m) throw invalid(spec, 'unknown method');
  const [, name, arg] = m;
  if (!NUMBER.test(arg)) throw invalid(spec, `the argument ${JSON.stringify(arg)} is not a plain decimal number`);
  const v = Number(arg);
  if (!Number.isFinite(v)) throw invalid(spec, 'the argument is not finite');
  if (name === 'quantile') {
    if (v < 0 || v > 1) throw invalid(spec, 'q must be within [0, 1]');
    return { spec: `quantile(${v})`, name: 'quantile', param: v, needs: 'subtokens', init: (s, _c, o) => initQuantile(v, s, o) };
  }
  if (!(v > 0)) throw invalid(spec, 'K must be > 0');
  return { spec: `weighted_drop(${v})`, name: 'weighted_drop', param: v, needs: 'subtokens', init: (s, _c, o) => initWeightedDrop(v, s, o) };
}

/** Parse a comma-separated list (`mean,quantile(0.25),weighted_drop(2)`); duplicates are an error. */
export function parseInitMethodList(list: string): InitMethod[] {
  const parts = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new InitMethodError(`no init methods given. Valid forms: ${VALID_FORMS.join('; ')}`);
  const out = parts.map(parseInitMethod);
  const seen = new Set<string>();
  for (const m of out) {
    if (seen.has(m.spec)) throw new InitMethodError(`init method ${m.spec} is listed twice`);
    seen.add(m.spec);
  }
  return out;
}

export { seededRandom } from '../io/seeded-random.ts';
