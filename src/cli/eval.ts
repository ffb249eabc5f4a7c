// `hack-tokenizer eval`: metrics and benchmarks of one model, written to results.json.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import * as path from 'node:path';
import { HackError } from '../io/errors.ts';
import { checkOutput, writeOutputFile, writtenBy } from '../io/output.ts';
import { readTextFile } from '../io/text.ts';
import {
  BENCHMARKS, BENCH_REGISTRY, METRICS, METRIC_REGISTRY, checkBenchFiles, checkNeeds, defaultBenchFiles, evaluate, needsOriginalEngine, parseList,
  type BenchFiles, type EvalOptions,
} from '../eval/evaluate.ts';
import { loadSetup } from '../eval/setup.ts';
import { textPrefix } from '../io/text.ts';
import { formatResults } from '../eval/summary.ts';
import type { Lang } from '../eval/results.ts';
import { progressBar, info } from './progress.ts';
import { ASSETS_DIR } from './assets-dir.ts';
import { resolveModelForCli } from './download.ts';
import {
  ALLOW_INVALID_UTF8, EN, ENCODE_WITH, FORCE, MAX_BYTES, MODEL, ORIGINAL, OUT, PT, THREADS, command, type OptionSpec, type OptionValues,
} from './options.ts';

/** A held-out file (strict UTF-8), optionally cut to its first `maxBytes` at a line end. */
export async function readHeldOut(option: Lang, file: string, maxBytes?: number, allowInvalidUtf8 = false): Promise<{ file: string; text: string }> {
  const text = await readTextFile(file, { option, allowInvalidUtf8 });
  return { file: path.resolve(file), text: textPrefix(text, maxBytes) };
}

export const CALAME_ROWS: Record<string, ((r: { source: string }) => boolean) | undefined> = {
  all: undefined,
  handwritten: (r) => r.source === 'handwritten',
  generated: (r) => r.source !== 'handwritten',
};

export function stageBars(label: string) {
  const bar = progressBar(label, 0);
  let started = false;
  return {
    tick: (done: number, total: number) => { if (!started) { bar.setTotal(total); started = true; } bar.update(done); },
    stop: () => bar.stop(),
  };
}

const defaults = defaultBenchFiles(ASSETS_DIR);

/** `--original` and `--encode-with`: one name for the original model; the input mode as a choice. */
export const ORIGINAL_OPTIONS: OptionSpec[] = [
  ORIGINAL(),
  ENCODE_WITH,
];

/**
 * The original model and input mode from checked values. `--encode-with <dir>` (before 0.2 it named the
 * original model) still works for one release: it means `--original <dir> --encode-with original`.
 */
export function originalOf(o: OptionValues, note = info): { original?: string; encodeWith: 'model' | 'original' } {
  let original = o.original as string | undefined;
  let mode = o.encodeWith as string;
  if (mode !== 'model' && mode !== 'original') {
    if (!mode.includes('/') && !existsSync(mode)) throw new HackError('BAD_OPTION_VALUE', `${mode}: expected one of model, original`, { option: 'encodeWith' });
    if (!existsSync(mode)) throw new HackError('NO_SUCH_MODEL', 'model directory not found (the old form --encode-with <dir> takes a local directory; use --original for Hub ids)', { option: 'encodeWith', file: mode });
    if (original !== undefined && original !== mode) throw new HackError('BAD_OPTION', `names a model (${mode}) and --original names another (${original})`, { option: 'encodeWith' });
    note(`note: --encode-with <dir> is now --original <dir> --encode-with original (the old form works for one release)`);
    original = mode;
    mode = 'original';
  }
  if (mode === 'original' && original === undefined) throw new HackError('MISSING_OPTION', 'missing: {opt:encodeWith} original needs {opt:original} <original model dir>', { option: 'original' });
  return { original, encodeWith: mode as 'model' | 'original' };
}

