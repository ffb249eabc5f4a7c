// ONNX graph builder for decoder-only transformers (Llama family, Mistral, Qwen2, SmolLM3), in the
// transformers.js I/O layout: input_ids, attention_mask, position_ids,
// past_key_values.{i}.key|value -> logits, present.{i}.key|value.
// Weights are initializers with external data pointing into the .safetensors files
// (offset + length, nothing copied); bf16/f16 weights are Cast to float32, which ORT
// constant-folds once at session creation, so the compute is float32 throughout.
import type { ModelDir } from '../io/model-dir.ts';
import { EMBED_TENSOR } from '../io/model-dir.ts';
import { weightFile, weightInfo } from '../io/weights.ts';
import type { DType } from '../io/dtype.ts';
import {
  DataType, encodeModel, type AttrValue, type DataTypeCode, type NodeDef, type TensorDef, type ValueInfo, type ModelDef,
} from './onnx-proto.ts';
import * as path from 'node:path';
import { quantizeColumns } from './quantize.ts';
import { modelSpec, qkvNames, UnsupportedModelError, type LayerSpec, type ModelSpec } from './model-spec.ts';

export interface GraphVariant {
  /**
   * Logits for every position, only the last position, none, or 'keep': the last K positions with
   * K given by the scalar int64 input `num_logits_to_keep` (one graph serves scoring and decoding).
   */
  logits: 'all' | 'last' | 'none' | 'keep';
  /** Also output `hidden_states` (after the final norm, the lm_head input). */
  hidden: boolean;
  /** past_key_values inputs and present outputs (decoding with a KV cache). */
  cache: boolean;
  /** Extra input `target_ids` [batch, seq] and output `target_logprobs` [batch, seq] = log_softmax(logits)[target]. */
  targets: boolean;
  /**
   * 'fused' (default): ONNX opset-23 Attention + RotaryEmbedding, concatenated QKV / gate-up
   * projections, FusedMatMul on the stored weights; 'hybrid': the same but attention from
   * MatMul/Softmax; 'plain': everything in elementary opset-17 operators.
   */
  ops?: 'fused' | 'plain' | 'hybrid';
  /**
   * Weight layout of the float32 matrix products; matters for fused graphs only. 'stored' (default):
   * FusedMatMul reads the weights in their stored [out, in] layout, no extra copy. 'transposed': MatMul
   * on [in, out] copies made at load, which ORT prepacks: prefill about 6% faster
   * (bench/runtime-graphs.ts), one more float32 copy in memory.
   */
  matmul?: 'stored' | 'transposed';
  /**
   * 'float32' (default) or 'int8' (any ops): the decoder layers' linear weights quantized per output
   * column, products through DynamicQuantizeMatMul (activations quantized per call): ~2.9x faster
   * matrix products on AVX2, an approximation (the embeddings, norms, attention and lm_head stay
   * float32, the lm_head in the `matmul` layout).
   */
  precision?: 'float32' | 'int8';
}

/**
 * The float32 values of a stored [out, in] weight, for graphs that embed derived weights (int8:
 * the decoder layers' linear weights are quantized at build time; see quantize.ts).
 */
export type WeightValues = (tensor: string) => Float32Array;

export const FULL_VARIANT: GraphVariant = { logits: 'all', hidden: false, cache: true, targets: false };

export function variantKey(v: GraphVariant): string {
  return `${v.logits}${v.hidden ? '-h' : ''}${v.cache ? '-kv' : ''}${v.targets ? '-t' : ''}${v.ops && v.ops !== 'fused' ? '-' + v.ops : ''}${v.matmul === 'transposed' ? '-wt' : ''}${v.precision === 'int8' ? '-int8' : ''}`;
}

/** Where a weight's bytes live: resolves a tensor name to an external-data reference. */
export type WeightLocator = (name: string) => { location: string; offset: number; length: number };

