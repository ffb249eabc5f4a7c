// The whole `tune` job as a library function: new tokens from the two tokenizers, corpus ->
// windows, hidden-state cache, output-row phase, input-row phase, tuned model directory.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir } from '../io/model-dir.ts';
import { readWeightF32, readWeightRows } from '../io/weights.ts';
import { toFloat32 } from '../io/dtype.ts';
import { weightInfo } from '../io/weights.ts';
import { encodeBatch, loadTokenizer } from '../tokenizer/load.ts';
import { newTokenMap } from '../runtime/extended-decoding.ts';
import { loadEngine } from '../runtime/engine.ts';
import { createOrtKernels } from './ort-kernels.ts';
import { buildHiddenCache, findCache, HiddenCache } from './hidden-cache.ts';
import { decodingWindows, inputWindows, readCorpusChunks } from './windows.ts';
import { readCheckpoint, writeCheckpoint } from './checkpoint.ts';
import { trainLmRows, trainOutputRows, type StepInfo, type TrainResult } from './train.ts';
import { loadFrozenModel } from './frozen-model.ts';
import { writeModelWithRows, type RowReplacement } from './write-model.ts';
import { interleave, selfReplayFile } from './replay.ts';

export type RowsChoice = 'output' | 'input' | 'both';

export interface TuneOptions {
  model: ModelDir;
  base: ModelDir;
  corpus: string;
  out: string;
  workDir: string;
  /** Hidden-state cache directory (default <workDir>/hidden-cache); runs of the same extended model may share one. */
  cacheDir?: string;
  rows: RowsChoice;
  method: 'adam' | 'seed-heuristic';
  /** Corpus bytes for the output-row phase. */
  corpusBytes: number;
  /** Corpus bytes for the input-row phase (the first bytes of the corpus). */
  inputCorpusBytes: number;
  /**
   * Replay text mixed into both phases: a file (e.g. English text for a PT adaptation) or "self"
   * (text sampled from `base`, cached in the work directory). Off when absent.
   */
  replay?: string;
  /** Replay bytes per corpus byte in each phase (default 0.25). */
  replayRatio?: number;
  /**
   * Output rows: weight of the distillation term (0 = off): at each new-token target, (log p(new token)
   * - the base model's log p of its original pieces in the same context)^2.
   */
  distill?: number;
  /** Where `replay: "self"` keeps its sample (default `workDir`); runs from the same base model may share one. */
  replayDir?: string;
  epochs?: number;
  maxTokens?: number;
  inputEpochs?: number;
  inputMaxTokens?: number;
  lr: number;
  inputLr: number;
  /** Positions per output-row step. */
  batch: number;
  /** Windows per input-row step. */
  inputBatch: number;
  seqLen: number;
  inputSeqLen: number;
  threads: number;
  resume: boolean;
  checkpointSeconds: number;
  seed: number;
  onPhase?: (phase: string, total: number, unit: string) => void;
  onTick?: (done: number, info?: StepInfo) => void;
  onPhaseEnd?: () => void;
  onInfo?: (msg: string) => void;
}

export interface TuneSummary {
  model: string;
  base: string;
  out: string;
  rows: RowsChoice;
  method: string;
  newTokens: number;
  corpusBytes: number;
  replay?: { source: string; file: string; ratio: number; bytes: number; inputBytes: number; sampleSeconds: number };
  cache?: { positions: number; newTargets: number; seconds: number; reused: boolean; distillTargets?: number };
  output?: TrainResult & { lr: number; batch: number; distill?: number };
  input?: TrainResult & { lr: number; batch: number; windows: number; tokens: number };
  seconds: number;
}

async function rowsOf(model: ModelDir, tensor: string, ids: number[]): Promise<Float32Array> {
  const d = model.hiddenSize;
  const dtype = weightInfo(model.weights, tensor).dtype;
  const out = new Float32Array(ids.length * d);
  for (let j = 0; j < ids.length; j++) out.set(toFloat32(await readWeightRows(model.weights, tensor, ids[j], ids[j] + 1), dtype), j * d);
  return out;
}

async function fileKey(file: string): Promise<{ file: string; size: number; mtime: number }> {
  const st = await fsp.stat(file);
  return { file: path.resolve(file), size: st.size, mtime: Math.floor(st.mtimeMs) };
}

