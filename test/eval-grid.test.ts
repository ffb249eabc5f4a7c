import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { enumerateCells, parseGridConfig, readGridConfig, runGrid, writeGridOutputs, type GridSteps } from '../src/eval/grid.ts';
import { fileURLToPath } from 'node:url';
import type { EvalResults } from '../src/eval/results.ts';

const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'grid-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));
const tmp = async () => fsp.mkdtemp(path.join(await tmpRoot, 'case-'));

const yaml = `
models: [m1, m2]
corpus: corpus.txt
numTokens: [10, 20]
inits: [mean, "weighted_drop(2)"]
stages: [BASELINE, INITIALIZED_NO_TRAINING]
inputs: [extended, original]
metrics: [fertility, bpb]
bench: [calamept]
pt: pt.txt
maxBytes: 1000
`;

test('grid config: YAML and JSON, defaults, relative paths, clear errors', () => {
  const cfg = parseGridConfig(yaml, '/cfg/grid.yaml');
  assert.deepEqual(cfg.models, ['/cfg/m1', '/cfg/m2']);
  assert.deepEqual(cfg.corpus, ['/cfg/corpus.txt']);
  assert.deepEqual(cfg.methods, ['continue']);
  assert.deepEqual(cfg.modes, ['merges']);
  assert.equal(cfg.pt, '/cfg/pt.txt');
  const j = parseGridConfig(JSON.stringify({ models: ['HuggingFaceTB/SmolLM2-135M'], stages: ['BASELINE'] }), '/c/g.json');
  assert.deepEqual(j.models, ['HuggingFaceTB/SmolLM2-135M']);
  assert.deepEqual(j.numTokens, []);
  assert.throws(() => parseGridConfig('models: [a]\nstages: [FOO]', '/c/g.yaml'), /: config \/c\/g.yaml: unknown stage\(s\) FOO/);
  assert.throws(() => parseGridConfig('models: [a]\nnumTokens: [-1]\ncorpus: c', '/c/g.yaml'), /"numTokens" must be a non-empty list/);
  assert.throws(() => parseGridConfig('models: [a]\nstages: [BASELINE]\nmetrics: [speed]', '/c/g.yaml'), /unknown metric\(s\) speed/);
  assert.throws(() => parseGridConfig('models: [a]\ncolour: red', '/c/g.yaml'), /unknown key\(s\) colour/);
  assert.throws(() => parseGridConfig('{', '/c/g.json'), /not valid JSON/);
  assert.throws(() => parseGridConfig('models: [a]\ncorpus: c\nnumTokens: [5]\nmodes: [weird]', '/c/g.yaml'), /"modes" must hold/);
});

test('cells: baselines once per model, then every combination', () => {
  const cells = enumerateCells(parseGridConfig(yaml, '/cfg/grid.yaml'));
  assert.equal(cells.length, 2 * (1 + 2 * 2 * 2));
  assert.equal(cells[0].stage, 'BASELINE');
  assert.equal(new Set(cells.map((c) => c.id)).size, cells.length);
  assert.ok(cells.some((c) => c.id === 'm2__INITIALIZED_NO_TRAINING__N20__continue__merges__weighted_drop_2__original'));
});

function fakeResults(model: string, bpb: number): EvalResults {
  return { version: 1, model, tokenizer: 't', input: 'extended', metrics: { fertility_input: { pt: 2 }, bpb: { pt: bpb, perplexity: { pt: 5 }, tokens: {}, bytes: {} } },
    benchmarks: { calamept: { accuracy: 0.01, correct: 1, n: 100, handwritten: { accuracy: 0, correct: 0, n: 10 }, generated: { accuracy: 0.01, correct: 1, n: 90 }, max_new_tokens: 8, samples: [] } },
    subsets: { texts: 'first 1000 bytes' }, seconds: { bpb: 1 }, created: 'now' };
}

