// adapt: the one-command path (tokens -> extend -> tune -> eval before/after -> model + report).
import test from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adaptRecipe } from '../src/cli/adapt.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { findPython } from '../src/tune/torch-engine.ts';
import { runCli } from './support/cli.ts';
import { transformersLogits } from './support/python.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const CORPORA = path.join(repoRoot, 'assets', 'corpora');

test('adaptRecipe: the budget sizes both phases and the replay sample at the measured speeds; self-replay from 10 minutes; short budgets 6 output passes', () => {
  const r = adaptRecipe(30 * 60);
  // 40% of the time for the output phase and its replay sample (0.25 x its text at 2.7 kB/s)
  assert.deepEqual([r.tune.rows, r.tune.corpusBytes, r.tune.replay, r.tune.replayRatio], ['both', Math.round((0.4 * 1800) / (1 / 6000 + 0.25 / 2700)), 'self', 0.25]);
  assert.match(r.label, /self-replay \(ratio 0\.25: 694 kB sampled from the original model first\)/);
  assert.equal(r.tune.inputCorpusBytes, Math.round((0.6 * 1800 * 1700) / 1.25));
  const small = adaptRecipe(60);
  assert.equal(small.tune.replay, undefined);
  assert.deepEqual([small.tune.corpusBytes, small.tune.inputCorpusBytes, small.tune.epochs, small.tune.inputLr], [144_000, 30_600, 6, 1e-3]);
  assert.deepEqual([adaptRecipe(6).tune.corpusBytes, adaptRecipe(6).tune.inputCorpusBytes], [50_000, 20_000]);
  // below one step of either phase: refused, naming the smallest budget that trains
  assert.throws(() => adaptRecipe(3), (e: Error & { code?: string }) => e.code === 'BUDGET_TOO_SMALL' && /use at least 0\.09/.test(e.message));
});

test('adapt on the demo model with a tiny budget: <out>/model is the tuned extended model, results and report for three cells; a rerun reuses them', { timeout: 15 * 60_000 }, async () => {
  const out = await fsp.mkdtemp(path.join(tmpdir(), 'adapt-'));
  try {
    // no --pt: the held-out text is cut from the corpus (the first 4000 bytes of whole lines)
    const args = ['adapt', '--model', DEMO, '--corpus', path.join(CORPORA, 'pt-pt-parliament-train.txt.gz'),
      '--en', path.join(CORPORA, 'en-books-heldout.txt'), '--num-tokens', '120', '--budget', '0.1', '--max-bytes', '4000', '--boost-texts', '2', '--boost-runs', '1', '--threads', '1', '--out', out];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /BASELINE[^\n]*\n[^\n]*INITIALIZED_NO_TRAINING[^\n]*\n[^\n]*INITIALIZED_WITH_TRAINING/);
    assert.match(r.stderr, /output rows on 50 kB \(6 passes\), then input \+ output rows on 20 kB \(input lr 1e-3\)/);
    assert.match(r.stderr, /Held-out PT text: the first \d+ lines \(4\.\d kB\) of the corpus/);
    const split = JSON.parse(await fsp.readFile(path.join(out, 'heldout', 'split.json'), 'utf8'));
    assert.ok(split.heldoutBytes >= 4000 && split.heldoutBytes < 4000 + 5000, String(split.heldoutBytes));
    const results0 = JSON.parse(await fsp.readFile(path.join(out, 'results.json'), 'utf8'));
    // evaluated on the cut, trained on the rest
    assert.equal(results0.config.pt, path.join(out, 'heldout', 'heldout.txt'));
    assert.deepEqual(results0.config.corpus, [path.join(out, 'heldout', 'train.txt')]);
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
    assert.match(again.stderr, /\(the earlier cut, reused\)/);
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
      '--pt', path.join(CORPORA, 'pt-pt-parliament-heldout.txt'), '--num-tokens', '60', '--budget', '0.1', '--max-bytes', '3000',
      '--boost-texts', '2', '--boost-runs', '1', '--threads', '1', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /tune \(PyTorch engine, recipe rows\): 4096 tokens/);
    const base = await loadModelDir(DEMO);
    const model = await loadModelDir(path.join(out, 'model'));
    assert.equal(model.tokenizerSize, base.tokenizerSize + 60);
    const tune = JSON.parse(await fsp.readFile(path.join(out, 'model', 'tune.json'), 'utf8'));
    assert.deepEqual(tune.job.stages.map((s: { recipe: string }) => s.recipe), ['rows']);
    const results = JSON.parse(await fsp.readFile(path.join(out, 'results.json'), 'utf8'));
    assert.deepEqual(results.cells.map((c: { meta: { stage: string } }) => c.meta.stage), ['BASELINE', 'INITIALIZED_NO_TRAINING', 'INITIALIZED_WITH_TRAINING']);
  } finally {
    await fsp.rm(out, { recursive: true, force: true });
  }
});

