// The decoder of model-spec.ts (Llama, Mistral, Qwen2, SmolLM3) in TypeScript with hand-written reverse mode, for exact gradients of the
// language-model loss with respect to the new tokens' embedding rows (input and output) through the
// FROZEN network. Only activations' gradients are propagated (no weight gradients). The big
// matrix products go through DenseKernels (ORT in training, JS float64 in gradient checks);
// attention, RMSNorm, RoPE and SwiGLU are written out here.
import type { ModelDir } from '../io/model-dir.ts';
import { EMBED_TENSOR } from '../io/model-dir.ts';
import { readWeightF32 } from '../io/weights.ts';
import { modelSpec, qkvNames } from '../runtime/model-spec.ts';
import type { DenseKernels, Mat } from './ort-kernels.ts';

type Arr = Float32Array | Float64Array;

export type Precision = 'f32' | 'f64';

interface Layer {
  inNorm: Arr;
  postNorm: Arr;
  q: Arr; k: Arr; v: Arr; o: Arr;
  qb: Arr | null; kb: Arr | null; vb: Arr | null;
  gate: Arr; up: Arr; down: Arr;
  /** False on a NoPE layer (SmolLM3): q and k are not rotated. */
  rope: boolean;
}

export interface FrozenModel {
  precision: Precision;
  d: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  inter: number;
  eps: number;
  /** The spec's float32 RoPE inverse frequencies (the same values the ONNX graph uses). */
  invFreq: Float32Array;
  rows: number;
  tied: boolean;
  layers: Layer[];
  norm: Arr;
  /** [rows x d]; the new tokens' rows are overwritten with the trainable rows before each pass. */
  embed: Arr;
  /** [rows x d]; the same array as `embed` when tied. */
  head: Arr;
}

function alloc(p: Precision, n: number): Arr {
  return p === 'f64' ? new Float64Array(n) : new Float32Array(n);
}

/** Load the frozen weights into memory (float32, or float64 for exact reference computations). */
export async function loadFrozenModel(model: ModelDir, precision: Precision = 'f32'): Promise<FrozenModel> {
  const spec = modelSpec(model);
  const w = model.weights;
  const get = async (name: string): Promise<Arr> => {
    const f = await readWeightF32(w, name);
    return precision === 'f64' ? Float64Array.from(f) : f;
  };
  const layers: Layer[] = [];
  for (const ls of spec.layers) {
    const p = `${ls.prefix}.`;
    const [qn, kn, vn] = qkvNames(ls);
    const bias = async (n: string) => (ls.qkvBias ? get(`${n}.bias`) : null);
    layers.push({
      inNorm: await get(p + 'input_layernorm.weight'),
      postNorm: await get(p + 'post_attention_layernorm.weight'),
      q: await get(p + 'self_attn.q_proj.weight'),
      k: await get(p + 'self_attn.k_proj.weight'),
      v: await get(p + 'self_attn.v_proj.weight'),
      o: await get(p + 'self_attn.o_proj.weight'),
      qb: await bias(qn), kb: await bias(kn), vb: await bias(vn),
      gate: await get(p + 'mlp.gate_proj.weight'),
      up: await get(p + 'mlp.up_proj.weight'),
      down: await get(p + 'mlp.down_proj.weight'),
      rope: ls.rope,
    });
  }
  const embed = await get(EMBED_TENSOR);
  const head = spec.tied ? embed : await get(spec.headTensor);
  return {
    precision,
    d: spec.hidden,
    heads: spec.heads,
    kvHeads: spec.kvHeads,
    headDim: spec.headDim,
    inter: spec.intermediate,
    eps: spec.eps,
    invFreq: spec.invFreq,
    rows: spec.rows,
    tied: spec.tied,
    layers,
    norm: await get('model.norm.weight'),
    embed,
    head,
  };
}

// ---------------------------------------------------------------- building blocks

const mat = (data: Arr, rows: number, cols: number): Mat => ({ data, rows, cols });

