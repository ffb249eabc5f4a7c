// Which initialization is best? Lines that contain new tokens are cut just before an occurrence
// of a new token; the extended model (one per init method) reads the prefix, tokenized by the
// extended tokenizer, and we record the new token's rank and log-probability among all logits.
// Everything here is deterministic for a seed; the model and engine come in through callbacks so
// the logic is testable with fake engines. The probes and their scores are ./probes.ts's.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadModelDir, type ModelDir } from '../io/model-dir.ts';
import { extendTokenizer, type ExtendMode } from '../tokenizer/extend.ts';
import { encodeBatch, tokenizerFromJson } from '../tokenizer/load.ts';
import type { NewToken } from '../tokenizer/tokens-file.ts';
import { ALL_METHODS, parseInitMethod } from '../embeddings/init-methods.ts';
import { csvField } from '../io/csv.ts';
import { renderSvg } from './chart-svg.ts';
import { extendModel, type AuxOptions } from '../embeddings/extend-model.ts';
import { sampleOccurrences, scoreProbes, summarize, type InitSample, type LogitsEngine, type MethodSummary, type TargetScore } from './probes.ts';
import { optionError, HackError } from '../io/errors.ts';

/** A CSV field with non-integers at 6 significant digits (ranks and log-probs need no more). */
const field = (v: string | number) => csvField(typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(6) : v);

export const RESULTS_COLUMNS = ['method', 'samples', 'median_rank', 'mrr', 'top1', 'top10', 'mean_logprob', 'wins'] as const;

export function resultsCsv(rows: MethodSummary[]): string {
  const lines = [RESULTS_COLUMNS.join(',')];
  for (const r of rows) lines.push([r.method, r.samples, r.medianRank, r.mrr, r.top1, r.top10, r.meanLogprob, r.wins].map(field).join(','));
  return lines.join('\n') + '\n';
}

/** Per-probe details: one row per probe and method. */
export function samplesCsv(methods: string[], probes: InitSample[], scores: TargetScore[][]): string {
  const lines = ['probe,line,position,target,method,rank,logprob'];
  probes.forEach((p, i) => methods.forEach((m, j) => {
    lines.push([i, p.line, p.position, p.target, m, scores[j][i].rank, scores[j][i].logprob].map(field).join(','));
  }));
  return lines.join('\n') + '\n';
}

