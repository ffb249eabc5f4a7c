import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CooccurrenceCounter, gloveOnCorpus, gloveRecordLoss, gloveStep, initGloveParams, trainGlove, type Cooccurrences,
} from '../src/embeddings/glove.ts';
import { seededRandom } from '../src/io/seeded-random.ts';
import { loadTokenizer } from '../src/tokenizer/load.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const DEMO_TOKENIZER = path.join(repoRoot, 'assets/models/tiny-en-llama/tokenizer.json');

function asMap(co: Cooccurrences): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < co.rows.length; i++) m.set(`${co.rows[i]},${co.cols[i]}`, co.values[i]);
  return m;
}

test('co-occurrence counts of a hand-checked sequence (symmetric window, 1/distance)', async () => {
  // [0 1 2 0], window 2: (1,0) d1; (2,0) d2, (2,1) d1; (0,1) d2, (0,2) d1 -- each in both directions
  const c = new CooccurrenceCounter(3, 2);
  c.addSequence([0, 1, 2, 0]);
  const m = asMap(await c.finish());
  assert.deepEqual([...m].sort(), [['0,1', 1.5], ['0,2', 1.5], ['1,0', 1.5], ['1,2', 1], ['2,0', 1.5], ['2,1', 1]]);
  // window 3 adds the pair (0, 0) at distance 3: the same cell from both directions, 2/3
  const c3 = new CooccurrenceCounter(3, 3);
  c3.addSequence([0, 1, 2, 0]);
  const m3 = asMap(await c3.finish());
  assert.ok(Math.abs(m3.get('0,0')! - 2 / 3) < 1e-12);
  // windows do not cross sequences
  const c2 = new CooccurrenceCounter(3, 5);
  c2.addSequence([0, 1]);
  c2.addSequence([2]);
  assert.deepEqual([...asMap(await c2.finish())].sort(), [['0,1', 1], ['1,0', 1]]);
});

test('a tiny table spills sorted runs and the merge gives the same counts', async () => {
  const rnd = seededRandom(3);
  const seq = Array.from({ length: 400 }, () => Math.floor(rnd() * 40));
  const big = new CooccurrenceCounter(40, 4);
  big.addSequence(seq);
  const ref = await big.finish();
  const small = new CooccurrenceCounter(40, 4, { tableSlots: 64 });
  small.addSequence(seq);
  const got = await small.finish();
  assert.ok(got.spills > 3, `expected spills, got ${got.spills}`);
  assert.deepEqual([...got.rows], [...ref.rows]);
  assert.deepEqual([...got.cols], [...ref.cols]);
  for (let i = 0; i < ref.values.length; i++) assert.ok(Math.abs(got.values[i] - ref.values[i]) < 1e-9);
});

test('one AdaGrad step is glove.c\'s: w -= eta g / sqrt(G), G += (eta g)^2; b -= g / sqrt(G_b), G_b += g^2 (g from finite differences)', () => {
  const s = { xMax: 10, alpha: 0.75, eta: 0.05 };
  for (const x of [3.5, 25]) { // below and above x_max
    const p = initGloveParams(4, 5, 7);
    for (let k = 0; k < p.w.length; k++) p.w[k] *= 40; // larger values, so the gradient is not tiny
    // a prior step elsewhere so G != 1 in some cells is not needed; set G by hand to check the scaling
    for (let k = 0; k < p.gw.length; k++) p.gw[k] = 1 + (k % 3);
    const i = 1, j = 2;
    const h = 1e-3;
    const fd = (arr: Float32Array, idx: number) => {
      const q = { ...p, w: Float32Array.from(p.w), b: Float32Array.from(p.b) };
      const a = q[arr === p.w ? 'w' : 'b'];
      const v = a[idx];
      a[idx] = v + h; const lp = gloveRecordLoss(q, i, j, x, s);
      a[idx] = v - h; const lm = gloveRecordLoss(q, i, j, x, s);
      return (lp - lm) / (2 * h);
    };
    const idxs = [...Array(5).keys()].flatMap((k) => [i * 5 + k, (j + 4) * 5 + k]);
    const grads = idxs.map((idx) => fd(p.w, idx));
    const gb = [fd(p.b, i), fd(p.b, j + 4)];
    const before = Float32Array.from(p.w), bBefore = Float32Array.from(p.b), G = Float32Array.from(p.gw);
    const loss = gloveStep(p, i, j, x, s);
    assert.ok(Math.abs(loss - gloveRecordLoss({ ...p, w: before, b: bBefore }, i, j, x, s)) < 1e-9);
    idxs.forEach((idx, n) => {
      const expected = before[idx] - (s.eta * grads[n]) / Math.sqrt(G[idx]);
      assert.ok(Math.abs(p.w[idx] - expected) < 2e-4 * Math.max(1, Math.abs(grads[n])), `w[${idx}]: ${p.w[idx]} vs ${expected}`);
      const u = s.eta * grads[n];
      assert.ok(Math.abs(p.gw[idx] - (G[idx] + u * u)) < 1e-3 * Math.max(1e-3, u * u), `G[${idx}]: ${p.gw[idx]} vs ${G[idx] + u * u}`);
    });
    // biases: no eta in the step (G_b was 1)
    assert.ok(Math.abs(p.b[i] - (bBefore[i] - gb[0])) < 1e-3 * Math.max(1, Math.abs(gb[0])), `b[i]: ${p.b[i]} vs ${bBefore[i] - gb[0]}`);
    assert.ok(Math.abs(p.b[j + 4] - (bBefore[j + 4] - gb[1])) < 1e-3 * Math.max(1, Math.abs(gb[1])));
    assert.ok(Math.abs(p.gb[i] - (1 + gb[0] ** 2)) < 1e-3 * Math.max(1, gb[0] ** 2));
    // parameters of other rows are untouched
    assert.equal(p.w[0], before[0]);
  }
});

