// Replay text: text the ORIGINAL model samples from its own distribution, mixed into tuning.
// Training on the target language alone teaches the new rows where they belong, never where they
// do not: output rows fitted to PT text alone raise the new tokens everywhere and English bits per
// byte rise with them. Replay puts the original model's own text (English for the demo model) beside
// the corpus, so the rows are also fitted where the old tokens must keep their probability. Sampling
// from the model needs no data a user may not have, and matches what the model knows.
import { writeFileAtomic } from '../io/atomic.ts';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { ModelDir } from '../io/model-dir.ts';
import { loadEngine } from '../runtime/engine.ts';
import { decode, tokenizerFromJson } from '../tokenizer/load.ts';
import { fileError } from '../io/errors.ts';

export interface ReplaySampleOptions {
  /** Stop once the samples hold at least this many UTF-8 bytes. */
  bytes: number;
  seed: number;
  /** Sequences sampled together. */
  batch?: number;
  /** Tokens per sample. */
  maxNewTokens?: number;
  threads?: number;
  onProgress?: (bytes: number) => void;
}

/** The id a sample starts from: BOS, else the first EOS (a document boundary in GPT-style models). */
export function replayStartId(model: ModelDir): number {
  const pick = (v: number | number[] | null) => (Array.isArray(v) ? v[0] : v);
  const id = pick(model.config.bosTokenId) ?? pick(model.config.eosTokenId);
  if (id === null || id === undefined) throw fileError(model.dir, 'config.json names no bos_token_id or eos_token_id to start replay samples from');
  return id;
}

/** Sample texts from `model` at temperature 1 (its own distribution) until `bytes` are reached. */
export async function sampleReplayText(model: ModelDir, o: ReplaySampleOptions): Promise<string[]> {
  const start = replayStartId(model);
  const tokenizer = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath);
  const engine = await loadEngine(model, { threads: o.threads });
  const batch = o.batch ?? 32;
  const texts: string[] = [];
  let bytes = 0;
  try {
    for (let round = 0; bytes < o.bytes; round++) {
      const outs = await engine.generateBatch(Array.from({ length: batch }, () => [start]), {
        maxNewTokens: o.maxNewTokens ?? 256, temperature: 1, seed: o.seed * 100_003 + round,
      });
      const before = bytes;
      for (const ids of outs) {
        const text = (await decode(tokenizer, ids, true)).trim();
        if (!text) continue;
        texts.push(text);
        bytes += Buffer.byteLength(text, 'utf8') + 1;
      }
      if (bytes === before) throw fileError(model.dir, 'replay sampling produced only empty texts (the model emits end-of-text at once?)');
      o.onProgress?.(Math.min(bytes, o.bytes));
    }
  } finally {
    await engine.dispose();
  }
  return texts;
}

/**
 * The replay file for `--replay self`, sampled once into the work directory and reused while the
 * model, seed and size match (a resumed or repeated run reads the same text).
 */
export async function selfReplayFile(workDir: string, model: ModelDir, o: ReplaySampleOptions): Promise<{ file: string; reused: boolean; seconds: number }> {
  const file = path.join(workDir, 'replay-self.txt');
  const metaFile = path.join(workDir, 'replay-self.json');
  const st = await fsp.stat(model.weights.files[0].path);
  const key = { model: path.resolve(model.dir), size: st.size, mtime: Math.floor(st.mtimeMs), seed: o.seed };
  try {
    const meta = JSON.parse(await fsp.readFile(metaFile, 'utf8'));
    const have = await fsp.stat(file);
    if (JSON.stringify(meta.key) === JSON.stringify(key) && meta.bytes >= o.bytes && have.size === meta.fileBytes) return { file, reused: true, seconds: 0 };
  } catch {
    // no usable earlier sample: make one
  }
  const t0 = performance.now();
  const texts = await sampleReplayText(model, o);
  const body = texts.join('\n') + '\n';
  await writeFileAtomic(file, body);
  await writeFileAtomic(metaFile, JSON.stringify({ key, bytes: o.bytes, fileBytes: Buffer.byteLength(body, 'utf8'), texts: texts.length }, null, 2) + '\n');
  return { file, reused: false, seconds: (performance.now() - t0) / 1000 };
}

/** `a` with the items of `b` spread evenly between them (deterministic; order inside each list kept). */
export function interleave<A, B>(a: A[], b: B[]): Array<A | B> {
  const out: Array<A | B> = [];
  const total = a.length + b.length;
  let i = 0;
  let j = 0;
  for (let k = 0; k < total; k++) {
    // take from b when b is behind its share of the first k + 1 items
    if (j < b.length && (i >= a.length || (j + 1) * total <= (k + 1) * b.length)) out.push(b[j++]);
    else out.push(a[i++]);
  }
  return out;
}
