// Dense float32 kernels for training, executed by onnxruntime (MLAS): a JavaScript matrix
// product runs at ~1-2 GFLOP/s, ORT's at tens. The kernels are a table of named graphs (KERNEL_GRAPHS:
// a few nodes each, dynamic shapes, no weights), encoded with the runtime's one ONNX encoder
// (runtime/onnx-proto.ts); createJsKernels implements the same names in plain JavaScript, the
// reference every ORT kernel is tested against (test/tune-kernels.test.ts).
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel, type AttrValue, type NodeDef, type ValueInfo } from '../runtime/onnx-proto.ts';

/** A kernel's node: integer or integer-list attributes are all the kernels need. */
interface KernelNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, number | number[]>;
}

/** A kernel graph over float tensors: inputs and outputs as [name, rank]. */
export interface KernelGraph {
  nodes: KernelNode[];
  inputs: Array<[string, number]>;
  outputs: Array<[string, number]>;
}

const t2 = (name: string): [string, number] => [name, 2];
const t3 = (name: string): [string, number] => [name, 3];

export type KernelName = 'matmulNT' | 'matmulTN' | 'matmulNN' | 'lseMaxNT' | 'softmaxNT' | 'attention' | 'attentionBack';

/** The ORT kernels by name (the names of DenseKernels' methods). */
export const KERNEL_GRAPHS: Record<KernelName, KernelGraph> = {
  matmulNT: { nodes: [{ op: 'Gemm', inputs: ['A', 'B'], outputs: ['Y'], attrs: { transB: 1 } }], inputs: [t2('A'), t2('B')], outputs: [t2('Y')] },
  matmulTN: { nodes: [{ op: 'Gemm', inputs: ['A', 'B'], outputs: ['Y'], attrs: { transA: 1 } }], inputs: [t2('A'), t2('B')], outputs: [t2('Y')] },
  matmulNN: { nodes: [{ op: 'MatMul', inputs: ['A', 'B'], outputs: ['Y'] }], inputs: [t2('A'), t2('B')], outputs: [t2('Y')] },
  lseMaxNT: {
    nodes: [
      { op: 'Gemm', inputs: ['A', 'B'], outputs: ['Z'], attrs: { transB: 1 } },
      { op: 'ReduceLogSumExp', inputs: ['Z'], outputs: ['L'], attrs: { axes: [1], keepdims: 0 } },
      { op: 'ReduceMax', inputs: ['Z'], outputs: ['M'], attrs: { axes: [1], keepdims: 0 } },
    ],
    inputs: [t2('A'), t2('B')], outputs: [['L', 1], ['M', 1]],
  },
  softmaxNT: {
    // lse = logaddexp(E, logsumexp(Z)) computed as M + log(exp(Lz - M) + exp(E - M)), M = max(Lz, E)
    nodes: [
      { op: 'Gemm', inputs: ['A', 'B'], outputs: ['Z'], attrs: { transB: 1 } },
      { op: 'ReduceLogSumExp', inputs: ['Z'], outputs: ['Lz'], attrs: { axes: [1], keepdims: 1 } },
      { op: 'Max', inputs: ['Lz', 'E'], outputs: ['M'] },
      { op: 'Sub', inputs: ['Lz', 'M'], outputs: ['a'] },
      { op: 'Sub', inputs: ['E', 'M'], outputs: ['b'] },
      { op: 'Exp', inputs: ['a'], outputs: ['ea'] },
      { op: 'Exp', inputs: ['b'], outputs: ['eb'] },
      { op: 'Add', inputs: ['ea', 'eb'], outputs: ['s'] },
      { op: 'Log', inputs: ['s'], outputs: ['ls'] },
      { op: 'Add', inputs: ['M', 'ls'], outputs: ['L'] },
      { op: 'Sub', inputs: ['Z', 'L'], outputs: ['zl'] },
      { op: 'Exp', inputs: ['zl'], outputs: ['P'] },
    ],
    inputs: [t2('A'), t2('B'), t2('E')], outputs: [t2('P'), t2('L')],
  },
  attention: {
    nodes: [
      { op: 'Transpose', inputs: ['K'], outputs: ['Kt'], attrs: { perm: [0, 2, 1] } },
      { op: 'MatMul', inputs: ['Q', 'Kt'], outputs: ['S'] },
      { op: 'Add', inputs: ['S', 'Mask'], outputs: ['Sm'] },
      { op: 'Softmax', inputs: ['Sm'], outputs: ['P'], attrs: { axis: -1 } },
      { op: 'MatMul', inputs: ['P', 'V'], outputs: ['O'] },
    ],
    inputs: [t3('Q'), t3('K'), t3('V'), t2('Mask')], outputs: [t3('O'), t3('P')],
  },
  attentionBack: {
    // sum_j P_ij dP_ij = dO_i . O_i, computed as (dO * O) @ ones
    nodes: [
      { op: 'Transpose', inputs: ['P'], outputs: ['Pt'], attrs: { perm: [0, 2, 1] } },
      { op: 'MatMul', inputs: ['Pt', 'dO'], outputs: ['dV'] },
      { op: 'Transpose', inputs: ['V'], outputs: ['Vt'], attrs: { perm: [0, 2, 1] } },
      { op: 'MatMul', inputs: ['dO', 'Vt'], outputs: ['dP'] },
      { op: 'MatMul', inputs: ['P', 'V'], outputs: ['O'] },
      { op: 'Mul', inputs: ['dO', 'O'], outputs: ['dOO'] },
      { op: 'MatMul', inputs: ['dOO', 'Ones'], outputs: ['D'] },
      { op: 'Sub', inputs: ['dP', 'D'], outputs: ['dPc'] },
      { op: 'Mul', inputs: ['P', 'dPc'], outputs: ['dS'] },
      { op: 'MatMul', inputs: ['dS', 'K'], outputs: ['dQ'] },
      { op: 'Transpose', inputs: ['dS'], outputs: ['dSt'], attrs: { perm: [0, 2, 1] } },
      { op: 'MatMul', inputs: ['dSt', 'Q'], outputs: ['dK'] },
    ],
    inputs: [t3('P'), t3('dO'), t3('Q'), t3('K'), t3('V'), t2('Ones')], outputs: [t3('dQ'), t3('dK'), t3('dV')],
  },
};