async function linear(k: DenseKernels, x: Arr, rows: number, w: Arr, out: number, inn: number, bias: Arr | null): Promise<Arr> {
  const y = (await k.matmulNT(mat(x, rows, inn), mat(w, out, inn))).data;
  if (bias) for (let r = 0; r < rows; r++) for (let j = 0; j < out; j++) y[r * out + j] += bias[j];
  return y;
}

/** y = x W (the input gradient of a linear layer whose weight W is [out x in]). */
async function linearBack(k: DenseKernels, dy: Arr, rows: number, w: Arr, out: number, inn: number): Promise<Arr> {
  return (await k.matmulNN(mat(dy, rows, out), mat(w, out, inn))).data;
}

function rmsNorm(p: Precision, x: Arr, rows: number, d: number, w: Arr, eps: number): { y: Arr; r: Float64Array } {
  const y = alloc(p, rows * d);
  const r = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[i * d + c] * x[i * d + c];
    const inv = 1 / Math.sqrt(s / d + eps);
    r[i] = inv;
    for (let c = 0; c < d; c++) y[i * d + c] = x[i * d + c] * inv * w[c];
  }
  return { y, r };
}

/** Adds the input gradient of y = x * r * w (r = 1/rms(x)) to dx. */
function rmsNormBack(dx: Arr, dy: Arr, x: Arr, r: Float64Array, rows: number, d: number, w: Arr): void {
  for (let i = 0; i < rows; i++) {
    const inv = r[i];
    let dot = 0;
    for (let c = 0; c < d; c++) dot += dy[i * d + c] * w[c] * x[i * d + c] * inv;
    const mean = dot / d;
    for (let c = 0; c < d; c++) {
      const xhat = x[i * d + c] * inv;
      dx[i * d + c] += inv * (dy[i * d + c] * w[c] - xhat * mean);
    }
  }
}

/** Rotate (or, with sign -1, un-rotate: the transpose) heads in place; positions restart per sequence. */
function rope(x: Arr, rows: number, nHeads: number, hd: number, pos: Int32Array, invFreq: Float32Array, sign: 1 | -1): void {
  const half = hd / 2;
  const width = nHeads * hd;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      // the angle in float32, as transformers and the ONNX graph compute it (it grows with the position)
      const a = Math.fround(pos[r] * invFreq[i]);
      const cos = Math.cos(a), sin = sign * Math.sin(a);
      for (let h = 0; h < nHeads; h++) {
        const o = r * width + h * hd;
        const x1 = x[o + i], x2 = x[o + i + half];
        x[o + i] = x1 * cos - x2 * sin;
        x[o + i + half] = x2 * cos + x1 * sin;
      }
    }
  }
}

interface SeqSpan { start: number; len: number }

// ---------------------------------------------------------------- forward / backward

interface AttnGroup {
  T: number;
  /** Indices of the spans in this group. */
  idxs: number[];
  qs: Arr; ks: Arr; vs: Arr; p: Arr;
}

function byLength(spans: SeqSpan[]): Map<number, number[]> {
  const m = new Map<number, number[]>();
  spans.forEach((s, i) => {
    const l = m.get(s.len);
    if (l) l.push(i);
    else m.set(s.len, [i]);
  });
  return m;
}

interface LayerCache {
  xIn: Arr; r1: Float64Array; xn1: Arr;
  groups: AttnGroup[];
  xMid: Arr; r2: Float64Array; xn2: Arr; g: Arr; u: Arr;
}

export interface ForwardResult {
  rows: number;
  spans: SeqSpan[];
  /** Final hidden states (after the last norm), [rows x d]. */
  hidden: Arr;
  xLast: Arr;
  rLast: Float64Array;
  caches: LayerCache[];
}

function spansOf(seqs: number[][]): { spans: SeqSpan[]; pos: Int32Array; ids: Int32Array } {
  const spans: SeqSpan[] = [];
  let total = 0;
  for (const s of seqs) {
    spans.push({ start: total, len: s.length });
    total += s.length;
  }
  const pos = new Int32Array(total);
  const ids = new Int32Array(total);
  for (let k = 0; k < seqs.length; k++) for (let i = 0; i < seqs[k].length; i++) {
    pos[spans[k].start + i] = i;
    ids[spans[k].start + i] = seqs[k][i];
  }
  return { spans, pos, ids };
}

