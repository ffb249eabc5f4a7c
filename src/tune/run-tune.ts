// The whole `tune` job as a library function: new tokens from the two tokenizers, corpus ->
// windows, hidden-state cache, output-row phase, input-row phase, tuned model directory.
import * as path from 'node:path';
import { HackError } from '../io/errors.ts';
import { fileIdentity } from '../io/identity.ts';
import { snakeKeys } from '../io/json-keys.ts';
import { checkNotInput, checkOutput, makeDirs, removeStaleTemps, writtenBy } from '../io/output.ts';
import { readParams } from '../io/params.ts';
import { formatSize } from '../io/size.ts';
import { checkTextFiles } from '../io/text.ts';
import { checkDerived } from '../tokenizer/provenance.ts';
import { TS_TUNE_OPTIONS } from './options.ts';
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

/** The inputs of a tuning run; every other option comes from TS_TUNE_OPTIONS (tune/options.ts) with its default. */
export interface TuneInputs {
  /** The extended model (output of `extend`). */
  model: ModelDir;
  /** The model it was built from (tells which tokens are new and how they are spelled in original ids). */
  original: ModelDir;
  /** Training text files (plain or gzip). */
  corpus: string[];
  /** The tuned model directory to write (output policy: new, empty, or this command's own with `force`). */
  out: string;
  force?: boolean;
  /** Checkpoints (default `<out>.work`). */
  workDir?: string;
  /** Hidden-state cache directory (default <workDir>/hidden-cache); runs of the same extended model may share one. */
  cacheDir?: string;
  /** Where `replay: "self"` keeps its sample (default `workDir`); runs from the same original model may share one. */
  replayDir?: string;
  /** Continue from the checkpoints (and reuse the cache) in the work directory. */
  resume?: boolean;
  allowInvalidUtf8?: boolean;
  onPhase?: (phase: string, total: number, unit: string) => void;
  onTick?: (done: number, info?: StepInfo) => void;
  onPhaseEnd?: () => void;
  onInfo?: (msg: string) => void;
}

/** The TypeScript engine's options (tune/options.ts documents each). */
export interface TuneSettings {
  rows: RowsChoice;
  optimizer: 'adam' | 'seed-heuristic';
  corpusBytes: number;
  inputCorpusBytes: number;
  replay?: string;
  replayRatio: number;
  distill: number;
  epochs?: number;
  maxTokens?: number;
  inputEpochs?: number;
  inputMaxTokens?: number;
  lr: number;
  inputLr: number;
  batchSize: number;
  inputBatchSize: number;
  seqLen: number;
  inputSeqLen: number;
  threads?: number;
  checkpointSeconds: number;
  seed: number;
}

export type TuneOptions = TuneInputs & Partial<TuneSettings>;

/** The full settings: defaults from the one option table, checked by its rules. */
export function tuneSettings(o: Partial<TuneSettings>): TuneSettings {
  const given = Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && TS_TUNE_OPTIONS.some((s) => s.key === k)));
  const v = readParams(TS_TUNE_OPTIONS, given) as Record<string, unknown>;
  // --max-tokens replaces --epochs (and --input-max-tokens --input-epochs)
  if (given.maxTokens !== undefined && given.epochs === undefined) delete v.epochs;
  if (given.inputMaxTokens !== undefined && given.inputEpochs === undefined) delete v.inputEpochs;
  v.lr ??= v.optimizer === 'seed-heuristic' ? 1e-6 : 1e-2;
  const t = v as unknown as TuneSettings;
  if (t.optimizer === 'seed-heuristic' && t.rows !== 'output') throw new HackError('BAD_OPTION', 'seed-heuristic only applies to {opt:rows} output', { option: 'optimizer' });
  if (t.optimizer === 'seed-heuristic' && t.distill > 0) throw new HackError('BAD_OPTION', 'applies to {opt:optimizer} adam only', { option: 'distill' });
  return t;
}

