// One evaluation: the chosen metrics and benchmarks for one model under one input setup.
import * as path from 'node:path';
import { HackError } from '../io/errors.ts';
import type { EvalEngine, TextCodec } from './engine-api.ts';
import { measureBpb } from './bpb.ts';
import { fertilityInput } from './fertility-input.ts';
import { fertilityBoost } from './fertility-boost.ts';
import { fertilityOutput } from './fertility-output.ts';
import { measureDecode, promptsFromText, type DecodeRun } from './decode-speed.ts';
import { efficiencyGain } from './text-metrics.ts';
import { newTokenRank } from './new-token-rank.ts';
import { EFFICIENCY_GAIN_LABEL, type EvalResults, type Lang } from './results.ts';
import { readCalame, readExtraGlue, readMmlu, readQueryChoices, type CalameRow } from './bench/readers.ts';
import { runCalame } from './bench/calamept.ts';
import { runChoices, runMmlu } from './bench/choice.ts';

export type MetricName = 'fertility' | 'bpb' | 'compression' | 'fertility-output' | 'fertility-boost' | 'decode-speed' | 'repetition' | 'efficiency' | 'new-token-rank';
export type BenchName = 'calamept' | 'mmlu' | 'boolq-en' | 'copa-en' | 'boolq' | 'copa' | 'multirc';

/** What a metric needs; checked before any metric runs, so a missing input is reported at once. */
export interface MetricNeeds {
  /** Held-out texts by language (at least one of them when `anyText`). */
  texts?: Lang[];
  anyText?: boolean;
  /** The original model's tokenizer (which ids are new, their original pieces). */
  original?: boolean;
  /** The original model itself (an engine), for comparisons. */
  originalEngine?: boolean;
}

export interface MetricDef {
  name: MetricName;
  doc: string;
  needs: MetricNeeds;
  /** Whether it means anything for a model without new tokens (a baseline). */
  baseline: boolean;
  /** Which decoding it uses when it generates (see README, "which decoding each metric uses"). */
  decoding: 'none' | 'teacher-forced' | 'generation';
}

/** The metrics, in the order they run and are documented. */
export const METRIC_REGISTRY: readonly MetricDef[] = [
  { name: 'fertility', doc: 'input fertility (tokens per \\w+ word) of the model\'s tokenizer on --pt / --en, and of the original\'s', needs: { anyText: true }, baseline: true, decoding: 'none' },
  { name: 'compression', doc: 'UTF-8 bytes per token of the held-out texts', needs: { anyText: true }, baseline: true, decoding: 'none' },
  { name: 'bpb', doc: 'bits per UTF-8 byte of the held-out texts (tokenizer-independent)', needs: { anyText: true }, baseline: true, decoding: 'teacher-forced' },
  { name: 'fertility-boost', doc: 'share of positions where the model picks a new token, reading PT through the original tokenizer', needs: { texts: ['pt'], original: true }, baseline: false, decoding: 'teacher-forced' },
  { name: 'efficiency', doc: 'the research\'s efficiency gain: (F_orig / F_new - 1) x FertilityBoost', needs: { texts: ['pt'], original: true }, baseline: false, decoding: 'teacher-forced' },
  { name: 'new-token-rank', doc: 'rank of the new tokens at their first uses in --pt, with the original model\'s reference', needs: { texts: ['pt'], original: true, originalEngine: true }, baseline: false, decoding: 'teacher-forced' },
  { name: 'fertility-output', doc: 'tokens spent on the first complete generated word (the research\'s FertilityOutput)', needs: { texts: ['pt'] }, baseline: true, decoding: 'generation' },
  { name: 'decode-speed', doc: 'characters per decode step and per second of greedy PT generations, beside the original model\'s', needs: { texts: ['pt'], originalEngine: false }, baseline: true, decoding: 'generation' },
  { name: 'repetition', doc: 'share of repeated word 4-grams in those generations', needs: { texts: ['pt'] }, baseline: true, decoding: 'generation' },
];

export interface BenchDef {
  name: BenchName;
  doc: string;
  /** The library option that names its file (or directory), and the CLI/grid key. */
  fileOption: string;
  /** Shipped default (relative to the assets directory), if any. */
  defaultFile?: string;
  fileDoc: string;
}

