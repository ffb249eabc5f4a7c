// Embedding surgery: grow `embed_tokens` (and an untied `lm_head`) to a new vocabulary and write
// the whole model again. Old rows are copied byte for byte, new rows are computed by an init
// method from their sub-token rows, every other tensor is streamed through unchanged (dtype and
// sharding kept). The big matrices are read and written row-chunk by row-chunk, so memory stays
// bounded by the chunk size plus the new rows.
import { type DType, dtypeSize, fromFloat32, isFloatDType, toFloat32 } from '../io/dtype.ts';
import { readTensorRows } from '../io/safetensors.ts';
import { weightFile, weightInfo } from '../io/weights.ts';
import { EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir, type TokenizerJson } from '../io/model-dir.ts';
import { withVocabSize } from '../io/config.ts';
import { writeModel, type MatrixEdit } from '../io/model-writer.ts';
import { type Combination, type InitMethod, type InitSources, type RowStats, seededRandom } from './init-methods.ts';
import { RowStatsAccumulator } from './row-stats.ts';
import { HackError } from '../io/errors.ts';

export class SurgeryError extends HackError {
  constructor(message: string) {
    super('SURGERY', message);
    this.name = 'SurgeryError';
  }
}

export interface PlanOptions {
  /** Reuse the free padding rows past the tokenizer (ids from tokenizerSize) instead of appending after them. */
  usePaddingRows?: boolean;
  /** Round the new row count up to a multiple of this (e.g. 64). */
  padToMultipleOf?: number;
}

export interface RowPlan {
  /** Rows of the original matrices. */
  oldRows: number;
  /** Rows after the surgery (= the new config's vocab_size). */
  rows: number;
  tokenizerSize: number;
  /** Id of the first new token; new tokens take consecutive ids from here. */
  firstId: number;
  count: number;
  /** Rows that belong to no token (the --pad-to-multiple-of tail): filled with the mean of the old rows. */
  fillRows: [number, number];
}

/**
 * Where `count` new tokens go. By default after every existing row (a padded vocabulary keeps its
 * padding rows untouched); with usePaddingRows from the tokenizer's size, reusing free padding rows.
 */
export function planRows(model: Pick<ModelDir, 'embeddingRows' | 'tokenizerSize'>, count: number, opts: PlanOptions = {}): RowPlan {
  if (!Number.isSafeInteger(count) || count < 0) throw new SurgeryError(`the number of new tokens must be a non-negative integer, got ${count}`);
  const m = opts.padToMultipleOf;
  if (m !== undefined && (!Number.isSafeInteger(m) || m < 1)) {
    throw new SurgeryError(`--pad-to-multiple-of must be a positive integer, got ${m}`);
  }
  const oldRows = model.embeddingRows;
  const firstId = opts.usePaddingRows ? model.tokenizerSize : oldRows;
  const used = firstId + count;
  let rows = Math.max(oldRows, used);
  if (m) rows = Math.ceil(rows / m) * m;
  // Rows past the old matrix that no token occupies (pad-to-multiple-of tail).
  const fillStart = Math.max(oldRows, used);
  return { oldRows, rows, tokenizerSize: model.tokenizerSize, firstId, count, fillRows: [fillStart, rows] };
}

export interface NewRowSpec {
  /** Id of the new token (row index). */
  id: number;
  /** Its tokenization by the original tokenizer (no special tokens). */
  subIds: number[];
}

/** Rows that replace or extend a matrix, as bytes of the matrix's dtype, keyed by row index. */
export interface RowPatch {
  dtype: DType;
  hidden: number;
  rowBytes: number;
  rows: Map<number, Uint8Array>;
}

const CHUNK_BYTES = 16 << 20;

/**
 * One streaming pass over the old rows of `tensor` for the statistics (min/max/mean always,
 * covariance for hf-mean-resizing), gathering the needed sub-token rows on the way.
 */
async function scanMatrix(model: ModelDir, tensor: string, needed: Set<number>, withCovariance: boolean):
  Promise<{ sub: Map<number, Float32Array>; stats: RowStats }> {
  const st = weightFile(model.weights, tensor);
  const info = weightInfo(model.weights, tensor);
  const [rows, hidden] = info.shape;
  const acc = new RowStatsAccumulator(hidden, withCovariance);
  const sub = new Map<number, Float32Array>();
  const rowBytes = hidden * dtypeSize(info.dtype);
  const step = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  const sorted = [...needed].sort((a, b) => a - b);
  let k = 0;
  for (let a = 0; a < rows; a += step) {
    const b = Math.min(rows, a + step);
    const data = toFloat32(await readTensorRows(st, tensor, a, b), info.dtype);
    acc.add(data, b - a);
    for (; k < sorted.length && sorted[k] < b; k++) sub.set(sorted[k], data.slice((sorted[k] - a) * hidden, (sorted[k] - a + 1) * hidden));
  }
  return { sub, stats: acc.finish() };
}