test('a gradient coordinate beyond 100 is clipped to 100 before the step, as glove.c does', () => {
  const s = { xMax: 10, alpha: 0.75, eta: 0.05 };
  const p = initGloveParams(2, 2, 3);
  p.w.set([10, 0, 0, 0, 0, 0, 30, 0]); // w_0 = (10, 0), w~_1 = (30, 0): dot 300, g = 300 - log 20 + biases
  p.b.fill(0);
  const x = 20; // f(x) = 1
  const g = 300 - Math.log(x);
  gloveStep(p, 0, 1, x, s);
  // dJ/dw_0[0] = g * 30 (~8900) and dJ/dw~_1[0] = g * 10 (~3000): both clipped to 100
  assert.ok(Math.abs(p.w[0] - (10 - s.eta * 100)) < 1e-5, `w_0[0] = ${p.w[0]}`);
  assert.ok(Math.abs(p.w[6] - (30 - s.eta * 100)) < 1e-5, `w~_1[0] = ${p.w[6]}`);
  assert.ok(Math.abs(p.gw[0] - (1 + (s.eta * 100) ** 2)) < 1e-4);
  // biases are not clipped
  assert.ok(Math.abs(p.b[0] - -g) < 1e-3, `b_0 = ${p.b[0]}`);
});

test('the loss decreases over iterations and a seed gives the same vectors', async () => {
  const rnd = seededRandom(11);
  const c = new CooccurrenceCounter(30, 5);
  for (let n = 0; n < 60; n++) c.addSequence(Array.from({ length: 30 }, (_, k) => (k * 7 + Math.floor(rnd() * 3) + n) % 30));
  const co = await c.finish();
  const s = { window: 5, dim: 8, iterations: 25, xMax: 10, alpha: 0.75, minCount: 1, eta: 0.05, seed: 1 };
  const a = trainGlove(co, s);
  assert.ok(a.losses[a.losses.length - 1] < 0.5 * a.losses[0], `losses ${a.losses[0]} -> ${a.losses.at(-1)}`);
  for (let k = 1; k < a.losses.length; k++) assert.ok(a.losses[k] <= a.losses[k - 1] * 1.001, `pass ${k}: ${a.losses[k - 1]} -> ${a.losses[k]}`);
  const b = trainGlove(co, s);
  assert.deepEqual(b.params.w, a.params.w);
  const other = trainGlove(co, { ...s, seed: 2 });
  assert.notDeepEqual(other.params.w, a.params.w);
});

test('gloveOnCorpus: min count, specials excluded, cache by corpus/tokenizer/settings, too small a corpus refused', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'glove-test-'));
  try {
    const corpus = path.join(dir, 'c.txt');
    const lines = Array.from({ length: 40 }, (_, i) => `The deputies voted in favour of the proposal number ${i % 5}. A sessão está aberta.`);
    await fsp.writeFile(corpus, lines.join('\n') + '\n');
    const tok = await loadTokenizer(DEMO_TOKENIZER);
    const settings = { dim: 6, iterations: 3, window: 4 };
    const cacheDir = path.join(dir, 'cache');
    const a = await gloveOnCorpus(tok, [corpus], { settings, cacheDir });
    assert.equal(a.stats.cached, undefined);
    assert.ok(a.tokenIds.length > 10);
    assert.equal(a.vectors.length, a.tokenIds.length * 6);
    for (const id of a.tokenIds) assert.ok(!tok.specialIds.has(id));
    const b = await gloveOnCorpus(tok, [corpus], { settings, cacheDir });
    assert.equal(b.stats.cached, true);
    assert.deepEqual(b.vectors, a.vectors);
    assert.deepEqual(b.tokenIds, a.tokenIds);
    const c = await gloveOnCorpus(tok, [corpus], { settings: { ...settings, seed: 5 }, cacheDir });
    assert.equal(c.stats.cached, undefined);
    assert.equal((await fsp.readdir(cacheDir)).filter((f) => f.endsWith('.bin')).length, 2);
    const tiny = path.join(dir, 'tiny.txt');
    await fsp.writeFile(tiny, 'one line only\n');
    await assert.rejects(gloveOnCorpus(tok, [tiny], { settings }), (e: Error & { code?: string }) => e.code === 'CORPUS_TOO_SMALL' && /at least 5 times/.test(e.message));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