function onnxType(dtype: DType, dir: string, name: string): DataTypeCode {
  switch (dtype) {
    case 'F32': return DataType.FLOAT;
    case 'BF16': return DataType.BFLOAT16;
    case 'F16': return DataType.FLOAT16;
    default: throw new UnsupportedModelError(dir, `weight "${name}" has dtype ${dtype}; supported: F32, BF16, F16`);
  }
}

class GraphBuilder {
  nodes: NodeDef[] = [];
  inits: TensorDef[] = [];
  private n = 0;
  private consts = new Map<string, string>();
  private weights = new Map<string, string>();

  constructor(private model: ModelDir, private locate: WeightLocator, readonly opset: number, readonly transB = false, private int8?: WeightValues) {}

  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>, nOut = 1, domain?: string): string[] {
    const id = this.n++;
    const outputs = Array.from({ length: nOut }, (_, k) => `${op.toLowerCase()}_${id}${nOut > 1 ? '_' + k : ''}`);
    this.nodes.push({ op, inputs, outputs, name: `${op}_${id}`, attrs, domain });
    return outputs;
  }
  op1(op: string, inputs: string[], attrs?: Record<string, AttrValue>, domain?: string): string {
    return this.op(op, inputs, attrs, 1, domain)[0];
  }
  /** Same op with a fixed output name. */
  named(name: string, op: string, inputs: string[], attrs?: Record<string, AttrValue>): string {
    this.nodes.push({ op, inputs, outputs: [name], name: `${op}_${name}`, attrs });
    return name;
  }

  i64(vals: number[], scalar = false): string {
    const key = `i64:${scalar}:${vals.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_i64_${this.consts.size}`;
      const raw = new Uint8Array(new BigInt64Array(vals.map(BigInt)).buffer);
      this.inits.push({ name, dataType: DataType.INT64, dims: scalar ? [] : [vals.length], raw });
      this.consts.set(key, name);
    }
    return name;
  }
  f32(vals: number[] | Float32Array, dims?: number[]): string {
    const arr = Float32Array.from(vals);
    const key = `f32:${dims?.join('x') ?? 's'}:${Array.from(arr).join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_f32_${this.consts.size}`;
      this.inits.push({ name, dataType: DataType.FLOAT, dims: dims ?? [], raw: new Uint8Array(arr.buffer) });
      this.consts.set(key, name);
    }
    return name;
  }

  /** The raw weight (its stored dtype), as an external-data initializer. */
  rawWeight(tensor: string): string {
    let name = this.weights.get(tensor);
    if (name) return name;
    const info = weightInfo(this.model.weights, tensor);
    name = tensor;
    this.inits.push({ name, dataType: onnxType(info.dtype, this.model.dir, tensor), dims: info.shape, external: this.locate(tensor) });
    this.weights.set(tensor, name);
    return name;
  }
  /** The weight as float32 (Cast unless stored as F32). */
  weightF32(tensor: string): string {
    const info = weightInfo(this.model.weights, tensor);
    const raw = this.rawWeight(tensor);
    if (info.dtype === 'F32') return raw;
    return this.named(`${tensor}.f32`, 'Cast', [raw], { to: { kind: 'int', v: DataType.FLOAT } });
  }
  /** [out, in] weight transposed to [in, out] float32 (constant-folded by ORT). */
  weightT(tensor: string): string {
    return this.named(`${tensor}.T`, 'Transpose', [this.weightF32(tensor)], { perm: { kind: 'ints', v: [1, 0] } });
  }

  /** Several [out, in] weights concatenated along the output axis, transposed: [in, sum(out)]. */
  weightsT(tensors: string[]): string {
    if (tensors.length === 1) return this.weightT(tensors[0]);
    return this.named(`${tensors.join('+')}.T`, 'Concat', tensors.map((t) => this.weightT(t)), { axis: { kind: 'int', v: 1 } });
  }
  biases(tensors: string[]): string {
    if (tensors.length === 1) return this.weightF32(tensors[0]);
    return this.named(tensors.join('+'), 'Concat', tensors.map((t) => this.weightF32(t)), { axis: { kind: 'int', v: 0 } });
  }

  /**
   * x @ concat(W_i)^T for [out, in] weights. With `transB` (fused graphs) ORT's FusedMatMul reads
   * the weights in their stored layout, so no transposed float32 copy is made at load time.
   */
  matmulW(x: string, tensors: string[], float = false): string {
    if (this.int8 && !float) return this.quantizedMatmul(x, tensors);
    if (!this.transB) return this.op1('MatMul', [x, this.weightsT(tensors)]);
    const w = tensors.length === 1 ? this.weightF32(tensors[0])
      : this.named(tensors.join('+'), 'Concat', tensors.map((t) => this.weightF32(t)), { axis: { kind: 'int', v: 0 } });
    return this.op1('FusedMatMul', [x, w], { transA: { kind: 'int', v: 0 }, transB: { kind: 'int', v: 1 }, alpha: { kind: 'float', v: 1 } }, 'com.microsoft');
  }

  /** x @ concat(W_i)^T with the weights quantized to int8 here (embedded in the graph, not external). */
  private quantizedMatmul(x: string, tensors: string[]): string {
    const key = `${tensors.join('+')}.int8`;
    if (!this.weights.has(key)) {
      const inDim = weightInfo(this.model.weights, tensors[0]).shape[1];
      const { q, scales, outDim } = quantizeColumns(tensors.map((t) => this.int8!(t)), inDim);
      this.inits.push({ name: key, dataType: DataType.INT8, dims: [inDim, outDim], raw: new Uint8Array(q.buffer, q.byteOffset, q.byteLength) });
      this.inits.push({ name: `${key}.scale`, dataType: DataType.FLOAT, dims: [outDim], raw: new Uint8Array(scales.buffer) });
      this.weights.set(key, key);
    }
    return this.op1('DynamicQuantizeMatMul', [x, key, `${key}.scale`], undefined, 'com.microsoft');
  }

  linear(x: string, prefix: string, bias: boolean): string {
    let y = this.matmulW(x, [`${prefix}.weight`]);
    if (bias) y = this.op1('Add', [y, this.weightF32(`${prefix}.bias`)]);
    return y;
  }

  /** RMSNorm in the pattern ORT fuses into SimplifiedLayerNormalization. */
  rmsNorm(x: string, weight: string, eps: number): string {
    const sq = this.op1('Pow', [x, this.f32([2])]);
    const mean = this.opset >= 18
      ? this.op1('ReduceMean', [sq, this.i64([-1])], { keepdims: { kind: 'int', v: 1 } })
      : this.op1('ReduceMean', [sq], { axes: { kind: 'ints', v: [-1] }, keepdims: { kind: 'int', v: 1 } });
    const den = this.op1('Sqrt', [this.op1('Add', [mean, this.f32([eps])])]);
    const normed = this.op1('Div', [x, den]);
    return this.op1('Mul', [normed, this.weightF32(weight)]);
  }
}

