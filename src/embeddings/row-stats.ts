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
        for (let i = 0; i < h; i++) {
          const base = i * h;
          for (let j = i; j < h; j++) outer[base + j] += dot(xt, i * B, xt, j * B, nb);
        }
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

