// adapt: the one-command path (tokens -> extend -> tune -> eval before/after -> model + report).
import test from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adaptRecipe } from '../src/cli/adapt.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { runCli } from './support/cli.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const CORPORA = path.join(repoRoot, 'assets', 'corpora');

test('adaptRecipe: the budget sizes both phases (40% / 60% of the time at the measured speeds); self-replay from 10 minutes', () => {
  const r = adaptRecipe(30 * 60);
  assert.deepEqual([r.tune.rows, r.tune.corpusBytes, r.tune.replay, r.tune.replayRatio], ['both', 0.4 * 1800 * 6000, 'self', 0.25]);
  assert.equal(r.tune.inputCorpusBytes, Math.round((0.6 * 1800 * 1700) / 1.25));
  const small = adaptRecipe(60);
  assert.equal(small.tune.replay, undefined);
  assert.deepEqual([small.tune.corpusBytes, small.tune.inputCorpusBytes], [144_000, 61_200]);
  assert.deepEqual([adaptRecipe(1).tune.corpusBytes, adaptRecipe(1).tune.inputCorpusBytes], [50_000, 20_000]);
});

test('adapt on the demo model with a tiny budget: <out>/model is the tuned extended model, results and report for three cells; a rerun reuses them', { timeout: 15 * 60_000 }, async () => {
  const out = await fsp.mkdtemp(path.join(tmpdir(), 'adapt-'));
  try {
    const args = ['adapt', '--model', DEMO, '--corpus', path.join(CORPORA, 'pt-pt-parliament-train.txt.gz'), '--pt', path.join(CORPORA, 'pt-pt-parliament-heldout.txt'),
      '--en', path.join(CORPORA, 'en-books-heldout.txt'), '--num-tokens', '120', '--budget', '0.01', '--max-bytes', '4000', '--boost-texts', '2', '--boost-runs', '1', '--threads', '1', '--out', out];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /BASELINE[^\n]*\n[^\n]*INITIALIZED_NO_TRAINING[^\n]*\n[^\n]*INITIALIZED_WITH_TRAINING/);
    assert.match(r.stderr, /output rows on 50 kB, then input \+ output rows on 20 kB/);
    const base = await loadModelDir(DEMO);
    const model = await loadModelDir(path.join(out, 'model'));
    assert.equal(model.tokenizerSize, base.tokenizerSize + 120);
    const tune = JSON.parse(await fsp.readFile(path.join(out, 'model', 'tune.json'), 'utf8'));
    assert.equal(tune.rows, 'both');
    assert.ok(tune.input.steps > 0 && tune.output.steps > 0);
    await fsp.access(path.join(out, 'report.html'));
    const results = JSON.parse(await fsp.readFile(path.join(out, 'results.json'), 'utf8'));
    assert.deepEqual(results.cells.map((c: { meta: { stage: string } }) => c.meta.stage), ['BASELINE', 'INITIALIZED_NO_TRAINING', 'INITIALIZED_WITH_TRAINING']);
    const again = await runCli(args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /0 cell\(s\) run, 3 reused/);
    const bad = await runCli([...args.slice(0, -2), '--engine', 'jax', '--out', path.join(out, 'x')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--engine jax: expected one of ts, torch/);
  } finally {
    await fsp.rm(out, { recursive: true, force: true });
  }
});

test('adapt --engine torch: the PyTorch engine trains the new rows (recipe rows) inside the same three-cell run', { timeout: 15 * 60_000 }, async () => {
  const out = await fsp.mkdtemp(path.join(tmpdir(), 'adapt-torch-'));
  try {
    const r = await runCli(['adapt', '--engine', 'torch', '--model', DEMO, '--corpus', path.join(CORPORA, 'pt-pt-parliament-train.txt.gz'),
      '--pt', path.join(CORPORA, 'pt-pt-parliament-heldout.txt'), '--num-tokens', '60', '--budget', '0.01', '--max-bytes', '3000',
      '--boost-texts', '2', '--boost-runs', '1', '--threads', '1', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /tune \(PyTorch engine, recipe rows\): 4096 tokens/);
    const base = await loadModelDir(DEMO);
    const model = await loadModelDir(path.join(out, 'model'));
    assert.equal(model.tokenizerSize, base.tokenizerSize + 60);
    const tune = JSON.parse(await fsp.readFile(path.join(out, 'model', 'tune.json'), 'utf8'));
    assert.equal(tune.job?.recipe ?? tune.recipe, 'rows');
    const results = JSON.parse(await fsp.readFile(path.join(out, 'results.json'), 'utf8'));
    assert.deepEqual(results.cells.map((c: { meta: { stage: string } }) => c.meta.stage), ['BASELINE', 'INITIALIZED_NO_TRAINING', 'INITIALIZED_WITH_TRAINING']);
  } finally {
    await fsp.rm(out, { recursive: true, force: true });
  }
});
