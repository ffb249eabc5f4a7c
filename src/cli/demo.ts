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

import { ASSETS_DIR, DEMO_MODEL_DIR } from './assets-dir.ts';
import { runExperiment } from './experiment.ts';
import { numberFlag, requiredNumberFlag } from './flags.ts';

export { ASSETS_DIR, DEMO_MODEL_DIR };

interface DemoFlags {
  model: string; corpus: string; pt: string; en: string; out: string; numTokens: string; inits: string;
  maxBytes: string; boostTexts: string; boostRuns: string; threads?: string; fresh?: boolean;
}

const posInt = { int: true, min: 1 };
/** A comma-separated list of positive integers. */
const intList = (flag: string, v: string) => v.split(',').map((x) => requiredNumberFlag(flag, x.trim(), posInt));

export function register(program: Command): void {
  program
    .command('demo')
    .description('Run the whole pipeline on the shipped demo model and PT corpus (subsets, a few minutes on 2 cores); writes runs/demo/report.html')
    .option('--model <dir>', 'model directory to use instead of the shipped demo model', DEMO_MODEL_DIR)
    .option('--corpus <file>', 'corpus to learn tokens from', path.join(ASSETS_DIR, 'corpora', 'pt-pt-parliament-train.txt.gz'))
    .option('--pt <file>', 'PT held-out text', path.join(ASSETS_DIR, 'corpora', 'pt-pt-parliament-heldout.txt'))
    .option('--en <file>', 'EN held-out text', path.join(ASSETS_DIR, 'corpora', 'en-books-heldout.txt'))
    .option('--num-tokens <list>', 'numbers of new tokens', '1000,5000')
    .option('--inits <list>', 'init methods', 'mean,weighted_drop(2)')
    .option('--max-bytes <n>', 'bytes of each held-out file evaluated', '100000')
    .option('--boost-texts <n>', 'PT paragraphs for FertilityBoost', '50')
    .option('--boost-runs <n>', 'FertilityBoost runs at T = 0.8', '10')
    .option('--threads <n>', 'inference threads')
    .option('--fresh', 'start over (otherwise finished cells of an earlier run are reused)')
    .option('--out <dir>', 'output directory', path.join('runs', 'demo'))
    .action(async (o: DemoFlags) => {
      const t0 = performance.now();
      const maxBytes = requiredNumberFlag('--max-bytes', o.maxBytes, posInt);
      const cfg: GridConfig = {
        models: [path.resolve(o.model)], corpus: [path.resolve(o.corpus)], numTokens: intList('--num-tokens', o.numTokens),
        methods: ['continue'], modes: ['merges'], inits: o.inits.split(',').map((s) => s.trim()).filter(Boolean),
        stages: ['BASELINE', 'INITIALIZED_NO_TRAINING'], inputs: ['extended'],
        metrics: ['fertility', 'compression', 'bpb', 'fertility-boost', 'efficiency'], bench: ['calamept'],
        pt: path.resolve(o.pt), en: path.resolve(o.en), maxBytes, calameptRows: 'handwritten',
        boostTexts: requiredNumberFlag('--boost-texts', o.boostTexts, posInt), boostRuns: requiredNumberFlag('--boost-runs', o.boostRuns, posInt),
        threads: numberFlag('--threads', o.threads, posInt),
      };
      // flags are checked above, before any work; then the model is loaded and summarized
      const m = await loadModelDir(o.model);
      process.stdout.write(formatSummary(summarizeModel(m)) + '\n\n');
      const notes = [
        `Demo subsets: the first ${maxBytes} bytes of each held-out file (bits per byte, fertility), the 406 handwritten CalamePT rows, ` +
          `${cfg.boostTexts} PT paragraphs for FertilityBoost (${cfg.boostRuns} runs at T = 0.8). \`hack-tokenizer experiment\` and \`eval\` run the full sets.`,
        'Tokens: continued BPE (merges mode) learned once for the largest N; each N takes the first N. Extended models read their input through the extended tokenizer.',
      ];
      for (const n of notes) info(n);
      if (o.fresh) await fsp.rm(path.join(o.out, 'cells'), { recursive: true, force: true });
      // the report lists the subsets itself, from the results (notes[0] would say them twice)
      const r = await runExperiment(cfg, o.out, `hack-tokenizer demo: ${path.basename(o.model)}`, notes.slice(1));
      process.stdout.write(r.table + '\n\n');
      process.stdout.write(`${notes[0]}\n`);
      process.stdout.write(`report: ${path.join(o.out, 'report.html')} (${r.ran} cell(s) run, ${r.skipped} reused) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    });
}
