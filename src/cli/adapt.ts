// `hack-tokenizer adapt`: one command from a model and a corpus to an adapted model and a report —
// learn tokens (continued BPE, merges mode), extend (mean init), tune the new rows (TypeScript
// engine, a recipe sized to --budget), evaluate before and after, write <out>/model (a Hugging Face
// directory), results.json/csv and report.html. It is an experiment grid of three cells (the original
// model, the extended model untuned, tuned), so it resumes like `experiment`.
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { cutHeldOut } from '../io/heldout.ts';
import { OUTPUT_MARKER, openResumableDir, writeOutputDir } from '../io/output.ts';
import { formatSize } from '../io/size.ts';
import { formatSummary, summarizeModel } from '../io/summary.ts';
import { checkTextFiles } from '../io/text.ts';
import { DEFAULT_TUNE, type GridConfig } from '../eval/grid.ts';
import { checkPython } from '../tune/torch-engine.ts';
import { resolveModelForCli } from './download.ts';
import { runExperiment, runSummary } from './experiment.ts';
import { info } from './progress.ts';
import { CORPUS, EN, MAX_BYTES, MODEL, NUM_TOKENS, OUT, PT, THREADS, command, type OptionSpec, type OptionValues } from './options.ts';

/** Measured on the 2-core machine (README, "Tuning the new rows"): corpus bytes per second of each phase. */
const OUTPUT_PHASE_BYTES_PER_S = 6_000;
const INPUT_PHASE_BYTES_PER_S = 1_700;

export interface AdaptRecipe {
  engine: 'ts' | 'torch';
  /** The `tune` options (tune/options.ts keys). */
  tune: Record<string, unknown>;
  /** What the recipe is, in one line (printed and in the report's notes). */
  label: string;
}

/** The output phase at 6 passes (short budgets): the hidden-state cache is computed once, the passes are cheap. */
const OUTPUT_PHASE_6_PASSES_BYTES_PER_S = 4_000;
/** From this budget on, self-replay is sampled and the long-budget recipe runs (BENCHMARKS.md, "The tuning comparison with replay"). */
const LONG_BUDGET_S = 600;
/** Self-replay sampling from the original model (BENCHMARKS.md: 1.25 MB in 464 s, 32 x 256 tokens per batch). */
const REPLAY_SAMPLE_BYTES_PER_S = 2_700;
const REPLAY_RATIO = 0.25;

/**
 * The tuning recipe for a budget of tuning seconds: output rows, then output + input rows together
 * (the best measured recipe of the TypeScript engine).
 * - From 10 minutes: about 40% of the time on the output phase (2 passes) and the replay sample it
 *   needs, 60% on the input phase, with self-replay (the original model's own samples) against
 *   forgetting English.
 * - Below: 6 output passes on about 60% of the time and a short input phase at a lower learning
 *   rate (1e-3) on 30%. Measured on the demo (BENCHMARKS.md, "The demo's recipe"): with tied rows, a
 *   short input phase at 3e-3 pulls the new rows away from where decoding picks them (FertilityBoost
 *   T=0 14%), while this mix keeps it above 20% at a smaller bits-per-byte gain.
 */
export function adaptRecipe(tuneSeconds: number, engine: 'ts' | 'torch' = 'ts'): AdaptRecipe {
  checkBudget(tuneSeconds, engine);
  if (engine === 'torch') return torchRecipe(tuneSeconds);
  const long = tuneSeconds >= LONG_BUDGET_S;
  // long: the replay sample (REPLAY_RATIO x the larger phase's text, the output phase's) is paid from the output phase's 40%
  const outputBytesPerS = long ? 1 / (1 / OUTPUT_PHASE_BYTES_PER_S + REPLAY_RATIO / REPLAY_SAMPLE_BYTES_PER_S) : OUTPUT_PHASE_6_PASSES_BYTES_PER_S;
  const corpusBytes = Math.max(50_000, Math.round((long ? 0.4 : 0.6) * tuneSeconds * outputBytesPerS));
  const inputCorpusBytes = Math.max(20_000, Math.round(long ? (0.6 * tuneSeconds * INPUT_PHASE_BYTES_PER_S) / 1.25 : 0.3 * tuneSeconds * INPUT_PHASE_BYTES_PER_S));
  const tune: Record<string, unknown> = long
    ? { rows: 'both', corpusBytes, inputCorpusBytes, epochs: 2, inputEpochs: 1, replay: 'self', replayRatio: REPLAY_RATIO }
    : { rows: 'both', corpusBytes, inputCorpusBytes, epochs: 6, inputEpochs: 1, inputLr: 1e-3 };
  return {
    engine: 'ts', tune,
    label: `tune (TypeScript engine): output rows on ${formatSize(corpusBytes)} (${tune.epochs} passes), then input + output rows on ${formatSize(inputCorpusBytes)}` +
      (long ? `, with self-replay (ratio ${REPLAY_RATIO}: ${formatSize(Math.ceil(REPLAY_RATIO * corpusBytes))} sampled from the original model first)` : ' (input lr 1e-3)'),
  };
}

