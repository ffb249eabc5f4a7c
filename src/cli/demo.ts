// `hack-tokenizer demo`: the whole pipeline on the shipped demo model and PT corpus — learn 1000
// and 5000 tokens, extend with two init methods, evaluate fertility, bits per byte (PT and EN),
// CalamePT and FertilityBoost on documented subsets, write runs/demo/report.html, print a table.
import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadModelDir } from '../io/model-dir.ts';
import { formatSummary, summarizeModel } from '../io/summary.ts';
import type { GridConfig } from '../eval/grid.ts';
import { info } from './progress.ts';
import { parseInitMethod } from '../embeddings/init-methods.ts';
import { ASSETS_DIR, DEMO_MODEL_DIR } from './assets-dir.ts';
import { runExperiment, runSummary } from './experiment.ts';
import { resolveModelForCli } from './download.ts';
import { CORPUS, EN, MAX_BYTES, MODEL, PT, THREADS, command } from './options.ts';

export { ASSETS_DIR, DEMO_MODEL_DIR };

export function register(program: Command): void {
  command(program, 'demo', 'Run the whole pipeline on the shipped demo model and PT corpus (subsets, a few minutes on 2 cores); writes runs/demo/report.html', [
    { ...MODEL('model directory or Hub id to use instead of the shipped demo model', false), default: DEMO_MODEL_DIR, defaultText: 'assets/models/tiny-en-llama' },
    { ...CORPUS('corpus to learn tokens from', false), default: [path.join(ASSETS_DIR, 'corpora', 'pt-pt-parliament-train.txt.gz')], defaultText: 'assets/corpora/pt-pt-parliament-train.txt.gz' },
    { ...PT('PT held-out text'), default: path.join(ASSETS_DIR, 'corpora', 'pt-pt-parliament-heldout.txt'), defaultText: 'assets/corpora/pt-pt-parliament-heldout.txt' },
    { ...EN('EN held-out text'), default: path.join(ASSETS_DIR, 'corpora', 'en-books-heldout.txt'), defaultText: 'assets/corpora/en-books-heldout.txt' },
    { key: 'numTokens', kind: 'list', intList: true, min: 1, default: '1000,5000', doc: 'numbers of new tokens' },
    { key: 'inits', kind: 'list', default: 'mean,weighted_drop(2)', doc: 'init methods' },
    { ...MAX_BYTES, default: 100000, doc: 'bytes of each held-out file evaluated' },
    { key: 'boostTexts', kind: 'int', min: 1, default: 50, doc: 'PT paragraphs for FertilityBoost' },
    { key: 'boostRuns', kind: 'int', min: 1, default: 10, doc: 'FertilityBoost runs at T = 0.8' },
    THREADS,
    { key: 'fresh', kind: 'bool', doc: 'start over (otherwise finished cells of an earlier run are reused when their settings and inputs match)' },
    { key: 'out', kind: 'string', arg: '<dir>', default: path.join('runs', 'demo'), doc: 'output directory' },
  ], async (o) => {
    const t0 = performance.now();
    const maxBytes = o.maxBytes as number;
    const cfg: GridConfig = {
      models: [await resolveModelForCli(o.model as string)], corpus: (o.corpus as string[]).map((c) => path.resolve(c)), numTokens: o.numTokens as number[],
      methods: ['continue'], modes: ['merges'], inits: o.inits as string[],
      stages: ['BASELINE', 'INITIALIZED_NO_TRAINING'], inputs: ['extended'],
      metrics: ['fertility', 'compression', 'bpb', 'fertility-boost', 'efficiency'], bench: ['calamept'],
      pt: path.resolve(o.pt as string), en: path.resolve(o.en as string), maxBytes, calameptRows: 'handwritten',
      boostTexts: o.boostTexts as number, boostRuns: o.boostRuns as number, threads: o.threads as number | undefined,
    };
    for (const init of cfg.inits) parseInitMethod(init); // strict, before any work
    // flags are checked above, before any work; then the model is loaded and summarized
    const m = await loadModelDir(cfg.models[0]);
    process.stdout.write(formatSummary(summarizeModel(m)) + '\n\n');
    const notes = [
      `Demo subsets: the first ${maxBytes} bytes of each held-out file (bits per byte, fertility), the 406 handwritten CalamePT rows, ` +
        `${cfg.boostTexts} PT paragraphs for FertilityBoost (${cfg.boostRuns} runs at T = 0.8). \`hack-tokenizer experiment\` and \`eval\` run the full sets.`,
      'Tokens: continued BPE (merges mode) learned once for the largest N; each N takes the first N. Extended models read their input through the extended tokenizer.',
    ];
    for (const n of notes) info(n);
    if (o.fresh) await fsp.rm(path.join(o.out as string, 'cells'), { recursive: true, force: true });
    // the report lists the subsets itself, from the results (notes[0] would say them twice)
    const r = await runExperiment(cfg, o.out as string, `hack-tokenizer demo: ${path.basename(o.model as string)}`, notes.slice(1), 'demo');
    process.stdout.write(r.table + '\n\n');
    process.stdout.write(`${notes[0]}\n`);
    process.stdout.write(`report: ${path.join(o.out as string, 'report.html')} (${runSummary(r)}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  });
}