export async function runTune(o: TuneOptions): Promise<TuneSummary> {
  const t0 = performance.now();
  const info = o.onInfo ?? (() => undefined);
  const extTok = await loadTokenizer(o.model.tokenizerPath);
  const baseTok = await loadTokenizer(o.base.tokenizerPath);
  const map = await newTokenMap(extTok, baseTok);
  const newIds = [...map.keys()].sort((a, b) => a - b);
  if (newIds.length === 0) throw new Error(`--model ${o.model.dir}: its tokenizer has no token beyond --base ${o.base.dir}'s (not an extended model?)`);
  for (const id of newIds) {
    if (id >= o.model.embeddingRows) throw new Error(`--model ${o.model.dir}: new token id ${id} has no embedding row (${o.model.embeddingRows} rows)`);
  }
  if (o.model.hiddenSize !== o.base.hiddenSize) throw new Error(`--base ${o.base.dir}: hidden size ${o.base.hiddenSize} differs from --model's ${o.model.hiddenSize}`);
  const d = o.model.hiddenSize;
  const n = newIds.length;
  info(`${n} new tokens (ids ${newIds[0]}..${newIds[n - 1]}), hidden ${d}, ${o.model.tied ? 'tied' : 'untied'} embeddings`);
  await fsp.mkdir(o.workDir, { recursive: true });
  const headTensor = o.model.tied ? EMBED_TENSOR : LM_HEAD_TENSOR;
  const distill = o.distill ?? 0;
  if (distill > 0 && o.method !== 'adam') throw new Error('--distill applies to --method adam only');
  const summary: TuneSummary = {
    model: o.model.dir, base: o.base.dir, out: o.out, rows: o.rows, method: o.method, newTokens: n, corpusBytes: 0, seconds: 0,
  };
  let outputRows: Float32Array | null = null;
  const replay = await resolveReplay(o, info);
  if (replay) summary.replay = { ...replay, bytes: 0, inputBytes: 0 };
  const kernels = await createOrtKernels(o.threads);
  try {
    if (o.rows === 'output' || o.rows === 'both') {
      const { chunks, bytes } = await readCorpusChunks(o.corpus, o.corpusBytes);
      summary.corpusBytes = bytes;
      const rep = replay ? await readCorpusChunks(replay.file, Math.round(bytes * replay.ratio), 1500, '--replay') : null;
      if (rep) summary.replay!.bytes = rep.bytes;
      const key = {
        model: await fileKey(o.model.weights.files[0].path), corpus: await fileKey(o.corpus), bytes: o.corpusBytes, seqLen: o.seqLen, newTokens: n,
        ...(rep ? { replay: await fileKey(replay!.file), replayBytes: rep.bytes } : {}),
        ...(distill > 0 ? { distill: true } : {}),
      };
      const cacheDir = o.cacheDir ?? path.join(o.workDir, 'hidden-cache');
      let meta = o.resume ? await findCache(cacheDir, key) : null;
      const reused = meta !== null;
      if (!meta) {
        const cut = async (c: string[]) => (await encodeBatch(extTok, c)).flatMap((ids) => decodingWindows(ids, map, o.seqLen));
        const windows = interleave(await cut(chunks), rep ? await cut(rep.chunks) : []);
        const total = windows.reduce((a, w) => a + w.positions.length, 0);
        info(`corpus: ${(bytes / 1e6).toFixed(2)} MB${rep ? ` + replay ${(rep.bytes / 1e6).toFixed(2)} MB` : ''}, ${windows.length} windows, ${total} positions to cache`);
        const engine = await loadEngine(o.model, { threads: o.threads, maxBatch: 16 });
        const head = await readWeightF32(o.model.weights, headTensor);
        o.onPhase?.('hidden states', total, 'positions');
        try {
          meta = await buildHiddenCache({
            dir: cacheDir, key, windows, hidden: d, head, headRows: o.model.embeddingRows, newIds: new Set(newIds), kernels,
            hiddenStates: (b) => engine.hiddenStates(b), batch: 16, distillPieces: distill > 0 ? map : undefined,
            onProgress: (_w, p) => o.onTick?.(p),
          });
        } finally {
          o.onPhaseEnd?.();
          await engine.dispose();
        }
      } else info(`reusing the hidden-state cache in ${cacheDir} (${meta.positions} positions)`);
      summary.cache = { positions: meta.positions, newTargets: meta.newTargets, seconds: meta.seconds, reused, ...(meta.distillTargets !== undefined ? { distillTargets: meta.distillTargets } : {}) };
      const cache = await HiddenCache.open(cacheDir);
      try {
        outputRows = await rowsOf(o.model, headTensor, newIds);
        const ckFile = path.join(o.workDir, `checkpoint-output-${o.method}.safetensors`);
        const resume = o.resume ? await readCheckpoint(ckFile) : null;
        const lr = o.lr;
        const batch = o.batch;
        const steps = o.method === 'seed-heuristic' ? Math.ceil(meta.positions / batch) : undefined;
        o.onPhase?.(o.method === 'seed-heuristic' ? 'seed heuristic' : 'output rows', steps ?? 0, 'steps');
        try {
          const r = await trainOutputRows({
            cache, kernels, rows: outputRows, newIds, method: o.method, lr, batch, epochs: o.epochs, maxPositions: o.maxTokens, distill,
            seed: o.seed, checkpointSeconds: o.checkpointSeconds, resume,
            checkpoint: (s) => writeCheckpoint(ckFile, s),
            onStep: (s) => o.onTick?.(s.step, s),
          });
          summary.output = { ...r, lr, batch, ...(distill > 0 ? { distill } : {}) };
        } finally {
          o.onPhaseEnd?.();
        }
      } finally {
        await cache.close();
      }
    }
    let inputRows: Float32Array | null = null;
    if (o.rows === 'input' || o.rows === 'both') {
      const { chunks, bytes } = await readCorpusChunks(o.corpus, o.inputCorpusBytes);
      const rep = replay ? await readCorpusChunks(replay.file, Math.round(bytes * replay.ratio), 1500, '--replay') : null;
      if (rep) summary.replay!.inputBytes = rep.bytes;
      const cut = async (c: string[]) => (await encodeBatch(extTok, c)).flatMap((ids) => inputWindows(ids, o.inputSeqLen)).filter((w) => w.length >= 2);
      const windows = interleave(await cut(chunks), rep ? await cut(rep.chunks) : []);
      const tokens = windows.reduce((a, w) => a + w.length, 0);
      const frozen = await loadFrozenModel(o.model, 'f32');
      inputRows = o.model.tied && outputRows ? outputRows : await rowsOf(o.model, EMBED_TENSOR, newIds);
      if (!outputRows) outputRows = o.model.tied ? inputRows : await rowsOf(o.model, LM_HEAD_TENSOR, newIds);
      const rows = { ids: newIds, input: inputRows, output: outputRows };
      const ckFile = path.join(o.workDir, `checkpoint-input-${o.rows}.safetensors`);
      const resume = o.resume ? await readCheckpoint(ckFile) : null;
      info(`input rows: ${windows.length} windows${rep ? ` (replay ${(rep.bytes / 1e6).toFixed(2)} MB)` : ''}, ${tokens} extended tokens`);
      o.onPhase?.('input rows', 0, 'steps');
      try {
        const r = await trainLmRows({
          model: frozen, kernels, windows, rows, // a tied model's new row is one parameter: its gradient has both the input and the output path
          trainInput: true, trainOutput: o.rows === 'both' || o.model.tied, lr: o.inputLr, batch: o.inputBatch,
          epochs: o.inputEpochs, maxTokens: o.inputMaxTokens, seed: o.seed, checkpointSeconds: o.checkpointSeconds, resume,
          checkpoint: (s) => writeCheckpoint(ckFile, s),
          onStep: (s) => o.onTick?.(s.step, s),
        });
        summary.input = { ...r, lr: o.inputLr, batch: o.inputBatch, windows: windows.length, tokens };
      } finally {
        o.onPhaseEnd?.();
      }
    }
    const reps: RowReplacement[] = [];
    if (o.model.tied) {
      reps.push({ tensor: EMBED_TENSOR, ids: newIds, values: (inputRows ?? outputRows)! });
    } else {
      if (inputRows) reps.push({ tensor: EMBED_TENSOR, ids: newIds, values: inputRows });
      if (outputRows && (o.rows !== 'input')) reps.push({ tensor: LM_HEAD_TENSOR, ids: newIds, values: outputRows });
    }
    summary.seconds = (performance.now() - t0) / 1000;
    await writeModelWithRows(o.model, o.out, reps, { 'tune.json': JSON.stringify(summary, null, 2) + '\n' });
    return summary;
  } finally {
    await kernels.dispose();
  }
}