export interface BuiltGraph { bytes: Uint8Array; inputs: string[]; outputs: string[] }

// The graph is put together from small make-functions, each one block of the decoder. The operator
// family (`ops`) picks the implementation of three of them: the q/k/v projections (one concatenated
// product, or three), RoPE (the opset-23 RotaryEmbedding op, or elementary ops) and attention (the
// opset-23 Attention op, or MatMul/Softmax). Precision (int8) and weight layout live in the builder's
// matmulW, under every block alike. Node and constant order is part of the output bytes: a block
// creates its nodes in the order the graph had before it was split into blocks.

/** What every block of one graph shares. */
interface Ctx {
  g: GraphBuilder;
  spec: ModelSpec;
  variant: GraphVariant;
  /** Outputs in the order they are declared (present.* are added by the attention blocks). */
  outputs: ValueInfo[];
  /** Additive attention mask [B, S, T] (0 or -max): causal and padding. */
  mask: string;
  /**
   * Start of the kept positions (negative, along the sequence axis) when only the last K positions'
   * logits leave the graph; null when every position is needed.
   */
  keepStart: string | null;
}

/** The sequence's last kept positions of `x` along `axis`. */
function tail(ctx: Ctx, x: string, axis: number): string {
  const g = ctx.g;
  return g.op1('Slice', [x, ctx.keepStart!, g.i64([Number.MAX_SAFE_INTEGER]), g.i64([axis])]);
}

