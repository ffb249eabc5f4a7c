import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderReport, toCsv, chartSpecs, headline, tuningComparison, type ResultRow } from '../src/eval/report.ts';
import { checkReport, requireChromium } from './support/chromium-check.ts';
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

test('report.html: self-contained; headline, every chart with distinct legend colours, key columns inside 1400 px in headless Chromium', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'report-'));
  try {
    const file = path.join(dir, 'report.html');
    const html = await renderReport(rows(), { title: 'Test <report>', notes: ['a & b'], subsets: { texts: 'first 3000 bytes of each held-out file', calamept: 'handwritten CalamePT rows only' }, budget: '5 min: 120 steps' });
    await fsp.writeFile(file, html);
    assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), 'no scripts, no network references');
    assert.match(html, /Test &lt;report&gt;/);
    // the subsets and the budget once each
    assert.equal(html.split('first 3000 bytes of each held-out file').length, 2);
    assert.equal(html.split('Budget:').length, 2);
    const specs = chartSpecs(rows()).map((c) => c.id);
    assert.deepEqual(specs, ['fertility', 'bpb-pt', 'bpb-en', 'calamept', 'mmlu', 'copa-en', 'fertility-boost', 'tuning', 'init-wins']);
    // the tuning chart: every measure, the original and the untuned model and both variants, values printed beside the bars
    const tuningSvg = /id="chart-tuning"[\s\S]*?<\/svg>/.exec(html)![0];
    for (const s of ['bits per byte PT', 'bits per byte EN', 'FertilityBoost T=0', 'CalamePT', 'median rank, ext. prefix', 'median rank, orig. prefix', 'tune wall time (s)',
      'original model', 'no tuning', 'seed-heuristic', 'output+input', 'tiny N=1000 mean', 'tiny N=5000 mean', '1.2100', '20.00%', '>150<', '>540<']) {
      assert.ok(tuningSvg.includes(s), `tuning chart lacks ${s}`);
    }
    // value labels: a zero share is printed as 0.00% (not left blank); CalamePT in % as in the table
    const boostSvg = /id="chart-fertility-boost"[\s\S]*?<\/svg>/.exec(html)![0];
    for (const s of ['>1.00%<', '>5.00%<', '>20.00%<', '>2.00%<']) assert.ok(boostSvg.includes(s), `boost chart lacks ${s}`);
    const calameSvg = /id="chart-calamept"[\s\S]*?<\/svg>/.exec(html)![0];
    assert.ok(calameSvg.includes('>0.72%<') && calameSvg.includes('>0.50%<'), 'CalamePT labelled in %');
    const r = await checkReport(file, { width: 1400, screenshot: process.env.REPORT_SCREENSHOT });
    assert.deepEqual(r.consoleErrors, []);
    assert.deepEqual(r.requests, []);
    assert.equal(r.charts.length, specs.length);
    for (const c of r.charts) {
      assert.ok(c.svg, `${c.id}: no svg`);
      assert.ok(c.marks > 5, `${c.id}: only ${c.marks} marks`);
      assert.ok(c.width > 100 && c.height > 100, `${c.id}: ${c.width}x${c.height}`);
    }
    // legends name their series and give each its own colour (the fertility chart once showed two black dots)
    const legends = Object.fromEntries(r.charts.map((c) => [c.id, c.legend]));
    assert.deepEqual(legends.fertility.map((e) => e.label).sort(), ['EN', 'PT']);
    assert.deepEqual(legends['bpb-pt'].map((e) => e.label), ['original model', 'extended, no tuning', 'extended + tuned']);
    assert.deepEqual(legends.mmlu.map((e) => e.label), ['original model', 'extended, no tuning'], 'a legend lists only the stages the chart shows');
    assert.deepEqual(legends['fertility-boost'].map((e) => e.label), ['T = 0 (greedy)', 'T = 0.8 (mean of runs)']);
    for (const [id, entries] of Object.entries(legends)) {
      if (id === 'tuning' || id === 'init-wins') { assert.equal(entries.length, 0, `${id}: labelled on its axis`); continue; }
      assert.ok(entries.length >= 2 && entries.every((e) => e.label && /^#[0-9a-f]{6}$/i.test(e.colour)), `${id}: ${JSON.stringify(entries)}`);
      assert.equal(new Set(entries.map((e) => e.colour)).size, entries.length, `${id}: legend colours repeat`);
    }
    // the headline: the numbers of the best tuned configuration at the largest N against the original model
    assert.match(r.headline, /^5,000 new tokens: Portuguese takes 24% fewer tokens per word \(2\.10 → 1\.60\), English unchanged/);
    assert.match(r.headline, /After tuning \(output\+input\), init mean: bits\/byte \(lower is better\) PT -8\.8% \(1\.370 → 1\.250\), English \+0\.0% \(1\.406 → 1\.406\); the model picks a new token at 20% of positions/);
    assert.match(r.headline, /CalamePT 0\.72% → 0\.50%/);
    // the key table: every metric column inside the 1400 px viewport
    assert.deepEqual(r.keyColumns.map((c) => c.metric), ['fertility_pt', 'fertility_en', 'bpb_pt', 'bpb_en', 'fertility_boost_greedy', 'fertility_boost_mean', 'calamept', 'mmlu',
      'copa_en', 'new_token_rank_ext', 'tune_seconds_with_cache']);
    for (const c of r.keyColumns) assert.ok(c.left >= 0 && c.cellsRight <= r.viewportWidth, `${c.metric} at ${c.left}..${c.cellsRight} px`);
    const groups = tuningComparison(rows());
    assert.deepEqual(groups.map((g) => g.variants.map((v) => v.variant)), [['original model', 'no tuning', 'seed-heuristic', 'output+input'], ['original model', 'no tuning', 'seed-heuristic', 'output+input']]);
    assert.equal(groups[0].variants[0].row.stage, 'BASELINE');
    assert.equal(r.tableRows, 2 * rows().length + 8, 'key table + full table + tuning table rows');
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('headline: robust to missing stages and metrics', () => {
  const base: ResultRow = { id: 'b', model: '/x/m', stage: 'BASELINE', input: 'original', numTokens: 0, method: '-', mode: '-', init: '-', fertility_pt: 2, bpb_pt: 1.5 };
  const ext: ResultRow = { id: 'e', model: '/x/m', stage: 'INITIALIZED_NO_TRAINING', input: 'extended', numTokens: 1000, method: 'continue', mode: 'merges', init: 'mean',
    fertility_pt: 1.5, bpb_pt: 1.8, fertility_boost_greedy: 0 };
  assert.deepEqual(headline([]), []);
  assert.deepEqual(headline([base]), ['the original model only: Portuguese 2.00 tokens per word, PT bits/byte 1.500.']);
  assert.deepEqual(headline([base, ext]), ['1,000 new tokens: Portuguese takes 25% fewer tokens per word (2.00 → 1.50). Without tuning, init mean: bits/byte (lower is better) PT +20.0% (1.500 → 1.800); the model never picks a new token (greedy).']);
  // no baseline, NaN read back as null from results.json, no bits per byte
  const bare = { ...ext, bpb_pt: null as unknown as number, fertility_boost_greedy: 0.3 };
  assert.deepEqual(headline([bare]), ['1,000 new tokens: Portuguese takes 1.50 tokens per word. Without tuning, init mean: the model picks a new token at 30% of positions (greedy).']);
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

test('key table: at most 11 metric columns (what fits 1400 px), by priority, when a run has every metric', async () => {
  const all = rows().map((r) => ({ ...r, chars_per_step: 2, boolq_en: 0.6, boolq: 0.5, copa: 0.5, multirc: 0.4, mmlu: 0.25, copa_en: 0.5 }));
  const html = await renderReport(all, { title: 't' });
  const key = /<table class="key"[\s\S]*?<\/thead>/.exec(html)![0];
  assert.deepEqual([...key.matchAll(/data-metric="([a-z_]+)"/g)].map((m) => m[1]), ['fertility_pt', 'fertility_en', 'bpb_pt', 'bpb_en', 'fertility_boost_greedy',
    'fertility_boost_mean', 'calamept', 'mmlu', 'chars_per_step', 'new_token_rank_ext', 'tune_seconds_with_cache']);
});

test('a missing Chromium is a precondition failure that says what to install', () => {
  assert.throws(() => requireChromium('/nonexistent/chromium'), /headless Chromium not found at \/nonexistent\/chromium\. .*Debian's package `chromium`/);
});

test('rowOf/formatTable: FertilityBoost over one run has no spread (no "± 0.00%"); over several runs it shows the std', async () => {
  const { rowOf } = await import('../src/eval/report.ts');
  const { formatTable } = await import('../src/eval/table.ts');
  const meta = { id: 'x', model: 'm', stage: 'INITIALIZED_NO_TRAINING', n: 10, method: 'continue', mode: 'merges', init: 'mean', input: 'extended' } as never;
  const boost = (runs: number, std: number) => ({ metrics: { fertility_boost: { greedy: 0.1, mean: 0.2, std, runs, temperature: 0.8, per_run: [], n_texts: 1, n_positions: 1 } }, benchmarks: {}, seconds: {} } as never);
  const one = rowOf(meta, boost(1, 0));
  const five = rowOf(meta, boost(5, 0.01));
  assert.equal(one.fertility_boost_std, undefined);
  assert.equal(five.fertility_boost_std, 0.01);
  assert.doesNotMatch(formatTable([one]), /±/);
  assert.match(formatTable([five]), /20\.00% ± 1\.00%/);
});