export async function forward(m: FrozenModel, k: DenseKernels, seqs: number[][], keep = true): Promise<ForwardResult> {
  const { d, heads: H, kvHeads: KV, headDim: hd, inter: I } = m;
  const P = m.precision;
  const { spans, pos, ids } = spansOf(seqs);
  const R = ids.length;
  let x = alloc(P, R * d);
  for (let r = 0; r < R; r++) {
    const id = ids[r];
    if (id < 0 || id >= m.rows) throw new Error(`token id ${id} is outside the embedding matrix (${m.rows} rows)`);
    x.set(m.embed.subarray(id * d, (id + 1) * d), r * d);
  }
  const caches: LayerCache[] = [];
  const group = H / KV;
  const scale = 1 / Math.sqrt(hd);
  for (const L of m.layers) {
    const xIn = x;
    const { y: xn1, r: r1 } = rmsNorm(P, xIn, R, d, L.inNorm, m.eps);
    const q = await linear(k, xn1, R, L.q, H * hd, d, L.qb);
    const kk = await linear(k, xn1, R, L.k, KV * hd, d, L.kb);
    const v = await linear(k, xn1, R, L.v, KV * hd, d, L.vb);
    if (L.rope) {
      rope(q, R, H, hd, pos, m.invFreq, 1);
      rope(kk, R, KV, hd, pos, m.invFreq, 1);
    }
    const attn = alloc(P, R * H * hd);
    const groups: AttnGroup[] = [];
    for (const [T, idxs] of byLength(spans)) {
      // heads of equal-length sequences as one [N x T x hd] batch (q scaled, k/v repeated per group)
      const N = idxs.length * H;
      const qs = alloc(P, N * T * hd), ks = alloc(P, N * T * hd), vs = alloc(P, N * T * hd);
      idxs.forEach((si, a) => {
        const st = spans[si].start;
        for (let h = 0; h < H; h++) {
          const kh = Math.floor(h / group);
          for (let i = 0; i < T; i++) {
            const dst = ((a * H + h) * T + i) * hd;
            const qo = (st + i) * H * hd + h * hd, ko = (st + i) * KV * hd + kh * hd;
            for (let c = 0; c < hd; c++) {
              qs[dst + c] = q[qo + c] * scale;
              ks[dst + c] = kk[ko + c];
              vs[dst + c] = v[ko + c];
            }
          }
        }
      });
      const { o, p } = await k.attention(qs, ks, vs, N, T, hd);
      idxs.forEach((si, a) => {
        const st = spans[si].start;
        for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) {
          const src = ((a * H + h) * T + i) * hd, dst = (st + i) * H * hd + h * hd;
          for (let c = 0; c < hd; c++) attn[dst + c] = o[src + c];
        }
      });
      if (keep) groups.push({ T, idxs, qs, ks, vs, p });
    }
    const ao = await linear(k, attn, R, L.o, d, H * hd, null);
    const xMid = alloc(P, R * d);
    for (let i = 0; i < R * d; i++) xMid[i] = xIn[i] + ao[i];
    const { y: xn2, r: r2 } = rmsNorm(P, xMid, R, d, L.postNorm, m.eps);
    const g = await linear(k, xn2, R, L.gate, I, d, null);
    const u = await linear(k, xn2, R, L.up, I, d, null);
    const act = alloc(P, R * I);
    for (let i = 0; i < R * I; i++) act[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const mo = await linear(k, act, R, L.down, d, I, null);
    x = alloc(P, R * d);
    for (let i = 0; i < R * d; i++) x[i] = xMid[i] + mo[i];
    if (keep) caches.push({ xIn, r1, xn1, groups, xMid, r2, xn2, g, u });
  }
  const { y: hidden, r: rLast } = rmsNorm(P, x, R, d, m.norm, m.eps);
  return { rows: R, spans, hidden, xLast: x, rLast, caches };
}

