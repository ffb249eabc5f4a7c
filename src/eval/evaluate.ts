// One evaluation: the chosen metrics and benchmarks for one model under one input setup.
import * as path from 'node:path';
import type { EvalEngine, TextCodec } from './engine-api.ts';
import { measureBpb } from './bpb.ts';
import { fertilityInput } from './fertility-input.ts';
import { fertilityBoost } from './fertility-boost.ts';
import { fertilityOutput } from './fertility-output.ts';
import { measureDecode, promptsFromText } from './decode-speed.ts';
import { efficiencyGain } from './text-metrics.ts';
import { newTokenRank } from './new-token-rank.ts';
import { EFFICIENCY_GAIN_LABEL, type EvalResults, type Lang } from './results.ts';
import { readCalame, readExtraGlue, readMmlu, readQueryChoices, type CalameRow } from './bench/readers.ts';
import { runCalame } from './bench/calamept.ts';
import { runChoices, runMmlu } from './bench/choice.ts';

export const METRICS = ['fertility', 'bpb', 'compression', 'fertility-output', 'fertility-boost', 'decode-speed', 'repetition', 'efficiency', 'new-token-rank'] as const;
export const BENCHMARKS = ['calamept', 'mmlu', 'boolq-en', 'copa-en', 'boolq', 'copa', 'multirc'] as const;
export type MetricName = (typeof METRICS)[number];
export type BenchName = (typeof BENCHMARKS)[number];

export function parseList<T extends string>(flag: string, value: string | undefined, known: readonly T[]): T[] {
  if (!value) return [];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0] === 'all') return [...known];
  const bad = items.filter((s) => !(known as readonly string[]).includes(s));
  if (bad.length) throw new Error(`${flag}: unknown ${bad.join(', ')} (expected a comma-separated list of: ${known.join(', ')}, or "all")`);
  return items as T[];
}

export interface EvalSetup {
  engine: EvalEngine;
  model: string;
  /** Encodes the input text: the model's own (extended) tokenizer, or the original with --encode-with. */
  inputCodec: TextCodec;
  inputTokenizer: string;
  input: 'extended' | 'original';
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
  /** Generation with the model under evaluation (defaults to engine.generate on inputCodec ids). */
  generate?: (prompt: string, maxNewTokens: number) => Promise<{ ids: number[]; text: string }>;
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

export async function evaluate(setup: EvalSetup, opts: EvalOptions): Promise<EvalResults> {
  const stage = (label: string) => opts.onStage?.(label) ?? silent;
  const res: EvalResults = {
    version: 1, model: setup.model, tokenizer: setup.inputTokenizer, input: setup.input, metrics: {}, benchmarks: {},
    subsets: { ...(opts.subsets ?? {}) }, seconds: {}, created: new Date().toISOString(),
  };
  const timed = async <T>(key: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await f(); } finally { res.seconds[key] = Math.round((performance.now() - t0) / 10) / 100; }
  };
  const langs = (Object.keys(opts.texts) as Lang[]).filter((l) => opts.texts[l]);
  const m = new Set(opts.metrics);
  const needText = (metric: string, lang: Lang) => {
    const t = opts.texts[lang];
    if (!t) throw new Error(`--metrics ${metric} needs --${lang} <file>`);
    return t.text;
  };

  if (m.has('fertility') || m.has('compression') || m.has('efficiency')) {
    await timed('fertility', async () => {
      const fi: NonNullable<EvalResults['metrics']['fertility_input']> = {};
      const comp: Partial<Record<Lang, number>> = {};
      for (const l of langs) {
        const f = await fertilityInput(setup.modelCodec, opts.texts[l]!.text);
        fi[l] = f.fertilityInput;
        comp[l] = f.bytesPerToken;
        if (setup.originalCodec) (fi.original ??= {})[l] = (await fertilityInput(setup.originalCodec, opts.texts[l]!.text)).fertilityInput;
      }
      if (m.has('fertility') || m.has('efficiency')) res.metrics.fertility_input = fi;
      if (m.has('compression')) res.metrics.compression = comp;
    });
  }

  if (m.has('bpb')) {
    await timed('bpb', async () => {
      const out: NonNullable<EvalResults['metrics']['bpb']> = { perplexity: {}, tokens: {}, bytes: {} };
      for (const l of langs) {
        const s = stage(`bpb ${l}`);
        const r = await measureBpb(setup.engine, setup.inputCodec, opts.texts[l]!.text, { onProgress: s.tick });
        s.stop();
        out[l] = r.bpb;
        out.perplexity[l] = r.perplexity;
        out.tokens[l] = r.tokens;
        out.bytes[l] = r.bytes;
      }
      if (langs.length === 0) throw new Error('--metrics bpb needs --pt and/or --en');
      res.metrics.bpb = out;
    });
  }

  if (m.has('fertility-boost') || m.has('efficiency')) {
    if (!setup.isNew || !setup.originalCodec) throw new Error('--metrics fertility-boost needs the original tokenizer: pass --encode-with <original model dir>');
    const text = needText('fertility-boost', 'pt');
    await timed('fertility_boost', async () => {
      const texts = linesOf(text, opts.boostTexts ?? 100);
      const ids = await setup.originalCodec!.encodeBatch(texts);
      const s = stage('fertility-boost');
      res.metrics.fertility_boost = await fertilityBoost(setup.engine, ids, setup.isNew!, {
        runs: opts.boostRuns ?? 10, temperature: opts.boostTemperature ?? 0.8, onProgress: s.tick,
      });
      s.stop();
    });
  }