/** The replay file and ratio, sampling `--replay self` from the base model first when needed. */
async function resolveReplay(o: TuneOptions, info: (m: string) => void): Promise<{ source: string; file: string; ratio: number; sampleSeconds: number } | null> {
  if (!o.replay) return null;
  const ratio = o.replayRatio ?? 0.25;
  if (!(ratio > 0)) throw new Error(`--replay-ratio: expected a number > 0, got ${ratio}`);
  if (o.replay !== 'self') {
    await fsp.stat(o.replay).catch(() => { throw new Error(`--replay ${o.replay}: file not found (give a text file or "self")`); });
    return { source: o.replay, file: o.replay, ratio, sampleSeconds: 0 };
  }
  const phases = [o.rows !== 'input' ? o.corpusBytes : 0, o.rows !== 'output' ? o.inputCorpusBytes : 0];
  const bytes = Math.ceil(Math.max(...phases) * ratio);
  o.onPhase?.('replay sample', bytes, 'bytes');
  try {
    const r = await selfReplayFile(o.replayDir ?? o.workDir, o.base, { bytes, seed: o.seed, threads: o.threads || undefined, onProgress: (b) => o.onTick?.(b) });
    info(r.reused ? `reusing the replay sample ${r.file}` : `sampled ${(bytes / 1e6).toFixed(2)} MB of replay text from ${o.base.dir} in ${r.seconds.toFixed(1)} s -> ${r.file}`);
    return { source: 'self', file: r.file, ratio, sampleSeconds: r.seconds };
  } finally {
    o.onPhaseEnd?.();
  }
}
