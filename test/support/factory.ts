// Test-model factory: small random-weight Llama (tied) and Qwen2 (qkv bias, untied) model
// directories with a byte-level BPE tokenizer, in the v4 or v5 config form. Deterministic per seed.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fromFloat32, type DType } from '../../src/io/dtype.ts';
import { bytesSource, writeSafetensors, type TensorSource } from '../../src/io/safetensors.ts';
import { BYTE_TO_CHAR } from '../../src/tokenizer/byte-level.ts';
import { seededRandom } from '../../src/io/seeded-random.ts';

export interface FactoryOptions {
  arch: 'llama' | 'qwen2';
  hidden?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  intermediate?: number;
  /** BPE merges learned on top of the 256 byte tokens (the vocabulary is 3 specials + 256 + merges). */
  merges?: number;
  /** Extra embedding rows beyond the tokenizer (padded vocabulary, as Qwen2.5 has). */
  padRows?: number;
  tied?: boolean;
  configForm?: 'v4' | 'v5';
  dtype?: 'BF16' | 'F16' | 'F32';
  seed?: number;
  ropeTheta?: number;
  /** Text the tokenizer's merges are learned from. */
  text?: string;
  /** Split the weights into this many shards (with model.safetensors.index.json). */
  shards?: number;
}

export const SAMPLE_TEXT =
  'O Sr. Presidente: Srs. Deputados, está aberta a sessão. A proposta de lei que hoje discutimos visa garantir ' +
  'aos cidadãos portugueses o acesso à justiça em condições de igualdade. The quick brown fox jumps over the lazy dog. ' +
  'To calculate the square root of a number by hand, start with a guess and improve it. Os deputados votaram a favor. ';

export { seededRandom as rng } from '../../src/io/seeded-random.ts';

/** A naive byte-level BPE (fine for a few hundred merges on a short text). */
export function learnByteLevelBpe(text: string, numMerges: number): { vocab: Record<string, number>; merges: [string, string][] } {
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  // byte tokens in byte order, after the specials
  for (let b = 0; b < 256; b++) vocab[BYTE_TO_CHAR[b]] = 3 + b;
  // GPT-2 style pre-tokenization approximated by splitting before spaces.
  const words = new Map<string, number>();
  for (const w of text.match(/ ?[^\s]+|\s+/g) ?? []) {
    const bl = [...Buffer.from(w, 'utf8')].map((b) => BYTE_TO_CHAR[b]).join('\u0000');
    words.set(bl, (words.get(bl) ?? 0) + 1);
  }
  let segs = [...words.entries()].map(([w, c]) => ({ parts: w.split('\u0000'), c }));
  const merges: [string, string][] = [];
  let next = 3 + 256;
  for (let m = 0; m < numMerges; m++) {
    const counts = new Map<string, number>();
    for (const { parts, c } of segs) for (let i = 0; i + 1 < parts.length; i++) {
      const k = parts[i] + '\u0000' + parts[i + 1];
      counts.set(k, (counts.get(k) ?? 0) + c);
    }
    let best = '';
    let bestC = 0;
    for (const [k, c] of counts) if (c > bestC || (c === bestC && k < best)) { best = k; bestC = c; }
    if (bestC < 1 || !best) break;
    const [a, b] = best.split('\u0000');
    const merged = a + b;
    if (vocab[merged] !== undefined) continue;
    merges.push([a, b]);
    vocab[merged] = next++;
    segs = segs.map(({ parts, c }) => {
      const out: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) { out.push(merged); i++; } else out.push(parts[i]);
      }
      return { parts: out, c };
    });
  }
  return { vocab, merges };
}

export function byteLevelTokenizerJson(vocab: Record<string, number>, merges: [string, string][]): Record<string, unknown> {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<|endoftext|>'), special(1, '<|im_start|>'), special(2, '<|im_end|>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
}