/** Only the needed rows, read in runs of nearby ids (no pass over the whole matrix). */
async function gatherRows(model: ModelDir, tensor: string, needed: Set<number>): Promise<Map<number, Float32Array>> {
  const st = weightFile(model.weights, tensor);
  const info = weightInfo(model.weights, tensor);
  const hidden = info.shape[1];
  const rowBytes = hidden * dtypeSize(info.dtype);
  const maxRun = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  const sorted = [...needed].sort((a, b) => a - b);
  const sub = new Map<number, Float32Array>();
  let i = 0;
  while (i < sorted.length) {
    // a run: ids whose gaps are small enough that reading the rows between them is cheaper than a new read
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] - sorted[j] <= 64 && sorted[j + 1] - sorted[i] < maxRun) j++;
    const a = sorted[i];
    const data = toFloat32(await readTensorRows(st, tensor, a, sorted[j] + 1), info.dtype);
    for (let k = i; k <= j; k++) sub.set(sorted[k], data.slice((sorted[k] - a) * hidden, (sorted[k] - a + 1) * hidden));
    i = j + 1;
  }
  return sub;
}

export interface ComputeRowsOptions {
  plan: RowPlan;
  tokens: NewRowSpec[];
  method: InitMethod;
  seed: number;
  /** Which matrix the rows are for (InitContext.matrix): 'input' (embed_tokens, also a tied model's one matrix) or 'output' (lm_head). */
  matrix: 'input' | 'output';
  /** Combining methods: each token's combination of existing rows (null: the method's fallback), from computeCombinations. */
  combos?: Map<number, Combination | null>;
}

/**
 * The combination of existing rows for every new token (combining methods only); `fallbacks` counts
 * the tokens the method could not place (no auxiliary vector, unknown merge, never in the corpus), which get `init` instead.
 * Computed once and used for both matrices of an untied model.
 */
export function computeCombinations(tokens: NewRowSpec[], method: InitMethod, sources: InitSources): { combos: Map<number, Combination | null>; fallbacks: number } {
  if (!method.combine) throw new SurgeryError(`${method.spec} does not combine existing rows`);
  const combos = new Map<number, Combination | null>();
  let fallbacks = 0;
  for (const t of tokens) {
    const c = method.combine(t.id, sources);
    if (!c) fallbacks++;
    combos.set(t.id, c);
  }
  return { combos, fallbacks };
}

/** The new rows of one matrix (new tokens by `method`, the fill tail by the mean of the old rows). */
export async function computeNewRows(model: ModelDir, tensor: string, opts: ComputeRowsOptions): Promise<RowPatch> {
  const { plan, tokens, method } = opts;
  const needed = new Set<number>();
  const combos = opts.combos;
  if (method.combine && !combos) throw new SurgeryError(`${method.spec}: the combinations were not computed`);
  if (combos) {
    for (const t of tokens) for (const id of combos.get(t.id)?.ids ?? t.subIds) needed.add(id);
  } else if (method.needs === 'subtokens') for (const t of tokens) for (const id of t.subIds) needed.add(id);
  const info = weightInfo(model.weights, tensor);
  if (!isFloatDType(info.dtype)) throw new SurgeryError(`"${tensor}" has dtype ${info.dtype}; only float embeddings can be extended`);
  const hidden = info.shape[1];
  // The whole matrix is read only when statistics are needed (random, hf-mean-resizing, fill rows).
  const needStats = method.needs === 'range' || method.needs === 'gaussian' || plan.fillRows[1] > plan.fillRows[0];
  let sub: Map<number, Float32Array>;
  let stats: RowStats | null = null;
  if (needStats) ({ sub, stats } = await scanMatrix(model, tensor, needed, method.needs === 'gaussian'));
  else sub = await gatherRows(model, tensor, needed);
  const ctx = { hidden, stats, random: seededRandom(opts.seed), matrix: opts.matrix };
  const rows = new Map<number, Uint8Array>();
  if (combos) {
    const out = new Float32Array(hidden);
    const acc = new Float64Array(hidden);
    for (const t of tokens) {
      const c = combos.get(t.id);
      if (c) {
        acc.fill(0);
        c.ids.forEach((id, k) => { const r = sub.get(id)!; const w = c.weights[k]; for (let d = 0; d < hidden; d++) acc[d] += w * r[d]; });
        for (let d = 0; d < hidden; d++) out[d] = acc[d];
      } else method.init(t.subIds.map((id) => sub.get(id)!), ctx, out);
      rows.set(t.id, fromFloat32(out, info.dtype));
    }
  } else if (method.initBatch) {
    const all = new Float32Array(tokens.length * hidden);
    method.initBatch(tokens.length, ctx, all);
    tokens.forEach((t, k) => rows.set(t.id, fromFloat32(all.subarray(k * hidden, (k + 1) * hidden), info.dtype)));
  } else {
    const out = new Float32Array(hidden);
    for (const t of tokens) {
      const subRows = method.needs === 'subtokens' ? t.subIds.map((id) => sub.get(id)!) : [];
      method.init(subRows, ctx, out);
      rows.set(t.id, fromFloat32(out, info.dtype));
    }
  }
  if (stats) {
    const meanRow = fromFloat32(Float32Array.from(stats.mean), info.dtype);
    for (let r = plan.fillRows[0]; r < plan.fillRows[1]; r++) rows.set(r, meanRow);
  }
  return { dtype: info.dtype, hidden, rowBytes: hidden * dtypeSize(info.dtype), rows };
}

