import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { enumerateCells, parseGridConfig, runGrid, writeGridOutputs, type GridSteps } from '../src/eval/grid.ts';
import type { EvalResults } from '../src/eval/results.ts';

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
  assert.throws(() => parseGridConfig('models: [a]\nstages: [FOO]', '/c/g.yaml'), /--config \/c\/g.yaml: unknown stage\(s\) FOO/);
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
  const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'grid-'));
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
  assert.match(html, /Subset — texts: first 1000 bytes/);
});

test('INITIALIZED_WITH_TRAINING without a tuning step is refused before any work', async () => {
  const cfg = parseGridConfig('models: [a]\ncorpus: c\nnumTokens: [5]\nstages: [INITIALIZED_WITH_TRAINING]', '/c/g.yaml');
  const steps = { learnTokens: async () => assert.fail(), extendModel: async () => assert.fail(), evaluate: async () => assert.fail() } as unknown as GridSteps;
  await assert.rejects(runGrid(cfg, await fsp.mkdtemp(path.join(os.tmpdir(), 'grid-')), steps), /INITIALIZED_WITH_TRAINING needs embedding tuning/);
});

test('INITIALIZED_WITH_TRAINING tunes each extended model once (shared by inputs) and evaluates the tuned directory', async () => {
  const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'grid-'));
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
  assert.deepEqual(evaluated.filter((e) => e.startsWith('INITIALIZED_WITH_TRAINING')).map((e) => e.endsWith('-tuned')), [true, true]);
});
