// Bits per byte exactly as the demo model's training card measured it: the whole text tokenized
// at once, cut into non-overlapping windows of `context + 1` tokens that overlap by one token
// (window i scores tokens context·i+1 … context·i+context given the earlier ones in its window).
import { HackError } from '../io/errors.ts';

/** The windows (as [start, end) token ranges) that score every token but the first exactly once. */
export function scoringWindows(numTokens: number, context = 512): Array<[number, number]> {
  if (!Number.isInteger(context) || context < 1) throw new Error(`context must be a positive integer, got ${context}`);
  const out: Array<[number, number]> = [];
  for (let start = 0; start + 1 < numTokens; start += context) out.push([start, Math.min(start + context + 1, numTokens)]);
  return out;
}

export interface BpbResult {
  /** Bits per UTF-8 byte: summed negative log-likelihood in bits / bytes of the text. */
  bpb: number;
  /** Per-token perplexity exp(mean NLL in nats) over the scored tokens (depends on the tokenizer). */
  perplexity: number;
  bits: number;
  bytes: number;
  tokens: number;
  scoredTokens: number;
  /** UTF-8 bytes per token of the text (compression). */
  bytesPerToken: number;
}

/** Combine the log-probabilities (natural log) of all scored tokens into bpb and perplexity. */
export function bitsPerByte(logprobs: Iterable<Float32Array | number[]>, bytes: number, tokens: number): BpbResult {
  let nats = 0;
  let n = 0;
  for (const lp of logprobs) for (const v of lp) { nats -= v; n++; }
  if (bytes <= 0) throw new HackError('EMPTY_TEXT', 'bits per byte needs a non-empty text');
  const bits = nats / Math.LN2;
  return {
    bpb: bits / bytes,
    perplexity: n > 0 ? Math.exp(nats / n) : NaN,
    bits, bytes, tokens, scoredTokens: n,
    bytesPerToken: tokens > 0 ? bytes / tokens : NaN,
  };
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
