import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseInitMethod, parseInitMethodList, weightedDropWeights, seededRandom, ALL_METHODS, SOURCE_METHODS, INIT_METHODS, VALID_FORMS, InitMethodError,
  type InitContext, type RowStats,
} from '../src/embeddings/init-methods.ts';
import { RowStatsAccumulator, choleskyLower } from '../src/embeddings/row-stats.ts';

const A = Float32Array.from([1, 2, 3]);
const B = Float32Array.from([3, -2, 0]);
const C = Float32Array.from([2, 0, 9]);
const SUB = [A, B, C];

function run(spec: string, sub: Float32Array[] = SUB, ctx: Partial<InitContext> = {}): number[] {
  const m = parseInitMethod(spec);
  const out = new Float32Array(3);
  m.init(sub, { hidden: 3, stats: null, random: seededRandom(1), ...ctx }, out);
  return [...out];
}

function close(actual: number[], expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tol, `index ${i}: ${v} vs ${expected[i]} (all: ${actual})`));
}

test('sub-token methods against hand-computed values', () => {
  close(run('mean'), [2, 0, 4]);
  close(run('min'), [1, -2, 0]);
  close(run('max'), [3, 2, 9]);
  close(run('first'), [1, 2, 3]);
  close(run('last'), [2, 0, 9]);
  close(run('zero'), [0, 0, 0]);
  // quantile: sorted columns [1,2,3] [-2,0,2] [0,3,9]; q=0.25 -> position 0.5
  close(run('quantile(0.25)'), [1.5, -1, 1.5]);
  close(run('quantile(0.5)'), [2, 0, 3]);
  close(run('quantile(0)'), [1, -2, 0]);
  close(run('quantile(1)'), [3, 2, 9]);
  close(run('quantile(0.75)'), [2.5, 1, 6]);
  // weighted_drop(2), n = 3: weights 8, 4, 2 over 14
  close(run('weighted_drop(2)'), [24 / 14, 8 / 14, 42 / 14]);
  // K = 1 is the mean; K < 1 favours the last sub-token: weights 1/8, 1/4, 1/2 over 7/8
  close(run('weighted_drop(1)'), [2, 0, 4]);
  close(run('weighted_drop(0.5)'), [(1 + 6 + 8) / 7, (2 - 4 + 0) / 7, (3 + 0 + 36) / 7]);
  // one sub-token: every sub-token method returns that row
  for (const s of ['mean', 'min', 'max', 'quantile(0.3)', 'weighted_drop(5)', 'first', 'last']) close(run(s, [B]), [3, -2, 0]);
});

test('weighted_drop weights: K^n ... K^1, normalized, K > 1 favours the first', () => {
  close([...weightedDropWeights(5, 2)], [25 / 30, 5 / 30], 1e-12);
  close([...weightedDropWeights(2, 4)], [16 / 30, 8 / 30, 4 / 30, 2 / 30], 1e-12);
});

test('methods that read sub-tokens refuse an empty tokenization', () => {
  for (const s of ['mean', 'min', 'max', 'quantile(0.5)', 'weighted_drop(2)', 'first', 'last']) {
    assert.throws(() => run(s, []), InitMethodError);
  }
  close(run('zero', []), [0, 0, 0]);
});

function statsOf(rows: number[][], withCov: boolean): RowStats {
  const acc = new RowStatsAccumulator(rows[0].length, withCov);
  for (const r of rows) acc.add(Float32Array.from(r), 1);
  return acc.finish();
}

test('random: uniform within each dimension [min, max] of existing rows, seeded', () => {
  const stats = statsOf([[0, 5, -1], [1, 5, 3], [0.5, 5, 1]], false);
  close([...stats.min], [0, 5, -1]);
  close([...stats.max], [1, 5, 3]);
  const a = run('random', [], { stats, random: seededRandom(7) });
  const b = run('random', [], { stats, random: seededRandom(7) });
  const c = run('random', [], { stats, random: seededRandom(8) });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(a[1], 5); // zero-width range
  assert.ok(a[0] >= 0 && a[0] <= 1 && a[2] >= -1 && a[2] <= 3);
  // the value is min + (max - min) * u for the first draws of the source
  const r = seededRandom(7);
  close(a, [0 + 1 * r(), 5, -1 + 4 * (r(), r())], 1e-6);
  assert.throws(() => run('random'), /statistics/);
});