export const KERNEL_NAMES = Object.keys(KERNEL_GRAPHS) as KernelName[];

/** The ONNX model (opset 13) of one kernel graph; every dimension is dynamic. */
export function kernelModel(name: string, k: KernelGraph): Uint8Array {
  const attr = (v: number | number[]): AttrValue => (Array.isArray(v) ? { kind: 'ints', v } : { kind: 'int', v });
  const nodes: NodeDef[] = k.nodes.map((n, i) => ({
    op: n.op, inputs: n.inputs, outputs: n.outputs, name: `${name}_${i}`,
    attrs: n.attrs && Object.fromEntries(Object.entries(n.attrs).map(([a, v]) => [a, attr(v)])),
  }));
  const info = ([n, rank]: [string, number]): ValueInfo => ({ name: n, elemType: DataType.FLOAT, shape: Array.from({ length: rank }, (_, i) => `${n}_d${i}`) });
  return encodeModel({ graphName: name, nodes, initializers: [], inputs: k.inputs.map(info), outputs: k.outputs.map(info), opsets: [{ domain: '', version: 13 }], irVersion: 7 });
}

// ---------------------------------------------------------------- kernels

/** Row-major matrix; float64 data is accepted by the JS kernels (exact reference computations). */
export interface Mat {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
}

/** The kernels; each method but dispose is a KERNEL_GRAPHS entry of the same name. */
export interface DenseKernels extends Record<KernelName, unknown> {
  /** A [m x k] times B^T, B [n x k] -> [m x n]. */
  matmulNT(a: Mat, b: Mat): Promise<Mat>;
  /** A^T [k x m]^T times B [k x n] -> [m x n]. */
  matmulTN(a: Mat, b: Mat): Promise<Mat>;
  /** A [m x k] times B [k x n] -> [m x n]. */
  matmulNN(a: Mat, b: Mat): Promise<Mat>;
  /** Per row of A·B^T: log-sum-exp and max. */
  lseMaxNT(a: Mat, b: Mat): Promise<{ lse: Float32Array; max: Float32Array }>;
  /**
   * Z = A·B^T with one extra logit column per row given by its log-sum-exp `extra` [m]: returns
   * lse = logaddexp(extra, logsumexp(Z)) per row and P = exp(Z - lse) [m x n] (softmax probabilities
   * of the B rows when the other rows' mass is `extra`).
   */
  softmaxNT(a: Mat, b: Mat, extra: Float32Array): Promise<{ p: Float32Array; lse: Float32Array }>;
  /**
   * Causal attention over N independent heads of length T: q (already scaled), k, v [N x T x hd].
   * Returns O = softmax(q k^T + causal) v and the probabilities P [N x T x T].
   */
  attention(q: Arr, k: Arr, v: Arr, N: number, T: number, hd: number): Promise<{ o: Arr; p: Arr }>;
  /** Reverse mode of `attention`: given P and dO, the gradients of q (scaled), k and v. */
  attentionBack(p: Arr, dO: Arr, q: Arr, k: Arr, v: Arr, N: number, T: number, hd: number): Promise<{ dq: Arr; dk: Arr; dv: Arr }>;
  dispose(): Promise<void>;
}

