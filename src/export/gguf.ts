// Export a model as one GGUF file for llama.cpp (and what runs on it: Ollama, LM Studio,
// node-llama-cpp). Tensors are streamed from the safetensors weights through our GGUF writer
// (bounded memory, temp + rename); names, metadata and the Q/K layout follow llama.cpp's own
// converter (convert_hf_to_gguf.py), so llama.cpp reads the file as one of its own.
//
// The tokenizer is written from tokenizer.json itself, never by a checksum of its output (which is
// how llama.cpp's converter names the pre-tokenizer, and why it rejects a changed vocabulary): the
// pre-tokenizer type is chosen by the model's split rule, the vocabulary and the merges are copied in
// id and rank order (extended merges included), added tokens keep their raw text.
import { HackError } from '../io/errors.ts';
import { readChatTemplate, type ModelDir, type TokenizerJson, EMBED_TENSOR, LM_HEAD_TENSOR } from '../io/model-dir.ts';
import { hasTensor, readWeightF32, weightInfo } from '../io/weights.ts';
import { checkOutput } from '../io/output.ts';
import { writeGguf, type GgmlType, type GgufTensorSource, type GgufValue, QK8_0 } from '../io/gguf.ts';
import { ropeInvFreq, ropeLayers } from '../runtime/model-spec.ts';
import * as path from 'node:path';

export const GGUF_TYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type GgufExportType = typeof GGUF_TYPES[number];

/** llama.cpp's file_type numbers (LLAMA_FTYPE_*): ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16. */
const FILE_TYPE: Record<GgufExportType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const MATRIX_TYPE: Record<GgufExportType, GgmlType> = { f32: 'F32', f16: 'F16', q8_0: 'Q8_0', bf16: 'BF16' };

/** Token types of llama.cpp (llama_token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

// ---------------------------------------------------------------- pre-tokenizer by split rule

/** The split regex of the GPT-2 ByteLevel pre-tokenizer (use_regex: true), as in the tokenizers library. */
export const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
export const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface PreStep { type: string; [k: string]: unknown }

function steps(pre: unknown): PreStep[] {
  if (!pre || typeof pre !== 'object') return [];
  const p = pre as PreStep;
  if (p.type === 'Sequence') return ((p.pretokenizers ?? []) as PreStep[]).flatMap(steps);
  return [p];
}

/** A readable description of a pre-tokenizer's split rule, for errors. */
function describeSplit(s: PreStep[]): string {
  return s.map((x) => {
    if (x.type === 'Split') return `Split(${JSON.stringify((x.pattern as { Regex?: string; String?: string })?.Regex ?? (x.pattern as { String?: string })?.String)})`;
    if (x.type === 'ByteLevel') return `ByteLevel(use_regex=${x.use_regex !== false})`;
    if (x.type === 'Digits') return `Digits(individual_digits=${x.individual_digits === true})`;
    return x.type;
  }).join(' + ') || 'none';
}

/**
 * The `tokenizer.ggml.pre` value whose split rule in llama.cpp equals this tokenizer's:
 * - ByteLevel(use_regex) alone: the GPT-2 regex -> "gpt-2";
 * - Digits(individual) then ByteLevel(use_regex): one digit per piece, then GPT-2 -> "smollm" (SmolLM2/3);
 * - Split(Qwen2 regex) then ByteLevel(no regex) -> "qwen2";
 * - Split(Llama-3 regex) then ByteLevel(no regex), with ignore_merges -> "llama-bpe".
 * Anything else is refused, naming the rule, rather than tokenized differently.
 */
export function preTokenizerType(tj: TokenizerJson): string {
  const s = steps(tj.pre_tokenizer);
  const types = s.map((x) => x.type).join(',');
  const bl = s[s.length - 1];
  if (bl?.type === 'ByteLevel' && bl.add_prefix_space === true) {
    throw new HackError('GGUF_TOKENIZER', `the ByteLevel pre-tokenizer adds a prefix space (add_prefix_space=true), which llama.cpp's byte-level BPE does not do`);
  }
  if (types === 'ByteLevel' && bl.use_regex !== false) return 'gpt-2';
  if (types === 'Digits,ByteLevel' && s[0].individual_digits === true && bl.use_regex !== false) return 'smollm';
  if (types === 'Split,ByteLevel' && bl.use_regex === false) {
    const re = (s[0].pattern as { Regex?: string })?.Regex;
    const isolated = s[0].behavior === 'Isolated' && s[0].invert !== true;
    if (isolated && re === QWEN2_REGEX) return 'qwen2';
    if (isolated && re === LLAMA3_REGEX) {
      if (tj.model.ignore_merges !== true) throw new HackError('GGUF_TOKENIZER', 'the Llama-3 split rule in llama.cpp ("llama-bpe") takes whole words found in the vocabulary without merges; this tokenizer has ignore_merges=false, so llama.cpp would tokenize differently');
      return 'llama-bpe';
    }
  }
  throw new HackError('GGUF_TOKENIZER', `llama.cpp implements no pre-tokenizer for this split rule: ${describeSplit(s)}; supported: ByteLevel (GPT-2 regex), Digits + ByteLevel (SmolLM), Split(Qwen2 regex) + ByteLevel, Split(Llama-3 regex) + ByteLevel`);
}