/** Measured on the 2-core machine (BENCHMARKS.md, "PyTorch engine"): tokens per second of the torch `rows` recipe. */
const TORCH_ROWS_TOKENS_PER_S = 500;
/** PT bytes per original-tokenizer token (demo model: fertility 2.78 tokens per word of ~6.3 bytes), rounded up. */
const BYTES_PER_TOKEN = 2.5;

/**
 * The seconds one tuning step of each phase takes at the measured speeds (ts: one output step of
 * 2048 positions and one input step of 8 x 128 ids; torch: one step of 8 x 256 tokens); a budget
 * below it cannot train anything and is refused (larger small budgets get the smallest recipe).
 */
export function minBudgetSeconds(engine: 'ts' | 'torch'): number {
  if (engine === 'torch') return (8 * 256) / TORCH_ROWS_TOKENS_PER_S;
  // the short-budget shares (adaptRecipe): 60% output phase, 30% input phase
  return Math.max((2048 * BYTES_PER_TOKEN) / (0.6 * OUTPUT_PHASE_6_PASSES_BYTES_PER_S), (8 * 128 * BYTES_PER_TOKEN) / (0.3 * INPUT_PHASE_BYTES_PER_S));
}

function checkBudget(tuneSeconds: number, engine: 'ts' | 'torch'): void {
  const min = minBudgetSeconds(engine);
  if (tuneSeconds < min) {
    throw new HackError('BUDGET_TOO_SMALL', `${+(tuneSeconds / 60).toPrecision(3)} min is too small for one tuning step of the ${engine} engine ` +
      `(about ${min.toFixed(1)} s at the measured speeds): use at least ${Math.ceil((min / 60) * 100) / 100}`, { option: 'budget' });
  }
}

/**
 * The PyTorch engine's recipe: the new tokens' input and output rows (`rows`: every old row stays
 * bit-identical) trained as a language model through the extended tokenizer, as many tokens as the
 * budget affords at the measured speed, on about 5 bytes of corpus per token.
 */
function torchRecipe(tuneSeconds: number): AdaptRecipe {
  const maxTokens = Math.max(4_096, Math.round(tuneSeconds * TORCH_ROWS_TOKENS_PER_S));
  const corpusBytes = Math.max(100_000, maxTokens * 5);
  return {
    engine: 'torch', tune: { engine: 'torch', recipe: 'rows', maxTokens, corpusBytes, seqLen: 256, batchSize: 8 },
    label: `tune (PyTorch engine, recipe rows): ${maxTokens} tokens of 256-token windows, 8 per step, from ${formatSize(corpusBytes)} of the corpus`,
  };
}

export const ADAPT_OPTIONS: OptionSpec[] = [
  MODEL('the model to adapt: directory or Hugging Face repo id'),
  CORPUS('target-language text (plain or .gz, one paragraph per line): tokens are learned and the new rows tuned on it'),
  { ...NUM_TOKENS('number of new tokens'), default: 1000 },
  PT('Portuguese (target-language) held-out text for the before/after evaluation; without it the first --max-bytes of the corpus (whole lines) are cut off as held-out text and the rest is trained on (written to <out>/heldout/, never overlapping)'),
  EN('English held-out text (what the model must keep doing); without it only the target language is measured'),
  { key: 'engine', kind: 'choice', choices: ['ts', 'torch'], default: 'ts', doc: 'training engine: ts (TypeScript, no Python needed) or torch (PyTorch: npm run setup:python)' },
  { key: 'budget', kind: 'number', above: 0, default: 30, doc: 'minutes of tuning (sizes the recipe: how much text each phase trains on)' },
  { ...MAX_BYTES, default: 200_000, defaultText: '200k', doc: 'bytes of each held-out file evaluated (cut at a line end; a documented subset)' },
  { key: 'boostTexts', kind: 'int', min: 1, default: 50, doc: 'PT paragraphs for FertilityBoost' },
  { key: 'boostRuns', kind: 'int', min: 1, default: 5, doc: 'FertilityBoost runs at T = 0.8' },
  { key: 'calamept', kind: 'bool', doc: 'also run CalamePT (handwritten rows) before and after' },
  THREADS,
  OUT('<dir>', 'output directory: model/ (the adapted model), results.json, results.csv, report.html; rerun to resume'),
];

export interface AdaptRun { table: string; model: string; summary: string; seconds: number }