export const BENCH_REGISTRY: readonly BenchDef[] = [
  { name: 'calamept', doc: 'CalamePT last-word prediction (greedy, first word)', fileOption: 'calameptFile', defaultFile: 'bench/calamept.jsonl', fileDoc: 'CalamePT JSONL' },
  { name: 'mmlu', doc: 'MMLU zero-shot (English), letter with the highest log-probability', fileOption: 'mmluDir', defaultFile: 'bench/mmlu', fileDoc: 'MMLU directory with test/<subject>_test.csv' },
  { name: 'boolq-en', doc: 'English BoolQ, log-likelihood of each choice', fileOption: 'boolqEnFile', defaultFile: 'bench/en-boolq.jsonl', fileDoc: 'English BoolQ JSONL {query, choices, gold}' },
  { name: 'copa-en', doc: 'English COPA, log-likelihood of each choice', fileOption: 'copaEnFile', defaultFile: 'bench/en-copa.jsonl', fileDoc: 'English COPA JSONL {query, choices, gold}' },
  { name: 'boolq', doc: 'extraGLUE pt-PT BoolQ', fileOption: 'boolqFile', fileDoc: 'extraGLUE pt-PT BoolQ JSONL (passage, question, label)' },
  { name: 'copa', doc: 'extraGLUE pt-PT COPA', fileOption: 'copaFile', fileDoc: 'extraGLUE pt-PT COPA JSONL (premise, choice1, choice2, question, label)' },
  { name: 'multirc', doc: 'extraGLUE pt-PT MultiRC', fileOption: 'multircFile', fileDoc: 'extraGLUE pt-PT MultiRC JSONL (paragraph, question, answer, label)' },
];

export const METRICS = METRIC_REGISTRY.map((m) => m.name) as readonly MetricName[];
export const BENCHMARKS = BENCH_REGISTRY.map((b) => b.name) as readonly BenchName[];
const metricDef = (n: MetricName) => METRIC_REGISTRY.find((m) => m.name === n)!;

/** Whether evaluating these metrics needs the original model's engine (a second model in memory). */
export function needsOriginalEngine(metrics: readonly MetricName[], baseline = false): boolean {
  return metrics.some((m) => metricDef(m).needs.originalEngine || ((m === 'decode-speed' || m === 'repetition') && !baseline));
}

/** The metrics that apply to a model without new tokens. */
export const baselineMetrics = (metrics: readonly MetricName[]) => metrics.filter((m) => metricDef(m).baseline);

/** A comma-separated list of registry names (or `all`), checked strictly. */
export function parseList<T extends string>(option: string, value: string | string[] | undefined, known: readonly T[]): T[] {
  if (!value) return [];
  const items = (Array.isArray(value) ? value : value.split(',')).map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0] === 'all') return [...known];
  const bad = items.filter((s) => !(known as readonly string[]).includes(s));
  if (bad.length) throw new HackError('BAD_OPTION_VALUE', `${bad.join(', ')}: expected a comma-separated list of: ${known.join(', ')}, or "all"`, { option });
  return items as T[];
}

/** Check, before any work, that the setup and texts give every chosen metric what it needs. */
export function checkNeeds(metrics: readonly MetricName[], has: { texts: Lang[]; original: boolean }): void {
  for (const m of metrics) {
    const n = metricDef(m).needs;
    for (const l of n.texts ?? []) if (!has.texts.includes(l)) throw new HackError('MISSING_OPTION', `missing: metric ${m} needs {opt:${l}} <file>`, { option: l });
    if (n.anyText && has.texts.length === 0) throw new HackError('MISSING_OPTION', `missing: metric ${m} needs {opt:pt} and/or {opt:en} <file>`, { option: 'pt' });
    if (n.original && !has.original) throw new HackError('MISSING_OPTION', `missing: metric ${m} needs the original model: pass {opt:original} <original model dir>`, { option: 'original' });
  }
}

