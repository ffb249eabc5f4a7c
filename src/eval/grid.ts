// Experiment grid: models x num_tokens x method x mode x init x stage (x tune variant) x input mode. Each cell's
// results are one JSON file in <out>/cells/ (written atomically), so an interrupted run resumes
// where it stopped; shared artifacts (tokens.json, extended models) are reused when present.
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { writeFileAtomic } from '../io/atomic.ts';
import { HackError, isHackError, plainReason } from '../io/errors.ts';
import { camelOf, readParams, type ParamSpec } from '../io/params.ts';
import { TS_TUNE_OPTIONS } from '../tune/options.ts';
import { hashOf, pathIdentity } from '../io/identity.ts';
import { camelKeys } from '../io/json-keys.ts';
import type { EvalResults } from './results.ts';
import { BENCHMARKS, BENCH_REGISTRY, METRICS, type BenchName, type MetricName } from './evaluate.ts';
import { renderReport, rowOf, toCsv, type CellMeta, type ResultRow, type TuneRecord } from './report.ts';
import type { TuneSummary } from '../tune/run-tune.ts';

export const STAGES = ['BASELINE', 'INITIALIZED_NO_TRAINING', 'INITIALIZED_WITH_TRAINING'] as const;
export type Stage = (typeof STAGES)[number];
export type InputMode = 'extended' | 'original';

export interface GridConfig {
  models: string[];
  corpus: string[];
  numTokens: number[];
  methods: string[];
  modes: string[];
  inits: string[];
  stages: Stage[];
  inputs: InputMode[];
  metrics: MetricName[];
  bench: BenchName[];
  pt?: string;
  en?: string;
  /** Use only the first N bytes of pt / en (documented subset). */
  maxBytes?: number;
  calameptRows?: 'all' | 'handwritten' | 'generated';
  mmluSubjects?: string[];
  boostTexts?: number;
  boostRuns?: number;
  threads?: number;
  /** new-token-rank: probes per cell. */
  rankProbes?: number;
  /** Benchmark files by benchmark name (those without a shipped default must be given). */
  benchFiles?: Partial<Record<BenchName, string>>;
  /**
   * Tuning variants of the INITIALIZED_WITH_TRAINING stage, each its own cell (options go to the
   * tuning step). The config's `tune` is one object (one variant named "default") or a list of
   * named variants.
   */
  tune?: TuneVariant[];
}

export interface TuneVariant { name: string; options: Record<string, unknown> }

/** The name of the single variant of an object-form `tune` (its cells keep the ids they had before variants existed). */
export const DEFAULT_TUNE = 'default';

export class GridConfigError extends HackError {
  declare readonly file: string;
  constructor(file: string, message: string) { super('BAD_GRID_CONFIG', message, { option: 'config', file }); this.name = 'GridConfigError'; }
}

function list<T>(file: string, raw: Record<string, unknown>, key: string, check: (v: unknown) => v is T, def?: T[]): T[] {
  const v = raw[key];
  if (v === undefined) {
    if (def) return def;
    throw new GridConfigError(file, `"${key}" is required`);
  }
  const arr = Array.isArray(v) ? v : [v];
  if (arr.length === 0 || !arr.every(check)) throw new GridConfigError(file, `"${key}" must be a non-empty list (got ${JSON.stringify(v)})`);
  return arr as T[];
}
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isPosInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const isPosNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

// the tuning options a variant may set: the `tune` command's option table (tune/options.ts), by key, plus its corpus
const TUNE_SPECS: readonly ParamSpec[] = [...TS_TUNE_OPTIONS, { key: 'corpus', kind: 'string', doc: 'training text (default: the grid\'s first corpus)' }];

/** A variant's options checked and converted by the table; only the keys it gives (old names mapped). */
function tuneOptionsOf(file: string, at: string, item: Record<string, unknown>): Record<string, unknown> {
  const raw = Object.fromEntries(Object.entries(item).filter(([k]) => k !== 'name'));
  let v: Record<string, unknown>;
  try {
    v = readParams(TUNE_SPECS, raw, { strict: true, spelling: 'key' });
  } catch (e) {
    if (!isHackError(e)) throw e;
    if (e.code === 'UNKNOWN_KEY') throw new GridConfigError(file, `"${at}": ${e.detail.replace('(known: ', '(known: name, ')}`);
    throw new GridConfigError(file, `"${at}.${e.option}" ${e.detail.replace(/^.*?: expected /, 'must be ')} (got ${JSON.stringify(raw[e.option!] ?? item[e.option!])})`);
  }
  const given = new Set(TUNE_SPECS.filter((s) => s.key in raw || (s.aliases ?? []).some((a) => camelOf(a) in raw)).map((s) => s.key));
  return Object.fromEntries(Object.entries(v).filter(([k]) => given.has(k)));
}