/** The adapt job from checked option values (also the demo's). */
export async function runAdapt(o: OptionValues, opts: { title?: string; command?: string; notes?: string[] } = {}): Promise<AdaptRun> {
  const t0 = performance.now();
  let corpus = (o.corpus as string[]).map((c) => path.resolve(c));
  await checkTextFiles(corpus, 'corpus');
  if (o.pt) await checkTextFiles([o.pt as string], 'pt');
  if (o.en) await checkTextFiles([o.en as string], 'en');
  const recipe = adaptRecipe((o.budget as number) * 60, o.engine as 'ts' | 'torch');
  // Python and its pinned packages before any work
  if (recipe.engine === 'torch') checkPython();
  const model = await resolveModelForCli(o.model as string);
  const m = await loadModelDir(model);
  const out = o.out as string;
  let pt = o.pt ? path.resolve(o.pt as string) : undefined;
  const heldoutNotes: string[] = [];
  if (!pt) {
    // the output directory first (refused when foreign or an input), then the held-out cut inside it
    const existed = existsSync(out);
    await openResumableDir({ path: out, command: opts.command ?? 'adapt', inputs: [model, ...corpus, ...(o.en ? [o.en as string] : [])] });
    const split = await cutHeldOut(corpus, o.maxBytes as number, path.join(out, 'heldout')).catch(async (e) => {
      // nothing half-written: a corpus too small leaves no output behind
      await fsp.rm(existed ? path.join(out, 'heldout') : out, { recursive: true, force: true });
      throw e;
    });
    corpus = [split.train];
    pt = split.heldout;
    heldoutNotes.push(`Held-out PT text: the first ${split.heldoutLines} lines (${formatSize(split.heldoutBytes)}) of the corpus, cut off into ${path.relative(process.cwd(), split.heldout) || split.heldout}; ` +
      `tokens are learned and rows tuned on the other ${split.trainLines} lines (${formatSize(split.trainBytes)})${split.reused ? ' (the earlier cut, reused)' : ''}.`);
  }
  const cfg: GridConfig = {
    models: [model], corpus, numTokens: [o.numTokens as number],
    methods: ['continue'], modes: ['merges'], inits: ['mean'],
    stages: ['BASELINE', 'INITIALIZED_NO_TRAINING', 'INITIALIZED_WITH_TRAINING'], inputs: ['extended'],
    metrics: ['fertility', 'compression', 'bpb', 'fertility-boost', 'efficiency', 'decode-speed'], bench: o.calamept ? ['calamept'] : [],
    pt, en: o.en ? path.resolve(o.en as string) : undefined, maxBytes: o.maxBytes as number, calameptRows: 'handwritten',
    boostTexts: o.boostTexts as number, boostRuns: o.boostRuns as number, threads: o.threads as number | undefined,
    tune: [{ name: DEFAULT_TUNE, options: recipe.tune }],
  };
  process.stdout.write(formatSummary(summarizeModel(m)) + '\n\n');
  const notes = [
    ...(opts.notes ?? []),
    ...heldoutNotes,
    `adapt: ${o.numTokens} tokens by continued BPE (merges mode) on ${corpus.map((c) => path.basename(c)).join(', ')}, mean init; ${recipe.label}; budget ${o.budget} min.`,
  ];
  for (const n of notes) info(n);
  const inputs = [model, ...(o.corpus as string[]), o.pt as string | undefined, o.en as string | undefined].filter((x): x is string => !!x);
  const r = await runExperiment(cfg, out, opts.title ?? `hack-tokenizer adapt: ${path.basename(model)}`, notes, opts.command ?? 'adapt', inputs);
  // the tuned cell's model becomes <out>/model (a plain Hugging Face directory)
  const tuned = r.records.find((c) => c.meta.stage === 'INITIALIZED_WITH_TRAINING')?.results.model;
  if (!tuned) throw new HackError('NO_TUNED_MODEL', 'the run has no INITIALIZED_WITH_TRAINING cell', { file: path.join(out, 'results.json') });
  const dest = path.join(out, 'model');
  // through the output policy: temp + rename, replacing only adapt's own earlier model/
  await writeOutputDir({ path: dest, command: 'adapt', inputs, force: true }, (tmp) =>
    fsp.cp(tuned, tmp, { recursive: true, filter: (src) => path.basename(src) !== OUTPUT_MARKER }));
  return { table: r.table, model: dest, summary: runSummary(r), seconds: (performance.now() - t0) / 1000 };
}

export function register(program: Command): void {
  command(program, 'adapt', 'Adapt a model to a language in one command: learn tokens, extend, tune the new rows, evaluate before and after; writes <out>/model and report.html',
    ADAPT_OPTIONS, async (o) => {
      const r = await runAdapt(o);
      process.stdout.write(r.table + '\n\n');
      process.stdout.write(`adapted model: ${r.model}\nreport: ${path.join(o.out as string, 'report.html')} (${r.summary}) in ${r.seconds.toFixed(1)} s\n`);
    });
}