export interface TuneSummary {
  engine: 'ts';
  model: string;
  original: string;
  out: string;
  rows: RowsChoice;
  optimizer: string;
  /** Every setting of the run (defaults included). */
  options: TuneSettings;
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

/** What a cache key says of an input file (its identity: io/identity.ts). */
const fileKey = (file: string) => fileIdentity(file);

/** Too little text for one step: an error that says how much the phase needs. */
function tooSmall(phase: string, have: number, need: number, unit: string, bytes: number, option: string): HackError {
  const needBytes = Math.ceil((bytes * need) / Math.max(1, have));
  return new HackError('CORPUS_TOO_SMALL', `${phase} needs at least ${need} ${unit} for one step, the text gives ${have} (${formatSize(bytes)}): ` +
    `give about ${formatSize(needBytes)} or more, or a smaller {opt:${option}}`, { option: 'corpus' });
}

export async function runTune(opts: TuneOptions): Promise<TuneSummary> {
  const t0 = performance.now();
  const st = tuneSettings(opts);
  const o = { ...opts, ...st, workDir: opts.workDir ?? `${opts.out.replace(/[\\/]+$/, '')}.work`, resume: opts.resume === true };
  const info = o.onInfo ?? (() => undefined);
  const inputs = [o.model.dir, o.original.dir, ...o.corpus, o.replay && o.replay !== 'self' ? o.replay : undefined];
  // every check before any work: the output, the work directory, the corpus files, the provenance
  await checkOutput({ path: o.out, kind: 'dir', command: 'tune', inputs, force: o.force });
  checkNotInput(o.workDir, inputs, 'workDir');
  await checkTextFiles(o.corpus, 'corpus');
  checkDerived(o.original.tokenizerJson, o.model.tokenizerJson, { original: o.original.dir, extended: o.model.dir });
  const extTok = await loadTokenizer(o.model.tokenizerPath);
  const baseTok = await loadTokenizer(o.original.tokenizerPath);
  const map = await newTokenMap(extTok, baseTok);
  const newIds = [...map.keys()].sort((a, b) => a - b);
  if (newIds.length === 0) throw new HackError('NOT_EXTENDED', `its tokenizer has no token beyond {opt:original} ${o.original.dir}'s (not an extended model?)`, { option: 'model', file: o.model.dir });
  for (const id of newIds) {
    if (id >= o.model.embeddingRows) throw new HackError('NO_ROW', `new token id ${id} has no embedding row (${o.model.embeddingRows} rows)`, { option: 'model', file: o.model.dir });
  }
  if (o.model.hiddenSize !== o.original.hiddenSize) throw new HackError('NOT_DERIVED', `hidden size ${o.original.hiddenSize} differs from {opt:model}'s ${o.model.hiddenSize}`, { option: 'original', file: o.original.dir });
  const d = o.model.hiddenSize;
  const n = newIds.length;
  info(`${n} new tokens (ids ${newIds[0]}..${newIds[n - 1]}), hidden ${d}, ${o.model.tied ? 'tied' : 'untied'} embeddings`);
  await makeDirs(o.workDir, 'workDir');
  await removeStaleTemps(o.workDir);
  if (o.cacheDir) await removeStaleTemps(path.dirname(path.resolve(o.cacheDir)));
  const headTensor = o.model.tied ? EMBED_TENSOR : LM_HEAD_TENSOR;
  const distill = o.distill;
  const summary: TuneSummary = {
    engine: 'ts', model: o.model.dir, original: o.original.dir, out: o.out, rows: o.rows, optimizer: o.optimizer, options: st, newTokens: n, corpusBytes: 0, seconds: 0,
  };
  let outputRows: Float32Array | null = null;
  const replay = await resolveReplay(o, info);
  if (replay) summary.replay = { ...replay, bytes: 0, inputBytes: 0 };
  const kernels = await createOrtKernels(o.threads);
  try {
    if (o.rows === 'output' || o.rows === 'both') {
      const { chunks, bytes } = await readCorpusChunks(o.corpus, o.corpusBytes, 1500, 'corpus', o.allowInvalidUtf8);
      summary.corpusBytes = bytes;
      const rep = replay ? await readCorpusChunks(replay.file, Math.round(bytes * replay.ratio), 1500, 'replay', o.allowInvalidUtf8) : null;
      if (rep) summary.replay!.bytes = rep.bytes;
      const key = {
        model: await Promise.all(o.model.weights.files.map((f) => fileKey(f.path))), corpus: await Promise.all(o.corpus.map(fileKey)), bytes: o.corpusBytes, seqLen: o.seqLen, newTokens: n,
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
        if (o.optimizer === 'adam' && total < o.batchSize) throw tooSmall('output-row training', total, o.batchSize, 'positions', bytes, 'batchSize');
        if (total === 0) throw tooSmall('output-row training', 0, 1, 'positions', bytes, 'batchSize');
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
        const ckFile = path.join(o.workDir, `checkpoint-output-${o.optimizer}.safetensors`);
        const resume = o.resume ? await readCheckpoint(ckFile) : null;
        const lr = o.lr;
        const batch = o.batchSize;
        const steps = o.optimizer === 'seed-heuristic' ? Math.ceil(meta.positions / batch) : undefined;
        o.onPhase?.(o.optimizer === 'seed-heuristic' ? 'seed heuristic' : 'output rows', steps ?? 0, 'steps');
        try {
          const r = await trainOutputRows({
            cache, kernels, rows: outputRows, newIds, method: o.optimizer, lr, batch, epochs: o.epochs, maxPositions: o.maxTokens, distill,
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
      const { chunks, bytes } = await readCorpusChunks(o.corpus, o.inputCorpusBytes, 1500, 'corpus', o.allowInvalidUtf8);
      const rep = replay ? await readCorpusChunks(replay.file, Math.round(bytes * replay.ratio), 1500, 'replay', o.allowInvalidUtf8) : null;
      if (rep) summary.replay!.inputBytes = rep.bytes;
      const cut = async (c: string[]) => (await encodeBatch(extTok, c)).flatMap((ids) => inputWindows(ids, o.inputSeqLen)).filter((w) => w.length >= 2);
      const windows = interleave(await cut(chunks), rep ? await cut(rep.chunks) : []);
      const tokens = windows.reduce((a, w) => a + w.length, 0);
      if (windows.length < o.inputBatchSize) throw tooSmall('input-row training', windows.length, o.inputBatchSize, 'windows', bytes, 'inputBatchSize');
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
          trainInput: true, trainOutput: o.rows === 'both' || o.model.tied, lr: o.inputLr, batch: o.inputBatchSize,
          epochs: o.inputEpochs, maxTokens: o.inputMaxTokens, seed: o.seed, checkpointSeconds: o.checkpointSeconds, resume,
          checkpoint: (s) => writeCheckpoint(ckFile, s),
          onStep: (s) => o.onTick?.(s.step, s),
        });
        summary.input = { ...r, lr: o.inputLr, batch: o.inputBatchSize, windows: windows.length, tokens };
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
    await writeModelWithRows(o.model, { path: o.out, command: 'tune', inputs, force: o.force }, reps, { 'tune.json': JSON.stringify({ written_by: writtenBy('tune'), ...(snakeKeys(summary, ['options']) as object) }, null, 2) + '\n' });
    return summary;
  } finally {
    await kernels.dispose();
  }
}

/** The replay file and ratio, sampling `--replay self` from the base model first when needed. */
async function resolveReplay(o: TuneInputs & TuneSettings & { workDir: string }, info: (m: string) => void): Promise<{ source: string; file: string; ratio: number; sampleSeconds: number } | null> {
  if (!o.replay) return null;
  const ratio = o.replayRatio;
  if (o.replay !== 'self') {
    await checkTextFiles([o.replay], 'replay').catch((e) => { throw new HackError(e.code, `${e.detail} (give a text file or "self")`, { option: 'replay', file: o.replay }); });
    return { source: o.replay, file: o.replay, ratio, sampleSeconds: 0 };
  }
  const phases = [o.rows !== 'input' ? o.corpusBytes : 0, o.rows !== 'output' ? o.inputCorpusBytes : 0];
  const bytes = Math.ceil(Math.max(...phases) * ratio);
  o.onPhase?.('replay sample', bytes, 'bytes');
  try {
    const r = await selfReplayFile(o.replayDir ?? o.workDir, o.original, { bytes, seed: o.seed, threads: o.threads || undefined, onProgress: (b) => o.onTick?.(b) });
    info(r.reused ? `reusing the replay sample ${r.file}` : `sampled ${(bytes / 1e6).toFixed(2)} MB of replay text from ${o.original.dir} in ${r.seconds.toFixed(1)} s -> ${r.file}`);
    return { source: 'self', file: r.file, ratio, sampleSeconds: r.seconds };
  } finally {
    o.onPhaseEnd?.();
  }
}
