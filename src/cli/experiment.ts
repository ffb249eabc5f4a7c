// `hack-tokenizer experiment`: run an experiment grid (resumable) and write results + report.
import type { Command } from 'commander';
import * as path from 'node:path';
import { openResumableDir } from '../io/output.ts';
import { readGridConfig, runGrid, writeGridOutputs, type CellRecord, type GridConfig } from '../eval/grid.ts';
import { pipelineSteps } from '../eval/pipeline.ts';
import { defaultBenchFiles } from '../eval/evaluate.ts';
import { formatTable } from '../eval/table.ts';
import { info } from './progress.ts';
import { stageBars } from './eval.ts';
import { ASSETS_DIR } from './assets-dir.ts';
import { OUT, command } from './options.ts';

export interface ExperimentRun { table: string; files: string[]; records: CellRecord[]; ran: number; skipped: number; invalidated: number; reasons: Record<string, number> }

/** Every input file of a grid: the output directory may not be, contain or lie inside any of them. */
export function gridInputs(cfg: GridConfig): string[] {
  const tune = (cfg.tune ?? []).flatMap((t) => [t.options.corpus, t.options.replay]).filter((x): x is string => typeof x === 'string' && x !== 'self');
  return [...cfg.models, ...cfg.corpus, cfg.pt, cfg.en, ...Object.values(cfg.benchFiles ?? {}), ...tune].filter((x): x is string => !!x);
}

/** `inputs`: the files the output must not overlap (default: the grid's; adapt's held-out cut lives inside its output). */
export async function runExperiment(cfg: GridConfig, out: string, title: string, notes: string[] = [], command = 'experiment', inputs = gridInputs(cfg)): Promise<ExperimentRun> {
  const { dir } = await openResumableDir({ path: out, command, inputs });
  const benchFiles = { ...defaultBenchFiles(ASSETS_DIR), ...(cfg.benchFiles ?? {}) };
  const steps = pipelineSteps(cfg, { onStage: stageBars, benchFiles });
  const { records, ran, skipped, invalidated, reasons } = await runGrid(cfg, dir, steps, {
    cell: (i, total, meta, status, why) => {
      if (status === 'skipped') info(`[cell ${i + 1}/${total}] ${meta.id}: finished earlier with the same settings and inputs, reused`);
      else if (status === 'running') info(`[cell ${i + 1}/${total}] ${meta.id}${why ? ` (rerun: ${why})` : ''}`);
    },
  }, benchFiles);
  const { rows, files } = await writeGridOutputs(dir, cfg, records, title, notes);
  return { table: formatTable(rows), files, records, ran, skipped, invalidated, reasons };
}

/** "3 cell(s) run (1 because maxBytes changed), 2 reused". */
export function runSummary(r: Pick<ExperimentRun, 'ran' | 'skipped' | 'invalidated' | 'reasons'>): string {
  const why = Object.entries(r.reasons).map(([k, n]) => `${k}: ${n}`).join('; ');
  return `${r.ran} cell(s) run${r.invalidated ? ` (${r.invalidated} rerun because ${why})` : ''}, ${r.skipped} reused`;
}

export function register(program: Command): void {
  command(program, 'experiment', 'Run an experiment grid (models x num_tokens x method x mode x init x stage x input); resumable; writes results.csv, results.json and report.html', [
    { key: 'config', kind: 'string', arg: '<file>', required: true, doc: 'grid config (JSON or YAML): models, corpus, numTokens, methods, modes, inits, stages, inputs, metrics, bench, benchFiles, pt, en, ...' },
    OUT('<dir>', 'output directory (cells/ holds one JSON per finished cell; rerun to resume: a cell is reused only when its settings and input files are unchanged)'),
  ], async (o) => {
    const cfg = await readGridConfig(o.config as string);
    const r = await runExperiment(cfg, o.out as string, `hack-tokenizer experiment: ${path.basename(o.config as string)}`);
    process.stdout.write(r.table + '\n');
    info(`${runSummary(r)}; wrote ${r.files.join(', ')}`);
  });
}
