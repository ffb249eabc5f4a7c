// `hack-tokenizer curves`: the held-out curves of one or more `tune --engine torch` runs (their tune.json
// `evals`) as a chart (curves.svg), a table (curves.md, also printed) and the points (curves.json).
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { checkOutput, writeOutputDir } from '../io/output.ts';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { renderSvg } from '../eval/chart-svg.ts';
import { CURVE_X, curveChartSpec, curveTable, readCurve, type CurveX } from '../eval/curves.ts';
import { FORCE, OUT, command, type OptionSpec } from './options.ts';
import { info } from './progress.ts';

export const CURVES_OPTIONS: OptionSpec[] = [
  { key: 'run', kind: 'files', arg: '<label=dir...>', required: true, doc: 'runs to draw: a label (without "=") and the output directory (or tune.json) of `tune --engine torch --eval-pt/--eval-en`, e.g. extended=runs/A' },
  { key: 'x', kind: 'choice', choices: CURVE_X, default: 'corpus-bytes', doc: 'the x axis: corpus text read (MB), training tokens, or training seconds' },
  { key: 'title', kind: 'string', arg: '<text>', doc: 'chart title' },
  OUT('<dir>', 'output directory: curves.svg, curves.md, curves.json'),
  FORCE,
];

export function register(program: Command): void {
  command(program, 'curves', 'Draw the held-out bits/byte curves of PyTorch training runs (tune --engine torch --eval-pt/--eval-en) as a chart and a table', CURVES_OPTIONS,
    async (o: { run: string[]; x: CurveX; title?: string; out: string; force?: boolean }) => {
      const runs = o.run.map((r) => {
        const i = r.indexOf('=');
        if (i <= 0 || i === r.length - 1) throw new HackError('BAD_OPTION', `expected label=dir (a label without "="), got ${JSON.stringify(r)}`, { option: 'run' });
        return { label: r.slice(0, i), dir: r.slice(i + 1) };
      });
      const dup = runs.find((r, i) => runs.findIndex((s) => s.label === r.label) !== i);
      if (dup) throw new HackError('BAD_OPTION', `the label ${JSON.stringify(dup.label)} is given twice`, { option: 'run' });
      const curves = await Promise.all(runs.map((r) => readCurve(r.label, r.dir)));
      const req = { path: o.out, command: 'curves', inputs: curves.map((c) => c.file), force: o.force };
      await checkOutput({ ...req, kind: 'dir' });
      const svg = await renderSvg(curveChartSpec(curves, o.x, o.title));
      const table = curveTable(curves);
      await writeOutputDir(req, async (tmp) => {
        await fsp.writeFile(path.join(tmp, 'curves.svg'), svg);
        await fsp.writeFile(path.join(tmp, 'curves.md'), table);
        await fsp.writeFile(path.join(tmp, 'curves.json'), JSON.stringify({ x: o.x, runs: curves.map((c) => ({ run: c.run, file: path.resolve(c.file), stages: c.stages, points: c.points })) }, null, 1) + '\n');
      }, true);
      info(`wrote ${o.out}: curves.svg, curves.md, curves.json (${curves.reduce((a, c) => a + c.points.length, 0)} points, ${curves.length} run(s))`);
      process.stdout.write(table);
    });
}