// ---------------------------------------------------------------- tokenizer metadata

export interface GgufVocab { tokens: string[]; types: number[]; merges: string[] }

/**
 * The vocabulary in id order, `rows` long (the embedding matrix's rows: ids the tokenizer never
 * emits become "[PAD<id>]", unused, as llama.cpp's converter writes them), and the merges in rank order.
 */
export function ggufVocab(tj: TokenizerJson, rows: number): GgufVocab {
  const model = tj.model;
  if (model.type !== 'BPE') {
    throw new HackError('GGUF_TOKENIZER', `tokenizer model "${model.type}" has no GGUF mapping here (byte-level BPE only; Unigram and WordPiece are not exported)`);
  }
  const isByteLevel = steps(tj.pre_tokenizer).some((x) => x.type === 'ByteLevel');
  if (!isByteLevel || model.byte_fallback === true) {
    throw new HackError('GGUF_TOKENIZER', 'only byte-level BPE (GPT-2 style, tokenizer.ggml.model "gpt2") is exported; SentencePiece-style BPE (byte_fallback, Metaspace) is not supported yet');
  }
  if (tj.normalizer) throw new HackError('GGUF_TOKENIZER', `a byte-level BPE tokenizer with a normalizer (${(tj.normalizer as { type?: string }).type}) has no llama.cpp equivalent`);
  const tokens: Array<string | undefined> = new Array(rows);
  const types: number[] = new Array(rows).fill(TOKEN_TYPE.unused);
  const vocab = model.vocab as Record<string, number>;
  for (const [tok, id] of Object.entries(vocab)) {
    if (id >= rows) throw new HackError('GGUF_TOKENIZER', `token id ${id} is beyond the ${rows} embedding rows`);
    tokens[id] = tok;
    types[id] = TOKEN_TYPE.normal;
  }
  // added tokens: their raw text, which llama.cpp matches in the input before the BPE runs (as the
  // tokenizers library does); special ones are control tokens (matched only when parsing specials)
  for (const t of tj.added_tokens ?? []) {
    if (t.id >= rows) throw new HackError('GGUF_TOKENIZER', `added token ${JSON.stringify(t.content)} has id ${t.id}, beyond the ${rows} embedding rows`);
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
  }
  const out = tokens.map((t, i) => t ?? `[PAD${i}]`);
  const merges = (model.merges ?? []).map((m) => {
    const pair = Array.isArray(m) ? m : m.split(' ');
    if (pair.length !== 2 || pair.some((p) => p.includes(' '))) {
      throw new HackError('GGUF_TOKENIZER', `merge ${JSON.stringify(m)} cannot be written as "left right" (a part contains a space)`);
    }
    return `${pair[0]} ${pair[1]}`;
  });
  return { tokens: out, types, merges };
}

function tokenId(tj: TokenizerJson, value: unknown): number | null {
  if (typeof value === 'number') return value;
  if (Array.isArray(value) && typeof value[0] === 'number') return value[0];
  const text = typeof value === 'string' ? value : (value as { content?: string } | null)?.content;
  if (typeof text !== 'string') return null;
  const added = (tj.added_tokens ?? []).find((t) => t.content === text);
  if (added) return added.id;
  const v = (tj.model.vocab as Record<string, number>)[text];
  return typeof v === 'number' ? v : null;
}

/** Does the post-processor put a special token first (BOS) / last (EOS) of a single sequence? */
function addsSpecial(tj: TokenizerJson): { bos: boolean; eos: boolean } {
  const pp = tj.post_processor as { type?: string; single?: Array<Record<string, unknown>>; processors?: unknown[] } | null;
  const tp = pp?.type === 'TemplateProcessing' ? pp
    : pp?.type === 'Sequence' ? (pp.processors ?? []).find((p) => (p as { type?: string }).type === 'TemplateProcessing') as typeof pp : null;
  const single = tp?.single ?? [];
  return { bos: !!single[0]?.SpecialToken, eos: single.length > 1 && !!single[single.length - 1]?.SpecialToken };
}

