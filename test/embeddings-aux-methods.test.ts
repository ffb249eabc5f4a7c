// The combining initializations (focus, wechsel, omp, merge) against hand-computed values, and their parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sparsemax, focusWeights, wechselWeights, ompWeights, topK, mergeTreeWeights, solveSpd } from '../src/embeddings/aux-methods.ts';
import { parseInitMethod, parseInitMethodList, type AuxSpace, type InitSources } from '../src/embeddings/init-methods.ts';
import { seededRandom } from '../src/io/seeded-random.ts';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('sparsemax: Martins & Astudillo closed forms', () => {
  // two dimensions: sparsemax([t, 0]) = [(1 + t) / 2, (1 - t) / 2] for |t| <= 1, else one-hot
  for (const t of [-0.8, -0.2, 0, 0.5, 0.99]) close(sparsemax([t, 0]), [(1 + t) / 2, (1 - t) / 2]);
  close(sparsemax([2, 0]), [1, 0]);
  close(sparsemax([-1.5, 0]), [0, 1]);
  // three: z = [1, 0.8, 0.1]: k(z) = 2 (1 + 2 * 0.8 > 1.8, 1 + 3 * 0.1 < 1.9), tau = 0.4
  close(sparsemax([1, 0.8, 0.1]), [0.6, 0.4, 0], 1e-12);
  // uniform input: the uniform distribution; shift-invariant
  close(sparsemax([0.3, 0.3, 0.3, 0.3]), [0.25, 0.25, 0.25, 0.25]);
  close(sparsemax([5.3, 5.3, 5.3, 5.3]), [0.25, 0.25, 0.25, 0.25]);
  // order does not matter
  close(sparsemax([0.1, 1, 0.8]), [0, 0.6, 0.4], 1e-12);
  const f = focusWeights([0.1, 1, 0.8]);
  assert.deepEqual(f.index, [1, 2]);
  close(f.weights, [0.6, 0.4], 1e-12);
});

test('wechsel: top-k by similarity, softmax(sim / t)', () => {
  assert.deepEqual(topK([0.1, 0.9, 0.5, 0.9, -1], 3), [1, 3, 2]);
  const w = wechselWeights([0.1, 0.9, 0.5, 0.7], 2, 0.1);
  assert.deepEqual(w.index, [1, 3]);
  // exp(9) / (exp(9) + exp(7)) = 1 / (1 + exp(-2))
  close(w.weights, [1 / (1 + Math.exp(-2)), Math.exp(-2) / (1 + Math.exp(-2))], 1e-12);
  assert.equal(wechselWeights([0.3], 10, 0.1).index.length, 1);
});

test('omp: recovers an exact sparse combination (signed coefficients)', () => {
  const n = 40, dim = 24;
  const rnd = seededRandom(11);
  const atoms = new Float32Array(n * dim);
  for (let k = 0; k < atoms.length; k++) atoms[k] = rnd() - 0.5;
  const truth = new Map([[3, 0.7], [17, -0.4], [25, 0.25]]);
  const y = new Float32Array(dim);
  for (const [j, c] of truth) for (let d = 0; d < dim; d++) y[d] += c * atoms[j * dim + d];
  const w = ompWeights(y, atoms, n, dim, 8);
  assert.deepEqual([...w.index].sort((a, b) => a - b), [3, 17, 25], 'stops after the exact support');
  w.index.forEach((j, i) => assert.ok(Math.abs(w.weights[i] - truth.get(j)!) < 1e-5, `coef of ${j}: ${w.weights[i]}`));
  // k = 1 picks the most correlated atom and its least-squares coefficient <y, a> / <a, a>
  const one = ompWeights(y, atoms, n, dim, 1);
  assert.equal(one.index.length, 1);
  const a = atoms.subarray(one.index[0] * dim, (one.index[0] + 1) * dim);
  const ya = a.reduce((s, x, d) => s + x * y[d], 0), aa = a.reduce((s, x) => s + x * x, 0);
  assert.ok(Math.abs(one.weights[0] - ya / aa) < 1e-9);
  close(solveSpd(Float64Array.from([4, 2, 2, 3]), Float64Array.from([2, 1]), 2)!, [0.5, 0], 1e-12);
});