/** Write a random-weight model directory; returns its path. */
export async function writeTestModel(dir: string, opts: FactoryOptions): Promise<string> {
  const hidden = opts.hidden ?? 32;
  const layers = opts.layers ?? 2;
  const heads = opts.heads ?? 4;
  const kvHeads = opts.kvHeads ?? 2;
  const inter = opts.intermediate ?? 64;
  const headDim = hidden / heads;
  const dtype: DType = opts.dtype ?? 'BF16';
  const tied = opts.tied ?? opts.arch === 'llama';
  const form = opts.configForm ?? (opts.arch === 'llama' ? 'v5' : 'v4');
  const ropeTheta = opts.ropeTheta ?? (opts.arch === 'qwen2' ? 1_000_000 : 10_000);
  const { vocab, merges } = learnByteLevelBpe(opts.text ?? SAMPLE_TEXT, opts.merges ?? 64);
  const tokSize = Object.keys(vocab).length;
  const rows = tokSize + (opts.padRows ?? 0);
  const rand = seededRandom(opts.seed ?? 1);
  const mat = (shape: number[], scale = 0.05) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = (rand() * 2 - 1) * scale;
    return v;
  };
  const ones = (n: number) => { const v = new Float32Array(n); for (let i = 0; i < n; i++) v[i] = 1 + (rand() - 0.5) * 0.2; return v; };
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  tensors.push({ name: 'model.embed_tokens.weight', shape: [rows, hidden], data: mat([rows, hidden], 0.5) });
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    tensors.push({ name: p + 'input_layernorm.weight', shape: [hidden], data: ones(hidden) });
    tensors.push({ name: p + 'post_attention_layernorm.weight', shape: [hidden], data: ones(hidden) });
    tensors.push({ name: p + 'self_attn.q_proj.weight', shape: [heads * headDim, hidden], data: mat([heads * headDim, hidden], 0.2) });
    tensors.push({ name: p + 'self_attn.k_proj.weight', shape: [kvHeads * headDim, hidden], data: mat([kvHeads * headDim, hidden], 0.2) });
    tensors.push({ name: p + 'self_attn.v_proj.weight', shape: [kvHeads * headDim, hidden], data: mat([kvHeads * headDim, hidden], 0.2) });
    tensors.push({ name: p + 'self_attn.o_proj.weight', shape: [hidden, heads * headDim], data: mat([hidden, heads * headDim], 0.2) });
    if (opts.arch === 'qwen2') {
      tensors.push({ name: p + 'self_attn.q_proj.bias', shape: [heads * headDim], data: mat([heads * headDim], 0.1) });
      tensors.push({ name: p + 'self_attn.k_proj.bias', shape: [kvHeads * headDim], data: mat([kvHeads * headDim], 0.1) });
      tensors.push({ name: p + 'self_attn.v_proj.bias', shape: [kvHeads * headDim], data: mat([kvHeads * headDim], 0.1) });
    }
    tensors.push({ name: p + 'mlp.gate_proj.weight', shape: [inter, hidden], data: mat([inter, hidden], 0.2) });
    tensors.push({ name: p + 'mlp.up_proj.weight', shape: [inter, hidden], data: mat([inter, hidden], 0.2) });
    tensors.push({ name: p + 'mlp.down_proj.weight', shape: [hidden, inter], data: mat([hidden, inter], 0.2) });
  }
  tensors.push({ name: 'model.norm.weight', shape: [hidden], data: ones(hidden) });
  if (!tied) tensors.push({ name: 'lm_head.weight', shape: [rows, hidden], data: mat([rows, hidden], 0.2) });
  tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const sources: TensorSource[] = tensors.map((t) => bytesSource(t.name, dtype, t.shape, fromFloat32(t.data, dtype)));

  await fsp.mkdir(dir, { recursive: true });
  const shards = Math.max(1, opts.shards ?? 1);
  if (shards === 1) {
    await writeSafetensors(path.join(dir, 'model.safetensors'), sources);
  } else {
    const per = Math.ceil(sources.length / shards);
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = sources.slice(s * per, (s + 1) * per);
      for (const t of part) { weightMap[t.name] = name; total += t.shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2); }
      await writeSafetensors(path.join(dir, name), part);
    }
    await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  const torchDtype = dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32';
  const config: Record<string, unknown> = {
    architectures: [opts.arch === 'llama' ? 'LlamaForCausalLM' : 'Qwen2ForCausalLM'],
    model_type: opts.arch,
    hidden_size: hidden,
    intermediate_size: inter,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: 'silu',
    max_position_embeddings: 512,
    rms_norm_eps: opts.arch === 'qwen2' ? 1e-6 : 1e-5,
    tie_word_embeddings: tied,
    vocab_size: rows,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: null,
    use_cache: true,
  };
  if (opts.arch === 'llama') { config.attention_bias = false; config.mlp_bias = false; }
  if (form === 'v5') {
    config.rope_parameters = { rope_theta: ropeTheta, rope_type: 'default' };
    config.dtype = torchDtype;
    config.transformers_version = '5.17.0';
  } else {
    config.rope_theta = ropeTheta;
    config.torch_dtype = torchDtype;
    config.transformers_version = '4.51.0';
  }
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await fsp.writeFile(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 0, eos_token_id: 0 }, null, 2));
  await fsp.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson(vocab, merges)));
  await fsp.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify({
    bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>',
    tokenizer_class: form === 'v5' ? 'TokenizersBackend' : 'GPT2Tokenizer', model_max_length: 512,
  }, null, 2));
  return dir;
}
