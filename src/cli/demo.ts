// `hack-tokenizer demo`: `adapt` on the shipped demo model and PT corpus with a small, documented
// budget (a few minutes on 2 cores, tuning included): learn tokens, extend, tune the new rows, evaluate
// before and after on subsets of the shipped held-out files, write runs/demo (the adapted model,
// results, report.html) and print the before/after table.
import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ASSETS_DIR, DEMO_MODEL_DIR } from './assets-dir.ts';
import { ADAPT_OPTIONS, runAdapt } from './adapt.ts';
import { command, type OptionSpec } from './options.ts';

export { ASSETS_DIR, DEMO_MODEL_DIR };

/** The demo's settings: adapt's options with the shipped inputs and a small budget as defaults. */
export const DEMO_DEFAULTS: Record<string, Pick<OptionSpec, 'default' | 'defaultText'>> = {
  model: { default: DEMO_MODEL_DIR, defaultText: 'assets/models/tiny-en-llama' },
  corpus: { default: [path.join(ASSETS_DIR, 'corpora', 'pt-pt-parliament-train.txt.gz')], defaultText: 'assets/corpora/pt-pt-parliament-train.txt.gz' },
  pt: { default: path.join(ASSETS_DIR, 'corpora', 'pt-pt-parliament-heldout.txt'), defaultText: 'assets/corpora/pt-pt-parliament-heldout.txt' },
  en: { default: path.join(ASSETS_DIR, 'corpora', 'en-books-heldout.txt'), defaultText: 'assets/corpora/en-books-heldout.txt' },
  numTokens: { default: 1000 },
  budget: { default: 2 },
  maxBytes: { default: 100_000, defaultText: '100k' },
  boostTexts: { default: 20 },
  boostRuns: { default: 1 },
  out: { default: path.join('runs', 'demo') },
};

const DEMO_OPTIONS: OptionSpec[] = [
  ...ADAPT_OPTIONS.map((s) => (DEMO_DEFAULTS[s.key] ? { ...s, required: false, ...DEMO_DEFAULTS[s.key] } : s)),
  { key: 'fresh', kind: 'bool', doc: 'start over (otherwise finished cells of an earlier run are reused when their settings and inputs match)' },
];

export function register(program: Command): void {
  command(program, 'demo', 'adapt on the shipped demo model and PT corpus with a small budget (about 5 minutes on 2 cores, tuning included); writes runs/demo/model and report.html',
    DEMO_OPTIONS, async (o) => {
      if (o.fresh) await fsp.rm(path.join(o.out as string, 'cells'), { recursive: true, force: true });
      const subsets = `Demo subsets: the first ${o.maxBytes} bytes of each held-out file (bits per byte, fertility), ` +
        `${o.boostTexts} PT paragraphs for FertilityBoost (${o.boostRuns} run(s) at T = 0.8). \`hack-tokenizer adapt\`, \`experiment\` and \`eval\` run larger sets.`;
      const r = await runAdapt(o, { title: `hack-tokenizer demo: ${path.basename(o.model as string)}`, command: 'demo' });
      process.stdout.write(r.table + '\n\n');
      process.stdout.write(`${subsets}\n`);
      process.stdout.write(`adapted model: ${r.model}\nreport: ${path.join(o.out as string, 'report.html')} (${r.summary}) in ${r.seconds.toFixed(1)} s\n`);
    });
}
