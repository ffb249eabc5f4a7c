// Output-row objective: analytic gradient vs central finite differences of a float64 reference,
// kernels (ORT vs JS) agree, Adam drives the loss down, seed heuristic moves rows toward h.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels, createOrtKernels } from '../src/tune/ort-kernels.ts';
import { outputLossAndGrad, outputLossReference, seedHeuristicStep, type OutputBatch } from '../src/tune/output-rows.ts';
import { adamInit, adamStep } from '../src/tune/adam.ts';
import { rng } from './support/factory.ts';
import { relError } from './support/gradient-check.ts';

function randomBatch(seed: number, count: number, d: number, nOld: number, nNew: number): { b: OutputBatch; w: Float32Array; maxOld: Float32Array } {
  const r = rng(seed);
  const h = Float32Array.from({ length: count * d }, () => (r() - 0.5) * 2);
  const old = Float32Array.from({ length: nOld * d }, () => (r() - 0.5) * 0.6);
  const w = Float32Array.from({ length: nNew * d }, () => (r() - 0.5) * 0.6);
  const lseOld = new Float32Array(count);
  const maxOld = new Float32Array(count);
  const targetNew = new Int32Array(count);
  const targetLogitOld = new Float32Array(count);
  for (let p = 0; p < count; p++) {
    const z = Array.from({ length: nOld }, (_, j) => {
      let s = 0;
      for (let c = 0; c < d; c++) s += old[j * d + c] * h[p * d + c];
      return s;
    });
    const m = Math.max(...z);
    lseOld[p] = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    maxOld[p] = m;
    // half the targets new, half old
    if (p % 2 === 0) {
      targetNew[p] = Math.floor(r() * nNew);
    } else {
      targetNew[p] = -1;
      targetLogitOld[p] = z[Math.floor(r() * nOld)];
    }
  }
  // distillation targets at most new-token targets (NaN at one, as where a window ends early)
  const distillTarget = Float32Array.from({ length: count }, (_, p) => (targetNew[p] >= 0 && p !== 2 ? -1 - 5 * r() : NaN));
  return { b: { count, hidden: d, h, lseOld, targetNew, targetLogitOld, distillTarget }, w, maxOld };
}

for (const [kind, distill] of [['js', 0], ['ort', 0], ['js', 0.7], ['ort', 0.7]] as const) {
  test(`output rows: analytic gradient matches finite differences (${kind} kernels${distill ? ', with distillation' : ''})`, async () => {
    const k = kind === 'js' ? createJsKernels() : await createOrtKernels(1);
    const d = 12, nNew = 7;
    const { b, w } = randomBatch(11, 10, d, 20, nNew);
    const r = await outputLossAndGrad(k, { data: w, rows: nNew, cols: d }, b, distill);
    const { grad, loss } = r;
    if (distill) assert.equal(r.distillCount, 4, 'the new-token targets with a finite distillation target');
    const w64 = Float64Array.from(w);
    assert.ok(Math.abs(loss - outputLossReference(w64, nNew, b, distill)) < 1e-5);
    if (distill) assert.ok(Math.abs(loss - outputLossReference(w64, nNew, b)) > 1e-3, 'the distillation term changes the loss');
    const fd = new Float64Array(w.length);
    const eps = 1e-4;
    for (let i = 0; i < w.length; i++) {
      const keep = w64[i];
      w64[i] = keep + eps;
      const lp = outputLossReference(w64, nNew, b, distill);
      w64[i] = keep - eps;
      const lm = outputLossReference(w64, nNew, b, distill);
      w64[i] = keep;
      fd[i] = (lp - lm) / (2 * eps);
    }
    const err = relError(grad, fd);
    assert.ok(err <= 1e-3, `relative error ${err}`);
    // a wrong gradient (sign of the onehot flipped) must fail the same check
    const wrong = Float32Array.from(grad);
    for (let p = 0; p < b.count; p++) if (b.targetNew[p] >= 0) for (let c = 0; c < d; c++) wrong[b.targetNew[p] * d + c] += (2 / b.count) * b.h[p * d + c];
    assert.ok(relError(wrong, fd) > 1e-2);
    await k.dispose();
  });
}

test('output rows: Adam lowers the loss of new-token targets', async () => {
  const k = createJsKernels();
  const d = 8, nNew = 5;
  const { b, w } = randomBatch(5, 16, d, 30, nNew);
  const W = { data: w, rows: nNew, cols: d };
  const st = adamInit(w.length);
  const first = await outputLossAndGrad(k, W, b);
  let last = first;
  for (let i = 0; i < 200; i++) {
    last = await outputLossAndGrad(k, W, b);
    adamStep(w, last.grad, st, { lr: 0.05 });
  }
  assert.ok(last.loss < first.loss - 0.5, `loss ${first.loss} -> ${last.loss}`);
  assert.ok(last.newLoss / last.newCount < first.newLoss / first.newCount);
});

test('seed heuristic: moves the target row toward h by lr * gap', async () => {
  const k = createJsKernels();
  const d = 6, nNew = 3;
  const { b, w, maxOld } = randomBatch(3, 1, d, 10, nNew); // position 0 has a new target
  const t = b.targetNew[0];
  const before = Float32Array.from(w);
  let z = 0;
  for (let c = 0; c < d; c++) z += w[t * d + c] * b.h[c];
  const zs = Array.from({ length: nNew }, (_, j) => { let s = 0; for (let c = 0; c < d; c++) s += w[j * d + c] * b.h[c]; return s; });
  const gap = Math.max(maxOld[0], ...zs) - z;
  const n = await seedHeuristicStep(k, { data: w, rows: nNew, cols: d }, b, maxOld, 0.5);
  assert.equal(n, 1);
  const hn = Math.hypot(...b.h.subarray(0, d));
  for (let c = 0; c < d; c++) assert.ok(Math.abs(w[t * d + c] - (before[t * d + c] + (0.5 * gap * b.h[c]) / hn)) < 1e-6);
  for (let j = 0; j < nNew; j++) if (j !== t) for (let c = 0; c < d; c++) assert.equal(w[j * d + c], before[j * d + c]);
});