function makeInputs(spec: ModelSpec, variant: GraphVariant): { inputs: ValueInfo[]; logitsLen: number | string } {
  const inputs: ValueInfo[] = [
    { name: 'input_ids', elemType: DataType.INT64, shape: ['batch_size', 'sequence_length'] },
    { name: 'attention_mask', elemType: DataType.INT64, shape: ['batch_size', 'total_sequence_length'] },
    { name: 'position_ids', elemType: DataType.INT64, shape: ['batch_size', 'sequence_length'] },
  ];
  if (variant.cache) {
    for (let l = 0; l < spec.layers.length; l++) for (const kv of ['key', 'value']) {
      inputs.push({ name: `past_key_values.${l}.${kv}`, elemType: DataType.FLOAT, shape: ['batch_size', spec.kvHeads, 'past_sequence_length', spec.headDim] });
    }
  }
  const logitsLen = variant.logits === 'keep' ? 'logits_length' : variant.logits === 'last' ? 1 : 'sequence_length';
  if (variant.logits === 'keep') inputs.push({ name: 'num_logits_to_keep', elemType: DataType.INT64, shape: [] });
  if (variant.targets) inputs.push({ name: 'target_ids', elemType: DataType.INT64, shape: ['batch_size', logitsLen] });
  return { inputs, logitsLen };
}

/** The causal + padding mask, shared by all layers. */
function makeMask(g: GraphBuilder): string {
  const shapeIds = g.op1('Shape', ['input_ids']);
  const S = g.op1('Gather', [shapeIds, g.i64([1], true)], { axis: { kind: 'int', v: 0 } });
  const shapeMask = g.op1('Shape', ['attention_mask']);
  const T = g.op1('Gather', [shapeMask, g.i64([1], true)], { axis: { kind: 'int', v: 0 } });
  const past = g.op1('Sub', [T, S]);
  const one = g.i64([1], true);
  const kIdx = g.op1('Range', [g.i64([0], true), T, one]);
  const qIdx = g.op1('Range', [past, T, one]);
  const causal = g.op1('LessOrEqual', [
    g.op1('Unsqueeze', [kIdx, g.i64([0])]),
    g.op1('Unsqueeze', [qIdx, g.i64([1])]),
  ]); // [S, T]
  const pad = g.op1('Unsqueeze', [g.op1('Cast', ['attention_mask'], { to: { kind: 'int', v: DataType.BOOL } }), g.i64([1])]); // [B,1,T]
  const allowed = g.op1('And', [causal, pad]); // [B,S,T]
  return g.op1('Where', [allowed, g.f32([0]), g.f32([-3.4028234663852886e38])]); // [B,S,T]
}

/**
 * When only the last K positions' logits leave the graph (and no hidden states), the last layer
 * needs every position's keys and values (attention, KV cache) but queries, o_proj, MLP and the
 * final norm only for those K positions: about 1/numLayers of the prefill work is skipped.
 */
function makeKeepStart(g: GraphBuilder, spec: ModelSpec, variant: GraphVariant): string | null {
  if (variant.hidden || spec.layers.length < 1) return null;
  if (variant.logits === 'last') return g.i64([-1]);
  if (variant.logits === 'keep') return g.op1('Neg', [g.op1('Unsqueeze', ['num_logits_to_keep', g.i64([0])])]);
  return null;
}

/** Rotation angles position * inverse frequency, [B, S, hd/2]. */
function makeRopeAngles(g: GraphBuilder, spec: ModelSpec): string {
  const invFreq = g.f32(spec.invFreq, [1, 1, spec.headDim / 2]);
  const pos = g.op1('Unsqueeze', [g.op1('Cast', ['position_ids'], { to: { kind: 'int', v: DataType.FLOAT } }), g.i64([2])]); // [B,S,1]
  return g.op1('Mul', [pos, invFreq]);
}