/** Markdown table of the summaries (for BENCHMARKS.md / reports). */
export function resultsMarkdown(rows: MethodSummary[]): string {
  const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  const out = ['| method | median rank | MRR | top-1 | top-10 | mean log-prob | wins |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) out.push(`| ${r.method} | ${f(r.medianRank, 1)} | ${f(r.mrr)} | ${f(r.top1)} | ${f(r.top10)} | ${f(r.meanLogprob, 2)} | ${f(r.wins, 1)} |`);
  return out.join('\n') + '\n';
}

/** A vega-lite spec: one horizontal bar panel per metric, methods in the given order. */
export function chartSpec(rows: MethodSummary[], title = 'Initialization methods: the new token at its first use'): Record<string, unknown> {
  const values = rows.map((r) => ({
    method: r.method, 'MRR': r.mrr, 'top-10 rate': r.top10, 'top-1 rate': r.top1,
    'mean log-prob': r.meanLogprob, 'median rank': r.medianRank, 'wins': r.wins,
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    repeat: ['MRR', 'top-10 rate', 'top-1 rate', 'mean log-prob', 'median rank', 'wins'],
    columns: 3,
    spec: {
      width: 220,
      height: { step: 16 },
      mark: 'bar',
      encoding: {
        y: { field: 'method', type: 'nominal', sort: null, title: null },
        x: { field: { repeat: 'repeat' }, type: 'quantitative' },
        tooltip: [{ field: 'method' }, { field: { repeat: 'repeat' }, type: 'quantitative', format: '.4f' }],
      },
    },
  };
}

export interface CompareOptions {
  methods: string[];
  probes: InitSample[];
  /** Build the extended model for a method; returns its directory (removed via `cleanup` afterwards). */
  buildModel: (method: string, index: number) => Promise<string>;
  loadEngine: (dir: string) => Promise<LogitsEngine>;
  cleanup?: (dir: string) => Promise<void>;
  batchSize?: number;
  onProgress?: (event: { method: string; index: number; done: number; total: number }) => void;
}

/** Score every probe with every method's model; `scores[j][i]` is method j on probe i. */
export async function scoreMethods(opts: CompareOptions): Promise<TargetScore[][]> {
  const all: TargetScore[][] = [];
  for (let j = 0; j < opts.methods.length; j++) {
    const method = opts.methods[j];
    const dir = await opts.buildModel(method, j);
    try {
      const engine = await opts.loadEngine(dir);
      try {
        all.push(await scoreProbes(engine, opts.probes, {
          batchSize: opts.batchSize,
          onProgress: (done, total) => opts.onProgress?.({ method, index: j, done, total }),
        }));
      } finally {
        await engine.dispose();
      }
    } finally {
      await opts.cleanup?.(dir);
    }
  }
  return all;
}

// ------------------------------------------------------------------ the whole comparison

/** compareInit's defaults (the command's too). */
export const COMPARE_INIT_DEFAULTS = { samples: 1000, seed: 0, mode: 'merges' as ExtendMode, maxContext: 64 };

export interface CompareInitOptions {
  model: ModelDir | string;
  /** New tokens, best first (the first numTokens are used). */
  tokens: NewToken[];
  /** Corpus lines to probe. */
  lines: string[];
  /** Default: every method computed from the model alone (ALL_METHODS). */
  methods?: string[];
  /** Probes to sample (default 1000). */
  samples?: number;
  seed?: number;
  /** How the tokenizer is extended (default merges). */
  mode?: ExtendMode;
  /** Prefix tokens kept before the new token (default 64). */
  maxContext?: number;
  /** Working directory for the per-method models (each removed after scoring). */
  workDir: string;
  threads?: number;
  batchSize?: number;
  /** Override the engine (tests); default: the runtime's ORT engine. */
  loadEngine?: (dir: string) => Promise<LogitsEngine>;
  onProgress?: CompareOptions['onProgress'];
  onPhase?: (phase: string) => void;
  /** Auxiliary embeddings for focus / wechsel / omp (trained once, cached, shared by those methods). */
  aux?: AuxOptions;
}

export interface CompareInitResult {
  methods: string[];
  probes: InitSample[];
  scores: TargetScore[][];
  summaries: MethodSummary[];
  /** New tokens the tokenizer accepted (others were skipped by extendTokenizer). */
  added: number;
  skipped: number;
  seconds: { sampling: number; scoring: number };
}

/**
 * Extend the model once per method (same tokenizer, same ids), probe each with the same samples,
 * and summarize. Methods are validated before any work starts.
 */
export async function compareInit(options: CompareInitOptions): Promise<CompareInitResult> {
  const d = COMPARE_INIT_DEFAULTS;
  const opts = {
    ...options, methods: options.methods ?? [...ALL_METHODS], samples: options.samples ?? d.samples, seed: options.seed ?? d.seed,
    mode: options.mode ?? d.mode, maxContext: options.maxContext ?? d.maxContext,
  };
  const methods = opts.methods.map((m) => parseInitMethod(m).spec);
  if (new Set(methods).size !== methods.length) throw optionError('methods', 'lists a method twice');
  const model = typeof opts.model === 'string' ? await loadModelDir(opts.model) : opts.model;
  const t0 = performance.now();
  opts.onPhase?.('sampling probes');
  const ext = extendTokenizer(model.tokenizerJson, opts.tokens, { mode: opts.mode, firstId: model.embeddingRows });
  const newIds = new Set(ext.newIds.filter((id) => id >= 0));
  if (newIds.size === 0) throw new HackError('TOO_FEW_TOKENS', 'none of the new tokens could be added to the tokenizer', { option: 'tokens' });
  const tok = tokenizerFromJson(ext.json, 'extended tokenizer');
  const probes = await sampleOccurrences(opts.lines, (t) => encodeBatch(tok, t), (id) => newIds.has(id), {
    samples: opts.samples, seed: opts.seed, maxContext: opts.maxContext,
  });
  if (probes.length === 0) throw new HackError('NO_PROBES', 'no line of the corpus contains a new token after its first position', { option: 'corpus' });
  const t1 = performance.now();
  const scores = await scoreMethods({
    methods,
    probes,
    batchSize: opts.batchSize,
    onProgress: opts.onProgress,
    buildModel: async (method, j) => {
      const dir = path.join(opts.workDir, `model-${j}`);
      const r = await extendModel({ model, tokens: opts.tokens, mode: opts.mode, init: method, seed: opts.seed, aux: opts.aux, out: dir });
      if (r.newIds.some((id, i) => id !== ext.newIds[i])) throw new Error('internal: the extended model assigns different ids than the probe tokenizer');
      return dir;
    },
    loadEngine: opts.loadEngine ?? (async (dir) => {
      const { loadEngine } = await import('../runtime/engine.ts');
      return loadEngine(dir, { threads: opts.threads });
    }),
    cleanup: (dir) => fsp.rm(dir, { recursive: true, force: true }),
  });
  const t2 = performance.now();
  return {
    methods, probes, scores, summaries: summarize(methods, scores),
    added: newIds.size, skipped: ext.skipped.length,
    seconds: { sampling: (t1 - t0) / 1000, scoring: (t2 - t1) / 1000 },
  };
}

/** Write results.csv, samples.csv, results.md, chart.svg (+ its vega-lite spec) and run.json into `dir`. */
export async function writeCompareInitOutputs(dir: string, r: CompareInitResult, settings: Record<string, unknown>): Promise<string[]> {
  const spec = chartSpec(r.summaries);
  const files: Record<string, string> = {
    'results.csv': resultsCsv(r.summaries),
    'results.md': resultsMarkdown(r.summaries),
    'samples.csv': samplesCsv(r.methods, r.probes, r.scores),
    'chart.vl.json': JSON.stringify(spec, null, 2) + '\n',
    'chart.svg': await renderSvg(spec),
    'run.json': JSON.stringify({ ...settings, probes: r.probes.length, added: r.added, skipped: r.skipped, seconds: r.seconds, summaries: r.summaries }, null, 2) + '\n',
  };
  for (const [name, content] of Object.entries(files)) await fsp.writeFile(path.join(dir, name), content);
  return Object.keys(files);
}
