// bpb over a held-out text with a real engine (batched windows).
import type { EvalEngine, ProgressFn, TextCodec } from './engine-api.ts';
import { bitsPerByte, scoringWindows, utf8Bytes, type BpbResult } from './windows.ts';

export interface BpbOptions { context?: number; batch?: number; onProgress?: ProgressFn }

export async function measureBpb(engine: EvalEngine, codec: TextCodec, text: string, opts: BpbOptions = {}): Promise<BpbResult> {
  const ids = await codec.encode(text);
  return measureBpbIds(engine, ids, utf8Bytes(text), opts);
}

export async function measureBpbIds(engine: EvalEngine, ids: number[], bytes: number, opts: BpbOptions = {}): Promise<BpbResult> {
  const windows = scoringWindows(ids.length, opts.context ?? 512);
  const batch = Math.max(1, opts.batch ?? 4);
  const all: Float32Array[] = [];
  for (let i = 0; i < windows.length; i += batch) {
    const chunk = windows.slice(i, i + batch).map(([s, e]) => ids.slice(s, e));
    const lps = await engine.tokenLogprobs(chunk);
    for (let j = 0; j < chunk.length; j++) {
      if (lps[j].length !== chunk[j].length - 1) throw new Error(`engine returned ${lps[j].length} log-probs for a window of ${chunk[j].length} tokens`);
      all.push(lps[j]);
    }
    opts.onProgress?.(Math.min(i + batch, windows.length), windows.length);
  }
  return bitsPerByte(all, bytes, ids.length);
}