test('merge: the recursive mean down a known merge tree', () => {
  // old ids < 10; 10 = (1, 2); 11 = (10, 3); 12 = (11, 10); 13 has no known merge
  const merges: Record<number, [number, number]> = { 10: [1, 2], 11: [10, 3], 12: [11, 10] };
  const of = (id: number) => merges[id] ?? null;
  assert.deepEqual([...mergeTreeWeights(10, 10, of)!].sort(), [[1, 0.5], [2, 0.5]]);
  assert.deepEqual(new Map([...mergeTreeWeights(11, 10, of)!].sort()), new Map([[1, 0.25], [2, 0.25], [3, 0.5]]));
  // 12 = (11 + 10) / 2 = ((1+2)/4 + 3/2) / 2 + (1+2)/4 = 1: 3/8, 2: 3/8, 3: 1/4
  assert.deepEqual(new Map([...mergeTreeWeights(12, 10, of)!].sort()), new Map([[1, 0.375], [2, 0.375], [3, 0.25]]));
  assert.equal(mergeTreeWeights(13, 10, of), null);
  assert.deepEqual([...mergeTreeWeights(4, 10, of)!], [[4, 1]]);
  const m = parseInitMethod('merge');
  assert.equal(m.needs, 'merges');
  const c = m.combine!(12, { merges: { firstNew: 10, mergeOf: of } })!;
  assert.deepEqual(c, { ids: [1, 2, 3], weights: [0.375, 0.375, 0.25] });
  assert.throws(() => m.combine!(12, {}), /merges mode/);
});

/** Three existing tokens (ids 0-2) on axes, a new token 3 between 0 and 1, and 4 with no vector. */
function space(): AuxSpace {
  const unit: Record<number, number[]> = { 0: [1, 0, 0], 1: [0, 1, 0], 2: [0, 0, 1], 3: [0.8, 0.6, 0] };
  return {
    dim: 3,
    unit: (id) => (unit[id] ? Float32Array.from(unit[id]) : null),
    sharedIds: Int32Array.from([0, 1, 2]),
    sharedUnit: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]),
  };
}

test('registry: focus / wechsel / omp combine shared rows from the auxiliary space; no vector = fallback (null)', () => {
  const src: InitSources = { aux: space() };
  // sims [0.8, 0.6, 0]: sparsemax -> tau = 0.2: [0.6, 0.4, 0]
  const f = parseInitMethod('focus').combine!(3, src)!;
  assert.deepEqual(f.ids, [0, 1]);
  close(f.weights, [0.6, 0.4], 1e-6);
  const w = parseInitMethod('wechsel(2,0.1)').combine!(3, src)!;
  assert.deepEqual(w.ids, [0, 1]);
  close(w.weights, [1 / (1 + Math.exp(-2)), 1 - 1 / (1 + Math.exp(-2))], 1e-6);
  const o = parseInitMethod('omp(8)').combine!(3, src)!;
  assert.deepEqual(o.ids, [0, 1]);
  close(o.weights, [0.8, 0.6], 1e-6);
  for (const s of ['focus', 'wechsel', 'omp']) {
    assert.equal(parseInitMethod(s).combine!(4, src), null);
    assert.throws(() => parseInitMethod(s).combine!(3, {}), /corpus/);
  }
  // the fallback (init) is the mean of the sub-token rows
  const out = new Float32Array(2);
  parseInitMethod('focus').init([Float32Array.from([1, 2]), Float32Array.from([3, 4])], { hidden: 2, stats: null, random: () => 0 }, out);
  close(out, [2, 3]);
});

test('parsing: strict forms with defaults, lists with commas inside parentheses', () => {
  assert.equal(parseInitMethod('wechsel').spec, 'wechsel(10,0.1)');
  assert.equal(parseInitMethod('wechsel(10, 0.1)').spec, 'wechsel(10,0.1)');
  assert.equal(parseInitMethod('omp').spec, 'omp(8)');
  assert.equal(parseInitMethod('omp(4)').spec, 'omp(4)');
  assert.equal(parseInitMethod('focus').needs, 'aux');
  for (const bad of ['omp(0)', 'omp(2.5)', 'omp()', 'omp(x)', 'wechsel(10)', 'wechsel(0,0.1)', 'wechsel(10,0)', 'wechsel(10,-1)', 'wechsel(1.5,0.1)', 'focus(2)', 'merge(1)']) {
    assert.throws(() => parseInitMethod(bad), /invalid init method/, bad);
  }
  assert.deepEqual(parseInitMethodList('mean,wechsel(5,0.2),omp(3),weighted_drop(2)').map((m) => m.spec), ['mean', 'wechsel(5,0.2)', 'omp(3)', 'weighted_drop(2)']);
});