/** A tune variant's name as it appears in cell ids and directory names. */
const nameSlug = (s: string) => s.replace(/[^A-Za-z0-9.+-]+/g, '_').replace(/^_+|_+$/g, '');
const tuneSuffix = (name: string) => (name === DEFAULT_TUNE ? '' : `-${nameSlug(name)}`);

/** `tune`: one options object, or a list of variants each with a unique `name`. */
function parseTune(file: string, v: unknown, baseDir: string): TuneVariant[] {
  const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw new GridConfigError(file, '"tune" must be an object or a non-empty list of variants');
  const seen = new Map<string, string>();
  return items.map((item, i) => {
    const at = Array.isArray(v) ? `tune[${i}]` : 'tune';
    if (!isObj(item)) throw new GridConfigError(file, `"${at}" must be an object of tuning options (got ${JSON.stringify(item)})`);
    if (Array.isArray(v) && item.name === undefined) throw new GridConfigError(file, `"${at}.name" is required (each variant needs a name)`);
    if (item.name !== undefined && !(isStr(item.name) && nameSlug(item.name) !== '')) throw new GridConfigError(file, `"${at}.name" must be a non-empty name (got ${JSON.stringify(item.name)})`);
    const name = (item.name as string | undefined) ?? DEFAULT_TUNE;
    const prev = seen.get(nameSlug(name));
    if (prev !== undefined) throw new GridConfigError(file, `"${at}.name": "${name}" is the same as "${prev}" (variant names must differ in letters, digits, ".", "+" or "-")`);
    seen.set(nameSlug(name), name);
    const options = tuneOptionsOf(file, at, item);
    for (const k of ['corpus', 'replay']) {
      if (typeof options[k] === 'string' && options[k] !== 'self') options[k] = path.resolve(baseDir, options[k] as string);
    }
    if (options.optimizer === 'seed-heuristic' && (options.rows ?? 'output') !== 'output') throw new GridConfigError(file, `"${at}.optimizer": seed-heuristic only applies to rows "output"`);
    return { name, options };
  });
}

/** `benchFiles: {boolq: file, ...}`: every chosen benchmark without a shipped file needs one (checked here, not at the first evaluation). */
function parseBenchFiles(file: string, v: unknown, bench: BenchName[], baseDir: string): Partial<Record<BenchName, string>> | undefined {
  const out: Partial<Record<BenchName, string>> = {};
  if (v !== undefined) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new GridConfigError(file, `"benchFiles" must map benchmark names to files (got ${JSON.stringify(v)})`);
    for (const [k, f] of Object.entries(v as Record<string, unknown>)) {
      if (!(BENCHMARKS as readonly string[]).includes(k)) throw new GridConfigError(file, `"benchFiles.${k}": unknown benchmark (known: ${BENCHMARKS.join(', ')})`);
      if (!isStr(f)) throw new GridConfigError(file, `"benchFiles.${k}" must be a file path`);
      out[k as BenchName] = path.resolve(baseDir, f);
    }
  }
  for (const b of bench) {
    const def = BENCH_REGISTRY.find((d) => d.name === b)!;
    if (!def.defaultFile && !out[b]) throw new GridConfigError(file, `"bench" holds ${b}, which needs its file: add "benchFiles: {${b}: <${def.fileDoc}>}"`);
  }
  return v === undefined ? undefined : out;
}

