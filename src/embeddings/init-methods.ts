// Initialization methods for the embedding rows of new tokens: one registry, each method a small
// pure function. A new token's "sub-token rows" are the rows (of the matrix being initialized) of
// its tokenization by the ORIGINAL tokenizer, special tokens never included. Methods that do not
// look at sub-tokens (random, hf-mean-resizing) read statistics of the existing rows and a seeded
// random source from the context instead. Methods that `combine` (focus, wechsel, omp, merge, align)
// build the new row as a weighted sum of EXISTING tokens' rows, chosen from the init sources (auxiliary
// embeddings, the merge tree, corpus alignments); their `init` is the fallback (mean) for tokens they
// cannot place. A method may weigh the sub-tokens differently for the input and the output matrix
// (adaptivocab): the context says which matrix a row is for.
import { HackError } from '../io/errors.ts';
import { focusWeights, mergeTreeWeights, ompWeights, similarities, wechselWeights, type Weights } from './aux-methods.ts';

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
  /**
   * The matrix the row is for: 'input' (embed_tokens) or 'output' (an untied lm_head). A tied model's
   * one matrix is 'input'. Absent: 'input'.
   */
  matrix?: 'input' | 'output';
}

export type MethodName =
  | 'mean' | 'min' | 'max' | 'quantile' | 'weighted_drop' | 'random' | 'hf-mean-resizing' | 'zero' | 'first' | 'last'
  | 'adaptivocab' | 'focus' | 'wechsel' | 'omp' | 'merge' | 'align';

/**
 * What a method reads: the sub-token rows, the per-dimension range, the mean + covariance, nothing,
 * auxiliary vectors of new and existing tokens (a corpus to train them on), the merge tree, or the
 * corpus itself tokenized by both tokenizers (align).
 */
export type InitNeeds = 'subtokens' | 'range' | 'gaussian' | 'none' | 'aux' | 'merges' | 'corpus';

/** A new row as a weighted sum of existing rows: weights[k] x row ids[k] (ids of the original vocabulary). */
export interface Combination { ids: number[]; weights: number[] }

/** Auxiliary embeddings as the combining methods see them (unit length: dot = cosine). */
export interface AuxSpace {
  dim: number;
  /** Unit-length auxiliary vector of a token (extended tokenizer's ids), or null when it has none. */
  unit(id: number): Float32Array | null;
  /** The existing (shared, non-special) tokens with an auxiliary vector: ids and unit vectors (n x dim). */
  sharedIds: Int32Array;
  sharedUnit: Float32Array;
}

export interface MergeTree {
  /** Ids from here on are new tokens. */
  firstNew: number;
  /** The two parts (ids) of a new token's merge, or null when unknown. */
  mergeOf(id: number): [number, number] | null;
}

export interface InitSources {
  aux?: AuxSpace;
  merges?: MergeTree;
  /** align: each new token seen in the corpus, as its occurrence-weighted original tokens (absent: never seen). */
  alignment?: ReadonlyMap<number, Combination>;
}

export interface InitMethod {
  /** Canonical spelling, e.g. `quantile(0.25)`. */
  spec: string;
  name: MethodName;
  param: number | null;
  needs: InitNeeds;
  /** Write the new row into `out` (length hidden); for combining methods, the fallback (mean of the sub-token rows). */
  init(sub: readonly Float32Array[], ctx: InitContext, out: Float32Array): void;
  /** Methods that ignore sub-tokens may fill `count` rows at once (same result as `count` init calls, only faster). */
  initBatch?(count: number, ctx: InitContext, out: Float32Array): void;
  /** Combining methods: the new token's row as a combination of existing rows, or null (then `init`, the fallback). */
  combine?(id: number, src: InitSources): Combination | null;
}

export class InitMethodError extends HackError {
  constructor(message: string, option?: string) {
    super('BAD_INIT_METHOD', message, { option });
    this.name = 'InitMethodError';
  }
}

/** transformers scales the covariance by this before sampling (`_init_added_embeddings_weights_with_mean`). */
export const HF_COVARIANCE_SCALE = 1e-9;


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

/**
 * AdaptiVocab's exponential weights over the n sub-tokens in order, normalized to sum 1: exp(2i) for
 * input rows (favouring the LAST piece, which the model reads just before predicting on), exp(-2i)
 * for output rows (favouring the FIRST piece, the one the model would have emitted first).
 */
export function adaptivocabWeights(n: number, matrix: 'input' | 'output'): Float64Array {
  const w = new Float64Array(n);
  const sign = matrix === 'output' ? -1 : 1;
  // shifted by the largest exponent (no overflow for long tokenizations); the ratios are the same
  const top = sign > 0 ? 2 * (n - 1) : 0;
  let s = 0;
  for (let i = 0; i < n; i++) { w[i] = Math.exp(sign * 2 * i - top); s += w[i]; }
  for (let i = 0; i < n; i++) w[i] /= s;
  return w;
}