  if (m.has('efficiency')) {
    const fi = res.metrics.fertility_input!;
    const fo = fi.original?.pt;
    const fn = fi.pt;
    if (fo === undefined || fn === undefined) throw new Error('--metrics efficiency needs --pt and --encode-with');
    const boost = res.metrics.fertility_boost!.greedy;
    res.metrics.efficiency_gain = { label: EFFICIENCY_GAIN_LABEL, value: efficiencyGain(fo, fn, boost), fertility_original: fo, fertility_new: fn, fertility_boost: boost };
  }

  if (m.has('new-token-rank')) {
    if (!setup.isNew || !setup.newTokenOriginalIds) throw new Error('--metrics new-token-rank needs the original tokenizer: pass --encode-with or --original <original model dir>');
    const text = needText('new-token-rank', 'pt');
    await timed('new_token_rank', async () => {
      const s = stage('new-token rank');
      res.metrics.new_token_rank = await newTokenRank(setup.engine, (t) => setup.modelCodec.encodeBatch(t), setup.isNew!, await setup.newTokenOriginalIds!(), text, {
        probes: opts.rankProbes, onProgress: s.tick,
        base: setup.originalLastLogits ? { lastLogits: setup.originalLastLogits } : undefined,
      });
      s.stop();
    });
  }

  if (m.has('fertility-output')) {
    const text = needText('fertility-output', 'pt');
    await timed('fertility_output', async () => {
      const s = stage('fertility-output');
      res.metrics.fertility_output = await fertilityOutput(setup.engine, setup.inputCodec, linesOf(text, opts.outputTexts ?? 20).map((l) => l.slice(0, 300)), { onProgress: s.tick });
      s.stop();
    });
  }

  if (m.has('decode-speed') || m.has('repetition')) {
    const text = needText('decode-speed', 'pt');
    await timed('decode_speed', async () => {
      const prompts = promptsFromText(text, opts.genPrompts ?? 16);
      const maxNew = opts.genTokens ?? 48;
      const gen = setup.generate ?? (async (p: string, n: number) => {
        const ids = await setup.engine.generate(await setup.inputCodec.encode(p), { maxNewTokens: n, temperature: 0, eosIds: setup.eosIds });
        return { ids, text: await setup.modelCodec.decode(ids) };
      });
      const s1 = stage('decode (model under evaluation)');
      const ext = await measureDecode(prompts, (p) => gen(p, maxNew), s1.tick);
      s1.stop();
      let orig: Awaited<ReturnType<typeof measureDecode>> | undefined;
      if (setup.originalGenerate) {
        const s2 = stage('decode (original model)');
        orig = await measureDecode(prompts, (p) => setup.originalGenerate!(p, maxNew), s2.tick);
        s2.stop();
      }
      const strip = (r: typeof ext) => { const { generations: _g, ...rest } = r; return rest; };
      if (m.has('decode-speed')) {
        res.metrics.decode_speed = { extended: strip(ext), ...(orig ? { original: strip(orig), speedup_chars_per_step: ext.chars_per_step / orig.chars_per_step } : {}) };
      }
      if (m.has('repetition')) res.metrics.repetition = { extended: ext.repetition, ...(orig ? { original: orig.repetition } : {}) };
    });
  }

  for (const b of opts.bench) {
    const file = opts.benchFiles[b];
    if (!file) throw new Error(`--bench ${b}: no file given (use --${b}-file <path>)`);
    await timed(`bench_${b}`, async () => {
      const s = stage(`bench ${b}`);
      try {
        if (b === 'calamept') {
          let rows = await readCalame(file);
          if (opts.calameFilter) rows = rows.filter(opts.calameFilter);
          res.benchmarks.calamept = await runCalame(setup.engine, setup.inputCodec, rows, { eosIds: setup.eosIds, logLikelihood: opts.calameLogLikelihood ?? false, onProgress: s.tick });
        } else if (b === 'mmlu') {
          res.benchmarks.mmlu = await runMmlu(setup.engine, setup.inputCodec, await readMmlu(file, 'test', opts.mmluSubjects), { onProgress: s.tick });
        } else if (b === 'boolq-en' || b === 'copa-en') {
          res.benchmarks[b] = await runChoices(setup.engine, setup.inputCodec, await readQueryChoices(file, b), { onProgress: s.tick });
        } else {
          res.benchmarks[b] = await runChoices(setup.engine, setup.inputCodec, await readExtraGlue(b, file), { onProgress: s.tick });
        }
      } finally { s.stop(); }
    });
  }
  return res;
}

export function defaultBenchFiles(assetsDir: string): BenchFiles {
  return {
    calamept: path.join(assetsDir, 'bench', 'calamept.jsonl'),
    mmlu: path.join(assetsDir, 'bench', 'mmlu'),
    'boolq-en': path.join(assetsDir, 'bench', 'en-boolq.jsonl'),
    'copa-en': path.join(assetsDir, 'bench', 'en-copa.jsonl'),
  };
}
