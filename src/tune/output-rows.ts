// Output rows of the new tokens, fitted by cross-entropy with the FULL softmax over the vocabulary.
// Only the n new rows W move, so the old rows' contribution to every position's normalizer is a
// constant, cached once (lseOld); a step then costs O(positions x n x d):
//   z = W h,  lse = logaddexp(lseOld, logsumexp(z)),  loss = lse - logit(target)
//   dloss/dW = (softmax(z; lse) - onehot(target))^T h
// Optional distillation (weight lambda > 0): at a new-token target t with a known distillation target
// T = the base model's log-probability of t's original pieces in the same context, add
//   lambda * (lp - T)^2,  lp = z_t - lse,  d lp / dz_j = onehot_j - softmax_j,
// so that position's gradient row is the cross-entropy row scaled by (1 - 2 lambda (lp - T)).
import type { DenseKernels, Mat } from './ort-kernels.ts';

/** A minibatch of frozen-model positions. */
export interface OutputBatch {
  count: number;
  hidden: number;
  /** [count x hidden] final hidden states (the lm_head input). */
  h: Float32Array;
  /** log-sum-exp of the old rows' logits at each position. */
  lseOld: Float32Array;
  /** Index of the target among the new rows, or -1 when the target is an old token. */
  targetNew: Int32Array;
  /** The target's logit when it is an old token (ignored otherwise). */
  targetLogitOld: Float32Array;
  /** Distillation target per position (NaN where there is none); only read when the weight is > 0. */
  distillTarget?: Float32Array;
}

export interface OutputLoss {
  /** Mean cross-entropy (nats) over the batch. */
  loss: number;
  /** Positions whose target is a new token, and their summed loss. */
  newCount: number;
  newLoss: number;
  /** Positions with a distillation term, and the summed (lp - T)^2 (unweighted). */
  distillCount: number;
  distillSq: number;
}

/** Mean loss and its exact gradient with respect to W [n x hidden] (returned in a fresh array). */
export async function outputLossAndGrad(k: DenseKernels, w: Mat, b: OutputBatch, distill = 0): Promise<OutputLoss & { grad: Float32Array }> {
  if (w.cols !== b.hidden) throw new Error(`outputLossAndGrad: rows have ${w.cols} columns, hidden states ${b.hidden}`);
  if (distill > 0 && !b.distillTarget) throw new Error('outputLossAndGrad: distillation asked for, but the batch has no distillation targets (cache built without them)');
  const H: Mat = { data: b.h, rows: b.count, cols: b.hidden };
  const n = w.rows;
  const d = b.hidden;
  // softmax over the new rows with the old rows' mass folded in: g = p - onehot (then / count)
  const { p: g, lse } = await k.softmaxNT(H, w, b.lseOld); // [count x n]
  let loss = 0;
  let newLoss = 0;
  let newCount = 0;
  let distillCount = 0;
  let distillSq = 0;
  for (let p = 0; p < b.count; p++) {
    const t = b.targetNew[p];
    let zt = b.targetLogitOld[p];
    if (t >= 0) {
      zt = 0;
      for (let c = 0; c < d; c++) zt += w.data[t * d + c] * b.h[p * d + c];
      g[p * n + t] -= 1;
    }
    const l = lse[p] - zt;
    loss += l;
    if (t >= 0) {
      newLoss += l;
      newCount++;
      const T = distill > 0 ? b.distillTarget![p] : NaN;
      if (Number.isFinite(T)) {
        const diff = -l - T; // lp - T
        loss += distill * diff * diff;
        distillSq += diff * diff;
        distillCount++;
        const f = 1 - 2 * distill * diff;
        for (let j = 0; j < n; j++) g[p * n + j] *= f;
      }
    }
  }
  const grad = (await k.matmulTN({ data: g, rows: b.count, cols: n }, H)).data as Float32Array; // [n x hidden]
  const inv = 1 / b.count;
  for (let i = 0; i < grad.length; i++) grad[i] *= inv;
  return { loss: loss * inv, newLoss, newCount, distillCount, distillSq, grad };
}

/** The same mean loss in float64 from scratch (reference for gradient checks). */
export function outputLossReference(w: Float64Array | Float32Array, n: number, b: OutputBatch, distill = 0): number {
  const d = b.hidden;
  let total = 0;
  const z = new Float64Array(n);
  for (let p = 0; p < b.count; p++) {
    let m = b.lseOld[p];
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += w[j * d + c] * b.h[p * d + c];
      z[j] = s;
      if (s > m) m = s;
    }
    let s = Math.exp(b.lseOld[p] - m);
    for (let j = 0; j < n; j++) s += Math.exp(z[j] - m);
    const t = b.targetNew[p];
    const l = m + Math.log(s) - (t >= 0 ? z[t] : b.targetLogitOld[p]);
    total += l;
    const T = t >= 0 && distill > 0 ? b.distillTarget![p] : NaN;
    if (Number.isFinite(T)) total += distill * (-l - T) ** 2;
  }
  return total / b.count;
}

/**
 * The research's gradient-free update, for comparison: at every position whose target is new
 * token t, E[t] += lr * (max logit - logit_t) * h / |h|. `maxOld` is the old rows' max logit.
 */
export async function seedHeuristicStep(k: DenseKernels, w: Mat, b: OutputBatch, maxOld: Float32Array, lr: number): Promise<number> {
  const H: Mat = { data: b.h, rows: b.count, cols: b.hidden };
  const z = await k.matmulNT(H, w);
  const n = w.rows;
  const d = b.hidden;
  let updates = 0;
  for (let p = 0; p < b.count; p++) {
    const t = b.targetNew[p];
    if (t < 0) continue;
    let m = maxOld[p];
    for (let j = 0; j < n; j++) if (z.data[p * n + j] > m) m = z.data[p * n + j];
    const gap = m - z.data[p * n + t];
    let norm = 0;
    for (let c = 0; c < d; c++) norm += b.h[p * d + c] ** 2;
    norm = Math.sqrt(norm) || 1;
    const f = (lr * gap) / norm;
    for (let c = 0; c < d; c++) w.data[t * d + c] += f * b.h[p * d + c];
    updates++;
  }
  return updates;
}