const EVAL_OPTIONS: OptionSpec[] = [
  MODEL('model directory or Hugging Face repo id to evaluate, usually an extended model'),
  ...ORIGINAL_OPTIONS,
  { key: 'metrics', kind: 'list', doc: `comma-separated, or all: ${METRIC_REGISTRY.map((m) => m.name).join(', ')}` },
  { key: 'bench', kind: 'list', doc: `comma-separated, or all: ${BENCH_REGISTRY.map((b) => b.name).join(', ')}` },
  PT(), EN(), MAX_BYTES, ALLOW_INVALID_UTF8,
  { key: 'calameptRows', kind: 'choice', choices: ['all', 'handwritten', 'generated'], default: 'all', doc: 'CalamePT rows' },
  ...BENCH_REGISTRY.map((b): OptionSpec => ({
    key: b.fileOption, kind: 'string', arg: b.fileOption.endsWith('Dir') ? '<dir>' : '<file>', doc: b.fileDoc,
    ...(b.defaultFile ? { default: defaults[b.name], defaultText: `assets/${b.defaultFile}` } : {}),
  })),
  { key: 'calameptLl', kind: 'bool', doc: 'CalamePT: also the log-likelihood variant (is the gold word the greedy continuation, teacher-forced)' },
  { key: 'mmluSubjects', kind: 'list', doc: 'MMLU subjects', defaultText: 'all 57' },
  { key: 'boostTexts', kind: 'int', min: 1, default: 100, doc: 'FertilityBoost: number of PT paragraphs' },
  { key: 'boostRuns', kind: 'int', min: 1, default: 10, doc: 'FertilityBoost: runs at T = 0.8' },
  { key: 'rankProbes', kind: 'int', min: 1, default: 1000, doc: 'new-token-rank: first uses of new tokens sampled from --pt' },
  THREADS,
  { key: 'precision', kind: 'choice', choices: ['float32', 'int8'], default: 'float32', doc: 'float32 (exact) or int8 (decoder linear layers quantized per column: ~2x faster prefill on CPU, approximate; recorded in the results)' },
  OUT('<results.json>', 'results.json to write'),
  FORCE,
];

export function register(program: Command): void {
  command(program, 'eval', 'Evaluate a model: input fertility, bits per byte, FertilityBoost/Output, decode speed, benchmarks (CalamePT, MMLU, BoolQ, COPA, extraGLUE); writes results.json', EVAL_OPTIONS, async (o) => {
    const metrics = parseList('metrics', o.metrics as string[] | undefined, METRICS);
    const bench = parseList('bench', o.bench as string[] | undefined, BENCHMARKS);
    if (metrics.length === 0 && bench.length === 0) throw new HackError('MISSING_OPTION', 'missing: nothing to do, pass {opt:metrics} and/or {opt:bench}', { option: 'metrics' });
    const { original, encodeWith } = originalOf(o);
    const maxBytes = o.maxBytes as number | undefined;
    const benchFiles: BenchFiles = {};
    for (const b of BENCH_REGISTRY) if (o[b.fileOption] !== undefined) benchFiles[b.name] = o[b.fileOption] as string;
    // every check before the model is loaded: texts the metrics need, benchmark files, the output
    const langs = (['pt', 'en'] as const).filter((l) => o[l] !== undefined);
    checkNeeds(metrics, { texts: [...langs], original: original !== undefined });
    checkBenchFiles(bench, benchFiles);
    const inputs = [o.model as string, original, o.pt as string | undefined, o.en as string | undefined, ...bench.map((b) => benchFiles[b])];
    await checkOutput({ path: o.out as string, kind: 'file', command: 'eval', inputs, force: o.force as boolean });
    const texts: EvalOptions['texts'] = {};
    for (const l of langs) texts[l] = await readHeldOut(l, o[l] as string, maxBytes, o.allowInvalidUtf8 as boolean);
    const model = await resolveModelForCli(o.model as string);
    const orig = original ? await resolveModelForCli(original) : undefined;
    const precision = o.precision as 'float32' | 'int8';
    const { setup, engines } = await loadSetup(model, {
      encodeWith: encodeWith === 'original' ? orig : undefined, original: orig, threads: o.threads as number | undefined, precision,
      originalEngine: needsOriginalEngine(metrics),
    });
    const subsets: Record<string, string> = {};
    if (maxBytes) subsets.texts = `first ${maxBytes} bytes of each held-out file`;
    if (precision === 'int8') subsets.precision = 'int8: decoder linear layers quantized per output column (approximate logits)';
    if (o.calameptRows !== 'all') subsets.calamept = `${o.calameptRows} rows only`;
    try {
      const res = await evaluate(setup, {
        metrics, bench, texts, benchFiles, calameFilter: CALAME_ROWS[o.calameptRows as string], calameLogLikelihood: o.calameptLl === true,
        mmluSubjects: o.mmluSubjects as string[] | undefined,
        boostTexts: o.boostTexts as number, boostRuns: o.boostRuns as number, rankProbes: o.rankProbes as number, subsets,
        onStage: stageBars,
      });
      await writeOutputFile({ path: o.out as string, command: 'eval', inputs, force: o.force as boolean }, JSON.stringify({ written_by: writtenBy('eval'), ...res }, null, 1) + '\n', true);
      process.stdout.write(formatResults(res) + '\n');
      info(`wrote ${o.out}`);
    } finally {
      for (const e of engines) await e.dispose();
    }
  });
}
