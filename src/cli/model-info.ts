// `hack-tokenizer info --model <dir|repo id>`: what a model directory holds.
import type { Command } from 'commander';
import { resolveModelForCli } from './download.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { formatSummary, summarizeModel } from '../io/summary.ts';

export function register(program: Command): void {
  program
    .command('info')
    .description('Summarize a model: architecture, parameters, vocabulary, tied/untied embeddings, tokenizer')
    .requiredOption('--model <dir|repo-id>', 'model directory or Hugging Face repo id')
    .option('--json', 'print the summary as JSON')
    .action(async (opts: { model: string; json?: boolean }) => {
      const dir = await resolveModelForCli(opts.model);
      const s = summarizeModel(await loadModelDir(dir));
      process.stdout.write((opts.json ? JSON.stringify(s, null, 2) : formatSummary(s)) + '\n');
    });
}