test('adapt refuses bad input before any work and writes nothing: a budget below one step, a corpus too small to cut held-out text, a model without tokenizer.json', async () => {
  const tmp = await fsp.mkdtemp(path.join(tmpdir(), 'adapt-bad-'));
  try {
    const small = path.join(tmp, 'small.txt');
    await fsp.writeFile(small, 'Uma frase em português.\n'.repeat(100));
    const noTok = path.join(tmp, 'no-tokenizer');
    await fsp.mkdir(noTok);
    for (const f of await fsp.readdir(DEMO)) if (f !== 'tokenizer.json') await fsp.copyFile(path.join(DEMO, f), path.join(noTok, f));
    const corpus = path.join(CORPORA, 'pt-pt-parliament-train.txt.gz');
    const cases: Array<[string[], RegExp]> = [
      [['--model', DEMO, '--corpus', corpus, '--budget', '0.01'], /--budget: 0\.01 min is too small for one tuning step of the ts engine \(about 5\.0 s .*use at least 0\.09/],
      [['--model', DEMO, '--corpus', corpus, '--engine', 'torch', '--budget', '0.05'], /--budget: 0\.05 min is too small for one tuning step of the torch engine/],
      [['--model', DEMO, '--corpus', small], /--corpus .*small\.txt: \d+ bytes of text: too small to cut 200000 bytes of held-out text .*--pt/],
      [['--model', noTok, '--corpus', corpus], /no-tokenizer: missing tokenizer\.json/],
    ];
    for (const [i, [args, re]] of cases.entries()) {
      const out = path.join(tmp, `out${i}`);
      const r = await runCli(['adapt', ...args, '--out', out]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      await assert.rejects(fsp.access(out), /ENOENT/, `${out} must not exist`);
    }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
});

test('adapt on the random Qwen2 fixture (untied, config v4): the adapted model loads in our engine and in transformers with the same logits', { timeout: 15 * 60_000 }, async () => {
  const qwen = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'models', 'random-qwen2');
  const out = await fsp.mkdtemp(path.join(tmpdir(), 'adapt-qwen2-'));
  try {
    const r = await runCli(['adapt', '--model', qwen, '--corpus', path.join(CORPORA, 'pt-pt-parliament-train.txt.gz'),
      '--num-tokens', '80', '--budget', '0.1', '--max-bytes', '3000', '--boost-texts', '2', '--boost-runs', '1', '--threads', '1', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const dir = path.join(out, 'model');
    const m = await loadModelDir(dir);
    assert.equal(m.tokenizerSize, (await loadModelDir(qwen)).tokenizerSize + 80);
    assert.equal(m.config.tieWordEmbeddings, false);
    // new ids among old ones: the rows tune wrote are read back the same way by both runtimes
    const ids = [5, 8192 + 3, 17, 8192 + 40, 300, 8192 + 79];
    const engine = await loadEngine(dir, { threads: 1 });
    let ours: Float32Array;
    try { ours = await engine.logits(ids); } finally { await engine.dispose(); }
    const ref = transformersLogits(findPython().python, dir, ids);
    assert.equal(ours.length, ref.length);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ref[i]));
    assert.ok(maxDiff < 1e-4, `max |logit difference| ${maxDiff}`);
  } finally {
    await fsp.rm(out, { recursive: true, force: true });
  }
});