type Arr = Float32Array | Float64Array;

function causalMask(T: number): Float32Array {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e30;
  return m;
}

function tensor(m: Mat): ort.Tensor {
  const data = m.data instanceof Float32Array ? m.data : Float32Array.from(m.data);
  return new ort.Tensor('float32', data, [m.rows, m.cols]);
}

/** Kernels run by onnxruntime on the CPU with `threads` intra-op threads. */
export async function createOrtKernels(threads = 0): Promise<DenseKernels> {
  const opts: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    ...(threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
  };
  const sessions = Object.fromEntries(await Promise.all(KERNEL_NAMES.map(async (name) =>
    [name, await ort.InferenceSession.create(kernelModel(name, KERNEL_GRAPHS[name]), opts)] as const))) as Record<KernelName, ort.InferenceSession>;
  const { matmulNT: nt, matmulTN: tn, matmulNN: nn, lseMaxNT: lse, softmaxNT: sm, attention: at, attentionBack: atb } = sessions;
  const masks = new Map<number, Float32Array>();
  const maskOf = (T: number) => {
    let m = masks.get(T);
    if (!m) masks.set(T, (m = causalMask(T)));
    return m;
  };
  const f32 = (a: Arr) => (a instanceof Float32Array ? a : Float32Array.from(a));
  const run2 = async (s: ort.InferenceSession, a: Mat, b: Mat, rows: number, cols: number): Promise<Mat> => {
    const out = await s.run({ A: tensor(a), B: tensor(b) });
    return { data: out.Y.data as Float32Array, rows, cols };
  };
  return {
    matmulNT: (a, b) => {
      if (a.cols !== b.cols) throw new Error(`matmulNT: inner sizes differ (${a.cols} vs ${b.cols})`);
      return run2(nt, a, b, a.rows, b.rows);
    },
    matmulTN: (a, b) => {
      if (a.rows !== b.rows) throw new Error(`matmulTN: inner sizes differ (${a.rows} vs ${b.rows})`);
      return run2(tn, a, b, a.cols, b.cols);
    },
    matmulNN: (a, b) => {
      if (a.cols !== b.rows) throw new Error(`matmulNN: inner sizes differ (${a.cols} vs ${b.rows})`);
      return run2(nn, a, b, a.rows, b.cols);
    },
    lseMaxNT: async (a, b) => {
      if (a.cols !== b.cols) throw new Error(`lseMaxNT: inner sizes differ (${a.cols} vs ${b.cols})`);
      const out = await lse.run({ A: tensor(a), B: tensor(b) });
      return { lse: out.L.data as Float32Array, max: out.M.data as Float32Array };
    },
    softmaxNT: async (a, b, extra) => {
      if (a.cols !== b.cols) throw new Error(`softmaxNT: inner sizes differ (${a.cols} vs ${b.cols})`);
      const out = await sm.run({ A: tensor(a), B: tensor(b), E: new ort.Tensor('float32', extra, [a.rows, 1]) });
      return { p: out.P.data as Float32Array, lse: out.L.data as Float32Array };
    },
    attention: async (q, k, v, N, T, hd) => {
      const sh = [N, T, hd];
      const out = await at.run({
        Q: new ort.Tensor('float32', f32(q), sh), K: new ort.Tensor('float32', f32(k), sh), V: new ort.Tensor('float32', f32(v), sh),
        Mask: new ort.Tensor('float32', maskOf(T), [T, T]),
      });
      return { o: out.O.data as Float32Array, p: out.P.data as Float32Array };
    },
    attentionBack: async (p, dO, q, k, v, N, T, hd) => {
      const sh = [N, T, hd];
      const out = await atb.run({
        P: new ort.Tensor('float32', f32(p), [N, T, T]), dO: new ort.Tensor('float32', f32(dO), sh),
        Q: new ort.Tensor('float32', f32(q), sh), K: new ort.Tensor('float32', f32(k), sh), V: new ort.Tensor('float32', f32(v), sh),
        Ones: new ort.Tensor('float32', new Float32Array(hd).fill(1), [hd, 1]),
      });
      return { dq: out.dQ.data as Float32Array, dk: out.dK.data as Float32Array, dv: out.dV.data as Float32Array };
    },
    dispose: async () => {
      for (const s of Object.values(sessions)) await s.release();
    },
  };
}

