// Auxiliary embeddings (CBOW with negative sampling): one step against a hand computation and finite
// differences, co-occurring tokens closer than unrelated ones, determinism, and the cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cbowStep, trainAuxVectors, tokenCorpus, hasVector, auxEmbeddings, DEFAULT_AUX_SETTINGS, type CbowModel } from '../src/embeddings/aux-embeddings.ts';
import { readTokenizerJson } from '../src/io/model-dir.ts';

const sig = (x: number) => 1 / (1 + Math.exp(-x));

function tinyModel(): CbowModel {
  return {
    dim: 2,
    input: Float32Array.from([0.1, 0.2, 0.3, -0.1, 0, 0, 0, 0]),
    output: Float32Array.from([0, 0, 0, 0, 0.5, 0.5, -0.2, 0.4]),
  };
}

test('cbowStep: one SGD step equals the hand computation', () => {
  const m = tinyModel();
  cbowStep(m, [0, 1], 2, [2, 3], 2, 0.1, new Float32Array(2), new Float32Array(2));
  // h = mean(in0, in1) = [0.2, 0.05]
  const gc = 0.1 * (1 - sig(0.125)); // h . out2 = 0.125, label 1
  const gn = 0.1 * (0 - sig(-0.02)); // h . out3 = -0.02, label 0
  assert.ok(Math.abs(gc - 0.0468791) < 1e-6 && Math.abs(gn + 0.0495000) < 1e-6);
  const e = [gc * 0.5 + gn * -0.2, gc * 0.5 + gn * 0.4];
  const expect = {
    input: [0.1 + e[0], 0.2 + e[1], 0.3 + e[0], -0.1 + e[1], 0, 0, 0, 0],
    output: [0, 0, 0, 0, 0.5 + gc * 0.2, 0.5 + gc * 0.05, -0.2 + gn * 0.2, 0.4 + gn * 0.05],
  };
  for (let k = 0; k < 8; k++) {
    assert.ok(Math.abs(m.input[k] - expect.input[k]) < 1e-7, `input[${k}] ${m.input[k]} vs ${expect.input[k]}`);
    assert.ok(Math.abs(m.output[k] - expect.output[k]) < 1e-7, `output[${k}] ${m.output[k]} vs ${expect.output[k]}`);
  }
});

test('cbowStep: updates are lr x the gradient of the negative-sampling log-likelihood (finite differences)', () => {
  const loglik = (inp: Float64Array, out: Float64Array) => {
    const h = [(inp[0] + inp[2]) / 2, (inp[1] + inp[3]) / 2];
    return Math.log(sig(h[0] * out[4] + h[1] * out[5])) + Math.log(sig(-(h[0] * out[6] + h[1] * out[7])));
  };
  const base = tinyModel();
  const inp = Float64Array.from(base.input);
  const out = Float64Array.from(base.output);
  const lr = 0.1; // the step is linear in lr (all gradients at the old point), so a large lr keeps float32 rounding small
  const m = tinyModel();
  cbowStep(m, [0, 1], 2, [2, 3], 2, lr, new Float32Array(2), new Float32Array(2));
  const eps = 1e-6;
  for (const k of [4, 5, 6, 7]) {
    const p = Float64Array.from(out); p[k] += eps;
    const q = Float64Array.from(out); q[k] -= eps;
    const grad = (loglik(inp, p) - loglik(inp, q)) / (2 * eps);
    assert.ok(Math.abs((m.output[k] - base.output[k]) - lr * grad) < 2e-7, `output ${k}`);
  }
  for (const k of [0, 1, 2, 3]) {
    const p = Float64Array.from(inp); p[k] += eps;
    const q = Float64Array.from(inp); q[k] -= eps;
    const grad = (loglik(p, out) - loglik(q, out)) / (2 * eps);
    // word2vec adds dL/dh (not dL/dh / contexts) to every context vector: 2 x the exact gradient here
    assert.ok(Math.abs((m.input[k] - base.input[k]) - 2 * lr * grad) < 2e-7, `input ${k}`);
  }
});

/** Lines drawn from one of two disjoint groups of tokens (0-9 and 10-19), plus noise ids never mixed. */
function syntheticCorpus(lines: number, seed: number): ArrayLike<number>[] {
  let s = seed;
  const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
  const out: number[][] = [];
  for (let i = 0; i < lines; i++) {
    const g = i % 2 === 0 ? 0 : 10;
    const line: number[] = [];
    for (let j = 0; j < 12; j++) line.push(g + Math.floor(rnd() * 10));
    out.push(line);
  }
  return out;
}

const cos = (v: Float32Array, dim: number, a: number, b: number) => {
  let ab = 0, aa = 0, bb = 0;
  for (let d = 0; d < dim; d++) { ab += v[a * dim + d] * v[b * dim + d]; aa += v[a * dim + d] ** 2; bb += v[b * dim + d] ** 2; }
  return ab / Math.sqrt(aa * bb);
};

