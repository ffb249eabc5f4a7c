// `hack-tokenizer experiment`: run an experiment grid (resumable) and write results + report.
import type { Command } from 'commander';
import * as path from 'node:path';
import { readGridConfig, runGrid, writeGridOutputs, type GridConfig } from '../eval/grid.ts';
import { pipelineSteps } from '../eval/pipeline.ts';
import { defaultBenchFiles } from '../eval/evaluate.ts';
import { formatTable } from '../eval/table.ts';
import { info } from './progress.ts';
import { stageBars } from './eval.ts';
import { ASSETS_DIR } from './assets-dir.ts';

export async function runExperiment(cfg: GridConfig, out: string, title: string, notes: string[] = []): Promise<{ table: string; files: string[]; ran: number; skipped: number }> {
  const steps = pipelineSteps(cfg, { onStage: stageBars, benchFiles: defaultBenchFiles(ASSETS_DIR) });
  const { records, ran, skipped } = await runGrid(cfg, out, steps, {
    cell: (i, total, meta, status) => { if (status !== 'done') info(`[cell ${i + 1}/${total}] ${meta.id}${status === 'skipped' ? ': already done, skipped' : ''}`); },
  });
  const { rows, files } = await writeGridOutputs(out, cfg, records, title, notes);
  return { table: formatTable(rows), files, ran, skipped };
}

export function register(program: Command): void {
  program
    .command('experiment')
    .description('Run an experiment grid (models x num_tokens x method x mode x init x stage x input); resumable; writes results.csv, results.json and report.html')
    .requiredOption('--config <file>', 'grid config (JSON or YAML): models, corpus, numTokens, methods, modes, inits, stages, inputs, metrics, bench, pt, en, ...')
    .requiredOption('--out <dir>', 'output directory (cells/ holds one JSON per finished cell; rerun to resume)')
    .action(async (o: { config: string; out: string }) => {
      const cfg = await readGridConfig(o.config);
      const r = await runExperiment(cfg, o.out, `hack-tokenizer experiment: ${path.basename(o.config)}`);
      process.stdout.write(r.table + '\n');
      info(`${r.ran} cell(s) run, ${r.skipped} already done; wrote ${r.files.join(', ')}`);
    });
}