test('runGrid: learns tokens once (largest N), extends each model once, resumes finished cells, writes csv/json/html', async () => {
  const out = await tmp();
  const cfg = parseGridConfig(yaml.replace('models: [m1, m2]', 'models: [m1]'), '/cfg/grid.yaml');
  const calls: string[] = [];
  let failAt = 4;
  const steps: GridSteps = {
    async learnTokens(model, method, n, _c, file) { calls.push(`learn ${path.basename(model)} ${method} ${n}`); await fsp.mkdir(path.dirname(file), { recursive: true }); await fsp.writeFile(file, '{}'); },
    async extendModel(_m, _t, n, mode, init, dir) { calls.push(`extend ${n} ${mode} ${init}`); await fsp.mkdir(dir, { recursive: true }); await fsp.writeFile(path.join(dir, 'config.json'), '{}'); },
    async evaluate(cell, dir, original) {
      if (--failAt === 0) throw new Error('interrupted');
      calls.push(`eval ${cell.id} ${cell.stage === 'BASELINE' ? dir === cell.model : original === cell.model}`);
      return fakeResults(dir, cell.init === 'mean' ? 1.6 : 1.5);
    },
  };
  await assert.rejects(runGrid(cfg, out, steps), /interrupted/);
  const done1 = (await fsp.readdir(path.join(out, 'cells'))).length;
  assert.equal(done1, 3);
  assert.equal(calls.filter((c) => c.startsWith('learn')).length, 1);
  assert.equal(calls[1], 'learn m1 continue 20');
  const r = await runGrid(cfg, out, steps);
  assert.equal(r.skipped, 3);
  assert.equal(r.ran, 6);
  assert.equal(calls.filter((c) => c.startsWith('learn')).length, 1, 'tokens reused');
  assert.equal(calls.filter((c) => c.startsWith('extend')).length, 4, 'one extended model per N x mode x init, shared by both inputs');
  assert.ok(calls.filter((c) => c.startsWith('eval')).every((c) => c.endsWith('true')));
  const again = await runGrid(cfg, out, steps);
  assert.equal(again.ran, 0);
  const { rows, files } = await writeGridOutputs(out, cfg, again.records, 'grid test');
  assert.equal(rows.length, 9);
  const csv = await fsp.readFile(files[0], 'utf8');
  assert.equal(csv.trim().split('\n').length, 10);
  const json = JSON.parse(await fsp.readFile(files[1], 'utf8'));
  assert.equal(json.cells.length, 9);
  assert.equal(json.rows[0].stage, 'BASELINE');
  const html = await fsp.readFile(files[2], 'utf8');
  assert.match(html, /id="chart-init-wins"/);
  // the subset once, however many cells recorded it
  assert.equal(html.split("<b>Subset (texts):</b> first 1000 bytes").length, 2);
});

test('INITIALIZED_WITH_TRAINING without a tuning step is refused before any work', async () => {
  const cfg = parseGridConfig('models: [a]\ncorpus: c\nnumTokens: [5]\nstages: [INITIALIZED_WITH_TRAINING]', '/c/g.yaml');
  const steps = { learnTokens: async () => assert.fail(), extendModel: async () => assert.fail(), evaluate: async () => assert.fail() } as unknown as GridSteps;
  await assert.rejects(runGrid(cfg, await tmp(), steps), /INITIALIZED_WITH_TRAINING needs embedding tuning/);
});

test('INITIALIZED_WITH_TRAINING tunes each extended model once (shared by inputs) and evaluates the tuned directory', async () => {
  const out = await tmp();
  const cfg = parseGridConfig('models: [a]\ncorpus: c\nnumTokens: [5]\nstages: [INITIALIZED_NO_TRAINING, INITIALIZED_WITH_TRAINING]\ninputs: [extended, original]\ntune: {rows: output, epochs: 1}', '/c/g.yaml');
  const tuned: string[] = [];
  const evaluated: string[] = [];
  const mk = async (d: string) => { await fsp.mkdir(d, { recursive: true }); await fsp.writeFile(path.join(d, 'config.json'), '{}'); };
  const steps: GridSteps = {
    async learnTokens(_m, _me, _n, _c, file) { await fsp.mkdir(path.dirname(file), { recursive: true }); await fsp.writeFile(file, '{}'); },
    async extendModel(_m, _t, _n, _mo, _i, dir) { await mk(dir); },
    async tune(ext, base, dir, opts) { assert.equal(base, '/c/a'); assert.deepEqual(opts, { rows: 'output', epochs: 1 }); tuned.push(ext); await mk(dir); },
    async evaluate(cell, dir) { evaluated.push(`${cell.stage} ${path.basename(dir)}`); return fakeResults(dir, 1.5); },
  };
  const r = await runGrid(cfg, out, steps);
  assert.equal(r.ran, 4);
  assert.equal(tuned.length, 1);
  assert.deepEqual(evaluated.filter((e) => e.startsWith('INITIALIZED_WITH_TRAINING')).map((e) => /-tuned-[0-9a-f]{12}$/.test(e)), [true, true]);
});