test('trainAuxVectors: tokens that co-occur get higher cosine than tokens that never do; deterministic for a seed', () => {
  const corpus = tokenCorpus(syntheticCorpus(600, 7), 21); // id 20 never occurs
  const settings = { ...DEFAULT_AUX_SETTINGS, dim: 16, epochs: 5, sample: 0, minCount: 1, seed: 3 };
  const a = trainAuxVectors(corpus, settings);
  let within = 0, across = 0, nw = 0, na = 0;
  for (let i = 0; i < 20; i++) for (let j = i + 1; j < 20; j++) {
    const c = cos(a.vectors, 16, i, j);
    if ((i < 10) === (j < 10)) { within += c; nw++; } else { across += c; na++; }
  }
  within /= nw; across /= na;
  assert.ok(within > across + 0.3, `within-group cosine ${within.toFixed(3)} vs across ${across.toFixed(3)}`);
  assert.equal(hasVector(a, 20), false);
  assert.equal(hasVector(a, 3), true);
  const b = trainAuxVectors(corpus, settings);
  assert.deepEqual(b.vectors, a.vectors);
  const c = trainAuxVectors(corpus, { ...settings, seed: 4 });
  assert.notDeepEqual(c.vectors, a.vectors);
});

test('trainAuxVectors: minCount drops rare tokens', () => {
  const corpus = tokenCorpus([[0, 1, 0, 1, 0, 1, 2]], 3);
  const a = trainAuxVectors(corpus, { ...DEFAULT_AUX_SETTINGS, dim: 4, minCount: 2, sample: 0 });
  assert.equal(hasVector(a, 2), false);
  assert.ok(a.vectors.subarray(8, 12).every((x) => x === 0));
  assert.equal(hasVector(a, 0), true);
});

test('auxEmbeddings: tokenizes with the given tokenizer, caches by corpus + tokenizer + settings', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'aux-'));
  try {
    const corpus = path.join(dir, 'c.txt');
    await fsp.writeFile(corpus, 'o deputado falou na assembleia\na assembleia votou o projeto\n'.repeat(30));
    const tok = await readTokenizerJson('assets/models/tiny-en-llama/tokenizer.json');
    const settings = { dim: 8, epochs: 1 };
    const cache = path.join(dir, 'cache');
    const a = await auxEmbeddings({ corpus: [corpus], tokenizer: tok, settings, cacheDir: cache });
    assert.equal(a.cached, false);
    assert.equal(a.vocabSize, 8192);
    assert.ok(a.tokens > 100);
    const b = await auxEmbeddings({ corpus: [corpus], tokenizer: tok, settings, cacheDir: cache });
    assert.equal(b.cached, true);
    assert.deepEqual(b.vectors, a.vectors);
    const c = await auxEmbeddings({ corpus: [corpus], tokenizer: tok, settings: { ...settings, seed: 1 }, cacheDir: cache });
    assert.equal(c.cached, false);
    await assert.rejects(auxEmbeddings({ corpus: [], tokenizer: tok }), /corpus/);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('character n-grams (fastText): rows of a token, and a vector for a token the corpus never shows', async () => {
  const { subwordRows, NGRAM_SETTINGS } = await import('../src/embeddings/aux-embeddings.ts');
  const s = { minn: 3, maxn: 6, buckets: 1000 };
  // "<ab>": 3-grams "<ab", "ab>"; the 4-gram is the whole token (its own row)
  const fnv = (x: string) => { let h = 2166136261; for (const c of x) { h ^= c.charCodeAt(0); h = Math.imul(h, 16777619) >>> 0; } return h >>> 0; };
  assert.deepEqual([...subwordRows(7, 'ab', 50, s)], [7, 50 + (fnv('<ab') % 1000), 50 + (fnv('ab>') % 1000)]);
  assert.deepEqual([...subwordRows(7, 'ab', 50, { ...s, minn: 0 })], [7]);
  assert.equal(subwordRows(1, 'abcdefgh', 50, s).length, 1 + 8 + 7 + 6 + 5); // 10 characters with < >: 3..6-grams
  // group A tokens are 'xa0'..'xa9', group B 'yb0'..'yb9'; id 20 ('xa_new') never occurs but shares n-grams with group A
  const strings = [...Array.from({ length: 10 }, (_, i) => `xa${i}`), ...Array.from({ length: 10 }, (_, i) => `yb${i}`), 'xa_new'];
  const corpus = { ...tokenCorpus(syntheticCorpus(600, 7), 21), strings };
  const a = trainAuxVectors(corpus, { ...DEFAULT_AUX_SETTINGS, ...NGRAM_SETTINGS, buckets: 5000, dim: 16, epochs: 5, sample: 0, minCount: 1, seed: 3 });
  assert.equal(hasVector(a, 20), true);
  let toA = 0, toB = 0;
  for (let i = 0; i < 10; i++) { toA += cos(a.vectors, 16, 20, i) / 10; toB += cos(a.vectors, 16, 20, 10 + i) / 10; }
  assert.ok(toA > toB + 0.2, `unseen token: cosine to its n-gram group ${toA.toFixed(3)} vs the other ${toB.toFixed(3)}`);
  let within = 0, across = 0;
  for (let i = 0; i < 10; i++) for (let j = i + 1; j < 10; j++) { within += cos(a.vectors, 16, i, j) + cos(a.vectors, 16, 10 + i, 10 + j); across += cos(a.vectors, 16, i, 10 + j) + cos(a.vectors, 16, j, 10 + i); }
  assert.ok(within > across, 'co-occurring tokens still closer');
});