export function initAdaptivocab(sub: readonly Float32Array[], matrix: 'input' | 'output', out: Float32Array): void {
  requireSub(sub, 'adaptivocab');
  const w = adaptivocabWeights(sub.length, matrix);
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

// ------------------------------------------------------------------ combining methods

function needAux(src: InitSources, spec: string): AuxSpace {
  if (!src.aux) throw new InitMethodError(`${spec}: auxiliary embeddings were not computed (the method needs a corpus)`);
  return src.aux;
}

function onShared(aux: AuxSpace, w: Weights): Combination {
  return { ids: w.index.map((i) => aux.sharedIds[i]), weights: w.weights };
}

/** FOCUS: sparsemax over cosine similarities to the shared tokens, times their rows. */
export function combineFocus(id: number, src: InitSources): Combination | null {
  const aux = needAux(src, 'focus');
  const v = aux.unit(id);
  if (!v || aux.sharedIds.length === 0) return null;
  return onShared(aux, focusWeights(similarities(v, aux.sharedUnit, aux.sharedIds.length, aux.dim)));
}

/** WECHSEL: the k most similar shared tokens, softmax(cosine / t). */
export function combineWechsel(k: number, t: number, id: number, src: InitSources): Combination | null {
  const aux = needAux(src, 'wechsel');
  const v = aux.unit(id);
  if (!v || aux.sharedIds.length === 0) return null;
  return onShared(aux, wechselWeights(similarities(v, aux.sharedUnit, aux.sharedIds.length, aux.dim), k, t));
}

/** OMP over the shared tokens' (unit) auxiliary vectors; the signed coefficients applied to the model's rows. */
export function combineOmp(k: number, id: number, src: InitSources): Combination | null {
  const aux = needAux(src, 'omp');
  const v = aux.unit(id);
  if (!v || aux.sharedIds.length === 0) return null;
  const w = ompWeights(v, aux.sharedUnit, aux.sharedIds.length, aux.dim, k);
  return w.index.length ? onShared(aux, w) : null;
}

/** The recursive mean down the merge tree (one memo per tree: tokens share sub-trees). */
const mergeMemo = new WeakMap<MergeTree, Map<number, Map<number, number> | null>>();
export function combineMerge(id: number, src: InitSources): Combination | null {
  const tree = src.merges;
  if (!tree) throw new InitMethodError('merge: the merge tree is not known (the method needs merges mode)');
  let memo = mergeMemo.get(tree);
  if (!memo) { memo = new Map(); mergeMemo.set(tree, memo); }
  const w = mergeTreeWeights(id, tree.firstNew, (i) => tree.mergeOf(i), memo);
  if (!w) return null;
  const ids = [...w.keys()].sort((a, b) => a - b);
  return { ids, weights: ids.map((i) => w.get(i)!) };
}

/** align: the token's occurrence-weighted original tokens from the corpus, or null when it never occurs (the fallback). */
export function combineAlign(id: number, src: InitSources): Combination | null {
  if (!src.alignment) throw new InitMethodError('align: the corpus alignments were not computed (the method needs a corpus)');
  return src.alignment.get(id) ?? null;
}

// ------------------------------------------------------------------ registry + parser

export const WECHSEL_DEFAULT = { k: 10, t: 0.1 };
export const OMP_DEFAULT_K = 8;

const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function invalid(spec: string, why: string): InitMethodError {
  return new InitMethodError(`invalid init method ${JSON.stringify(spec)}: ${why}. Valid forms: ${VALID_FORMS.join('; ')}`);
}

/** A plain decimal argument (`0.25`, `2`, `1e-3`), finite. */
function decimal(spec: string, arg: string): number {
  if (!NUMBER.test(arg)) throw invalid(spec, `the argument ${JSON.stringify(arg)} is not a plain decimal number`);
  const v = Number(arg);
  if (!Number.isFinite(v)) throw invalid(spec, 'the argument is not finite');
  return v;
}

/** An integer argument k >= 1 (wechsel's and omp's k). */
function count(spec: string, ks: string): number {
  if (!/^\d+$/.test(ks) || !(Number(ks) >= 1)) throw invalid(spec, `k ${JSON.stringify(ks)} must be an integer >= 1`);
  return Number(ks);
}

function wechselMethod(k: number, t: number): InitMethod {
  return { spec: `wechsel(${k},${t})`, name: 'wechsel', param: k, needs: 'aux', init: (s, _c, o) => initMean(s, o), combine: (id, src) => combineWechsel(k, t, id, src) };
}

function ompMethod(k: number): InitMethod {
  return { spec: `omp(${k})`, name: 'omp', param: k, needs: 'aux', init: (s, _c, o) => initMean(s, o), combine: (id, src) => combineOmp(k, id, src) };
}


/** One entry per method: everything the parser, the valid-forms message, the lists and --help say of it. */
export interface InitMethodDef {
  name: MethodName;
  /** How it is called in --help: `quantile(q)`. */
  usage: string;
  /** Its form with the parameter rules (the valid-forms message). */
  form: string;
  /** --help: what the new row becomes. */
  doc: string;
  /** 'model': computed from the model's rows alone (compare-init's `all`); 'sources': needs auxiliary embeddings, merges mode or a corpus. */
  group: 'model' | 'sources';
  /** Its spelling in ALL_METHODS / SOURCE_METHODS (parameters at their research defaults). */
  listed: string;
  /** The method written without parentheses; absent when it needs arguments. */
  plain?: () => InitMethod;
  /** The method with arguments (the text inside the parentheses); absent when it takes none. */
  withArgs?: (args: string, spec: string) => InitMethod;
}

/** A method without parameters: written, listed and shown in --help as its name. */
function plainDef(name: MethodName, needs: InitNeeds, doc: string, rest: Pick<InitMethod, 'init' | 'initBatch' | 'combine'>,
  group: InitMethodDef['group'] = 'model', form: string = name): Omit<InitMethodDef, 'name'> {
  return { usage: name, form, doc, group, listed: name, plain: () => ({ spec: name, name, param: null, needs, ...rest }) };
}

/** The registry, keyed by the method type so a method without an entry (or an entry without a type) does not compile. */
const DEFS: Record<MethodName, Omit<InitMethodDef, 'name'>> = {
  mean: plainDef('mean', 'subtokens', 'per-dimension mean of the sub-token rows', { init: (s, _c, o) => initMean(s, o) }),
  min: plainDef('min', 'subtokens', 'per-dimension minimum of the sub-token rows', { init: (s, _c, o) => initMin(s, o) }),
  max: plainDef('max', 'subtokens', 'per-dimension maximum of the sub-token rows', { init: (s, _c, o) => initMax(s, o) }),
  quantile: { usage: 'quantile(q)', form: 'quantile(q) with 0 <= q <= 1, e.g. quantile(0.25)',
    doc: 'per-dimension q-quantile (linear interpolation), 0 <= q <= 1', group: 'model', listed: 'quantile(0.5)',
    withArgs: (arg, spec) => {
      const v = decimal(spec, arg);
      if (v < 0 || v > 1) throw invalid(spec, 'q must be within [0, 1]');
      return { spec: `quantile(${v})`, name: 'quantile', param: v, needs: 'subtokens', init: (s, _c, o) => initQuantile(v, s, o) };
    } },
  weighted_drop: { usage: 'weighted_drop(K)', form: 'weighted_drop(K) with K > 0, e.g. weighted_drop(2)',
    doc: 'weights K^n ... K^1 over the n sub-tokens, normalized; K > 1 favours the first', group: 'model', listed: 'weighted_drop(2)',
    withArgs: (arg, spec) => {
      const v = decimal(spec, arg);
      if (!(v > 0)) throw invalid(spec, 'K must be > 0');
      return { spec: `weighted_drop(${v})`, name: 'weighted_drop', param: v, needs: 'subtokens', init: (s, _c, o) => initWeightedDrop(v, s, o) };
    } },
  random: plainDef('random', 'range', 'uniform within each dimension\'s [min, max] over the existing rows (seeded)', { init: (_s, c, o) => initRandom(needStats(c, 'random'), c.random, o) }),
  'hf-mean-resizing': plainDef('hf-mean-resizing', 'gaussian',
    'as transformers\' resize_token_embeddings(mean_resizing=True): a sample of N(mean, 1e-9 * covariance) of the existing rows (the mean if not positive definite)', {
      init: (_s, c, o) => initHfMeanResizing(needStats(c, 'hf-mean-resizing'), c.random, o),
      initBatch: (n, c, o) => sampleHfMeanResizing(needStats(c, 'hf-mean-resizing'), c.random, n, o),
    }),
  zero: plainDef('zero', 'none', 'a zero row', { init: (_s, _c, o) => initZero(o) }),
  first: plainDef('first', 'subtokens', 'the first sub-token\'s row', { init: (s, _c, o) => initFirst(s, o) }),
  last: plainDef('last', 'subtokens', 'the last sub-token\'s row', { init: (s, _c, o) => initLast(s, o) }),
  adaptivocab: plainDef('adaptivocab', 'subtokens',
    'AdaptiVocab: sub-token i of n weighted exp(2i) for input rows (favours the last), exp(-2i) for output rows (favours the first), normalized; a tied model\'s one matrix takes the input weights',
    { init: (s, c, o) => initAdaptivocab(s, c.matrix ?? 'input', o) }),
  focus: plainDef('focus', 'aux', 'sparsemax over cosine similarities, in auxiliary embeddings, to the shared (old) tokens, times their rows (FOCUS)',
    { init: (s, _c, o) => initMean(s, o), combine: combineFocus }, 'sources'),
  wechsel: { usage: 'wechsel(k,t)', form: 'wechsel(k,t) with integer k >= 1 and t > 0, e.g. wechsel(10,0.1)',
    doc: `the k most similar shared tokens, weights softmax(cosine / t); default (${WECHSEL_DEFAULT.k},${WECHSEL_DEFAULT.t})`, group: 'sources',
    listed: `wechsel(${WECHSEL_DEFAULT.k},${WECHSEL_DEFAULT.t})`,
    plain: () => wechselMethod(WECHSEL_DEFAULT.k, WECHSEL_DEFAULT.t),
    withArgs: (args, spec) => {
      const parts = args.split(',');
      if (parts.length !== 2) throw invalid(spec, 'wechsel takes two arguments, k and t');
      const [ks, ts] = parts.map((x) => x.trim());
      const k = count(spec, ks);
      if (!NUMBER.test(ts) || !(Number(ts) > 0) || !Number.isFinite(Number(ts))) throw invalid(spec, `t ${JSON.stringify(ts)} must be a number > 0`);
      return wechselMethod(k, Number(ts));
    } },
  omp: { usage: 'omp(k)', form: 'omp(k) with integer k >= 1, e.g. omp(8)',
    doc: `orthogonal matching pursuit of the token's auxiliary vector over the shared tokens' vectors, least-squares (signed) coefficients on the model rows; default ${OMP_DEFAULT_K}`,
    group: 'sources', listed: `omp(${OMP_DEFAULT_K})`,
    plain: () => ompMethod(OMP_DEFAULT_K),
    withArgs: (args, spec) => ompMethod(count(spec, args.trim())) },
  merge: plainDef('merge', 'merges', 'the recursive mean down the new token\'s merge tree to old tokens (--mode merges)', { init: (s, _c, o) => initMean(s, o), combine: combineMerge }, 'sources', 'merge (merges mode)'),
  align: plainDef('align', 'corpus',
    'average over the new token\'s occurrences in --corpus (extended tokenization) of the mean row of the original tokens overlapping it there (Yamaguchi et al.); unseen tokens: mean',
    { init: (s, _c, o) => initMean(s, o), combine: combineAlign }, 'sources', 'align (needs --corpus)'),
};

/** Every init method, in documentation order. */
export const INIT_METHODS: readonly InitMethodDef[] = Object.entries(DEFS).map(([name, d]) => ({ name: name as MethodName, ...d }));

/** Every method's written form with its parameter rules (the valid-forms message, --help). */
export const VALID_FORMS: readonly string[] = INIT_METHODS.map((d) => d.form);

/** Every method computed from the model alone, in documentation order (parameterized ones with their research defaults). */
export const ALL_METHODS: readonly string[] = INIT_METHODS.filter((d) => d.group === 'model').map((d) => d.listed);
/** The methods that need more than the model (a corpus for auxiliary embeddings or alignments, or merges mode). */
export const SOURCE_METHODS: readonly string[] = INIT_METHODS.filter((d) => d.group === 'sources').map((d) => d.listed);

/** Parse a method string strictly: `mean`, `quantile(0.25)`, `weighted_drop(1.5)`, ... */
export function parseInitMethod(spec: string): InitMethod {
  if (typeof spec !== 'string') throw invalid(String(spec), 'expected a string');
  const m = /^([a-z_-]+)(?:\((.*)\))?$/.exec(spec);
  const def = m ? INIT_METHODS.find((d) => d.name === m[1]) : undefined;
  const make = m && def ? (m[2] === undefined ? def.plain?.() : def.withArgs?.(m[2], spec)) : undefined;
  if (!make) throw invalid(spec, 'unknown method');
  return make;
}

/** Parse a comma-separated list (`mean,quantile(0.25),weighted_drop(2)`); duplicates are an error. */
export function parseInitMethodList(list: string): InitMethod[] {
  // commas inside parentheses belong to the method (wechsel(10,0.1))
  const parts = list.split(/,(?![^(]*\))/).map((s) => s.trim()).filter((s) => s.length > 0);
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
