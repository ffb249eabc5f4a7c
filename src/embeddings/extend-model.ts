// Library entry for `hack-tokenizer extend --init ...`: extend the tokenizer with new tokens and
// write a complete model directory whose embedding matrices hold rows for them.
import { loadModelDir, type ModelDir } from '../io/model-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { extendTokenizer, extendTokenizerConfig, type ExtendMode, type ExtendResult, type SkippedToken } from '../tokenizer/extend.ts';
import type { NewToken } from '../tokenizer/tokens-file.ts';
import { tokenizerFromJson } from '../tokenizer/load.ts';
import { HackError } from '../io/errors.ts';
import type { TokenizerJson } from '../io/model-dir.ts';
import { parseInitMethod, type AuxSpace, type InitMethod, type InitSources, type MergeTree } from './init-methods.ts';
import { planRows, validateNewRows, writeExtendedModel, SurgeryError, type NewRowSpec, type RowPlan } from './surgery.ts';
import { auxEmbeddings, hasVector, type AuxSettings, type AuxVectors } from './aux-embeddings.ts';
import { corpusAlignment, type AlignReport } from './align-init.ts';

/** Where the auxiliary embeddings come from (methods that need 'aux': focus, wechsel, omp), and align's corpus. */
export interface AuxOptions {
  corpus: string[];
  /** Use only the first maxBytes of the corpus (whole lines); align reads at most ALIGN_DEFAULT_MAX_BYTES without it. */
  maxBytes?: number;
  /** Cache directory for the trained vectors (absent: no cache). */
  cacheDir?: string;
  settings?: Partial<AuxSettings>;
  onPhase?: (msg: string) => void;
  onProgress?: (phase: 'tokenize' | 'train', done: number, total: number) => void;
}

/** What the auxiliary training did, for extend.json. */
export interface AuxReport {
  tokens: number;
  seconds: number;
  cached: boolean;
  cacheFile: string | null;
  minCount: number;
  settings: AuxSettings;
  /** New tokens with an auxiliary vector / shared tokens with one. */
  newWithVector: number;
  shared: number;
}