export interface EvalSetup {
  /**
   * The model under evaluation. Its generation is the decoding every generating metric uses: with
   * the input through the original tokenizer (encode-with), extended-vocabulary decoding.
   */
  engine: EvalEngine;
  model: string;
  /** Encodes the input text: the model's own (extended) tokenizer, or the original with --encode-with. */
  inputCodec: TextCodec;
  inputTokenizer: string;
  input: 'extended' | 'original' | 'model';
  /** The model's own tokenizer (decodes what it generates). */
  modelCodec: TextCodec;
  /** The original (base) tokenizer, when known: fertility comparison, FertilityBoost input. */
  originalCodec?: TextCodec;
  /** Whether an id is one of the added tokens (FertilityBoost). */
  isNew?: (id: number) => boolean;
  /** Each added id's original sub-token ids (new-token-rank: the prefix read as original ids). */
  newTokenOriginalIds?: () => Promise<Map<number, number[]>>;
  /** Generation with the original model and tokenizer (decode-speed comparison). */
  originalGenerate?: (prompt: string, maxNewTokens: number) => Promise<{ ids: number[]; text: string }>;
  /** The original model's last-position logits (new-token-rank's reference). */
  originalLastLogits?: (batch: number[][]) => Promise<Float32Array[]>;
  eosIds?: number[];
}

export interface BenchFiles { calamept?: string; mmlu?: string; 'boolq-en'?: string; 'copa-en'?: string; boolq?: string; copa?: string; multirc?: string }

export interface EvalOptions {
  metrics: MetricName[];
  bench: BenchName[];
  texts: Partial<Record<Lang, { file: string; text: string }>>;
  benchFiles: BenchFiles;
  /** CalamePT rows to keep (e.g. the 406 handwritten ones). */
  calameFilter?: (r: CalameRow) => boolean;
  calameLogLikelihood?: boolean;
  mmluSubjects?: string[];
  boostTexts?: number;
  boostRuns?: number;
  boostTemperature?: number;
  /** new-token-rank: probes sampled from the PT text (default 1000). */
  rankProbes?: number;
  outputTexts?: number;
  genPrompts?: number;
  genTokens?: number;
  subsets?: Record<string, string>;
  onStage?: (label: string) => { tick: (done: number, total: number) => void; stop: () => void };
}

const silent = { tick: () => {}, stop: () => {} };

/** Paragraph-sized texts of a held-out file (one per line), for generation/teacher-forced metrics. */
export function linesOf(text: string, n: number, minChars = 40): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length >= minChars).slice(0, n);
}

/** What a metric's runner sees: the setup, the options, the result being filled, shared work. */
interface MetricRun {
  setup: EvalSetup;
  opts: EvalOptions;
  res: EvalResults;
  langs: Lang[];
  chosen: Set<MetricName>;
  text: (lang: Lang) => string;
  stage: (label: string) => { tick: (done: number, total: number) => void; stop: () => void };
  timed: <T>(key: string, f: () => Promise<T>) => Promise<T>;
  /** Work shared by several metrics (fertility + compression; the generations of decode-speed + repetition), done once. */
  once: <T>(key: string, f: () => Promise<T>) => Promise<T>;
}

/** Per-language fertility and bytes per token of the model's (and the original's) tokenizer. */
const fertilityOf = (r: MetricRun) => r.once('fertility', () => r.timed('fertility', async () => {
  const fi: NonNullable<EvalResults['metrics']['fertility_input']> = {};
  const comp: Partial<Record<Lang, number>> = {};
  for (const l of r.langs) {
    const f = await fertilityInput(r.setup.modelCodec, r.text(l));
    fi[l] = f.fertilityInput;
    comp[l] = f.bytesPerToken;
    if (r.setup.originalCodec) (fi.original ??= {})[l] = (await fertilityInput(r.setup.originalCodec, r.text(l))).fertilityInput;
  }
  return { fi, comp };
}));

const boostOf = (r: MetricRun) => r.once('fertility-boost', () => r.timed('fertility_boost', async () => {
  const texts = linesOf(r.text('pt'), r.opts.boostTexts ?? 100);
  const ids = await r.setup.originalCodec!.encodeBatch(texts);
  const s = r.stage('fertility-boost');
  try {
    return await fertilityBoost(r.setup.engine, ids, r.setup.isNew!, { runs: r.opts.boostRuns ?? 10, temperature: r.opts.boostTemperature ?? 0.8, onProgress: s.tick });
  } finally { s.stop(); }
}));

/**
 * Text <-> ids for generation: prompts encoded as the model reads them (the input tokenizer), the
 * generated ids decoded by the model's own tokenizer (they may be new tokens the input tokenizer lacks).
 */
export function generationCodec(s: EvalSetup): TextCodec {
  if (s.inputCodec === s.modelCodec) return s.modelCodec;
  return { encode: (t) => s.inputCodec.encode(t), encodeBatch: (t) => s.inputCodec.encodeBatch(t), decode: (ids) => s.modelCodec.decode(ids) };
}