/** Parse and validate a grid config (JSON or YAML text). Relative paths resolve against `baseDir`. */
export function parseGridConfig(text: string, file: string, baseDir = path.dirname(file)): GridConfig {
  let raw: unknown;
  try { raw = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text); } catch (e) {
    throw new GridConfigError(file, `not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new GridConfigError(file, 'expected an object with models, corpus, numTokens, ...');
  const r = raw as Record<string, unknown>;
  const known = new Set(['models', 'corpus', 'numTokens', 'methods', 'modes', 'inits', 'stages', 'inputs', 'metrics', 'bench', 'benchFiles', 'pt', 'en', 'maxBytes', 'calameptRows', 'mmluSubjects', 'boostTexts', 'boostRuns', 'threads', 'rankProbes', 'tune']);
  const unknown = Object.keys(r).filter((k) => !known.has(k));
  if (unknown.length) throw new GridConfigError(file, `unknown key(s) ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
  // a model is a directory (relative to the config file) or, when no such directory exists, a Hub id
  const resolve = (p: string) => (existsSync(path.resolve(baseDir, p)) || !/^[\w.-]+\/[\w.-]+$/.test(p) ? path.resolve(baseDir, p) : p);
  const stages = list(file, r, 'stages', isStr, ['BASELINE', 'INITIALIZED_NO_TRAINING']);
  const badStage = stages.filter((s) => !(STAGES as readonly string[]).includes(s));
  if (badStage.length) throw new GridConfigError(file, `unknown stage(s) ${badStage.join(', ')} (known: ${STAGES.join(', ')})`);
  const inputs = list(file, r, 'inputs', isStr, ['extended']);
  if (inputs.some((i) => i !== 'extended' && i !== 'original')) throw new GridConfigError(file, `"inputs" must hold "extended" and/or "original"`);
  const metrics = list(file, r, 'metrics', isStr, ['fertility', 'bpb']);
  const badM = metrics.filter((m) => !(METRICS as readonly string[]).includes(m));
  if (badM.length) throw new GridConfigError(file, `unknown metric(s) ${badM.join(', ')} (known: ${METRICS.join(', ')})`);
  const bench = r.bench === undefined ? [] : list(file, r, 'bench', isStr);
  const badB = bench.filter((b) => !(BENCHMARKS as readonly string[]).includes(b));
  if (badB.length) throw new GridConfigError(file, `unknown benchmark(s) ${badB.join(', ')} (known: ${BENCHMARKS.join(', ')})`);
  const opt = <T>(key: string, check: (v: unknown) => v is T, what: string): T | undefined => {
    if (r[key] === undefined) return undefined;
    if (!check(r[key])) throw new GridConfigError(file, `"${key}" must be ${what} (got ${JSON.stringify(r[key])})`);
    return r[key] as T;
  };
  const rows = opt('calameptRows', (v): v is string => v === 'all' || v === 'handwritten' || v === 'generated', '"all", "handwritten" or "generated"');
  const cfg: GridConfig = {
    models: list(file, r, 'models', isStr).map(resolve),
    corpus: stages.some((s) => s !== 'BASELINE') ? list(file, r, 'corpus', isStr).map((p) => path.resolve(baseDir, p)) : [],
    numTokens: stages.some((s) => s !== 'BASELINE') ? list(file, r, 'numTokens', isPosInt) : [],
    methods: list(file, r, 'methods', isStr, ['continue']),
    modes: list(file, r, 'modes', isStr, ['merges']),
    inits: list(file, r, 'inits', isStr, ['mean']),
    stages: stages as Stage[],
    inputs: inputs as InputMode[],
    metrics: metrics as MetricName[],
    bench: bench as BenchName[],
    pt: opt('pt', isStr, 'a file path'),
    en: opt('en', isStr, 'a file path'),
    maxBytes: opt('maxBytes', isPosInt, 'a positive integer'),
    calameptRows: rows as GridConfig['calameptRows'],
    mmluSubjects: r.mmluSubjects === undefined ? undefined : list(file, r, 'mmluSubjects', isStr),
    boostTexts: opt('boostTexts', isPosInt, 'a positive integer'),
    boostRuns: opt('boostRuns', isPosInt, 'a positive integer'),
    threads: opt('threads', isPosInt, 'a positive integer'),
    rankProbes: opt('rankProbes', isPosInt, 'a positive integer'),
    tune: r.tune === undefined ? undefined : parseTune(file, r.tune, baseDir),
    benchFiles: parseBenchFiles(file, r.benchFiles, bench as BenchName[], baseDir),
  };
  if (cfg.pt) cfg.pt = path.resolve(baseDir, cfg.pt);
  if (cfg.en) cfg.en = path.resolve(baseDir, cfg.en);
  if (cfg.methods.some((m) => m !== 'fresh' && m !== 'continue')) throw new GridConfigError(file, '"methods" must hold "fresh" and/or "continue"');
  if (cfg.modes.some((m) => m !== 'added' && m !== 'merges')) throw new GridConfigError(file, '"modes" must hold "added" and/or "merges"');
  return cfg;
}

export async function readGridConfig(file: string): Promise<GridConfig> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    throw new GridConfigError(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot read (${plainReason(e)})`);
  }
  return parseGridConfig(text, file);
}

export const slug = (s: string) => s.replace(/^.*[\\/](?=[^\\/]+$)/, '').replace(/[^A-Za-z0-9.+-]+/g, '_').replace(/^_+|_+$/g, '') || 'x';

/** The tuning variants of stage INITIALIZED_WITH_TRAINING (one "default" variant when the config has no `tune`). */
export function tuneVariants(cfg: GridConfig): TuneVariant[] {
  return cfg.tune?.length ? cfg.tune : [{ name: DEFAULT_TUNE, options: {} }];
}

/** Every cell of the grid, baselines first (a baseline does not depend on N, method, mode, init). */
export function enumerateCells(cfg: GridConfig): CellMeta[] {
  const cells: CellMeta[] = [];
  for (const model of cfg.models) {
    const m = slug(model);
    if (cfg.stages.includes('BASELINE')) {
      cells.push({ id: `${m}__BASELINE`, model, stage: 'BASELINE', input: 'original', numTokens: 0, method: '-', mode: '-', init: '-', tune: '-' });
    }
    for (const stage of cfg.stages.filter((s) => s !== 'BASELINE')) {
      const tunes = stage === 'INITIALIZED_WITH_TRAINING' ? tuneVariants(cfg).map((t) => t.name) : ['-'];
      for (const n of cfg.numTokens) for (const method of cfg.methods) for (const mode of cfg.modes) for (const init of cfg.inits) for (const tune of tunes) for (const input of cfg.inputs) {
        const id = `${m}__${stage}__N${n}__${method}__${mode}__${slug(init)}__${input}${tune === '-' ? '' : tuneSuffix(tune).replace(/^-/, '__tune-')}`;
        cells.push({ id, model, stage, input, numTokens: n, method, mode, init, tune });
      }
    }
  }
  return cells;
}

/** The pipeline steps a grid needs (injected, so the grid logic is testable with fakes). */
export interface GridSteps {
  /** Write tokens.json with (at least) `numTokens` new tokens, best first. */
  learnTokens(model: string, method: string, numTokens: number, corpus: string[], outFile: string): Promise<void>;
  /** Write an extended model directory with the first `numTokens` tokens of `tokensFile`. */
  extendModel(model: string, tokensFile: string, numTokens: number, mode: string, init: string, outDir: string): Promise<void>;
  /**
   * Tune the new rows (stage INITIALIZED_WITH_TRAINING) into `outDir`; the grid records `outDir/tune.json`
   * (runTune's summary: wall time, losses) in each cell that uses the tuned model.
   */
  tune?: (extendedDir: string, baseModel: string, outDir: string, opts: Record<string, unknown>) => Promise<void>;
  /** Evaluate a model directory; `original` is the base model (added-token ids, --encode-with when input is original). */
  evaluate(cell: CellMeta, modelDir: string, original: string | null): Promise<EvalResults>;
}

export interface CellRecord {
  meta: CellMeta;
  results: EvalResults;
  /** Stage INITIALIZED_WITH_TRAINING: the variant, its options, and what the tuning run reported (tune.json). */
  tune?: TuneRecord;
  /** Everything that shapes the cell's numbers: a finished cell is reused only when its key matches. */
  key?: CellKey;
}

/** A cell's settings and the identities of its input files (see io/identity.ts). */
export interface CellKey { settings: Record<string, unknown>; inputs: Record<string, unknown> }

/** The essentials of a tuned directory's tune.json (runTune's TuneSummary). */
export function tuneRecordOf(variant: TuneVariant, s: Partial<TuneSummary> | null): TuneRecord {
  const rec: TuneRecord = { name: variant.name, options: variant.options };
  if (!s) return rec;
  const phase = (p?: { steps: number; firstLoss: number; lastLoss: number; seconds: number; lr: number; batch: number }) =>
    p && { steps: p.steps, first_loss: p.firstLoss, last_loss: p.lastLoss, seconds: p.seconds, lr: p.lr, batch: p.batch };
  return {
    ...rec, seconds: s.seconds, rows: s.rows, optimizer: s.optimizer, new_tokens: s.newTokens, corpus_bytes: s.corpusBytes,
    cache: s.cache && { positions: s.cache.positions, new_targets: s.cache.newTargets, seconds: s.cache.seconds, reused: s.cache.reused },
    output: phase(s.output), input: s.input && { ...phase(s.input)!, tokens: s.input.tokens },
  };
}

export interface GridProgress {
  cell(i: number, total: number, meta: CellMeta, status: 'skipped' | 'running' | 'done', why?: string): void;
}

export interface GridRun { records: CellRecord[]; ran: number; skipped: number; invalidated: number; reasons: Record<string, number> }

const exists = (p: string) => fsp.access(p).then(() => true, () => false);

/** The identity of a model (a local directory) or the Hub id itself. */
async function inputIdentity(p: string | undefined, memo: Map<string, Promise<unknown>>): Promise<unknown> {
  if (!p) return null;
  let v = memo.get(p);
  if (!v) memo.set(p, v = exists(p).then((e) => (e ? pathIdentity(p) : { hubId: p })));
  return v;
}

/** Everything that shapes a cell's numbers (documented in README: "resume keys"). */
export async function cellKey(cfg: GridConfig, meta: CellMeta, memo = new Map<string, Promise<unknown>>(), benchFiles: Record<string, string | undefined> = {}): Promise<CellKey> {
  const settings: Record<string, unknown> = {
    stage: meta.stage, input: meta.input, metrics: [...cfg.metrics], bench: [...cfg.bench], maxBytes: cfg.maxBytes ?? null,
    calameptRows: cfg.calameptRows ?? 'all', mmluSubjects: cfg.mmluSubjects ?? null, boostTexts: cfg.boostTexts ?? null,
    boostRuns: cfg.boostRuns ?? null, rankProbes: cfg.rankProbes ?? null,
  };
  const inputs: Record<string, unknown> = {
    model: await inputIdentity(meta.model, memo), pt: await inputIdentity(cfg.pt, memo), en: await inputIdentity(cfg.en, memo),
  };
  for (const b of cfg.bench) inputs[`bench:${b}`] = await inputIdentity(benchFiles[b] ?? cfg.benchFiles?.[b], memo);
  if (meta.stage !== 'BASELINE') {
    Object.assign(settings, { numTokens: meta.numTokens, learnedFor: Math.max(0, ...cfg.numTokens), method: meta.method, mode: meta.mode, init: meta.init });
    inputs.corpus = await Promise.all(cfg.corpus.map((c) => inputIdentity(c, memo)));
  }
  if (meta.stage === 'INITIALIZED_WITH_TRAINING') {
    const variant = tuneVariants(cfg).find((t) => t.name === meta.tune);
    settings.tune = variant?.options ?? null;
    const o = variant?.options ?? {};
    if (typeof o.corpus === 'string') inputs.tuneCorpus = await inputIdentity(o.corpus, memo);
    if (typeof o.replay === 'string' && o.replay !== 'self') inputs.replay = await inputIdentity(o.replay, memo);
  }
  return { settings, inputs };
}

/** Which parts of a stored key differ from the current one ("maxBytes", "corpus", ...). */
export function keyChanges(old: CellKey | undefined, cur: CellKey): string[] {
  if (!old) return ['no key (a run before resume keys)'];
  const out: string[] = [];
  for (const part of ['settings', 'inputs'] as const) {
    const names = new Set([...Object.keys(old[part] ?? {}), ...Object.keys(cur[part])]);
    for (const n of names) if (JSON.stringify(old[part]?.[n]) !== JSON.stringify(cur[part][n])) out.push(part === 'inputs' ? `${n} file changed` : `${n} changed`);
  }
  return out;
}

export async function runGrid(cfg: GridConfig, outDir: string, steps: GridSteps, progress?: GridProgress, benchFiles: Record<string, string | undefined> = {}): Promise<GridRun> {
  if (cfg.stages.includes('INITIALIZED_WITH_TRAINING') && !steps.tune) {
    throw new HackError('UNSUPPORTED', 'stage INITIALIZED_WITH_TRAINING needs embedding tuning, which is not available in this build');
  }
  const cells = enumerateCells(cfg);
  const cellsDir = path.join(outDir, 'cells');
  const art = path.join(outDir, 'artifacts');
  await fsp.mkdir(cellsDir, { recursive: true });
  const maxN = Math.max(0, ...cfg.numTokens);
  const records: CellRecord[] = [];
  const memo = new Map<string, Promise<unknown>>();
  const reasons: Record<string, number> = {};
  let ran = 0;
  let skipped = 0;
  let invalidated = 0;
  for (let i = 0; i < cells.length; i++) {
    const meta = cells[i];
    const file = path.join(cellsDir, `${meta.id}.json`);
    const key = await cellKey(cfg, meta, memo, benchFiles);
    if (await exists(file)) {
      const old = JSON.parse(await fsp.readFile(file, 'utf8')) as CellRecord;
      const changes = keyChanges(old.key, key);
      if (changes.length === 0) {
        records.push(old);
        skipped++;
        progress?.cell(i, cells.length, meta, 'skipped');
        continue;
      }
      invalidated++;
      for (const c of changes) reasons[c] = (reasons[c] ?? 0) + 1;
      progress?.cell(i, cells.length, meta, 'running', changes.join(', '));
    } else {
      progress?.cell(i, cells.length, meta, 'running');
    }
    let modelDir = meta.model;
    let original: string | null = null;
    let tune: TuneRecord | undefined;
    if (meta.stage !== 'BASELINE') {
      const mdir = path.join(art, slug(meta.model));
      // artifacts are named by the hash of what built them: a changed input builds a new one, never reuses a stale one
      const tokKey = hashOf({ model: key.inputs.model, corpus: key.inputs.corpus, method: meta.method, maxN });
      const tokensFile = path.join(mdir, `tokens-${meta.method}-N${maxN}-${tokKey}.json`);
      if (!(await exists(tokensFile))) await steps.learnTokens(meta.model, meta.method, maxN, cfg.corpus, tokensFile);
      const extKey = hashOf({ tokKey, n: meta.numTokens, mode: meta.mode, init: meta.init });
      const extDir = path.join(mdir, `N${meta.numTokens}-${meta.method}-${meta.mode}-${slug(meta.init)}-${extKey}`);
      if (!(await exists(path.join(extDir, 'config.json')))) await steps.extendModel(meta.model, tokensFile, meta.numTokens, meta.mode, meta.init, extDir);
      modelDir = extDir;
      if (meta.stage === 'INITIALIZED_WITH_TRAINING') {
        const variant = tuneVariants(cfg).find((t) => t.name === meta.tune)!;
        const tunedDir = `${extDir}-tuned${tuneSuffix(variant.name)}-${hashOf({ extKey, options: variant.options, inputs: [key.inputs.tuneCorpus ?? null, key.inputs.replay ?? null] })}`;
        if (!(await exists(path.join(tunedDir, 'config.json')))) await steps.tune!(extDir, meta.model, tunedDir, variant.options);
        const summary = await fsp.readFile(path.join(tunedDir, 'tune.json'), 'utf8').then((t) => camelKeys<Partial<TuneSummary>>(JSON.parse(t), ['options']), () => null);
        tune = tuneRecordOf(variant, summary);
        modelDir = tunedDir;
      }
      original = meta.model;
    }
    const results = await steps.evaluate(meta, modelDir, original);
    const rec: CellRecord = tune ? { meta, results, tune, key } : { meta, results, key };
    await writeFileAtomic(file, JSON.stringify(rec, null, 1) + '\n');
    records.push(rec);
    ran++;
    progress?.cell(i, cells.length, meta, 'done');
  }
  return { records, ran, skipped, invalidated, reasons };
}

/**
 * results.csv, results.json and report.html for the records (each written atomically). `budget`: what a
 * time budget chose (the `adapt` command's), shown once in the report beside the subsets.
 */
export async function writeGridOutputs(outDir: string, cfg: GridConfig | null, records: CellRecord[], title: string, notes: string[] = [], budget?: string): Promise<{ rows: ResultRow[]; files: string[] }> {
  const rows = records.map((r) => rowOf(r.meta, r.results, r.tune));
  const files = [path.join(outDir, 'results.csv'), path.join(outDir, 'results.json'), path.join(outDir, 'report.html')];
  await writeFileAtomic(files[0], toCsv(rows));
  await writeFileAtomic(files[1], JSON.stringify({ version: 1, config: cfg, rows, cells: records }, null, 1) + '\n');
  // each subset once, whatever the number of cells (cells of one run share them; an old cell may differ)
  const subsets = new Map<string, Set<string>>();
  for (const r of records) for (const [k, v] of Object.entries(r.results.subsets ?? {})) subsets.set(k, (subsets.get(k) ?? new Set()).add(v));
  await writeFileAtomic(files[2], await renderReport(rows, {
    title, subtitle: `${rows.length} cell(s); generated ${new Date().toISOString()}`, notes, budget,
    subsets: Object.fromEntries([...subsets].map(([k, v]) => [k, [...v].join(' / ')])),
  }));
  return { rows, files };
}
