import test from 'node:test';
import assert from 'node:assert/strict';
import { generateMany, lengthBatches } from '../src/eval/bench/generate-many.ts';

test('lengthBatches: sorted by length, every index once, batch size and padded-token budget respected', () => {
  const lengths = [5, 1, 9, 3, 3, 7, 2, 8, 4, 6];
  const batches = lengthBatches(lengths, 3, 16);
  assert.deepEqual(batches.flat().slice().sort((a, b) => a - b), lengths.map((_, i) => i));
  const flat = batches.flat();
  for (let k = 1; k < flat.length; k++) assert.ok(lengths[flat[k - 1]] <= lengths[flat[k]]);
  for (const b of batches) {
    assert.ok(b.length <= 3);
    const padded = b.length * Math.max(...b.map((i) => lengths[i]));
    assert.ok(padded <= 16 || b.length === 1, `batch ${b} pads to ${padded} tokens`);
  }
  // a single prompt longer than the budget still gets its own batch
  assert.deepEqual(lengthBatches([100, 1], 4, 10), [[1], [0]]);
});

test('generateMany returns outputs in the input order whatever the batching', async () => {
  const prompts = [[1, 2, 3, 4], [5], [6, 7], [8, 9, 10], [11]];
  const calls: number[][][] = [];
  const engine = {
    generate: async (p: number[]) => [p[0] * 10],
    generateBatch: async (ps: number[][]) => { calls.push(ps); return ps.map((p) => [p[0] * 10]); },
  };
  const out = await generateMany(engine as never, prompts, { maxNewTokens: 1 }, undefined, 2, 100);
  assert.deepEqual(out, [[10], [50], [60], [80], [110]]);
  assert.ok(calls.every((c) => c.length <= 2));
  assert.deepEqual(calls[0].map((p) => p.length), [1, 1]); // the shortest prompts go first
});