/** Final hidden states per sequence (forward only). */
export async function hiddenStates(m: FrozenModel, k: DenseKernels, seqs: number[][]): Promise<Float32Array[]> {
  const f = await forward(m, k, seqs, false);
  return f.spans.map((s) => Float32Array.from(f.hidden.subarray(s.start * m.d, (s.start + s.len) * m.d)));
}

/** Gradient of the loss with respect to the embedded input rows [rows x d], given dL/dhidden. */
export async function backward(m: FrozenModel, k: DenseKernels, f: ForwardResult, dHidden: Arr): Promise<Arr> {
  const { d, heads: H, kvHeads: KV, headDim: hd, inter: I } = m;
  const P = m.precision;
  const R = f.rows;
  const group = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const { spans } = f;
  const pos = new Int32Array(R);
  for (const s of spans) for (let i = 0; i < s.len; i++) pos[s.start + i] = i;
  const dx = alloc(P, R * d);
  rmsNormBack(dx, dHidden, f.xLast, f.rLast, R, d, m.norm);
  for (let li = m.layers.length - 1; li >= 0; li--) {
    const L = m.layers[li];
    const c = f.caches[li];
    // MLP: x = xMid + down(silu(g) * u)
    const dAct = await linearBack(k, dx, R, L.down, d, I);
    const dg = alloc(P, R * I);
    const du = alloc(P, R * I);
    for (let i = 0; i < R * I; i++) {
      const g = c.g[i];
      const s = 1 / (1 + Math.exp(-g));
      du[i] = dAct[i] * g * s;
      dg[i] = dAct[i] * c.u[i] * s * (1 + g * (1 - s));
    }
    const dxn2 = await linearBack(k, dg, R, L.gate, I, d);
    const dxn2u = await linearBack(k, du, R, L.up, I, d);
    for (let i = 0; i < R * d; i++) dxn2[i] += dxn2u[i];
    rmsNormBack(dx, dxn2, c.xMid, c.r2, R, d, L.postNorm); // dx now holds dL/dxMid
    // attention: xMid = xIn + o(attn)
    const dAttn = await linearBack(k, dx, R, L.o, d, H * hd);
    const dq = alloc(P, R * H * hd);
    const dk = alloc(P, R * KV * hd);
    const dv = alloc(P, R * KV * hd);
    for (const gr of c.groups) {
      const { T, idxs } = gr;
      const N = idxs.length * H;
      const dO = alloc(P, N * T * hd);
      idxs.forEach((si, a) => {
        const st = spans[si].start;
        for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) {
          const dst = ((a * H + h) * T + i) * hd, src = (st + i) * H * hd + h * hd;
          for (let cc = 0; cc < hd; cc++) dO[dst + cc] = dAttn[src + cc];
        }
      });
      const g = await k.attentionBack(gr.p, dO, gr.qs, gr.ks, gr.vs, N, T, hd);
      idxs.forEach((si, a) => {
        const st = spans[si].start;
        for (let h = 0; h < H; h++) {
          const kh = Math.floor(h / group);
          for (let i = 0; i < T; i++) {
            const src = ((a * H + h) * T + i) * hd;
            const qo = (st + i) * H * hd + h * hd, ko = (st + i) * KV * hd + kh * hd;
            for (let cc = 0; cc < hd; cc++) {
              dq[qo + cc] = g.dq[src + cc] * scale;
              dk[ko + cc] += g.dk[src + cc];
              dv[ko + cc] += g.dv[src + cc];
            }
          }
        }
      });
    }
    if (L.rope) {
      rope(dq, R, H, hd, pos, m.invFreq, -1);
      rope(dk, R, KV, hd, pos, m.invFreq, -1);
    }
    const dxn1 = await linearBack(k, dq, R, L.q, H * hd, d);
    const dxk = await linearBack(k, dk, R, L.k, KV * hd, d);
    const dxv = await linearBack(k, dv, R, L.v, KV * hd, d);
    for (let i = 0; i < R * d; i++) dxn1[i] += dxk[i] + dxv[i];
    rmsNormBack(dx, dxn1, c.xIn, c.r1, R, d, L.inNorm); // dx now holds dL/dxIn (residual kept)
  }
  return dx;
}

