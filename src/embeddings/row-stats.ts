// Statistics of the existing rows of an embedding matrix, accumulated chunk by chunk while the
// matrix streams past (so it is never held whole): per-dimension min/max/mean and, only when
// `hf-mean-resizing` asks for it, the covariance and its Cholesky factor.
import { HF_COVARIANCE_SCALE, dot, type RowStats } from './init-methods.ts';

export class RowStatsAccumulator {
  private rows = 0;
  private readonly min: Float32Array;
  private readonly max: Float32Array;
  private readonly sum: Float64Array;
  /** Upper triangle of Σ x xᵀ (row-major, full storage), only with covariance. */
  private readonly outer: Float64Array | null;

  constructor(readonly hidden: number, readonly withCovariance: boolean) {
    this.min = new Float32Array(hidden).fill(Infinity);
    this.max = new Float32Array(hidden).fill(-Infinity);
    this.sum = new Float64Array(hidden);
    this.outer = withCovariance ? new Float64Array(hidden * hidden) : null;
  }

  /** Add `count` rows laid out row-major in `data` (length count * hidden). */
  add(data: Float32Array, count: number): void {
    const h = this.hidden;
    const { min, max, sum, outer } = this;
    for (let r = 0; r < count; r++) {
      const o = r * h;
      for (let d = 0; d < h; d++) {
        const v = data[o + d];
        if (v < min[d]) min[d] = v;
        if (v > max[d]) max[d] = v;
        sum[d] += v;
      }
    }
    if (outer) {
      // Σ x xᵀ over the chunk (upper triangle) as dot products of the chunk's columns: the chunk is
      // transposed into f64 so each product runs over contiguous memory with four accumulators.
      const B = 256;
      const xt = new Float64Array(h * B);
      for (let r0 = 0; r0 < count; r0 += B) {
        const nb = Math.min(B, count - r0);
        for (let r = 0; r < nb; r++) {
          const o = (r0 + r) * h;
          for (let d = 0; d < h; d++) xt[d * B + r] = data[o + d];
        }
        upperGram(xt, B, nb, h, outer);
      }
    }
    this.rows += count;
  }

  finish(): RowStats {
    const h = this.hidden;
    const n = this.rows;
    if (n === 0) throw new Error('row statistics need at least one existing row');
    const mean = new Float64Array(h);
    for (let d = 0; d < h; d++) mean[d] = this.sum[d] / n;
    let cholesky: Float64Array | null = null;
    if (this.outer) {
      // Σ = (Σ x xᵀ)/n − μ μᵀ (population covariance, as transformers divides by old_num_tokens).
      const cov = new Float64Array(h * h);
      for (let i = 0; i < h; i++) for (let j = i; j < h; j++) {
        const c = this.outer[i * h + j] / n - mean[i] * mean[j];
        cov[i * h + j] = c;
        cov[j * h + i] = c;
      }
      cholesky = choleskyLower(cov, h, HF_COVARIANCE_SCALE);
    }
    return { rows: n, hidden: h, min: this.min, max: this.max, mean, cholesky };
  }
}

/**
 * outer[i][j] += Σ_r xt[i][r] xt[j][r] for j >= i (xt: h rows of stride B, nb columns used).
 * Register-blocked 2 x 4: each load of the chunk feeds two or four products.
 */
function upperGram(xt: Float64Array, B: number, nb: number, h: number, outer: Float64Array): void {
  let i = 0;
  for (; i + 1 < h; i += 2) {
    const a0 = i * B;
    const a1 = a0 + B;
    let j = i;
    for (; j + 3 < h; j += 4) {
      const b0 = j * B;
      const b1 = b0 + B;
      const b2 = b1 + B;
      const b3 = b2 + B;
      let p0 = 0, p1 = 0, p2 = 0, p3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0;
      for (let r = 0; r < nb; r++) {
        const x0 = xt[a0 + r];
        const x1 = xt[a1 + r];
        const y0 = xt[b0 + r];
        const y1 = xt[b1 + r];
        const y2 = xt[b2 + r];
        const y3 = xt[b3 + r];
        p0 += x0 * y0; p1 += x0 * y1; p2 += x0 * y2; p3 += x0 * y3;
        q0 += x1 * y0; q1 += x1 * y1; q2 += x1 * y2; q3 += x1 * y3;
      }
      const o0 = i * h + j;
      const o1 = o0 + h;
      outer[o0] += p0; outer[o0 + 1] += p1; outer[o0 + 2] += p2; outer[o0 + 3] += p3;
      // row i + 1 keeps only j >= i + 1 (its j = i entry is below the diagonal)
      if (j > i) outer[o1] += q0;
      outer[o1 + 1] += q1; outer[o1 + 2] += q2; outer[o1 + 3] += q3;
    }
    for (; j < h; j++) {
      outer[i * h + j] += dot(xt, a0, xt, j * B, nb);
      if (j > i) outer[(i + 1) * h + j] += dot(xt, a1, xt, j * B, nb);
    }
  }
  for (; i < h; i++) for (let j = i; j < h; j++) outer[i * h + j] += dot(xt, i * B, xt, j * B, nb);
}

/**
 * Lower Cholesky factor of `scale * a` (row-major n x n, symmetric), or null when the matrix is not
 * positive definite (a pivot <= 0 relative to the largest diagonal entry).
 */
export function choleskyLower(a: Float64Array, n: number, scale = 1): Float64Array | null {
  const L = new Float64Array(n * n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, a[i * n + i]);
  const tol = maxDiag * 1e-12;
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    const s = a[rj + j] - dot(L, rj, L, rj, j);
    if (!(s > tol)) return null;
    const d = Math.sqrt(s);
    L[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      L[ri + j] = (a[ri + j] - dot(L, ri, L, rj, j)) / d;
    }
  }
  if (scale !== 1) {
    const f = Math.sqrt(scale);
    for (let i = 0; i < L.length; i++) L[i] *= f;
  }
  return L;
}