async function chatTemplate(model: ModelDir): Promise<string | null> {
  // GGUF holds one template: the default one
  const t = await readChatTemplate(model.dir, model.tokenizerConfig);
  if (!t) return null;
  return typeof t.value === 'string' ? t.value : (t.value.find((x) => x.name === 'default') ?? t.value[0]).template;
}

/**
 * Two non-special added tokens whose occurrences can overlap (one contains the other, or a suffix of
 * one is a prefix of the other), or null. Only then can llama.cpp's added-token matching (longest
 * token first, over the whole text) differ from the tokenizers library's (leftmost-longest match).
 */
export function overlappingAddedTokens(tj: TokenizerJson): [string, string] | null {
  const texts = (tj.added_tokens ?? []).filter((t) => !t.special).map((t) => t.content).filter((t) => t.length > 0);
  const set = new Set(texts);
  const prefixes = new Map<string, string>();
  for (const t of texts) for (let i = 1; i < t.length; i++) if (!prefixes.has(t.slice(0, i))) prefixes.set(t.slice(0, i), t);
  for (const t of texts) {
    for (let i = 1; i < t.length; i++) {
      const other = prefixes.get(t.slice(i));
      if (other !== undefined) return [t, other];
    }
    for (let i = 0; i < t.length; i++) {
      for (let j = i + 1; j <= t.length; j++) {
        if ((i > 0 || j < t.length) && set.has(t.slice(i, j))) return [t, t.slice(i, j)];
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------- architecture

interface ArchPlan {
  arch: 'llama' | 'smollm3' | 'qwen2';
  /** llama.cpp's llama-family graphs rotate interleaved pairs: Q/K rows are permuted from HF's halves. */
  permuteQK: boolean;
}

function archPlan(model: ModelDir): ArchPlan {
  const c = model.config;
  const name = c.architecture || c.modelType;
  let plan: ArchPlan;
  if (c.architecture === 'LlamaForCausalLM' || (!c.architecture && c.modelType === 'llama')) plan = { arch: 'llama', permuteQK: true };
  else if (c.architecture === 'SmolLM3ForCausalLM' || (!c.architecture && c.modelType === 'smollm3')) plan = { arch: 'smollm3', permuteQK: true };
  else if (c.architecture === 'Qwen2ForCausalLM' || (!c.architecture && c.modelType === 'qwen2')) plan = { arch: 'qwen2', permuteQK: false };
  else throw new HackError('GGUF_ARCHITECTURE', `architecture "${name}" is not exported to GGUF; supported: LlamaForCausalLM (SmolLM2), SmolLM3ForCausalLM, Qwen2ForCausalLM`, { file: model.dir });
  if (!['silu', 'swish'].includes(c.hiddenAct)) throw new HackError('GGUF_ARCHITECTURE', `hidden_act "${c.hiddenAct}" is not supported (llama.cpp's ${plan.arch} uses SiLU)`, { file: model.dir });
  if (c.mlpBias) throw new HackError('GGUF_ARCHITECTURE', 'mlp_bias=true is not supported by llama.cpp\'s llama graph', { file: model.dir });
  if (!['default', 'linear', 'llama3'].includes(c.ropeScaling.type)) {
    throw new HackError('GGUF_ARCHITECTURE', `RoPE scaling "${c.ropeScaling.type}" is not exported; supported: default, linear, llama3`, { file: model.dir });
  }
  const layerTypes = c.raw.layer_types;
  if (Array.isArray(layerTypes) && layerTypes.some((t) => t !== 'full_attention')) {
    throw new HackError('GGUF_ARCHITECTURE', 'sliding-window layers are not exported', { file: model.dir });
  }
  const rope = ropeLayers(c);
  if (plan.arch === 'smollm3') {
    // llama.cpp's smollm3 graph skips RoPE on every 4th layer (a fixed step, not read from the file)
    const expected = rope.map((_, i) => (i + 1) % 4 !== 0);
    if (rope.some((r, i) => r !== expected[i])) {
      throw new HackError('GGUF_ARCHITECTURE', `SmolLM3 NoPE layers [${rope.map((r, i) => (r ? -1 : i)).filter((i) => i >= 0).join(', ')}] differ from llama.cpp's fixed pattern (every 4th layer)`, { file: model.dir });
    }
  } else if (rope.some((r) => !r)) {
    throw new HackError('GGUF_ARCHITECTURE', 'layers without RoPE are only exported for SmolLM3', { file: model.dir });
  }
  return plan;
}

// ---------------------------------------------------------------- tensors

/** Rows of a weight at a time: bounded memory for large matrices. */
const CHUNK_FLOATS = 4 << 20;

function streamRows(model: ModelDir, tensor: string, rowMap?: (block: Float32Array, firstRow: number, cols: number) => Float32Array, rowsPerBlock?: number): GgufTensorSource['produce'] {
  const info = weightInfo(model.weights, tensor);
  const rows = info.shape.length === 1 ? 1 : info.shape[0];
  const cols = info.shape.length === 1 ? info.shape[0] : info.shape.slice(1).reduce((a, b) => a * b, 1);
  const step = rowsPerBlock ?? Math.max(1, Math.floor(CHUNK_FLOATS / Math.max(cols, 1)));
  return async (sink) => {
    if (info.shape.length === 1) { const v = await readWeightF32(model.weights, tensor); await sink(rowMap ? rowMap(v, 0, 1) : v); return; }
    for (let r = 0; r < rows; r += step) {
      const end = Math.min(rows, r + step);
      const block = await readWeightF32(model.weights, tensor, [r, end]);
      await sink(rowMap ? rowMap(block, r, cols) : block);
    }
  };
}

/**
 * llama.cpp's converter permutes Q and K rows of llama-family models: within each head, HF's rotary
 * halves (row j of the first half pairs with row j of the second) become interleaved pairs (rows 2j,
 * 2j+1), the layout ggml's "normal" RoPE rotates. Applied to one head's rows at a time.
 */
export function permuteHeadRows(block: Float32Array, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(block.length);
  const half = headDim / 2;
  const heads = block.length / (headDim * cols);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + j * half + i) * cols;
        const dst = (h * headDim + 2 * i + j) * cols;
        out.set(block.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

export interface GgufExportResult { warnings: string[]; bytes: number; tensors: number; vocab: number; merges: number; pre: string; arch: string; type: GgufExportType }

export async function exportGguf(
  model: ModelDir,
  outFile: string,
  opts: { type?: GgufExportType; force?: boolean; name?: string; onProgress?: (done: number, total: number) => void } = {},
): Promise<GgufExportResult> {
  const type = opts.type ?? 'f16';
  if (!(GGUF_TYPES as readonly string[]).includes(type)) throw new HackError('BAD_OPTION', `expected one of ${GGUF_TYPES.join(', ')}, got ${JSON.stringify(type)}`, { option: 'type' });
  const req = { path: outFile, command: 'export-gguf', inputs: [model.dir], force: opts.force, kind: 'file' as const };
  // every check before any work, so a refused model leaves nothing behind
  const plan = archPlan(model);
  const tj = model.tokenizerJson;
  const vocab = ggufVocab(tj, model.embeddingRows);
  const pre = preTokenizerType(tj);
  const warnings: string[] = [];
  const overlap = overlappingAddedTokens(tj);
  if (overlap) {
    warnings.push(`added tokens ${JSON.stringify(overlap[0])} and ${JSON.stringify(overlap[1])} can overlap in a text: llama.cpp matches added tokens longest first, ` +
      'Hugging Face leftmost first, so such texts are split differently (an extension with mode merges has no such difference)');
  }
  await checkOutput(req);

  const c = model.config;
  const A = plan.arch;
  const metadata: Array<[string, GgufValue]> = [];
  const u32 = (k: string, v: number) => metadata.push([k, { type: 'uint32', value: v }]);
  const f32 = (k: string, v: number) => metadata.push([k, { type: 'float32', value: v }]);
  const str = (k: string, v: string) => metadata.push([k, { type: 'string', value: v }]);
  const bool = (k: string, v: boolean) => metadata.push([k, { type: 'bool', value: v }]);
  str('general.architecture', A);
  str('general.type', 'model');
  str('general.name', opts.name ?? path.basename(path.resolve(model.dir)));
  u32('general.file_type', FILE_TYPE[type]);
  u32('general.quantization_version', 2);
  u32(`${A}.vocab_size`, model.embeddingRows);
  u32(`${A}.context_length`, c.maxPositionEmbeddings);
  u32(`${A}.embedding_length`, c.hiddenSize);
  u32(`${A}.block_count`, c.numLayers);
  u32(`${A}.feed_forward_length`, c.intermediateSize);
  u32(`${A}.attention.head_count`, c.numHeads);
  u32(`${A}.attention.head_count_kv`, c.numKvHeads);
  u32(`${A}.attention.key_length`, c.headDim);
  u32(`${A}.attention.value_length`, c.headDim);
  u32(`${A}.rope.dimension_count`, c.headDim);
  f32(`${A}.rope.freq_base`, c.ropeTheta);
  f32(`${A}.attention.layer_norm_rms_epsilon`, c.rmsNormEps);
  if (c.ropeScaling.type === 'linear') {
    str(`${A}.rope.scaling.type`, 'linear');
    f32(`${A}.rope.scaling.factor`, c.ropeScaling.factor ?? 1);
  }
  str('tokenizer.ggml.model', 'gpt2');
  str('tokenizer.ggml.pre', pre);
  metadata.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: vocab.tokens }]);
  metadata.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: vocab.types }]);
  metadata.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: vocab.merges }]);
  const tc = model.tokenizerConfig ?? {};
  const bos = tokenId(tj, c.bosTokenId ?? tc.bos_token);
  const eos = tokenId(tj, c.eosTokenId ?? tc.eos_token);
  const unk = tokenId(tj, tc.unk_token);
  const pad = tokenId(tj, c.padTokenId ?? tc.pad_token);
  if (bos !== null) u32('tokenizer.ggml.bos_token_id', bos);
  if (eos !== null) u32('tokenizer.ggml.eos_token_id', eos);
  if (unk !== null) u32('tokenizer.ggml.unknown_token_id', unk);
  if (pad !== null) u32('tokenizer.ggml.padding_token_id', pad);
  const adds = addsSpecial(tj);
  bool('tokenizer.ggml.add_bos_token', adds.bos);
  bool('tokenizer.ggml.add_eos_token', adds.eos);
  const tmpl = await chatTemplate(model);
  // llama.cpp's template engine lacks the `[:]` slice SmolLM3's template uses (its converter drops it too)
  if (tmpl !== null) str('tokenizer.chat_template', A === 'smollm3' ? tmpl.replaceAll('[:]', '') : tmpl);

  const matrixType = (shape: number[]): GgmlType => {
    if (shape.length < 2) return 'F32';
    const t = MATRIX_TYPE[type];
    return t === 'Q8_0' && shape[shape.length - 1] % QK8_0 !== 0 ? 'F16' : t;
  };
  const tensors: GgufTensorSource[] = [];
  const add = (name: string, hf: string, rowMap?: (b: Float32Array, r: number, cols: number) => Float32Array, rowsPerBlock?: number) => {
    const shape = weightInfo(model.weights, hf).shape;
    tensors.push({ name, shape, type: matrixType(shape), produce: streamRows(model, hf, rowMap, rowsPerBlock) });
  };
  add('token_embd.weight', EMBED_TENSOR);
  if (c.ropeScaling.type === 'llama3') {
    // llama.cpp divides each rotary frequency by a per-dimension factor: default / scaled frequency
    const scaled = ropeInvFreq(c);
    const plain = ropeInvFreq({ ...c, ropeScaling: { type: 'default' } });
    const factors = Float32Array.from(plain, (p, i) => p / scaled[i]);
    tensors.push({ name: 'rope_freqs.weight', shape: [factors.length], type: 'F32', produce: async (sink) => sink(factors) });
  }
  const hd = c.headDim;
  const perm = (b: Float32Array, _r: number, cols: number) => permuteHeadRows(b, hd, cols);
  const permVec = (b: Float32Array) => permuteHeadRows(b, hd, 1);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const b = `blk.${i}.`;
    add(`${b}attn_norm.weight`, `${p}input_layernorm.weight`);
    for (const [g, h] of [['attn_q', 'q_proj'], ['attn_k', 'k_proj'], ['attn_v', 'v_proj']] as const) {
      const permute = plan.permuteQK && g !== 'attn_v';
      add(`${b}${g}.weight`, `${p}self_attn.${h}.weight`, permute ? perm : undefined, permute ? hd : undefined);
      const bias = `${p}self_attn.${h}.bias`;
      if (hasTensor(model.weights, bias)) add(`${b}${g}.bias`, bias, permute ? permVec : undefined);
    }
    add(`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`);
    add(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`);
    add(`${b}ffn_gate.weight`, `${p}mlp.gate_proj.weight`);
    add(`${b}ffn_up.weight`, `${p}mlp.up_proj.weight`);
    add(`${b}ffn_down.weight`, `${p}mlp.down_proj.weight`);
  }
  add('output_norm.weight', 'model.norm.weight');
  // a tied head has no output tensor: llama.cpp then multiplies by token_embd, as transformers does
  if (!model.tied) add('output.weight', LM_HEAD_TENSOR);

  const bytes = await writeGguf(outFile, { metadata, tensors }, { onTensor: opts.onProgress });
  return { warnings, bytes, tensors: tensors.length, vocab: vocab.tokens.length, merges: vocab.merges.length, pre, arch: A, type };
}