// ---------------------------------------------------------------- the LM objective over new rows

export interface NewRows {
  /** Token ids of the new rows, in row order. */
  ids: number[];
  /** [n x d] input embedding rows (the same array as `output` for tied models). */
  input: Arr;
  /** [n x d] output (lm_head) rows. */
  output: Arr;
}

/** Write the trainable rows into the model's matrices (input first, then output: tied rows agree). */
export function installRows(m: FrozenModel, rows: NewRows): void {
  const d = m.d;
  rows.ids.forEach((id, j) => {
    m.embed.set(rows.input.subarray(j * d, (j + 1) * d), id * d);
    m.head.set(rows.output.subarray(j * d, (j + 1) * d), id * d);
  });
}

export interface LmLossResult {
  /** Mean next-token cross-entropy (nats) over predicted positions. */
  loss: number;
  count: number;
  gradInput: Arr | null;
  gradOutput: Arr | null;
}

/**
 * Mean next-token cross-entropy over `seqs` (full softmax over every row of the head) and its exact
 * gradient with respect to the new rows. For a tied model, input and output gradients belong to the
 * same rows: the caller adds them when both are trained.
 */
export async function lmLossAndGrad(
  m: FrozenModel, k: DenseKernels, seqs: number[][], rows: NewRows, want: { input: boolean; output: boolean },
): Promise<LmLossResult> {
  installRows(m, rows);
  const d = m.d;
  const V = m.rows;
  const f = await forward(m, k, seqs, want.input);
  const R = f.rows;
  const logits = (await k.matmulNT(mat(f.hidden, R, d), mat(m.head, V, d))).data; // [R x V]
  const dLogits = logits; // reused in place
  let loss = 0;
  let count = 0;
  for (const sp of f.spans) count += Math.max(0, sp.len - 1);
  if (count === 0) throw new Error('lmLossAndGrad: no position to predict (sequences need at least 2 tokens)');
  const inv = 1 / count;
  for (let si = 0; si < f.spans.length; si++) {
    const sp = f.spans[si];
    for (let i = 0; i < sp.len; i++) {
      const r = sp.start + i;
      const o = r * V;
      if (i === sp.len - 1) {
        dLogits.fill(0, o, o + V);
        continue;
      }
      let mx = -Infinity;
      for (let j = 0; j < V; j++) if (logits[o + j] > mx) mx = logits[o + j];
      const t = seqs[si][i + 1];
      const zt = logits[o + t];
      let s = 0;
      for (let j = 0; j < V; j++) {
        const e = Math.exp(logits[o + j] - mx);
        dLogits[o + j] = e;
        s += e;
      }
      loss += mx + Math.log(s) - zt;
      const f = inv / s;
      for (let j = 0; j < V; j++) dLogits[o + j] *= f;
      dLogits[o + t] -= inv;
    }
  }
  const n = rows.ids.length;
  let gradOutput: Arr | null = null;
  if (want.output) {
    // dW_new = dLogits[:, ids]^T hidden
    const gl = alloc(m.precision, R * n);
    for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) gl[r * n + j] = dLogits[r * V + rows.ids[j]];
    const g = (await k.matmulTN(mat(gl, R, n), mat(f.hidden, R, d))).data;
    gradOutput = g;
  }
  let gradInput: Arr | null = null;
  if (want.input) {
    const dHidden = (await k.matmulNN(mat(dLogits, R, V), mat(m.head, V, d))).data;
    const dx0 = await backward(m, k, f, dHidden);
    const where = new Map(rows.ids.map((id, j) => [id, j]));
    const g = alloc(m.precision, n * d);
    for (let si = 0; si < seqs.length; si++) {
      for (let i = 0; i < seqs[si].length; i++) {
        const j = where.get(seqs[si][i]);
        if (j === undefined) continue;
        const r = f.spans[si].start + i;
        for (let c = 0; c < d; c++) g[j * d + c] += dx0[r * d + c];
      }
    }
    gradInput = g;
  }
  return { loss: loss * inv, count, gradInput, gradOutput };
}