const generationsOf = (r: MetricRun) => r.once('decode', () => r.timed('decode_speed', async () => {
  const { setup, opts } = r;
  const prompts = promptsFromText(r.text('pt'), opts.genPrompts ?? 16);
  const maxNew = opts.genTokens ?? 48;
  const codec = generationCodec(setup);
  const gen = async (p: string, n: number) => {
    const ids = await setup.engine.generate(await codec.encode(p), { maxNewTokens: n, temperature: 0, eosIds: setup.eosIds });
    return { ids, text: await codec.decode(ids) };
  };
  const s1 = r.stage('decode (model under evaluation)');
  const ext = await measureDecode(prompts, (p) => gen(p, maxNew), s1.tick);
  s1.stop();
  let orig: Awaited<ReturnType<typeof measureDecode>> | undefined;
  if (setup.originalGenerate) {
    const s2 = r.stage('decode (original model)');
    orig = await measureDecode(prompts, (p) => setup.originalGenerate!(p, maxNew), s2.tick);
    s2.stop();
  }
  return { ext, orig };
}));

const strip = (run: DecodeRun & { generations?: string[] }): DecodeRun => { const { generations: _g, ...rest } = run; return rest; };

/** Each metric's runner, by registry name (results keys as documented in README's results.json table). */
const RUNNERS: Record<MetricName, (r: MetricRun) => Promise<void>> = {
  fertility: async (r) => { r.res.metrics.fertility_input = (await fertilityOf(r)).fi; },
  compression: async (r) => { r.res.metrics.compression = (await fertilityOf(r)).comp; },
  bpb: (r) => r.timed('bpb', async () => {
    const out: NonNullable<EvalResults['metrics']['bpb']> = { perplexity: {}, tokens: {}, bytes: {} };
    for (const l of r.langs) {
      const s = r.stage(`bpb ${l}`);
      const m = await measureBpb(r.setup.engine, r.setup.inputCodec, r.text(l), { onProgress: s.tick });
      s.stop();
      out[l] = m.bpb;
      out.perplexity[l] = m.perplexity;
      out.tokens[l] = m.tokens;
      out.bytes[l] = m.bytes;
    }
    r.res.metrics.bpb = out;
  }),
  'fertility-boost': async (r) => { r.res.metrics.fertility_boost = await boostOf(r); },
  efficiency: async (r) => {
    const { fi } = await fertilityOf(r);
    if (!r.chosen.has('fertility')) { /* fertility_input is the gain's input: recorded with it */ r.res.metrics.fertility_input = fi; }
    const fo = fi.original?.pt;
    const fn = fi.pt;
    if (fo === undefined || fn === undefined) throw new HackError('MISSING_OPTION', 'missing: metric efficiency needs {opt:pt} and {opt:original}', { option: 'original' });
    const boost = (await boostOf(r)).greedy;
    r.res.metrics.efficiency_gain = { label: EFFICIENCY_GAIN_LABEL, value: efficiencyGain(fo, fn, boost), fertility_original: fo, fertility_new: fn, fertility_boost: boost };
  },
  'new-token-rank': (r) => r.timed('new_token_rank', async () => {
    const { setup, opts } = r;
    const s = r.stage('new-token rank');
    r.res.metrics.new_token_rank = await newTokenRank(setup.engine, (t) => setup.modelCodec.encodeBatch(t), setup.isNew!, await setup.newTokenOriginalIds!(), r.text('pt'), {
      probes: opts.rankProbes, onProgress: s.tick,
      base: setup.originalLastLogits ? { lastLogits: setup.originalLastLogits } : undefined,
    });
    s.stop();
  }),
  'fertility-output': (r) => r.timed('fertility_output', async () => {
    const s = r.stage('fertility-output');
    r.res.metrics.fertility_output = await fertilityOutput(r.setup.engine, generationCodec(r.setup), linesOf(r.text('pt'), r.opts.outputTexts ?? 20).map((l) => l.slice(0, 300)), { onProgress: s.tick });
    s.stop();
  }),
  'decode-speed': async (r) => {
    const { ext, orig } = await generationsOf(r);
    r.res.metrics.decode_speed = { extended: strip(ext), ...(orig ? { original: strip(orig), speedup_chars_per_step: ext.chars_per_step / orig.chars_per_step } : {}) };
  },
  repetition: async (r) => {
    const { ext, orig } = await generationsOf(r);
    r.res.metrics.repetition = { extended: ext.repetition, ...(orig ? { original: orig.repetition } : {}) };
  },
};