test('tune variants: a list of named variants, each its own cell; the object form keeps its old ids; strict errors name the key', () => {
  const base = 'models: [a]\ncorpus: c\nnumTokens: [5]\nstages: [INITIALIZED_NO_TRAINING, INITIALIZED_WITH_TRAINING]\n';
  const cfg = parseGridConfig(base + 'tune:\n  - {name: seed-heuristic, method: seed-heuristic}\n  - {name: output, rows: output, lr: 0.01}\n  - {name: "output+input", rows: both, corpus: t.txt}\n', '/c/g.yaml');
  assert.deepEqual(cfg.tune, [
    { name: 'seed-heuristic', options: { optimizer: 'seed-heuristic' } }, // the old key `method` maps to `optimizer`
    { name: 'output', options: { rows: 'output', lr: 0.01 } },
    { name: 'output+input', options: { rows: 'both', corpus: '/c/t.txt' } },
  ]);
  const cells = enumerateCells(cfg);
  assert.deepEqual(cells.map((c) => [c.stage, c.tune]), [['INITIALIZED_NO_TRAINING', '-'], ['INITIALIZED_WITH_TRAINING', 'seed-heuristic'],
    ['INITIALIZED_WITH_TRAINING', 'output'], ['INITIALIZED_WITH_TRAINING', 'output+input']]);
  assert.equal(cells[3].id, 'a__INITIALIZED_WITH_TRAINING__N5__continue__merges__mean__extended__tune-output+input');
  // object form (and no tune at all): one "default" variant whose cell id is the pre-variant one
  for (const extra of ['tune: {rows: output}\n', '']) {
    const c = enumerateCells(parseGridConfig(base + extra, '/c/g.yaml'));
    assert.deepEqual(c.map((x) => x.id), ['a__INITIALIZED_NO_TRAINING__N5__continue__merges__mean__extended', 'a__INITIALIZED_WITH_TRAINING__N5__continue__merges__mean__extended']);
    assert.equal(c[1].tune, 'default');
  }
  const bad = (tune: string, re: RegExp) => assert.throws(() => parseGridConfig(base + tune, '/c/g.yaml'), re);
  bad('tune: [{rows: output}]', /"tune\[0\].name" is required/);
  bad('tune: [{name: a}, {name: a}]', /"tune\[1\].name": "a" is the same as "a"/);
  bad('tune: [{name: "x y"}, {name: "x_y"}]', /"tune\[1\].name": "x_y" is the same as "x y"/);
  bad('tune: [{name: a, rows: middle}]', /"tune\[0\].rows" must be one of output, input, both \(got "middle"\)/);
  bad('tune: {lr: fast}', /"tune.lr" must be a number >= 0/);
  bad('tune: {epochs: 0}', /"tune.epochs" must be a number > 0/);
  bad('tune: [{name: a, colour: red}]', /"tune\[0\]": unknown key\(s\) colour/);
  bad('tune: [{name: a, rows: both, method: seed-heuristic}]', /"tune\[0\].optimizer": seed-heuristic only applies to rows "output"/);
  bad('tune: []', /"tune" must be an object or a non-empty list/);
  bad('tune: [output]', /"tune\[0\]" must be an object/);
  bad('tune: 3', /"tune" must be an object of tuning options/);
  bad('rankProbes: 0', /"rankProbes" must be a positive integer/);
  bad('tune: {replayRatio: 0}', /"tune.replayRatio" must be a number > 0/);
  bad('tune: {distill: -1}', /"tune.distill" must be a number >= 0/);
  bad('tune: {replay: ""}', /"tune.replay" must be a non-empty string \(got ""\)/);
  // replay: "self" stays as it is, a file resolves against the config's folder
  const rep = parseGridConfig(base + 'tune:\n  - {name: a, replay: self, replayRatio: 0.5, distill: 0.3}\n  - {name: b, replay: en.txt}\n', '/c/g.yaml');
  assert.deepEqual(rep.tune!.map((t) => t.options), [{ replay: 'self', replayRatio: 0.5, distill: 0.3 }, { replay: '/c/en.txt' }]);
});

