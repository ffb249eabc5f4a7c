// The part of the runtime Engine (src/runtime/engine.ts) that evaluation uses. Declared structurally
// so metrics can be tested with small fake engines; the real Engine satisfies it.
import type { GenerateOptions } from '../runtime/engine.ts';

/** The runtime's generation options (one definition: runtime/engine.ts). */
export type EvalGenerateOptions = GenerateOptions;

export interface EvalEngine {
  readonly vocabRows: number;
  /** For each sequence [t0..tn]: log p(t_i | t_<i) for i = 1..n. */
  tokenLogprobs(batch: number[][]): Promise<Float32Array[]>;
  scoreContinuations(items: Array<{ context: number[]; continuation: number[] }>): Promise<Array<{ logprobs: Float32Array; sum: number }>>;
  lastLogits(batch: number[][]): Promise<Float32Array[]>;
  /** Row-major [seq, vocabRows]. */
  logits(ids: number[]): Promise<Float32Array>;
  generate(prompt: number[], opts: EvalGenerateOptions): Promise<number[]>;
}

/** Text <-> ids, as the evaluation sees a tokenizer (the input side may differ from the model's own tokenizer). */
export interface TextCodec {
  encode(text: string): Promise<number[]>;
  encodeBatch(texts: string[]): Promise<number[][]>;
  decode(ids: number[]): Promise<string>;
}

export type ProgressFn = (done: number, total: number) => void;