function makeEmbedding(g: GraphBuilder, model: ModelDir): string {
  const h = g.op1('Gather', [g.rawWeight(EMBED_TENSOR), 'input_ids'], { axis: { kind: 'int', v: 0 } });
  if (weightInfo(model.weights, EMBED_TENSOR).dtype !== 'F32') return g.op1('Cast', [h], { to: { kind: 'int', v: DataType.FLOAT } });
  return h;
}

/** Rotates a query or key tensor of `heads` heads (in the layout of the ops family's projections). */
type Rope = (x: string, heads: number) => string;

/** RotaryEmbedding (opset 23) on [B, S, heads*hd]; it takes cos/sin of shape [B, S, hd/2] when no position_ids are given. */
function makeFusedRope(g: GraphBuilder, angles: string): Rope {
  const cosT = g.op1('Cos', [angles]);
  const sinT = g.op1('Sin', [angles]);
  return (x, n) => g.op1('RotaryEmbedding', [x, cosT, sinT], { num_heads: { kind: 'int', v: n }, interleaved: { kind: 'int', v: 0 } });
}

/** RoPE from elementary ops on [B, heads, S, hd]. */
function makePlainRope(g: GraphBuilder, angles: string, hd: number): Rope {
  const emb = g.op1('Concat', [angles, angles], { axis: { kind: 'int', v: -1 } });
  const cos = g.op1('Unsqueeze', [g.op1('Cos', [emb]), g.i64([1])]); // [B,1,S,hd]
  const sinHalf = g.op1('Sin', [angles]);
  // rotate_half(x) * sin == concat(x2, x1) * concat(-sin, sin)
  const sinSigned = g.op1('Unsqueeze', [g.op1('Concat', [g.op1('Neg', [sinHalf]), sinHalf], { axis: { kind: 'int', v: -1 } }), g.i64([1])]);
  const halfSplit = g.i64([hd / 2, hd / 2]);
  return (x) => {
    const [x1, x2] = g.op('Split', [x, halfSplit], { axis: { kind: 'int', v: -1 } }, 2);
    const swapped = g.op1('Concat', [x2, x1], { axis: { kind: 'int', v: -1 } });
    return g.op1('Add', [g.op1('Mul', [x, cos]), g.op1('Mul', [swapped, sinSigned])]);
  };
}

/** [B, S, n*hd] -> [B, n, S, hd]. */
function heads(ctx: Ctx, x: string, n: number): string {
  const g = ctx.g;
  return g.op1('Transpose', [g.op1('Reshape', [x, g.i64([0, 0, n, ctx.spec.headDim])])], { perm: { kind: 'ints', v: [0, 2, 1, 3] } });
}

/** q, k (rotated unless a NoPE layer) and v of one layer, and the axis of q's sequence. */
interface Qkv { q: string; k: string; v: string; seqAxis: number }
type MakeQkv = (ctx: Ctx, x: string, layer: LayerSpec, rope: Rope) => Qkv;

/** One product with the concatenated q/k/v weights, split: [B, S, n*hd] each. */
const concatQkv: MakeQkv = (ctx, x, layer, rope) => {
  const { g, spec } = ctx;
  const names = qkvNames(layer);
  let qkv = g.matmulW(x, names.map((n) => `${n}.weight`));
  if (layer.qkvBias) qkv = g.op1('Add', [qkv, g.biases(names.map((n) => `${n}.bias`))]);
  const [q, k, v] = g.op('Split', [qkv, g.i64([spec.heads * spec.headDim, spec.kvHeads * spec.headDim, spec.kvHeads * spec.headDim])], { axis: { kind: 'int', v: -1 } }, 3);
  const qr = layer.rope ? rope(q, spec.heads) : q;
  const kr = layer.rope ? rope(k, spec.kvHeads) : k;
  return { q: qr, k: kr, v, seqAxis: 1 };
};

