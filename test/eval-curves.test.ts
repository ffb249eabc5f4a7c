// `curves`: held-out points of `tune --engine torch` runs (tune.json `evals`) as a table, a chart and the points;
// runs without points, bad --run values and foreign outputs are refused before anything is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from './support/cli.ts';

const point = (stage: number, step: number, tokens: number, corpusBytes: number, s: number, pt: number, en: number) =>
  ({ stage, step, tokens, corpus_tokens: Math.round(corpusBytes / 4), corpus_bytes: corpusBytes, train_seconds: s, bpb: { pt, en }, seconds: 3 });

async function run(dir: string, stages: string[], evals: unknown[]): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'tune.json'), JSON.stringify({ engine: 'torch', stages: stages.map((recipe) => ({ recipe })), evals }));
  return dir;
}

test('curves: a table, a chart and the points of two runs; bad runs refused before writing', async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'curves-'));
  try {
    const a = await run(path.join(root, 'A'), ['rows', 'full'], [point(0, 0, 0, 0, 0, 2.52, 1.38), point(0, 60, 122880, 544000, 120.4, 1.93, 1.365), point(1, 240, 614400, 2280000, 900, 1.6017, 1.4015)]);
    const b = await run(path.join(root, 'B'), ['full'], [point(0, 0, 0, 0, 0, 1.3797, 1.3419), point(0, 300, 614400, 1080000, 880, 1.3601, 1.3948)]);
    const out = path.join(root, 'out');
    const r = await runCli(['curves', '--run', `extended=${a}`, `original=${path.join(b, 'tune.json')}`, '--title', 'RQ 1.2.2', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const table = await fsp.readFile(path.join(out, 'curves.md'), 'utf8');
    assert.equal(r.stdout, table);
    assert.deepEqual(table.trim().split('\n'), [
      '| run | stage | step | training tokens | corpus MB read | training s | PT bpb | EN bpb |',
      '|---|---|---|---|---|---|---|---|',
      '| extended | 1 (rows) | 0 | 0 | 0.00 | 0 | 2.5200 | 1.3800 |',
      '| extended | 1 (rows) | 60 | 122880 | 0.54 | 120 | 1.9300 | 1.3650 |',
      '| extended | 2 (full) | 240 | 614400 | 2.28 | 900 | 1.6017 | 1.4015 |',
      '| original | 1 (full) | 0 | 0 | 0.00 | 0 | 1.3797 | 1.3419 |',
      '| original | 1 (full) | 300 | 614400 | 1.08 | 880 | 1.3601 | 1.3948 |',
    ]);
    const svg = await fsp.readFile(path.join(out, 'curves.svg'), 'utf8');
    assert.match(svg, /^<svg /);
    for (const s of ['RQ 1.2.2', 'extended', 'original', 'PT', 'EN', 'corpus text read (MB)', 'bits per byte']) assert.ok(svg.includes(`>${s}<`), `the chart shows ${s}`);
    // one line per run and text: four paths of line marks
    assert.equal((svg.match(/aria-roledescription="line mark"/g) ?? []).length, 4);
    const pts = JSON.parse(await fsp.readFile(path.join(out, 'curves.json'), 'utf8'));
    assert.equal(pts.x, 'corpus-bytes');
    assert.deepEqual(pts.runs.map((x: { run: string; points: unknown[] }) => [x.run, x.points.length]), [['extended', 3], ['original', 2]]);
    // a second run into the same --out needs --force
    let e = await runCli(['curves', '--run', `A=${a}`, '--out', out]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /--out: .* already holds the output of an earlier `hack-tokenizer curves`; pass --force/);
    e = await runCli(['curves', '--run', `A=${a}`, '--x', 'seconds', '--out', out, '--force']);
    assert.equal(e.code, 0, e.stderr);
    // bad input, nothing written
    const none = await run(path.join(root, 'none'), ['full'], []);
    const bad = path.join(root, 'bad');
    for (const [args, msg] of [
      [['--run', `A=${none}`], /--run .*none\/tune\.json: has no held-out points: train with --eval-pt\/--eval-en/],
      [['--run', `A=${root}`], /--run .*tune\.json: no tune\.json there/],
      [['--run', a], /--run: expected label=dir/],
      [['--run', `A=${a}`, `A=${b}`], /--run: the label "A" is given twice/],
      [['--run', `A=${a}`, '--x', 'steps'], /--x/],
    ] as const) {
      e = await runCli(['curves', ...args, '--out', bad]);
      assert.equal(e.code, 1, e.stderr);
      assert.match(e.stderr, msg);
    }
    assert.equal(existsSync(bad), false);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
