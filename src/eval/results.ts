// The documented results.json shape (README, section cli-eval, describes every key).
import type { FertilityBoostResult } from './fertility-boost.ts';
import type { FertilityOutputResult } from './fertility-output.ts';
import type { DecodeRun } from './decode-speed.ts';
import type { NewTokenRankResult } from './new-token-rank.ts';
import type { CalameResult } from './bench/calamept.ts';
import type { ChoiceResult, MmluResult } from './bench/choice.ts';

export type Lang = 'pt' | 'en';
export type PerLang<T> = Partial<Record<Lang, T>>;

export interface EvalResults {
  version: 1;
  model: string;
  /** The tokenizer that encoded the input text. */
  tokenizer: string;
  /**
   * 'extended': the model's own (extended) tokenizer on the input, the original model known;
   * 'original': the original model's tokenizer (--encode-with original, the research's setup);
   * 'model': the model's own tokenizer, no original model given (nothing says it was extended).
   */
  input: 'extended' | 'original' | 'model';
  metrics: {
    fertility_input?: PerLang<number> & { original?: PerLang<number> };
    bpb?: PerLang<number> & { perplexity: PerLang<number>; tokens: PerLang<number>; bytes: PerLang<number> };
    compression?: PerLang<number>;
    fertility_output?: FertilityOutputResult;
    fertility_boost?: FertilityBoostResult;
    decode_speed?: { extended: DecodeRun; original?: DecodeRun; speedup_chars_per_step?: number };
    repetition?: { extended: number; original?: number };
    new_token_rank?: NewTokenRankResult;
    efficiency_gain?: { label: string; value: number; fertility_original: number; fertility_new: number; fertility_boost: number };
  };
  benchmarks: {
    calamept?: CalameResult;
    mmlu?: MmluResult;
    'boolq-en'?: ChoiceResult;
    'copa-en'?: ChoiceResult;
    boolq?: ChoiceResult;
    copa?: ChoiceResult;
    multirc?: ChoiceResult;
  };
  /** Subsets used (documented, e.g. by the demo). */
  subsets: Record<string, string>;
  seconds: Record<string, number>;
  created: string;
}

export const EFFICIENCY_GAIN_LABEL = 'research efficiency gain: (F_orig / F_new - 1) x FertilityBoost (F = input tokens per word on PT)';