export interface ExtendModelOptions {
  /** A loaded model directory or its path. */
  model: ModelDir | string;
  /** New tokens, best first (tokens.json's `tokens`). */
  tokens: NewToken[];
  mode: ExtendMode;
  /** Input-embedding init method (a method string such as `weighted_drop(2)` or a parsed method). */
  init: string | InitMethod;
  /** Output rows of untied models (default: `init`). Tied models have one matrix: must equal `init` if given. */
  initOutput?: string | InitMethod;
  usePaddingRows?: boolean;
  padToMultipleOf?: number;
  /** Seed of the random methods (random, hf-mean-resizing). Default 0. */
  seed?: number;
  /** For methods that need auxiliary embeddings (focus, wechsel, omp): the corpus to train them on; align reads its corpus here too. */
  aux?: AuxOptions;
  /** Output model directory (written atomically). */
  out: string;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ExtendModelResult {
  out: string;
  plan: RowPlan;
  /** Id of tokens[i], or -1 when the tokenizer skipped it. */
  newIds: number[];
  skipped: SkippedToken[];
  tied: boolean;
  init: string;
  /** Method of the output rows (the input method for tied models). */
  initOutput: string;
  files: string[];
  /** New tokens a combining method could not place (mean fallback), per matrix. */
  fallbacks: { input: number; output: number };
  aux: AuxReport | null;
  /** align: what was read of the corpus. */
  align: AlignReport | null;
}

const asMethod = (m: string | InitMethod): InitMethod => (typeof m === 'string' ? parseInitMethod(m) : m);

export interface ModelExtensionOptions {
  /** The tokens given to extendTokenizer (same order as result.newIds). */
  tokens: NewToken[];
  /** extendTokenizer's result, computed with firstId = modelFirstId(model, usePaddingRows). */
  result: ExtendResult;
  /** tokenizer_config.json to write (null: none). */
  tokenizerConfig: Record<string, unknown> | null;
  init: string | InitMethod;
  initOutput?: string | InitMethod;
  usePaddingRows?: boolean;
  padToMultipleOf?: number;
  seed?: number;
  /** How the tokenizer was extended (the `merge` method needs merges). */
  mode?: ExtendMode;
  aux?: AuxOptions;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** First id of the new tokens: after every existing row, or after the tokenizer with usePaddingRows. */
export function modelFirstId(model: ModelDir, usePaddingRows = false): number {
  return usePaddingRows ? model.tokenizerSize : model.embeddingRows;
}

/** The init methods to use, checked against the model (a tied model has one matrix, so one method). */
export function resolveInitMethods(model: ModelDir, init: string | InitMethod, initOutput?: string | InitMethod): { init: InitMethod; initOutput: InitMethod } {
  const i = asMethod(init);
  const o = initOutput === undefined ? i : asMethod(initOutput);
  if (model.tied && o.spec !== i.spec) {
    throw new SurgeryError(
      `--init-output ${o.spec} differs from --init ${i.spec}, but ${model.dir} ties its input and output embeddings ` +
      '(one matrix): the --init method sets both. Drop --init-output, or untie the model first.');
  }
  return { init: i, initOutput: model.tied ? i : o };
}

/**
 * Check, before any work, that what the methods need is there: a corpus for auxiliary embeddings
 * (focus, wechsel, omp) and for `align`, merges mode for `merge`.
 */
export function checkInitNeeds(methods: InitMethod[], have: { mode?: ExtendMode; corpus?: string[] }): void {
  for (const m of methods) {
    if (m.needs === 'aux' && !(have.corpus && have.corpus.length > 0)) {
      throw new HackError('MISSING_OPTION', `init method ${m.spec} compares tokens in auxiliary embeddings trained on a corpus: give {opt:corpus} <file...>`, { option: 'corpus' });
    }
    if (m.needs === 'corpus' && !(have.corpus && have.corpus.length > 0)) {
      throw new HackError('MISSING_OPTION', `init method ${m.spec} averages the original tokens under each new token's occurrences in a corpus: give {opt:corpus} <file...>`, { option: 'corpus' });
    }
    if (m.needs === 'merges' && have.mode !== 'merges') {
      throw new HackError('BAD_OPTION', `init method ${m.spec} follows the new tokens' merges: it needs {opt:mode} merges (got ${have.mode ?? 'none'})`, { option: 'init' });
    }
  }
}

function vocabIds(json: TokenizerJson): Map<string, number> {
  const v = json.model.vocab;
  const m = new Map<string, number>(Array.isArray(v) ? v.map(([t], i) => [t, i] as [string, number]) : Object.entries(v));
  for (const t of json.added_tokens ?? []) if (!m.has(t.content)) m.set(t.content, t.id);
  return m;
}

/** The merge tree of the new tokens: each new id's merge parts, looked up in the extended vocabulary. */
export function mergeTreeOf(json: TokenizerJson, tokens: NewToken[], newIds: number[], firstNew: number): MergeTree {
  const ids = vocabIds(json);
  const parts = new Map<number, [number, number]>();
  newIds.forEach((id, i) => {
    const m = tokens[i].merge;
    if (id < 0 || !m) return;
    const a = ids.get(m[0]);
    const b = ids.get(m[1]);
    if (a !== undefined && b !== undefined) parts.set(id, [a, b]);
  });
  return { firstNew, mergeOf: (id) => parts.get(id) ?? null };
}

/** The auxiliary space: unit vectors, and the existing non-special tokens (ids < firstNew) seen in the corpus. */
export function auxSpaceOf(a: AuxVectors, firstNew: number, specialIds: Set<number>): AuxSpace {
  return auxSpaceWithAnchors(a, (id) => id < firstNew && !specialIds.has(id));
}

/**
 * The auxiliary space with the anchors (the tokens new rows are combined from) picked by `isAnchor`:
 * extension's existing tokens, or replacement's gold tokens (both vocabularies share them).
 */
export function auxSpaceWithAnchors(a: AuxVectors, isAnchor: (id: number) => boolean): AuxSpace {
  const dim = a.dim;
  const unit = new Float32Array(a.vectors.length);
  const ok = new Uint8Array(a.vocabSize);
  for (let i = 0; i < a.vocabSize; i++) {
    if (!hasVector(a, i)) continue;
    let n = 0;
    for (let d = 0; d < dim; d++) n += a.vectors[i * dim + d] ** 2;
    if (!(n > 0)) continue;
    const inv = 1 / Math.sqrt(n);
    for (let d = 0; d < dim; d++) unit[i * dim + d] = a.vectors[i * dim + d] * inv;
    ok[i] = 1;
  }
  const shared: number[] = [];
  // atoms are the existing tokens SEEN in the corpus (>= minCount): with n-grams every token has a
  // vector, but one built from hashed n-grams alone is noise as an atom (it is fine as a target)
  for (let i = 0; i < a.vocabSize; i++) if (ok[i] && isAnchor(i) && a.counts[i] >= a.minCount && a.counts[i] > 0) shared.push(i);
  const sharedUnit = new Float32Array(shared.length * dim);
  shared.forEach((id, k) => sharedUnit.set(unit.subarray(id * dim, (id + 1) * dim), k * dim));
  return { dim, unit: (id) => (id >= 0 && id < a.vocabSize && ok[id] ? unit.subarray(id * dim, (id + 1) * dim) : null), sharedIds: Int32Array.from(shared), sharedUnit };
}

/**
 * Write the extended model (weights, config, tokenizer files, side files) into the existing
 * directory `dir`, from a tokenizer extension computed beforehand.
 */
export async function writeModelExtension(model: ModelDir, dir: string, opts: ModelExtensionOptions):
  Promise<{ plan: RowPlan; files: string[]; init: string; initOutput: string; fallbacks: { input: number; output: number }; aux: AuxReport | null; align: AlignReport | null }> {
  const { init, initOutput } = resolveInitMethods(model, opts.init, opts.initOutput);
  const firstId = modelFirstId(model, opts.usePaddingRows);
  const ext = opts.result;
  const specs: NewRowSpec[] = [];
  const indexOf = new Map<number, number>();
  ext.newIds.forEach((id, i) => {
    if (id < 0) return;
    specs.push({ id, subIds: opts.tokens[i].originalIds });
    indexOf.set(id, i);
  });
  specs.sort((a, b) => a.id - b.id);
  const plan = planRows(model, specs.length, { usePaddingRows: opts.usePaddingRows, padToMultipleOf: opts.padToMultipleOf });
  if (specs.length > 0 && specs[0].id !== firstId) {
    throw new SurgeryError(`the extended tokenizer's first new id is ${specs[0].id}, but the model needs ${firstId} ` +
      `(${opts.usePaddingRows ? 'the tokenizer size, --use-padding-rows' : 'the embedding rows'})`);
  }
  const specials = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath).specialIds;
  validateNewRows(plan, specs, specials, (k) => `new token ${JSON.stringify(opts.tokens[indexOf.get(specs[k].id)!].token)}`);
  const methods = [init, initOutput];
  checkInitNeeds(methods, { mode: opts.mode, corpus: opts.aux?.corpus });
  const sources: InitSources = {};
  let aux: AuxReport | null = null;
  if (methods.some((m) => m.needs === 'merges')) sources.merges = mergeTreeOf(ext.json, opts.tokens, ext.newIds, firstId);
  if (methods.some((m) => m.needs === 'aux')) {
    const a = await auxEmbeddings({ ...opts.aux!, tokenizer: ext.json });
    sources.aux = auxSpaceOf(a, firstId, specials);
    const newWithVector = specs.filter((t) => sources.aux!.unit(t.id) !== null).length;
    aux = { tokens: a.tokens, seconds: a.seconds, cached: a.cached, cacheFile: a.cacheFile, minCount: a.minCount, settings: a.settings, newWithVector, shared: sources.aux.sharedIds.length };
  }
  let align: AlignReport | null = null;
  if (methods.some((m) => m.needs === 'corpus')) {
    const r = await corpusAlignment({ corpus: opts.aux!.corpus, original: model.tokenizerJson, extended: ext.json, firstNew: firstId, maxBytes: opts.aux!.maxBytes, onPhase: opts.aux!.onPhase });
    sources.alignment = r.combos;
    align = r.report;
  }
  const extraFiles: Record<string, string> = {};
  if (opts.tokenizerConfig) extraFiles['tokenizer_config.json'] = JSON.stringify(opts.tokenizerConfig, null, 2) + '\n';
  const r = await writeExtendedModel(model, dir, {
    plan, tokens: specs, tokenizerJson: ext.json, extraFiles, init, initOutput, seed: opts.seed ?? 0, sources, onProgress: opts.onProgress,
  });
  return { plan, files: r.files, init: init.spec, initOutput: initOutput.spec, fallbacks: r.fallbacks, aux, align };
}

export async function extendModel(opts: ExtendModelOptions): Promise<ExtendModelResult> {
  const model = typeof opts.model === 'string' ? await loadModelDir(opts.model) : opts.model;
  const methods = resolveInitMethods(model, opts.init, opts.initOutput); // fail on a bad method before any work
  checkInitNeeds([methods.init, methods.initOutput], { mode: opts.mode, corpus: opts.aux?.corpus });
  const ext = extendTokenizer(model.tokenizerJson, opts.tokens, { mode: opts.mode, firstId: modelFirstId(model, opts.usePaddingRows) });
  const tokenizerConfig = extendTokenizerConfig(model.tokenizerConfig, ext.addedEntries);
  let written!: Awaited<ReturnType<typeof writeModelExtension>>;
  await writeDirAtomic(opts.out, async (tmp) => {
    written = await writeModelExtension(model, tmp, { ...opts, mode: opts.mode, result: ext, tokenizerConfig });
  });
  return {
    out: opts.out, plan: written.plan, newIds: ext.newIds, skipped: ext.skipped, tied: model.tied,
    init: written.init, initOutput: written.initOutput, files: written.files, fallbacks: written.fallbacks, aux: written.aux, align: written.align,
  };
}
