// The math of the initializations that combine EXISTING tokens' rows by their similarity in an
// auxiliary embedding space (FOCUS, WECHSEL, OMP) or by the new token's merge tree (merge). Each
// returns a combination (indices into the candidate list, weights); applying it to the model's rows
// is the surgery's job. Pure functions over typed arrays; candidates are rows of `atoms` (n x dim).

/** A sparse combination: weights[k] on candidate index[k]. */
export interface Weights { index: number[]; weights: number[] }

/**
 * Sparsemax (Martins & Astudillo 2016): the Euclidean projection of z onto the probability simplex,
 * p_i = max(z_i - tau, 0) with tau from the sorted z: k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)},
 * tau = (sum_{j<=k(z)} z_(j) - 1) / k(z). Returns a new array.
 */
export function sparsemax(z: ArrayLike<number>): Float64Array {
  const n = z.length;
  const sorted = Float64Array.from(z).sort().reverse();
  let cum = 0;
  let k = 0;
  let cumK = 0;
  for (let i = 0; i < n; i++) {
    cum += sorted[i];
    if (1 + (i + 1) * sorted[i] > cum) { k = i + 1; cumK = cum; }
  }
  const tau = (cumK - 1) / k;
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) p[i] = Math.max(z[i] - tau, 0);
  return p;
}

/** Dot products of `target` with every row of `atoms` (n x dim). */
export function similarities(target: Float32Array, atoms: Float32Array, n: number, dim: number): Float64Array {
  const s = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const o = j * dim;
    let a = 0;
    for (let d = 0; d < dim; d++) a += target[d] * atoms[o + d];
    s[j] = a;
  }
  return s;
}

/** FOCUS: sparsemax over the similarities (no temperature), its support as the combination. */
export function focusWeights(sims: ArrayLike<number>): Weights {
  const p = sparsemax(sims);
  const index: number[] = [];
  const weights: number[] = [];
  for (let i = 0; i < p.length; i++) if (p[i] > 0) { index.push(i); weights.push(p[i]); }
  return { index, weights };
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topK(v: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (idx.length === k && v[i] <= v[idx[k - 1]]) continue;
    let p = idx.length === k ? k - 1 : idx.length;
    if (idx.length < k) idx.push(i);
    while (p > 0 && v[idx[p - 1]] < v[i]) { idx[p] = idx[p - 1]; p--; }
    idx[p] = i;
  }
  return idx;
}

/** WECHSEL: the k most similar candidates, weighted softmax(sim / t). */
export function wechselWeights(sims: ArrayLike<number>, k: number, t: number): Weights {
  const index = topK(sims, Math.min(k, sims.length));
  if (index.length === 0) return { index, weights: [] };
  const top = sims[index[0]];
  const e = index.map((i) => Math.exp((sims[i] - top) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return { index, weights: e.map((x) => x / s) };
}

/** Solve the symmetric positive definite system G x = b (k x k, row-major) by Cholesky; null if singular. */
export function solveSpd(G: Float64Array, b: Float64Array, k: number): Float64Array | null {
  const L = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = G[i * k + j];
      for (let p = 0; p < j; p++) s -= L[i * k + p] * L[j * k + p];
      if (i === j) {
        if (!(s > 1e-12)) return null;
        L[i * k + i] = Math.sqrt(s);
      } else L[i * k + j] = s / L[j * k + j];
    }
  }
  const y = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let s = b[i];
    for (let p = 0; p < i; p++) s -= L[i * k + p] * y[p];
    y[i] = s / L[i * k + i];
  }
  const x = new Float64Array(k);
  for (let i = k - 1; i >= 0; i--) {
    let s = y[i];
    for (let p = i + 1; p < k; p++) s -= L[p * k + i] * x[p];
    x[i] = s / L[i * k + i];
  }
  return x;
}

/**
 * Orthogonal matching pursuit: up to k atoms, each step the atom most correlated (|<residual, atom>|)
 * with the residual, then least-squares coefficients (signed) of the target on all selected atoms.
 * Stops early when the residual vanishes or the next atom is linearly dependent on the selected ones.
 */
export function ompWeights(target: Float32Array, atoms: Float32Array, n: number, dim: number, k: number): Weights {
  const sel: number[] = [];
  let coef: ArrayLike<number> = [];
  const r = Float64Array.from(target);
  const y2 = r.reduce((a, x) => a + x * x, 0);
  for (let step = 0; step < Math.min(k, n); step++) {
    let best = -1;
    let bestAbs = 0;
    for (let j = 0; j < n; j++) {
      const o = j * dim;
      let c = 0;
      for (let d = 0; d < dim; d++) c += r[d] * atoms[o + d];
      const a = Math.abs(c);
      if (a > bestAbs && !sel.includes(j)) { bestAbs = a; best = j; }
    }
    if (best < 0 || bestAbs <= 1e-9 * Math.sqrt(y2)) break;
    const trial = [...sel, best];
    const m = trial.length;
    const G = new Float64Array(m * m);
    const b = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      const oi = trial[i] * dim;
      for (let d = 0; d < dim; d++) b[i] += atoms[oi + d] * target[d];
      for (let j = 0; j <= i; j++) {
        const oj = trial[j] * dim;
        let g = 0;
        for (let d = 0; d < dim; d++) g += atoms[oi + d] * atoms[oj + d];
        G[i * m + j] = g;
        G[j * m + i] = g;
      }
    }
    const x = solveSpd(G, b, m);
    if (!x) break;
    sel.push(best);
    coef = x;
    for (let d = 0; d < dim; d++) {
      let s = target[d];
      for (let i = 0; i < m; i++) s -= x[i] * atoms[sel[i] * dim + d];
      r[d] = s;
    }
    // exact up to float32 rounding of the inputs (relative residual 1e-6)
    if (r.reduce((a, v) => a + v * v, 0) <= 1e-12 * y2) break;
  }
  return { index: sel, weights: Array.from(coef) };
}

/**
 * The recursive mean down a merge tree: a token below `firstNew` (an existing token) is itself; a new
 * token is the mean of the two parts of its merge. Returns weights on existing ids (keys), or null
 * when some new token on the way has no known merge. `memo` caches results across tokens.
 */
export function mergeTreeWeights(id: number, firstNew: number, mergeOf: (id: number) => [number, number] | null,
  memo: Map<number, Map<number, number> | null> = new Map()): Map<number, number> | null {
  if (id < firstNew) return new Map([[id, 1]]);
  if (memo.has(id)) return memo.get(id)!;
  memo.set(id, null); // a cycle (never in a valid tokenizer) resolves to null
  const m = mergeOf(id);
  let out: Map<number, number> | null = null;
  if (m) {
    const a = mergeTreeWeights(m[0], firstNew, mergeOf, memo);
    const b = a && mergeTreeWeights(m[1], firstNew, mergeOf, memo);
    if (a && b) {
      out = new Map();
      for (const [k, w] of a) out.set(k, (out.get(k) ?? 0) + w / 2);
      for (const [k, w] of b) out.set(k, (out.get(k) ?? 0) + w / 2);
    }
  }
  memo.set(id, out);
  return out;
}
