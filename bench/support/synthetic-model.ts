// Synthetic bf16 decoder models for the I/O and surgery benchmarks: tensor layouts of a given
// shape and sources that stream a finite bf16 pattern in chunks, so multi-GB files are written
// without ever holding a tensor in memory.
import type { TensorSource } from '../../src/io/safetensors.ts';

export interface SyntheticShape {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  /** Qwen2-style q/k/v biases. */
  qkvBias?: boolean;
  /** A separate lm_head matrix. */
  untied?: boolean;
}

/** Tensor names and shapes of a Llama/Qwen2-layout model, embeddings first. */
export function syntheticTensors(s: SyntheticShape): Array<{ name: string; shape: number[] }> {
  const kv = (s.hidden / s.heads) * s.kvHeads;
  const t: Array<{ name: string; shape: number[] }> = [{ name: 'model.embed_tokens.weight', shape: [s.vocab, s.hidden] }];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    t.push(
      { name: p + 'input_layernorm.weight', shape: [s.hidden] },
      { name: p + 'mlp.down_proj.weight', shape: [s.hidden, s.intermediate] },
      { name: p + 'mlp.gate_proj.weight', shape: [s.intermediate, s.hidden] },
      { name: p + 'mlp.up_proj.weight', shape: [s.intermediate, s.hidden] },
      { name: p + 'post_attention_layernorm.weight', shape: [s.hidden] },
      { name: p + 'self_attn.k_proj.weight', shape: [kv, s.hidden] },
      { name: p + 'self_attn.o_proj.weight', shape: [s.hidden, s.hidden] },
      { name: p + 'self_attn.q_proj.weight', shape: [s.hidden, s.hidden] },
      { name: p + 'self_attn.v_proj.weight', shape: [kv, s.hidden] },
    );
    if (s.qkvBias) {
      t.push(
        { name: p + 'self_attn.k_proj.bias', shape: [kv] },
        { name: p + 'self_attn.q_proj.bias', shape: [s.hidden] },
        { name: p + 'self_attn.v_proj.bias', shape: [kv] },
      );
    }
  }
  t.push({ name: 'model.norm.weight', shape: [s.hidden] });
  if (s.untied) t.push({ name: 'lm_head.weight', shape: [s.vocab, s.hidden] });
  return t;
}

/** The bf16 bits of element i of tensor k: a finite value in about [2^-7, 0.5], different per tensor and position. */
export function patternAt(k: number, i: number): number {
  return 0x3c00 + ((i * 7 + k * 131) & 0x07ff);
}

/** A source that streams the pattern of tensor k in 4 MiB chunks (one reused buffer). */
export function patternSource(k: number, name: string, shape: number[]): TensorSource {
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    name, dtype: 'BF16', shape,
    produce: async (sink) => {
      const chunkElems = 2 << 20;
      const buf = new Uint16Array(Math.min(chunkElems, Math.max(n, 1)));
      const bytes = new Uint8Array(buf.buffer); // little-endian host, as the format wants
      for (let start = 0; start < n; start += chunkElems) {
        const m = Math.min(chunkElems, n - start);
        for (let j = 0; j < m; j++) buf[j] = patternAt(k, start + j);
        await sink(bytes.subarray(0, m * 2));
      }
    },
  };
}