/** The same kernels in plain JavaScript (float64 accumulation): the reference for tests. */
export function createJsKernels(): DenseKernels {
  const nt = (a: Mat, b: Mat): Mat => {
    const y = a.data instanceof Float64Array ? new Float64Array(a.rows * b.rows) : new Float32Array(a.rows * b.rows);
    for (let i = 0; i < a.rows; i++) {
      for (let j = 0; j < b.rows; j++) {
        let s = 0;
        for (let k = 0; k < a.cols; k++) s += a.data[i * a.cols + k] * b.data[j * b.cols + k];
        y[i * b.rows + j] = s;
      }
    }
    return { data: y, rows: a.rows, cols: b.rows };
  };
  const transpose = (m: Mat): Mat => {
    const t = m.data instanceof Float64Array ? new Float64Array(m.data.length) : new Float32Array(m.data.length);
    for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) t[j * m.rows + i] = m.data[i * m.cols + j];
    return { data: t, rows: m.cols, cols: m.rows };
  };
  return {
    matmulNT: async (a, b) => nt(a, b),
    matmulTN: async (a, b) => nt(transpose(a), transpose(b)),
    matmulNN: async (a, b) => nt(a, transpose(b)),
    lseMaxNT: async (a, b) => {
      const z = nt(a, b);
      const lse = new Float32Array(a.rows);
      const max = new Float32Array(a.rows);
      // (log-sum-exp results are float32 in both implementations)
      for (let i = 0; i < a.rows; i++) {
        let m = -Infinity;
        for (let j = 0; j < z.cols; j++) m = Math.max(m, z.data[i * z.cols + j]);
        let s = 0;
        for (let j = 0; j < z.cols; j++) s += Math.exp(z.data[i * z.cols + j] - m);
        lse[i] = m + Math.log(s);
        max[i] = m;
      }
      return { lse, max };
    },
    softmaxNT: async (a, b, extra) => {
      const z = nt(a, b);
      const p = new Float32Array(z.data.length);
      const lse = new Float32Array(a.rows);
      for (let i = 0; i < a.rows; i++) {
        let m = extra[i];
        for (let j = 0; j < z.cols; j++) m = Math.max(m, z.data[i * z.cols + j]);
        let s = Math.exp(extra[i] - m);
        for (let j = 0; j < z.cols; j++) s += Math.exp(z.data[i * z.cols + j] - m);
        lse[i] = m + Math.log(s);
        for (let j = 0; j < z.cols; j++) p[i * z.cols + j] = Math.exp(z.data[i * z.cols + j] - lse[i]);
      }
      return { p, lse };
    },
    attention: async (q, k, v, N, T, hd) => {
      const o = q instanceof Float64Array ? new Float64Array(N * T * hd) : new Float32Array(N * T * hd);
      const p = q instanceof Float64Array ? new Float64Array(N * T * T) : new Float32Array(N * T * T);
      for (let n = 0; n < N; n++) {
        const b = n * T * hd, pb = n * T * T;
        for (let i = 0; i < T; i++) {
          let mx = -Infinity;
          for (let j = 0; j <= i; j++) {
            let s = 0;
            for (let c = 0; c < hd; c++) s += q[b + i * hd + c] * k[b + j * hd + c];
            p[pb + i * T + j] = s;
            if (s > mx) mx = s;
          }
          let sum = 0;
          for (let j = 0; j <= i; j++) sum += (p[pb + i * T + j] = Math.exp(p[pb + i * T + j] - mx));
          for (let j = 0; j <= i; j++) {
            const pij = (p[pb + i * T + j] /= sum);
            for (let c = 0; c < hd; c++) o[b + i * hd + c] += pij * v[b + j * hd + c];
          }
        }
      }
      return { o, p };
    },
    attentionBack: async (p, dO, q, k, v, N, T, hd) => {
      const mk = () => (q instanceof Float64Array ? new Float64Array(N * T * hd) : new Float32Array(N * T * hd));
      const dq = mk(), dk = mk(), dv = mk();
      const dp = new Float64Array(T);
      for (let n = 0; n < N; n++) {
        const b = n * T * hd, pb = n * T * T;
        for (let i = 0; i < T; i++) {
          let dot = 0;
          for (let j = 0; j <= i; j++) {
            const pij = p[pb + i * T + j];
            let s = 0;
            for (let c = 0; c < hd; c++) {
              s += dO[b + i * hd + c] * v[b + j * hd + c];
              dv[b + j * hd + c] += pij * dO[b + i * hd + c];
            }
            dp[j] = s;
            dot += pij * s;
          }
          for (let j = 0; j <= i; j++) {
            const ds = p[pb + i * T + j] * (dp[j] - dot);
            for (let c = 0; c < hd; c++) {
              dq[b + i * hd + c] += ds * k[b + j * hd + c];
              dk[b + j * hd + c] += ds * q[b + i * hd + c];
            }
          }
        }
      }
      return { dq, dk, dv };
    },
    dispose: async () => undefined,
  };
}
