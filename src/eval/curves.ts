// Held-out curves of PyTorch training runs: the `evals` points `tune --engine torch --eval-pt/--eval-en`
// keeps in tune.json, read from several runs, as one table and one chart (bits/byte against training
// tokens, corpus bytes read or training seconds: one panel per held-out text, one line per run).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type * as vl from 'vega-lite';
import { HackError } from '../io/errors.ts';

export const CURVE_X = ['corpus-bytes', 'tokens', 'seconds'] as const;
export type CurveX = (typeof CURVE_X)[number];

export interface CurvePoint {
  run: string;
  stage: number;
  step: number;
  tokens: number;
  corpusBytes: number;
  trainSeconds: number;
  bpb: Record<string, number>;
}

export interface Curve { run: string; file: string; stages: string[]; points: CurvePoint[] }

/** A run's curve from its output directory (or its tune.json); an error naming the file when it has none. */
export async function readCurve(run: string, dirOrFile: string, option = 'run'): Promise<Curve> {
  const file = /\.json$/i.test(dirOrFile) ? dirOrFile : path.join(dirOrFile, 'tune.json');
  let raw: unknown;
  try { raw = JSON.parse(await fsp.readFile(file, 'utf8')); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HackError('BAD_FILE', code === 'ENOENT' ? 'no tune.json there (expected the output directory of `tune --engine torch`)' : `not valid JSON (${(e as Error).message})`, { option, file });
  }
  const t = raw as { engine?: string; evals?: unknown; stages?: Array<{ recipe?: string }> };
  if (!t || typeof t !== 'object' || t.engine !== 'torch') throw new HackError('BAD_FILE', 'not the tune.json of `tune --engine torch`', { option, file });
  if (!Array.isArray(t.evals) || t.evals.length === 0) {
    throw new HackError('NO_CURVE', 'has no held-out points: train with --eval-pt/--eval-en (and --eval-every) to record them', { option, file });
  }
  const points = (t.evals as Array<Record<string, unknown>>).map((e, i) => {
    const bpb = e.bpb as Record<string, unknown> | undefined;
    const nums = ['stage', 'step', 'tokens', 'corpus_bytes', 'train_seconds'].every((k) => typeof e[k] === 'number');
    if (!nums || !bpb || typeof bpb !== 'object' || !Object.values(bpb).every((v) => typeof v === 'number')) {
      throw new HackError('BAD_FILE', `evals[${i}] is not a held-out point (stage, step, tokens, corpus_bytes, train_seconds, bpb)`, { option, file });
    }
    return { run, stage: e.stage as number, step: e.step as number, tokens: e.tokens as number, corpusBytes: e.corpus_bytes as number, trainSeconds: e.train_seconds as number, bpb: bpb as Record<string, number> };
  });
  return { run, file, stages: (t.stages ?? []).map((s) => String(s.recipe ?? '?')), points };
}

const X_FIELD: Record<CurveX, { field: keyof CurvePoint; title: string; scale: number }> = {
  'corpus-bytes': { field: 'corpusBytes', title: 'corpus text read (MB)', scale: 1e-6 },
  tokens: { field: 'tokens', title: 'training tokens (thousands, replay included)', scale: 1e-3 },
  seconds: { field: 'trainSeconds', title: 'training time (s)', scale: 1 },
};

/** The held-out texts the curves share, in their first run's order. */
export function curveTexts(curves: Curve[]): string[] {
  const names = new Set<string>();
  for (const c of curves) for (const p of c.points) for (const k of Object.keys(p.bpb)) names.add(k);
  return [...names];
}

/** One vega-lite chart: a panel per held-out text (own y scale), a line per run. */
export function curveChartSpec(curves: Curve[], x: CurveX, title?: string): vl.TopLevelSpec {
  const xf = X_FIELD[x];
  const values = curves.flatMap((c) => c.points.flatMap((p) => Object.entries(p.bpb).map(([text, v]) => ({
    run: c.run, text: text.toUpperCase(), x: Number(p[xf.field]) * xf.scale, bpb: v, stage: p.stage + 1,
  }))));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    ...(title ? { title } : {}),
    data: { values },
    facet: { column: { field: 'text', type: 'nominal', title: 'held-out text', sort: curveTexts(curves).map((t) => t.toUpperCase()) } },
    spec: {
      width: 320, height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: xf.title },
        y: { field: 'bpb', type: 'quantitative', title: 'bits per byte', scale: { zero: false } },
        color: { field: 'run', type: 'nominal', title: 'run', legend: { labelLimit: 400 } },
        tooltip: [{ field: 'run' }, { field: 'stage' }, { field: 'x', format: '.3f' }, { field: 'bpb', format: '.4f' }],
      },
    },
    resolve: { scale: { y: 'independent' } },
  } as vl.TopLevelSpec;
}

/** A markdown table of every point (corpus MB, tokens, training seconds, bits/byte per text). */
export function curveTable(curves: Curve[]): string {
  const texts = curveTexts(curves);
  const head = ['run', 'stage', 'step', 'training tokens', 'corpus MB read', 'training s', ...texts.map((t) => `${t.toUpperCase()} bpb`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const c of curves) {
    for (const p of c.points) {
      const stage = `${p.stage + 1}${c.stages[p.stage] ? ` (${c.stages[p.stage]})` : ''}`;
      lines.push(`| ${[c.run, stage, p.step, p.tokens, (p.corpusBytes / 1e6).toFixed(2), p.trainSeconds.toFixed(0), ...texts.map((t) => (p.bpb[t] !== undefined ? p.bpb[t].toFixed(4) : '-'))].join(' | ')} |`);
    }
  }
  return lines.join('\n') + '\n';
}
