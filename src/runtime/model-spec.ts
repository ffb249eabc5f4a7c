// The one definition of the decoder architectures we run: which models are supported (one check, one
// typed error), the per-layer quirks (SmolLM3's NoPE layers, Qwen2's q/k/v biases) and the RoPE
// inverse frequencies. The ONNX graph builder (graph.ts) and the TypeScript forward/backward of the
// tuner (tune/frozen-model.ts) both read a ModelSpec, so the two cannot disagree on what a model is.
import type { ModelDir } from '../io/model-dir.ts';
import { EMBED_TENSOR, LM_HEAD_TENSOR } from '../io/model-dir.ts';
import type { ModelConfig } from '../io/config.ts';
import { hasTensor } from '../io/weights.ts';
import { HackError } from '../io/errors.ts';

export const SUPPORTED_ARCHITECTURES = [
  'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'SmolLM3ForCausalLM',
] as const;

/** model_type values accepted when config.json has no `architectures`. */
const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'smollm3'];

export class UnsupportedModelError extends HackError {
  constructor(readonly dir: string, message: string) {
    super('UNSUPPORTED_MODEL', message, { file: dir });
    this.name = 'UnsupportedModelError';
  }
}

/** Check the architecture and the features both forwards implement; throws UnsupportedModelError otherwise. */
export function checkSupported(model: ModelDir): void {
  const c = model.config;
  const arch = c.architecture || c.modelType;
  const ok = (SUPPORTED_ARCHITECTURES as readonly string[]).includes(c.architecture) ||
    (!c.architecture && SUPPORTED_MODEL_TYPES.includes(c.modelType));
  if (!ok) {
    throw new UnsupportedModelError(model.dir, `unsupported architecture "${arch}"; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  const sw = c.raw.sliding_window;
  const useSw = c.raw.use_sliding_window;
  if (c.modelType === 'mistral' && typeof sw === 'number' && sw < c.maxPositionEmbeddings) {
    throw new UnsupportedModelError(model.dir, `sliding-window attention (sliding_window=${sw}) is not supported`);
  }
  const layerTypes = c.raw.layer_types;
  if (Array.isArray(layerTypes) && layerTypes.some((t) => t !== 'full_attention')) {
    throw new UnsupportedModelError(model.dir, `layer_types other than "full_attention" (sliding-window attention) are not supported`);
  }
  if (['qwen2', 'smollm3'].includes(c.modelType) && useSw === true) {
    throw new UnsupportedModelError(model.dir, 'sliding-window attention (use_sliding_window=true) is not supported');
  }
  if (!['silu', 'swish'].includes(c.hiddenAct)) {
    throw new UnsupportedModelError(model.dir, `hidden_act "${c.hiddenAct}" is not supported (expected silu)`);
  }
  if (c.mlpBias) throw new UnsupportedModelError(model.dir, 'mlp_bias=true is not supported');
  const rt = c.ropeScaling.type;
  if (!['default', 'linear', 'llama3'].includes(rt)) {
    throw new UnsupportedModelError(model.dir, `RoPE scaling "${rt}" is not supported; supported: default, linear, llama3`);
  }
}

/**
 * Which layers apply RoPE: all, except SmolLM3's NoPE layers (`no_rope_layers[i]` = 0; by default
 * every `no_rope_layer_interval`-th layer, i.e. use_rope = (i + 1) % interval != 0, as transformers does).
 */
export function ropeLayers(c: ModelConfig): boolean[] {
  const list = c.raw.no_rope_layers;
  if (Array.isArray(list)) return Array.from({ length: c.numLayers }, (_, i) => list[i] !== 0 && list[i] !== false);
  if (c.modelType === 'smollm3') {
    const interval = typeof c.raw.no_rope_layer_interval === 'number' ? c.raw.no_rope_layer_interval : 4;
    return Array.from({ length: c.numLayers }, (_, i) => (i + 1) % interval !== 0);
  }
  return new Array(c.numLayers).fill(true);
}

/**
 * RoPE inverse frequencies as transformers computes them (default, linear, llama3), in float32 as
 * torch does: the ONNX graph's logits match transformers' only with these exact float32 values.
 */
export function ropeInvFreq(c: ModelConfig): Float32Array {
  const half = c.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), computed in float32
    const expo = Math.fround(Math.fround(2 * i) / c.headDim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, expo)));
  }
  const s = c.ropeScaling;
  if (s.type === 'linear') {
    const f = s.factor ?? 1;
    for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / f);
  } else if (s.type === 'llama3') {
    const factor = s.factor ?? 8;
    const low = s.lowFreqFactor ?? 1;
    const high = s.highFreqFactor ?? 4;
    const oldCtx = s.originalMaxPositionEmbeddings ?? 8192;
    const lowWl = oldCtx / low;
    const highWl = oldCtx / high;
    for (let i = 0; i < half; i++) {
      const wl = (2 * Math.PI) / inv[i];
      let v = wl > lowWl ? inv[i] / factor : inv[i];
      const smooth = (oldCtx / wl - low) / (high - low);
      const scaled = (1 - smooth) * (v / factor) + smooth * v;
      const medium = !(wl < highWl) && !(wl > lowWl);
      if (medium) v = scaled;
      inv[i] = Math.fround(v);
    }
  }
  return inv;
}

/** One decoder layer as both forwards see it. */
export interface LayerSpec {
  /** Tensor name prefix, `model.layers.{i}`. */
  prefix: string;
  /** Whether the layer rotates q and k (false: a SmolLM3 NoPE layer). */
  rope: boolean;
  /** Whether q/k/v projections add a bias (Qwen2: attention_bias and the tensors present). */
  qkvBias: boolean;
}

export interface ModelSpec {
  dir: string;
  /** model_type, for names (graph names). */
  modelType: string;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Query heads per KV head (GQA). */
  group: number;
  intermediate: number;
  eps: number;
  /** Embedding rows (= logits width). */
  rows: number;
  tied: boolean;
  /** The lm_head weight: the embedding matrix when tied. */
  headTensor: string;
  /** RoPE inverse frequencies [headDim / 2] (ropeInvFreq). */
  invFreq: Float32Array;
  layers: LayerSpec[];
}

/** The names of a layer's q, k, v projections (`{prefix}.self_attn.{q,k,v}_proj`). */
export function qkvNames(layer: LayerSpec): [string, string, string] {
  return ['q_proj', 'k_proj', 'v_proj'].map((n) => `${layer.prefix}.self_attn.${n}`) as [string, string, string];
}

/** Check the model (checkSupported) and describe it for the forwards. */
export function modelSpec(model: ModelDir): ModelSpec {
  checkSupported(model);
  const c = model.config;
  const group = c.numHeads / c.numKvHeads;
  if (!Number.isInteger(group)) {
    throw new UnsupportedModelError(model.dir, `num_attention_heads ${c.numHeads} is not a multiple of num_key_value_heads ${c.numKvHeads}`);
  }
  const rope = ropeLayers(c);
  const layers = Array.from({ length: c.numLayers }, (_, i): LayerSpec => {
    const layer: LayerSpec = { prefix: `model.layers.${i}`, rope: rope[i], qkvBias: false };
    // Qwen2 defaults attention_bias to true; a bias is used only when every projection has one
    layer.qkvBias = c.attentionBias && qkvNames(layer).every((n) => hasTensor(model.weights, `${n}.bias`));
    return layer;
  });
  return {
    dir: model.dir, modelType: c.modelType, hidden: c.hiddenSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim,
    group, intermediate: c.intermediateSize, eps: c.rmsNormEps, rows: model.embeddingRows, tied: model.tied,
    headTensor: model.tied ? EMBED_TENSOR : LM_HEAD_TENSOR, invFreq: ropeInvFreq(c), layers,
  };
}