/** Three products, each in the heads layout [B, n, S, hd]. */
const separateQkv: MakeQkv = (ctx, x, layer, rope) => {
  const { g, spec } = ctx;
  const names = qkvNames(layer);
  const ropeIf = (t: string, n: number) => (layer.rope ? rope(t, n) : t);
  const q = ropeIf(heads(ctx, g.linear(x, names[0], layer.qkvBias), spec.heads), spec.heads);
  const k = ropeIf(heads(ctx, g.linear(x, names[1], layer.qkvBias), spec.kvHeads), spec.kvHeads);
  const v = heads(ctx, g.linear(x, names[2], layer.qkvBias), spec.kvHeads);
  return { q, k, v, seqAxis: 2 };
};

/** Attention of layer `l` given its q, k, v; `pruned`: q holds only the kept positions. Returns [B, S, nH*hd]. */
type MakeAttention = (ctx: Ctx, qkv: Qkv, l: number, pruned: boolean) => string;

function presentInfo(ctx: Ctx, l: number): void {
  const shape = ['batch_size', ctx.spec.kvHeads, 'total_sequence_length', ctx.spec.headDim];
  ctx.outputs.push({ name: `present.${l}.key`, elemType: DataType.FLOAT, shape });
  ctx.outputs.push({ name: `present.${l}.value`, elemType: DataType.FLOAT, shape: [...shape] });
}

/** The ONNX opset-23 Attention op on [B, S, n*hd] (GQA and the KV cache inside the op). */
function makeOpAttention(): MakeAttention {
  let mask4: string | null = null; // [B,1,S,T], made once for all layers
  return (ctx, { q, k, v }, l, pruned) => {
    const { g, spec, variant } = ctx;
    mask4 ??= g.op1('Unsqueeze', [ctx.mask, g.i64([1])]);
    const attnIn = [q, k, v, pruned ? tail(ctx, mask4, 2) : mask4];
    const attnOut = [`attn_${l}`];
    if (variant.cache) {
      attnIn.push(`past_key_values.${l}.key`, `past_key_values.${l}.value`);
      attnOut.push(`present.${l}.key`, `present.${l}.value`);
      presentInfo(ctx, l);
    }
    g.nodes.push({
      op: 'Attention', inputs: attnIn, outputs: attnOut, name: `Attention_${l}`,
      attrs: { q_num_heads: { kind: 'int', v: spec.heads }, kv_num_heads: { kind: 'int', v: spec.kvHeads }, scale: { kind: 'float', v: 1 / Math.sqrt(spec.headDim) } },
    });
    return attnOut[0];
  };
}

/**
 * Attention from elementary operators on [B, heads, S, hd] tensors; GQA without copying K/V: the
 * queries of one KV group are stacked along the sequence axis, [B, nKV, group*S, hd]. `toHeads`:
 * q/k/v come as [B, S, n*hd] (concatenated projections) and are reshaped first.
 */
function makeMatmulAttention(toHeads: boolean): MakeAttention {
  const tiled = new Map<string, string>(); // mask -> its [B,1,group*S,T] tiling, made once per mask
  return (ctx, qkv, l, pruned) => {
    const { g, spec, variant } = ctx;
    const { heads: nH, kvHeads: nKV, headDim: hd } = spec;
    let { q, k, v } = qkv;
    if (toHeads) {
      q = heads(ctx, q, nH);
      k = heads(ctx, k, nKV);
      v = heads(ctx, v, nKV);
    }
    const mask = pruned ? tail(ctx, ctx.mask, 1) : ctx.mask;
    let bg = tiled.get(mask);
    if (!bg) tiled.set(mask, bg = g.op1('Tile', [g.op1('Unsqueeze', [mask, g.i64([1])]), g.i64([1, 1, spec.group, 1])]));
    if (variant.cache) {
      k = g.named(`present.${l}.key`, 'Concat', [`past_key_values.${l}.key`, k], { axis: { kind: 'int', v: 2 } });
      v = g.named(`present.${l}.value`, 'Concat', [`past_key_values.${l}.value`, v], { axis: { kind: 'int', v: 2 } });
      presentInfo(ctx, l);
    }
    const qg = g.op1('Reshape', [g.op1('Mul', [q, g.f32([1 / Math.sqrt(hd)])]), g.i64([0, nKV, -1, hd])]);
    const kT = g.op1('Transpose', [k], { perm: { kind: 'ints', v: [0, 1, 3, 2] } });
    const scores = g.op1('Add', [g.op1('MatMul', [qg, kT]), bg]);
    const probs = g.op1('Softmax', [scores], { axis: { kind: 'int', v: -1 } });
    const out = g.op1('Reshape', [g.op1('MatMul', [probs, v]), g.i64([0, nH, -1, hd])]); // [B,nH,S,hd]
    return g.op1('Reshape', [g.op1('Transpose', [out], { perm: { kind: 'ints', v: [0, 2, 1, 3] } }), g.i64([0, 0, nH * hd])]);
  };
}