/** Check the sub-token lists: existing, non-special ids of the original tokenizer, never empty. */
export function validateNewRows(plan: RowPlan, tokens: NewRowSpec[], specialIds: Set<number>, label: (i: number) => string): void {
  const seen = new Set<number>();
  tokens.forEach((t, i) => {
    if (!Number.isSafeInteger(t.id) || t.id < plan.firstId || t.id >= plan.firstId + plan.count) {
      throw new SurgeryError(`${label(i)}: id ${t.id} is outside the planned range [${plan.firstId}, ${plan.firstId + plan.count})`);
    }
    if (seen.has(t.id)) throw new SurgeryError(`${label(i)}: id ${t.id} is assigned twice`);
    seen.add(t.id);
    if (t.subIds.length === 0) throw new SurgeryError(`${label(i)}: empty tokenization by the original tokenizer (nothing to initialize from)`);
    for (const s of t.subIds) {
      if (!Number.isSafeInteger(s) || s < 0 || s >= plan.tokenizerSize) {
        throw new SurgeryError(`${label(i)}: sub-token id ${s} is not an id of the original tokenizer (size ${plan.tokenizerSize})`);
      }
      if (specialIds.has(s)) throw new SurgeryError(`${label(i)}: sub-token id ${s} is a special token; special tokens never take part in initialization`);
    }
  });
}

export interface WriteModelOptions {
  plan: RowPlan;
  tokens: NewRowSpec[];
  /** Extended tokenizer.json to write. */
  tokenizerJson: TokenizerJson;
  /** Extra files (name -> content) written as they are, e.g. an updated tokenizer_config.json. */
  extraFiles?: Record<string, string>;
  init: InitMethod;
  /** Output rows of an untied model (default: `init`). Ignored for tied models, which have one matrix. */
  initOutput?: InitMethod;
  seed?: number;
  /** What combining methods read (auxiliary embeddings, merge tree, corpus alignments). */
  sources?: InitSources;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface WriteModelResult {
  rows: number;
  files: string[];
  tied: boolean;
  /** Tokens a combining method could not place (they got its fallback, the mean), per matrix; 0 for other methods. */
  fallbacks: { input: number; output: number };
}

/** Seeds of the input and output matrices differ so random methods draw independent rows. */
const OUTPUT_SEED_OFFSET = 0x9e3779b9;

/** Write the extended model into the (temporary, empty) directory `dir`, through the one model writer. */
export async function writeExtendedModel(model: ModelDir, dir: string, opts: WriteModelOptions): Promise<WriteModelResult> {
  const { plan, tokens } = opts;
  const seed = opts.seed ?? 0;
  const outMethod = opts.initOutput ?? opts.init;
  const combined = new Map<string, ReturnType<typeof computeCombinations>>();
  const combosFor = (m: InitMethod) => {
    if (!m.combine) return undefined;
    if (!combined.has(m.spec)) combined.set(m.spec, computeCombinations(tokens, m, opts.sources ?? {}));
    return combined.get(m.spec)!;
  };
  const inC = combosFor(opts.init);
  const outC = model.tied ? undefined : combosFor(outMethod);
  const embedPatch = await computeNewRows(model, EMBED_TENSOR, { plan, tokens, method: opts.init, seed, matrix: 'input', combos: inC?.combos });
  const headPatch = model.tied ? null
    : await computeNewRows(model, LM_HEAD_TENSOR, { plan, tokens, method: outMethod, seed: (seed + OUTPUT_SEED_OFFSET) >>> 0, matrix: 'output', combos: outC?.combos });
  const edits: Record<string, MatrixEdit> = { [EMBED_TENSOR]: { rows: plan.rows, set: embedPatch.rows } };
  if (headPatch) edits[LM_HEAD_TENSOR] = { rows: plan.rows, set: headPatch.rows };
  const written = await writeModel(dir, {
    source: model, edits, tokenizerJson: opts.tokenizerJson, files: opts.extraFiles,
    config: withVocabSize(model.config, plan.rows), onProgress: opts.onProgress,
  });
  const fallbacks = { input: inC?.fallbacks ?? 0, output: model.tied ? (inC?.fallbacks ?? 0) : (outC?.fallbacks ?? 0) };
  return { rows: plan.rows, files: written.files, tied: model.tied, fallbacks };
}