test('row statistics: chunked accumulation, mean and covariance', () => {
  const rows = [[1, 2], [3, 0], [2, 4], [6, 2]];
  const acc = new RowStatsAccumulator(2, true);
  acc.add(Float32Array.from([1, 2, 3, 0]), 2);
  acc.add(Float32Array.from([2, 4, 6, 2]), 2);
  const s = acc.finish();
  close([...s.mean], [3, 2]);
  // population covariance: var x = (4+0+1+9)/4 = 3.5, var y = (0+4+4+0)/4 = 2, cov = (-2*0 + 0*-2 + -1*2 + 3*0)/4 = -0.5
  const L = s.cholesky!;
  const cov = [L[0] * L[0], L[2] * L[0], L[2] * L[2] + L[3] * L[3]];
  close(cov, [3.5e-9, -0.5e-9, 2e-9], 1e-18);
  assert.deepEqual(statsOf(rows, true).mean, s.mean);
});

test('Cholesky factor: hand-computed 2x2, and null when not positive definite', () => {
  close([...choleskyLower(Float64Array.from([4, 2, 2, 3]), 2)!], [2, 0, 1, Math.SQRT2], 1e-12);
  close([...choleskyLower(Float64Array.from([4, 2, 2, 3]), 2, 0.25)!], [1, 0, 0.5, Math.SQRT2 / 2], 1e-12);
  assert.equal(choleskyLower(Float64Array.from([1, 2, 2, 1]), 2), null);
  assert.equal(choleskyLower(Float64Array.from([1, 1, 1, 1]), 2), null);
});

test('hf-mean-resizing: samples N(mean, 1e-9 cov); the mean when cov is singular', () => {
  // identical dimensions -> singular covariance -> exactly the mean (transformers' fallback)
  const singular = statsOf([[1, 1, 0], [3, 3, 0], [2, 2, 0]], true);
  assert.equal(singular.cholesky, null);
  close(run('hf-mean-resizing', [], { stats: singular }), [2, 2, 0]);
  // a proper covariance: the sample mean and covariance over many draws match mean and 1e-9 cov
  const stats = statsOf([[1, 0, 0], [-1, 0, 2], [0, 2, 1], [0, -2, 1], [2, 1, -1], [-2, -1, 4]], true);
  assert.ok(stats.cholesky);
  const mu = [...stats.mean];
  const m = parseInitMethod('hf-mean-resizing');
  const rand = seededRandom(3);
  const n = 20000;
  const out = new Float32Array(3);
  const sum = [0, 0, 0];
  const sq = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    m.init([], { hidden: 3, stats, random: rand }, out);
    // float32 cannot hold mean + 3e-5 noise exactly; rescale the deviation in float64 instead
    for (let d = 0; d < 3; d++) { const dev = out[d] - mu[d]; sum[d] += dev; sq[d] += dev * dev; }
  }
  // population variance of column 0: values 1,-1,0,0,2,-2 -> mean 0, var 10/6
  const var0 = (1e-9 * 10) / 6;
  assert.ok(Math.abs(sq[0] / n - var0) < 0.1 * var0, `variance ${sq[0] / n} vs ${var0}`);
  assert.ok(Math.abs(sum[0] / n) < 0.05 * Math.sqrt(var0));
  // deterministic per seed
  const a = new Float32Array(3);
  const b = new Float32Array(3);
  m.init([], { hidden: 3, stats, random: seededRandom(9) }, a);
  m.init([], { hidden: 3, stats, random: seededRandom(9) }, b);
  assert.deepEqual(a, b);
});