test('runGrid with tune variants: one tuned directory per variant, tune.json recorded in the cells and rows (tune, tune_seconds)', async () => {
  const out = await tmp();
  const cfg = parseGridConfig('models: [a]\ncorpus: c\nnumTokens: [5]\nstages: [INITIALIZED_NO_TRAINING, INITIALIZED_WITH_TRAINING]\ninputs: [extended, original]\n' +
    'tune: [{name: fast, epochs: 1}, {name: slow, epochs: 3}]', '/c/g.yaml');
  const tuned: string[] = [];
  const mk = async (d: string) => { await fsp.mkdir(d, { recursive: true }); await fsp.writeFile(path.join(d, 'config.json'), '{}'); };
  const steps: GridSteps = {
    async learnTokens(_m, _me, _n, _c, file) { await fsp.mkdir(path.dirname(file), { recursive: true }); await fsp.writeFile(file, '{}'); },
    async extendModel(_m, _t, _n, _mo, _i, dir) { await mk(dir); },
    async tune(_ext, _base, dir, opts) {
      tuned.push(`${path.basename(dir)} ${JSON.stringify(opts)}`);
      await mk(dir);
      const e = opts.epochs as number;
      await fsp.writeFile(path.join(dir, 'tune.json'), JSON.stringify({ rows: 'output', method: 'adam', newTokens: 5, corpusBytes: 100, seconds: 10 * e,
        cache: { positions: 50, newTargets: 20, seconds: 7, reused: e === 3 }, output: { steps: e, items: 50, firstLoss: 6, lastLoss: 6 - e, seconds: e, resumedAt: 0, lr: 0.01, batch: 8 } }));
    },
    async evaluate(cell, dir) { return fakeResults(dir, cell.stage === 'INITIALIZED_WITH_TRAINING' ? 1.4 : 1.5); },
  };
  const r = await runGrid(cfg, out, steps);
  assert.equal(r.ran, 6);
  // directory names carry a hash of what shaped them (extended model, options, input files)
  assert.deepEqual(tuned.map((t) => t.replace(/-[0-9a-f]{12}\b/g, '')), ['N5-continue-merges-mean-tuned-fast {"epochs":1}', 'N5-continue-merges-mean-tuned-slow {"epochs":3}']);
  const slow = r.records.find((x) => x.meta.tune === 'slow' && x.meta.input === 'original')!;
  assert.deepEqual(slow.tune!.output, { steps: 3, first_loss: 6, last_loss: 3, seconds: 3, lr: 0.01, batch: 8 });
  assert.equal(slow.tune!.seconds, 30);
  const { rows } = await writeGridOutputs(out, cfg, r.records, 'variants');
  assert.deepEqual(rows.map((x) => [x.tune, x.tune_seconds, x.tune_seconds_with_cache]), [
    ['-', undefined, undefined], ['-', undefined, undefined], ['fast', 10, 10], ['fast', 10, 10], ['slow', 30, 37], ['slow', 30, 37]]);
  const csv = (await fsp.readFile(path.join(out, 'results.csv'), 'utf8')).split('\n');
  assert.ok(csv[0].split(',').includes('tune') && csv[0].split(',').includes('tune_seconds'));
  assert.match(await fsp.readFile(path.join(out, 'report.html'), 'utf8'), /id="chart-tuning"/);
  // a cell whose tuned model exists is re-evaluated without tuning again, and keeps its tune record
  await fsp.rm(path.join(out, 'cells', `${slow.meta.id}.json`));
  const again = await runGrid(cfg, out, steps);
  assert.deepEqual([again.ran, again.skipped, tuned.length], [1, 5, 2]);
  assert.equal(again.records.find((x) => x.meta.id === slow.meta.id)!.tune!.seconds, 30);
});

test('examples/experiment-tuning.yaml: valid, its files exist, one cell per tuning variant', async () => {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const cfg = await readGridConfig(path.join(repo, 'examples', 'experiment-tuning.yaml'));
  for (const f of [...cfg.models, ...cfg.corpus, cfg.pt!, cfg.en!]) await fsp.access(f);
  assert.deepEqual(cfg.numTokens, [5000]);
  assert.ok(cfg.metrics.includes('new-token-rank') && cfg.bench.includes('calamept'));
  assert.deepEqual(enumerateCells(cfg).map((c) => c.tune), ['-', '-', 'seed-heuristic', 'output', 'output+input', 'output+input+replay', 'output+input+replay0.4', 'output+input+replay0.6']);
});