/** SwiGLU: down(silu(gate(x)) * up(x)); `concat`: gate and up as one product, split. */
function makeMlp(ctx: Ctx, x: string, prefix: string, concat: boolean): string {
  const g = ctx.g;
  let gate: string, up: string;
  if (concat) {
    const I = ctx.spec.intermediate;
    const gu = g.matmulW(x, [`${prefix}.mlp.gate_proj.weight`, `${prefix}.mlp.up_proj.weight`]);
    [gate, up] = g.op('Split', [gu, g.i64([I, I])], { axis: { kind: 'int', v: -1 } }, 2);
  } else {
    gate = g.linear(x, `${prefix}.mlp.gate_proj`, false);
    up = g.linear(x, `${prefix}.mlp.up_proj`, false);
  }
  const act = g.op1('Mul', [g.op1('Mul', [gate, g.op1('Sigmoid', [gate])]), up]);
  return g.linear(act, `${prefix}.mlp.down_proj`, false);
}

/** The operator family's blocks. */
interface OpsFamily { opset: number; irVersion: number; qkv: MakeQkv; attention: MakeAttention; concatMlp: boolean; rope: (g: GraphBuilder, angles: string, hd: number) => Rope }

function opsFamily(ops: GraphVariant['ops']): OpsFamily {
  if (ops === 'plain') return { opset: 17, irVersion: 8, qkv: separateQkv, attention: makeMatmulAttention(false), concatMlp: false, rope: makePlainRope };
  return {
    opset: 23, irVersion: 10, qkv: concatQkv, attention: ops === 'hybrid' ? makeMatmulAttention(true) : makeOpAttention(), concatMlp: true,
    rope: (g, angles) => makeFusedRope(g, angles),
  };
}

/** One decoder layer: pre-norm attention and MLP with residuals. */
function makeLayer(ctx: Ctx, fam: OpsFamily, rope: Rope, h: string, l: number): string {
  const { g, spec } = ctx;
  const layer = spec.layers[l];
  const p = layer.prefix;
  const x = g.rmsNorm(h, `${p}.input_layernorm.weight`, spec.eps);
  const qkv = fam.qkv(ctx, x, layer, rope);
  const pruned = ctx.keepStart !== null && l === spec.layers.length - 1;
  if (pruned) {
    qkv.q = tail(ctx, qkv.q, qkv.seqAxis);
    h = tail(ctx, h, 1);
  }
  const attn = fam.attention(ctx, qkv, l, pruned);
  h = g.op1('Add', [h, g.linear(attn, `${p}.self_attn.o_proj`, false)]);
  return g.op1('Add', [h, makeMlp(ctx, g.rmsNorm(h, `${p}.post_attention_layernorm.weight`, spec.eps), p, fam.concatMlp)]);
}

