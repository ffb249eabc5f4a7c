// config.json of a Hugging Face causal LM, read from both the transformers v4 form
// (`rope_theta` top level, `torch_dtype`) and the v5 form (`rope_parameters`, `dtype`),
// normalized into one typed view. The raw object is kept so a rewrite preserves every field.
import { HackError } from './errors.ts';

export class ConfigError extends HackError {
  declare readonly file: string;
  constructor(file: string, message: string) {
    super('BAD_CONFIG', message, { file });
    this.name = 'ConfigError';
  }
}

export interface RopeScaling {
  type: 'default' | 'linear' | 'llama3' | string;
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

export interface ModelConfig {
  /** e.g. "LlamaForCausalLM" */
  architecture: string;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  hiddenAct: string;
  /** "bfloat16" | "float16" | "float32" (from `dtype` or `torch_dtype`). */
  dtype: string;
  bosTokenId: number | number[] | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  /** "v4" when `rope_theta`/`torch_dtype` sit at top level, "v5" when `rope_parameters`/`dtype` do. */
  format: 'v4' | 'v5';
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = raw[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(file, `missing required field "${key}" (a number)`);
  }
  throw new ConfigError(file, `field "${key}" must be a number, got ${JSON.stringify(v)}`);
}

function idField(v: unknown): number | number[] | null {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return null;
}

/** Model types whose transformers config class defaults to tie_word_embeddings=false. */
const UNTIED_BY_DEFAULT = new Set(['llama', 'qwen2', 'mistral']);

export function parseConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(file, 'expected a JSON object');
  const r = raw as Record<string, unknown>;
  // Some v5 configs nest the language model under text_config (multimodal wrappers): not supported here.
  const archs = r.architectures;
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? (archs[0] as string) : '';
  const modelType = typeof r.model_type === 'string' ? r.model_type : '';
  if (!architecture && !modelType) throw new ConfigError(file, 'neither "architectures" nor "model_type" is set');
  const hiddenSize = num(r, 'hidden_size', file);
  const numHeads = num(r, 'num_attention_heads', file);
  const rp = (r.rope_parameters ?? null) as Record<string, unknown> | null;
  const rs = (r.rope_scaling ?? null) as Record<string, unknown> | null;
  const format: 'v4' | 'v5' = rp && typeof rp === 'object' ? 'v5' : 'v4';
  let ropeTheta: number;
  if (rp && typeof rp.rope_theta === 'number') ropeTheta = rp.rope_theta;
  else ropeTheta = num(r, 'rope_theta', file, 10000);
  const scalingSrc = rp ?? rs;
  const ropeType = (scalingSrc?.rope_type ?? scalingSrc?.type ?? 'default') as string;
  const ropeScaling: RopeScaling = { type: ropeType };
  if (scalingSrc && ropeType !== 'default') {
    if (typeof scalingSrc.factor === 'number') ropeScaling.factor = scalingSrc.factor;
    if (typeof scalingSrc.low_freq_factor === 'number') ropeScaling.lowFreqFactor = scalingSrc.low_freq_factor;
    if (typeof scalingSrc.high_freq_factor === 'number') ropeScaling.highFreqFactor = scalingSrc.high_freq_factor;
    if (typeof scalingSrc.original_max_position_embeddings === 'number') {
      ropeScaling.originalMaxPositionEmbeddings = scalingSrc.original_max_position_embeddings;
    }
  }
  const dtype = (typeof r.dtype === 'string' ? r.dtype : typeof r.torch_dtype === 'string' ? r.torch_dtype : 'float32') as string;
  const headDim = typeof r.head_dim === 'number' ? r.head_dim : hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw new ConfigError(file, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  const modelTypeDefaultsBias = modelType === 'qwen2';
  return {
    architecture,
    modelType,
    hiddenSize,
    intermediateSize: num(r, 'intermediate_size', file),
    numLayers: num(r, 'num_hidden_layers', file),
    numHeads,
    numKvHeads: num(r, 'num_key_value_heads', file, numHeads),
    headDim,
    vocabSize: num(r, 'vocab_size', file),
    rmsNormEps: num(r, 'rms_norm_eps', file, 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: num(r, 'max_position_embeddings', file, 2048),
    // When the field is absent, transformers falls back to the model class's default: false for
    // LlamaConfig, Qwen2Config and MistralConfig, true for PretrainedConfig in general.
    tieWordEmbeddings: r.tie_word_embeddings === undefined
      ? !UNTIED_BY_DEFAULT.has(modelType)
      : r.tie_word_embeddings === true,
    attentionBias: r.attention_bias === true || (r.attention_bias === undefined && modelTypeDefaultsBias),
    mlpBias: r.mlp_bias === true,
    hiddenAct: typeof r.hidden_act === 'string' ? r.hidden_act : 'silu',
    dtype,
    bosTokenId: idField(r.bos_token_id),
    eosTokenId: idField(r.eos_token_id),
    padTokenId: typeof r.pad_token_id === 'number' ? r.pad_token_id : null,
    format,
    raw: r,
  };
}

/** A copy of the raw config with a new vocabulary size, keeping its v4/v5 form. */
export function withVocabSize(cfg: ModelConfig, vocabSize: number): Record<string, unknown> {
  return { ...cfg.raw, vocab_size: vocabSize };
}
