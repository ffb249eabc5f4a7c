// Every named tuning kernel (KERNEL_GRAPHS) on both backends: the ORT graph, encoded with the
// runtime's ONNX encoder, computes what the JavaScript reference of the same name computes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels, createOrtKernels, KERNEL_NAMES, type DenseKernels, type KernelName, type Mat } from '../src/tune/ort-kernels.ts';
import { rng } from './support/factory.ts';

const r = rng(9);
const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
const mat = (rows: number, cols: number): Mat => ({ data: rand(rows * cols), rows, cols });
const N = 3, T = 5, hd = 4;
const q = rand(N * T * hd), k = rand(N * T * hd), v = rand(N * T * hd), dO = rand(N * T * hd);

/** One call per kernel name; the result flattened to named float arrays. */
const CALLS: Record<KernelName, (kk: DenseKernels) => Promise<Record<string, ArrayLike<number>>>> = {
  matmulNT: async (kk) => ({ y: (await kk.matmulNT(A, B)).data }),
  matmulTN: async (kk) => ({ y: (await kk.matmulTN(A, C)).data }),
  matmulNN: async (kk) => ({ y: (await kk.matmulNN(A, D)).data }),
  lseMaxNT: async (kk) => kk.lseMaxNT(A, B),
  softmaxNT: async (kk) => kk.softmaxNT(A, B, E),
  attention: async (kk) => kk.attention(q, k, v, N, T, hd),
  attentionBack: async (kk) => {
    const { p } = await kk.attention(q, k, v, N, T, hd);
    return kk.attentionBack(p, dO, q, k, v, N, T, hd);
  },
};
// the same inputs for both backends
const A = mat(6, 8), B = mat(7, 8), C = mat(6, 3), D = mat(8, 5), E = rand(6, 2);

test('every tuning kernel: ORT graph = JavaScript reference', async () => {
  const ortK = await createOrtKernels(1);
  const jsK = createJsKernels();
  try {
    assert.deepEqual(Object.keys(CALLS).sort(), [...KERNEL_NAMES].sort(), 'the test calls every kernel');
    for (const name of KERNEL_NAMES) {
      const a = await CALLS[name](ortK);
      const b = await CALLS[name](jsK);
      for (const key of Object.keys(b)) {
        const x = a[key], y = b[key];
        assert.equal(x.length, y.length, `${name}.${key} length`);
        let max = 0;
        for (let i = 0; i < y.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
        assert.ok(max <= 1e-5, `${name}.${key}: max |Δ| ${max}`);
      }
    }
  } finally {
    await ortK.dispose();
  }
});
