// Exact gradients through the frozen network (hand-written reverse mode) vs central finite
// differences, for the new tokens' input and output rows, on tied (Llama) and untied (Qwen2,
// qkv bias) test models. Float64 throughout so the differences are accurate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadModelDir } from '../src/io/model-dir.ts';
import { createJsKernels, createOrtKernels } from '../src/tune/ort-kernels.ts';
import { loadFrozenModel, lmLossAndGrad, type NewRows } from '../src/tune/frozen-model.ts';
import { writeTestModel, rng } from './support/factory.ts';
import { relError } from './support/gradient-check.ts';

for (const arch of ['llama', 'qwen2'] as const) {
  const tied = arch === 'llama';
  test(`input and output rows: analytic gradient matches finite differences (${arch}, ${tied ? 'tied' : 'untied'})`, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tune-grad-'));
    try {
      await writeTestModel(dir, { arch, tied, padRows: 3, merges: 20, hidden: 16, heads: 4, kvHeads: 2, intermediate: 24, layers: 2, seed: 7 });
      const md = await loadModelDir(dir);
      const m = await loadFrozenModel(md, 'f64');
      const k = createJsKernels();
      const d = m.d;
      // the 3 padding rows play the new tokens; they appear on input and as targets
      const ids = [md.tokenizerSize, md.tokenizerSize + 1, md.tokenizerSize + 2];
      const r = rng(3);
      const input = Float64Array.from({ length: 3 * d }, () => (r() - 0.5));
      const output = tied ? input : Float64Array.from({ length: 3 * d }, () => (r() - 0.5) * 0.4);
      const rows: NewRows = { ids, input, output };
      const seqs = [
        [40, ids[0], 50, 60, ids[1], ids[0], 70, 80, ids[2]],
        [ids[2], 45, ids[1], 46, 47],
      ];
      const res = await lmLossAndGrad(m, k, seqs, rows, { input: true, output: true });
      assert.equal(res.count, 8 + 4);
      const loss = async () => (await lmLossAndGrad(m, k, seqs, rows, { input: false, output: false })).loss;
      assert.ok(Math.abs((await loss()) - res.loss) < 1e-12);
      const fdOf = async (arr: Float64Array) => {
        const fd = new Float64Array(arr.length);
        const eps = 1e-5;
        for (let i = 0; i < arr.length; i++) {
          const keep = arr[i];
          arr[i] = keep + eps;
          const lp = await loss();
          arr[i] = keep - eps;
          const lm = await loss();
          arr[i] = keep;
          fd[i] = (lp - lm) / (2 * eps);
        }
        return fd;
      };
      const gIn = res.gradInput!, gOut = res.gradOutput!;
      if (tied) {
        // one shared row: its gradient is the sum of both roles
        const sum = gIn.map((x, i) => x + gOut[i]);
        const fd = await fdOf(input);
        const err = relError(sum, fd);
        assert.ok(err <= 1e-3, `tied: relative error ${err}`);
        assert.ok(relError(gIn, fd) > 1e-2, 'the input part alone must not pass');
      } else {
        const fdIn = await fdOf(input);
        const fdOut = await fdOf(output as Float64Array);
        const eIn = relError(gIn, fdIn), eOut = relError(gOut, fdOut);
        assert.ok(eIn <= 1e-3, `input rows: relative error ${eIn}`);
        assert.ok(eOut <= 1e-3, `output rows: relative error ${eOut}`);
      }
      // every new row got a non-zero input gradient (all three appear on input)
      for (let j = 0; j < 3; j++) assert.ok(gIn.subarray(j * d, (j + 1) * d).some((x) => x !== 0));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('ORT kernels (training path) give the same loss and gradients as the JS reference kernels', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tune-grad-'));
  try {
    await writeTestModel(dir, { arch: 'qwen2', tied: false, padRows: 2, merges: 20, hidden: 32, heads: 4, kvHeads: 2, intermediate: 48, layers: 2, seed: 9 });
    const md = await loadModelDir(dir);
    const m = await loadFrozenModel(md, 'f32');
    const ids = [md.tokenizerSize, md.tokenizerSize + 1];
    const r = rng(5);
    const rows: NewRows = {
      ids,
      input: Float32Array.from({ length: 2 * m.d }, () => r() - 0.5),
      output: Float32Array.from({ length: 2 * m.d }, () => (r() - 0.5) * 0.4),
    };
    // ragged batch: two lengths, so attention runs as two groups
    const seqs = [[40, ids[0], 50, 60, ids[1], 70], [ids[1], 45, ids[0], 46, 47, 48], [52, ids[0], 53]];
    const ort = await createOrtKernels(1);
    const a = await lmLossAndGrad(m, ort, seqs, rows, { input: true, output: true });
    const b = await lmLossAndGrad(m, createJsKernels(), seqs, rows, { input: true, output: true });
    await ort.dispose();
    assert.ok(Math.abs(a.loss - b.loss) < 1e-4, `${a.loss} vs ${b.loss}`);
    assert.ok(relError(a.gradInput!, b.gradInput!) < 1e-4, `input ${relError(a.gradInput!, b.gradInput!)}`);
    assert.ok(relError(a.gradOutput!, b.gradOutput!) < 1e-4, `output ${relError(a.gradOutput!, b.gradOutput!)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