/** Final norm, then the requested outputs: hidden_states, logits, target_logprobs. */
function makeHead(ctx: Ctx, h: string, logitsLen: number | string): void {
  const { g, spec, variant, outputs } = ctx;
  const final = g.rmsNorm(h, 'model.norm.weight', spec.eps);
  if (variant.hidden) {
    g.named('hidden_states', 'Identity', [final]);
    outputs.unshift({ name: 'hidden_states', elemType: DataType.FLOAT, shape: ['batch_size', 'sequence_length', spec.hidden] });
  }
  if (variant.logits === 'none' && !variant.targets) return;
  // `final` already holds only the kept positions when the last layer was pruned
  const headIn = ctx.keepStart === null && (variant.logits === 'last' || variant.logits === 'keep')
    ? g.op1('Slice', [final, variant.logits === 'last' ? g.i64([-1]) : g.op1('Neg', [g.op1('Unsqueeze', ['num_logits_to_keep', g.i64([0])])]), g.i64([Number.MAX_SAFE_INTEGER]), g.i64([1])])
    : final;
  const logits = g.matmulW(headIn, [spec.headTensor], true); // the head stays float32 (int8 graphs too)
  if (variant.logits !== 'none') {
    g.named('logits', 'Identity', [logits]);
    outputs.unshift({ name: 'logits', elemType: DataType.FLOAT, shape: ['batch_size', logitsLen, spec.rows] });
  }
  if (variant.targets) {
    const lp = g.op1('LogSoftmax', [logits], { axis: { kind: 'int', v: -1 } });
    const picked = g.op1('GatherElements', [lp, g.op1('Unsqueeze', ['target_ids', g.i64([2])])], { axis: { kind: 'int', v: 2 } });
    g.named('target_logprobs', 'Squeeze', [picked, g.i64([2])]);
    outputs.push({ name: 'target_logprobs', elemType: DataType.FLOAT, shape: ['batch_size', logitsLen] });
  }
}

/** Build the ONNX model bytes for one variant. */
export function buildGraph(model: ModelDir, variant: GraphVariant, locate: WeightLocator, values?: WeightValues): BuiltGraph {
  const spec = modelSpec(model);
  const int8 = variant.precision === 'int8';
  if (int8 && !values) throw new Error('buildGraph: an int8 graph needs the weight values (quantized at build time)');
  const fam = opsFamily(variant.ops);
  const g = new GraphBuilder(model, locate, fam.opset, variant.ops !== 'plain' && variant.matmul !== 'transposed', int8 ? values : undefined);
  const { inputs, logitsLen } = makeInputs(spec, variant);
  const ctx: Ctx = { g, spec, variant, outputs: [], mask: makeMask(g), keepStart: null };
  ctx.keepStart = makeKeepStart(g, spec, variant);
  const angles = makeRopeAngles(g, spec);
  let h = makeEmbedding(g, model);
  const rope = fam.rope(g, angles, spec.headDim);
  for (let l = 0; l < spec.layers.length; l++) h = makeLayer(ctx, fam, rope, h, l);
  makeHead(ctx, h, logitsLen);
  const def: ModelDef = {
    graphName: `${spec.modelType || 'decoder'}-${variantKey(variant)}`,
    nodes: g.nodes,
    initializers: g.inits,
    inputs,
    outputs: ctx.outputs,
    opsets: [{ domain: '', version: fam.opset }, { domain: 'com.microsoft', version: 1 }],
    irVersion: fam.irVersion,
    metadata: { 'hack-tokenizer.variant': variantKey(variant) },
  };
  return { bytes: encodeModel(def), inputs: inputs.map((i) => i.name), outputs: ctx.outputs.map((o) => o.name) };
}

/** External data pointing into the model's own safetensors files, relative to `graphDir`. */
export function safetensorsLocator(model: ModelDir, graphDir: string, nameOf?: (file: string) => string): WeightLocator {
  return (tensor) => {
    const st = weightFile(model.weights, tensor);
    const info = st.byName.get(tensor)!;
    const location = nameOf ? nameOf(st.path) : path.relative(graphDir, st.path);
    return { location, offset: info.byteOffset, length: info.byteLength };
  };
}
