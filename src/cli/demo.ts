// `hack-tokenizer demo`: the pipeline on the shipped demo model (grows as the issues land).
import type { Command } from 'commander';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelDir } from '../io/model-dir.ts';
import { formatSummary, summarizeModel } from '../io/summary.ts';

export const ASSETS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'assets');
export const DEMO_MODEL_DIR = path.join(ASSETS_DIR, 'models', 'tiny-en-llama');

export function register(program: Command): void {
  program
    .command('demo')
    .description('Run the pipeline on the shipped demo model (tiny-en-llama) and print a summary')
    .option('--model <dir>', 'model directory to use instead of the shipped demo model', DEMO_MODEL_DIR)
    .action(async (opts: { model: string }) => {
      const m = await loadModelDir(opts.model);
      process.stdout.write(formatSummary(summarizeModel(m)) + '\n');
    });
}
