// int8 precision: per-column symmetric quantization (hand-computed), and the demo model's int8
// engine stays close to float32 (an approximation, so the bounds are loose but must hold).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantizeColumns } from '../src/runtime/quantize.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { argmax } from '../src/runtime/sampling.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('quantizeColumns: [out, in] rows become [in, out] int8 columns with scale max|w|/127', () => {
  // two weights of 2 and 1 output rows, in = 3
  const a = Float32Array.of(1, -0.5, 0.25, /* row 2 */ 0, 0, 0);
  const b = Float32Array.of(-2, 1, 0.5);
  const { q, scales, inDim, outDim } = quantizeColumns([a, b], 3);
  assert.equal(inDim, 3);
  assert.equal(outDim, 3);
  assert.deepEqual([...scales], [1 / 127, 1, 2 / 127].map(Math.fround)); // an all-zero row gets scale 1
  // column 0 = row 1 of a: 1 -> 127, -0.5 -> -63.5 -> -63 (round half up in JS: Math.round(-63.5) = -63), 0.25 -> 31.75 -> 32
  assert.deepEqual([q[0], q[3], q[6]], [127, -63, 32]);
  assert.deepEqual([q[1], q[4], q[7]], [0, 0, 0]);
  assert.deepEqual([q[2], q[5], q[8]], [-127, 64, 32]);
  assert.throws(() => quantizeColumns([Float32Array.of(1, 2)], 3), /not \[out, 3\]/);
});

test('int8 engine on the demo model: logits close to float32, mostly the same argmax, log-likelihood within 1%', async () => {
  const dir = path.join(root, 'assets', 'models', 'tiny-en-llama');
  const f = await loadEngine(dir, { threads: 1 });
  const q = await loadEngine(dir, { threads: 1, precision: 'int8' });
  try {
    const seq = Array.from({ length: 64 }, (_, i) => 100 + ((i * 37) % 5000));
    const a = await f.logits(seq);
    const b = await q.logits(seq);
    const V = f.vocabRows;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    let agree = 0;
    for (let p = 0; p < seq.length; p++) if (argmax(a.subarray(p * V, (p + 1) * V)) === argmax(b.subarray(p * V, (p + 1) * V))) agree++;
    assert.ok(maxDiff > 0, 'int8 must differ from float32 (else the quantized graph was not used)');
    assert.ok(maxDiff < 2, `max |Δlogit| ${maxDiff}`);
    assert.ok(agree >= 0.8 * seq.length, `argmax agrees at ${agree} of ${seq.length} positions`);
    const [lf] = await f.tokenLogprobs([seq]);
    const [lq] = await q.tokenLogprobs([seq]);
    const sf = lf.reduce((s, v) => s + v, 0);
    const sq = lq.reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(sq - sf) < 0.01 * Math.abs(sf), `log-likelihood ${sf} (float32) vs ${sq} (int8)`);
  } finally {
    await f.dispose();
    await q.dispose();
  }
});

test('eval --precision accepts only float32 or int8', async () => {
  const { runCli } = await import('./support/cli.ts');
  const r = await runCli(['eval', '--model', '/nonexistent/model', '--metrics', 'bpb', '--precision', 'fp8', '--out', '/tmp/x.json']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--precision fp8: expected one of float32, int8/);
});
