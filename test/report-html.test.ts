import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderReport, toCsv, chartSpecs, tuningComparison, type ResultRow } from '../src/eval/report.ts';
import { checkReport } from './support/chromium-check.ts';
import { parseCsv } from '../src/io/csv.ts';

function rows(): ResultRow[] {
  const out: ResultRow[] = [{ id: 'm__BASELINE', model: '/x/tiny', stage: 'BASELINE', input: 'original', numTokens: 0, method: '-', mode: '-', init: '-',
    fertility_pt: 2.1, fertility_en: 1.4, bpb_pt: 1.37, bpb_en: 1.406, calamept: 0.0072, mmlu: 0.25, copa_en: 0.55 }];
  for (const n of [1000, 5000]) for (const init of ['mean', 'weighted_drop(2)']) for (const input of ['extended', 'original'] as const) {
    out.push({ id: `m__N${n}__${init}__${input}`, model: '/x/tiny', stage: 'INITIALIZED_NO_TRAINING', input, numTokens: n, method: 'continue', mode: 'merges', init,
      fertility_pt: 2.1 - n / 10000, fertility_en: 1.4, bpb_pt: 1.5 + (init === 'mean' ? 0.1 : 0) + n / 1e5, bpb_en: 1.41, calamept: 0.005,
      fertility_boost_greedy: 0.01 * (n / 1000), fertility_boost_mean: 0.02, fertility_boost_std: 0.003, mmlu: 0.24, copa_en: 0.5,
      new_token_rank_ext: 1100, new_token_rank_orig: 750 });
  }
  // two tuning variants of the mean-initialized models (extended input)
  for (const n of [1000, 5000]) for (const [tune, gain] of [['seed-heuristic', 0.01], ['output+input', 0.4]] as const) {
    out.push({ id: `m__TRAINED__N${n}__${tune}`, model: '/x/tiny', stage: 'INITIALIZED_WITH_TRAINING', input: 'extended', numTokens: n, method: 'continue', mode: 'merges', init: 'mean', tune,
      fertility_pt: 2.1 - n / 10000, fertility_en: 1.4, bpb_pt: 1.6 + n / 1e5 - gain, bpb_en: 1.41 - gain / 100, calamept: 0.005, fertility_boost_greedy: gain / 2,
      new_token_rank_ext: Math.round(1100 * (1 - gain)), new_token_rank_orig: Math.round(750 * (1 - 2 * gain)), tune_seconds: 100 * gain, tune_seconds_with_cache: 500 + 100 * gain });
  }
  return out;
}

test('report.html: self-contained, every chart renders as SVG with marks in headless Chromium, no console errors', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'report-'));
  const file = path.join(dir, 'report.html');
  const html = await renderReport(rows(), { title: 'Test <report>', notes: ['a & b'] });
  await fsp.writeFile(file, html);
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), 'no scripts, no network references');
  assert.match(html, /Test &lt;report&gt;/);
  const specs = chartSpecs(rows()).map((c) => c.id);
  assert.deepEqual(specs, ['fertility', 'bpb-pt', 'bpb-en', 'calamept', 'mmlu', 'copa-en', 'fertility-boost', 'tuning', 'init-wins']);
  // the tuning chart: every measure, the original and the untuned model and both variants, values printed beside the bars
  const tuningSvg = /id="chart-tuning"[\s\S]*?<\/svg>/.exec(html)![0];
  for (const s of ['bits per byte PT', 'bits per byte EN', 'FertilityBoost T=0', 'CalamePT', 'median rank, ext. prefix', 'median rank, orig. prefix', 'tune wall time (s)',
    'original model', 'no tuning', 'seed-heuristic', 'output+input', 'tiny N=1000 mean', 'tiny N=5000 mean', '1.2100', '20.00%', '>150<', '>540<']) {
    assert.ok(tuningSvg.includes(s), `tuning chart lacks ${s}`);
  }
  assert.match(html, /<table class="tuning" id="tuning-table">/);
  const r = await checkReport(file);
  assert.deepEqual(r.consoleErrors, []);
  assert.deepEqual(r.requests, []);
  assert.equal(r.charts.length, specs.length);
  for (const c of r.charts) {
    assert.ok(c.svg, `${c.id}: no svg`);
    assert.ok(c.marks > 5, `${c.id}: only ${c.marks} marks`);
    assert.ok(c.width > 100 && c.height > 100, `${c.id}: ${c.width}x${c.height}`);
  }
  const groups = tuningComparison(rows());
  assert.deepEqual(groups.map((g) => g.variants.map((v) => v.variant)), [['original model', 'no tuning', 'seed-heuristic', 'output+input'], ['original model', 'no tuning', 'seed-heuristic', 'output+input']]);
  assert.equal(groups[0].variants[0].row.stage, 'BASELINE');
  assert.equal(r.tableRows, rows().length + 8, 'results table + tuning table rows');
});

test('init wins count the lowest PT bpb per comparison; CSV round-trips', async () => {
  const spec = chartSpecs(rows()).find((c) => c.id === 'init-wins')!;
  const values = (spec.spec as { data: { values: Array<{ init: string; wins: number }> } }).data.values;
  assert.deepEqual(values, [{ init: 'mean', wins: 0 }, { init: 'weighted_drop(2)', wins: 4 }]);
  const csv = parseCsv(toCsv(rows()));
  assert.equal(csv.length, rows().length + 1);
  const h = csv[0];
  assert.equal(csv[1][h.indexOf('bpb_pt')], '1.37');
  assert.equal(csv[2][h.indexOf('init')], 'mean');
  assert.equal(csv[1][h.indexOf('fertility_boost_greedy')], '');
});
