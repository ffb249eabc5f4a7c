// `hack-tokenizer info --model <dir|repo id>`: what a model directory holds.
import type { Command } from 'commander';
import { resolveModelForCli } from './download.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { formatSummary, summarizeModel } from '../io/summary.ts';
import { snakeKeys } from '../io/json-keys.ts';
import { MODEL, command } from './options.ts';

export function register(program: Command): void {
  command(program, 'info', 'Summarize a model: architecture, parameters, vocabulary, tied/untied embeddings, tokenizer', [
    MODEL(),
    { key: 'json', kind: 'bool', doc: 'print the summary as JSON' },
  ], async (o) => {
    const dir = await resolveModelForCli(o.model as string);
    const s = summarizeModel(await loadModelDir(dir));
    process.stdout.write((o.json ? JSON.stringify(snakeKeys(s), null, 2) : formatSummary(s)) + '\n');
  });
}