/** Each benchmark's runner. */
const BENCH_RUNNERS: Record<BenchName, (setup: EvalSetup, opts: EvalOptions, file: string, tick: (d: number, t: number) => void) => Promise<unknown>> = {
  calamept: async (setup, opts, file, tick) => {
    let rows = await readCalame(file);
    if (opts.calameFilter) rows = rows.filter(opts.calameFilter);
    return runCalame(setup.engine, generationCodec(setup), rows, { eosIds: setup.eosIds, logLikelihood: opts.calameLogLikelihood ?? false, onProgress: tick });
  },
  mmlu: async (setup, opts, file, tick) => runMmlu(setup.engine, setup.inputCodec, await readMmlu(file, 'test', opts.mmluSubjects), { onProgress: tick }),
  'boolq-en': async (setup, _o, file, tick) => runChoices(setup.engine, setup.inputCodec, await readQueryChoices(file, 'boolq-en'), { onProgress: tick }),
  'copa-en': async (setup, _o, file, tick) => runChoices(setup.engine, setup.inputCodec, await readQueryChoices(file, 'copa-en'), { onProgress: tick }),
  boolq: async (setup, _o, file, tick) => runChoices(setup.engine, setup.inputCodec, await readExtraGlue('boolq', file), { onProgress: tick }),
  copa: async (setup, _o, file, tick) => runChoices(setup.engine, setup.inputCodec, await readExtraGlue('copa', file), { onProgress: tick }),
  multirc: async (setup, _o, file, tick) => runChoices(setup.engine, setup.inputCodec, await readExtraGlue('multirc', file), { onProgress: tick }),
};

/** Check that every chosen benchmark has a file (before any work). */
export function checkBenchFiles(bench: readonly BenchName[], files: BenchFiles): void {
  for (const b of bench) {
    const def = BENCH_REGISTRY.find((d) => d.name === b)!;
    if (!files[b]) throw new HackError('MISSING_OPTION', `missing: benchmark ${b} needs {opt:${def.fileOption}} <file> (${def.fileDoc})`, { option: def.fileOption });
  }
}

export async function evaluate(setup: EvalSetup, opts: EvalOptions): Promise<EvalResults> {
  const res: EvalResults = {
    version: 1, model: setup.model, tokenizer: setup.inputTokenizer, input: setup.input, metrics: {}, benchmarks: {},
    subsets: { ...(opts.subsets ?? {}) }, seconds: {}, created: new Date().toISOString(),
  };
  const langs = (Object.keys(opts.texts) as Lang[]).filter((l) => opts.texts[l]);
  checkNeeds(opts.metrics, { texts: langs, original: !!setup.isNew && !!setup.originalCodec });
  checkBenchFiles(opts.bench, opts.benchFiles);
  const memo = new Map<string, Promise<unknown>>();
  const run: MetricRun = {
    setup, opts, res, langs, chosen: new Set(opts.metrics),
    text: (l) => opts.texts[l]!.text,
    stage: (label) => opts.onStage?.(label) ?? silent,
    timed: async (key, f) => {
      const t0 = performance.now();
      try { return await f(); } finally { res.seconds[key] = Math.round((performance.now() - t0) / 10) / 100; }
    },
    once: (key, f) => {
      let p = memo.get(key);
      if (!p) memo.set(key, p = f());
      return p as Promise<never>;
    },
  };
  // registry order, so results and timings come out the same whatever the order asked for
  for (const def of METRIC_REGISTRY) if (run.chosen.has(def.name)) await RUNNERS[def.name](run);
  for (const b of opts.bench) {
    await run.timed(`bench_${b}`, async () => {
      const s = run.stage(`bench ${b}`);
      try {
        (res.benchmarks as Record<string, unknown>)[b] = await BENCH_RUNNERS[b](setup, opts, opts.benchFiles[b]!, s.tick);
      } finally { s.stop(); }
    });
  }
  return res;
}

/** The shipped benchmark files (those the registry gives a default). */
export function defaultBenchFiles(assetsDir: string): BenchFiles {
  const out: BenchFiles = {};
  for (const b of BENCH_REGISTRY) if (b.defaultFile) out[b.name] = path.join(assetsDir, ...b.defaultFile.split('/'));
  return out;
}