test('one registry: every method parses from its listed spelling, is in the valid forms and in extend --help', async () => {
  assert.deepEqual([...ALL_METHODS, ...SOURCE_METHODS], INIT_METHODS.map((d) => d.listed));
  assert.deepEqual(VALID_FORMS, INIT_METHODS.map((d) => d.form));
  for (const d of INIT_METHODS) {
    assert.equal(parseInitMethod(d.listed).spec, d.listed);
    assert.equal(parseInitMethod(d.listed).name, d.name);
    assert.ok(d.plain || d.withArgs, d.name);
  }
  const { runCli } = await import('./support/cli.ts');
  const help = (await runCli(['extend', '--help'])).stdout;
  for (const d of INIT_METHODS) assert.match(help, new RegExp(`\\n  ${d.usage.replace(/[()]/g, '\\$&')} +${d.doc.split(' ')[0]}`), d.usage);
});

test('strict parsing: canonical forms and clear errors', () => {
  assert.equal(parseInitMethod('quantile(0.25)').spec, 'quantile(0.25)');
  assert.equal(parseInitMethod('quantile(.5)').spec, 'quantile(0.5)');
  assert.equal(parseInitMethod('weighted_drop(1.5)').param, 1.5);
  assert.equal(parseInitMethod('weighted_drop(2)').name, 'weighted_drop');
  for (const s of ALL_METHODS) assert.equal(parseInitMethod(s).spec, s);
  for (const bad of ['Mean', 'avg', 'quantile', 'quantile()', 'quantile(1.5)', 'quantile(-0.1)', 'quantile( 0.5)', 'quantile(0.5',
    'weighted_drop(0)', 'weighted_drop(-2)', 'weighted_drop(abc)', 'weighted_drop(1e999)', 'mean ', 'toString', '__proto__', '']) {
    assert.throws(() => parseInitMethod(bad), (e: Error) => {
      assert.ok(e instanceof InitMethodError, bad);
      assert.match(e.message, /Valid forms: mean; min; max; quantile\(q\)/);
      return true;
    }, bad);
  }
  assert.deepEqual(parseInitMethodList('mean, quantile(0.25),weighted_drop(2)').map((m) => m.spec), ['mean', 'quantile(0.25)', 'weighted_drop(2)']);
  assert.throws(() => parseInitMethodList('mean,mean'), /twice/);
  assert.throws(() => parseInitMethodList(' , '), /no init methods/);
});

test('blocked covariance equals the naive sum for odd and even widths; batched sampling equals per-row sampling', () => {
  for (const h of [5, 9, 12]) {
    const n = 300;
    const r = seededRandom(h);
    const data = new Float32Array(n * h);
    for (let i = 0; i < data.length; i++) data[i] = r() * 2 - 1 + (i % h) * 0.1;
    const acc = new RowStatsAccumulator(h, true);
    acc.add(data.subarray(0, 100 * h), 100);
    acc.add(data.subarray(100 * h), 200);
    const s = acc.finish();
    const mu = new Float64Array(h);
    for (let k = 0; k < n; k++) for (let d = 0; d < h; d++) mu[d] += data[k * h + d] / n;
    const L = s.cholesky!;
    for (let i = 0; i < h; i++) for (let j = 0; j <= i; j++) {
      let c = 0;
      for (let k = 0; k < n; k++) c += (data[k * h + i] - mu[i]) * (data[k * h + j] - mu[j]);
      c /= n;
      let llt = 0;
      for (let k = 0; k < h; k++) llt += L[i * h + k] * L[j * h + k];
      assert.ok(Math.abs(llt / 1e-9 - c) < 1e-9, `h=${h} cov[${i}][${j}] ${llt / 1e-9} vs ${c}`);
    }
    const m = parseInitMethod('hf-mean-resizing');
    const count = 7;
    const batch = new Float32Array(count * h);
    m.initBatch!(count, { hidden: h, stats: s, random: seededRandom(4) }, batch);
    const rnd = seededRandom(4);
    const one = new Float32Array(h);
    for (let t = 0; t < count; t++) {
      m.init([], { hidden: h, stats: s, random: rnd }, one);
      assert.deepEqual([...one], [...batch.subarray(t * h, (t + 1) * h)]);
    }
  }
});
