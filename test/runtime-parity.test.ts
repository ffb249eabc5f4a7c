// Parity of the ONNX Runtime engine with Hugging Face transformers (float32, eager) on the
// reference fixtures in ../shared/fixtures/reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensors, readTensorBytes, readTensorF32, type SafetensorsFile } from '../src/io/safetensors.ts';
import { toIntArray } from '../src/io/dtype.ts';
import { loadEngine, type Engine } from '../src/runtime/engine.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(repoRoot, '..', 'shared');
const refDir = path.join(shared, 'fixtures', 'reference');

async function ids(st: SafetensorsFile, name: string): Promise<number[]> {
  const info = st.byName.get(name)!;
  return Array.from(toIntArray(await readTensorBytes(st, name), info.dtype));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('tiny-en-llama matches transformers: logits, target logprobs, greedy32', async () => {
  const st = await openSafetensors(path.join(refDir, 'tiny-en-llama.reference.safetensors'));
  const engine: Engine = await loadEngine(path.join(repoRoot, 'assets', 'models', 'tiny-en-llama'), { threads: 2 });
  try {
    for (const t of ['text0', 'text1']) {
      const input = await ids(st, `${t}.input_ids`);
      const ref = await readTensorF32(st, `${t}.logits`);
      const got = await engine.logits(input);
      const d = maxAbsDiff(got, ref);
      assert.ok(d <= 1e-3, `${t}.logits max|Δ| = ${d}`);
    }
    const input2 = await ids(st, 'text2.input_ids');
    const [lp] = await engine.tokenLogprobs([input2]);
    const refLp = await readTensorF32(st, 'text2.target_logprobs');
    assert.ok(maxAbsDiff(lp, refLp) <= 1e-3, `text2 target logprobs max|Δ| = ${maxAbsDiff(lp, refLp)}`);
    const [last] = await engine.lastLogits([input2]);
    assert.ok(maxAbsDiff(last, await readTensorF32(st, 'text2.last_logits')) <= 1e-3, 'text2.last_logits');
    for (const t of ['text0', 'text1', 'text2']) {
      const input = await ids(st, `${t}.input_ids`);
      const ref = await ids(st, `${t}.greedy32`);
      const got = await engine.generate(input, { maxNewTokens: 32, temperature: 0 });
      assert.deepEqual(got, ref, `${t}.greedy32`);
    }
  } finally {
    await engine.dispose();
  }
});

test('the plain-operator graph (opset 17) matches transformers too', async () => {
  for (const [model, ref] of [
    [path.join(repoRoot, 'assets', 'models', 'tiny-en-llama'), 'tiny-en-llama'],
    [path.join(shared, 'fixtures', 'models', 'random-qwen2'), 'random-qwen2'],
  ]) {
    const st = await openSafetensors(path.join(refDir, `${ref}.reference.safetensors`));
    const engine = await loadEngine(model, { threads: 2, ops: 'plain' });
    try {
      for (const t of ['text0', 'text1']) {
        const d = maxAbsDiff(await engine.logits(await ids(st, `${t}.input_ids`)), await readTensorF32(st, `${t}.logits`));
        assert.ok(d <= 1e-3, `${ref} ${t}.logits max|Δ| = ${d}`);
      }
    } finally {
      await engine.dispose();
    }
  }
});

test('random-qwen2 (qkv bias, untied, fp16, theta 1e6) matches transformers incl. a left-padded batch', async () => {
  const st = await openSafetensors(path.join(refDir, 'random-qwen2.reference.safetensors'));
  const engine = await loadEngine(path.join(shared, 'fixtures', 'models', 'random-qwen2'), { threads: 2 });
  try {
    const inputs: number[][] = [];
    for (const t of ['text0', 'text1']) {
      const input = await ids(st, `${t}.input_ids`);
      inputs.push(input);
      const d = maxAbsDiff(await engine.logits(input), await readTensorF32(st, `${t}.logits`));
      assert.ok(d <= 1e-3, `${t}.logits max|Δ| = ${d}`);
      const got = await engine.generate(input, { maxNewTokens: 16, temperature: 0, eosIds: [] });
      assert.deepEqual(got, await ids(st, `${t}.greedy16`), `${t}.greedy16`);
    }
    // The reference batch is left-padded with position ids = cumsum(mask) - 1: our lastLogits pads the same way.
    const mask = await ids(st, 'batch.attention_mask');
    const batchIds = await ids(st, 'batch.input_ids');
    const width = mask.length / 2;
    const rows = [0, 1].map((b) => batchIds.slice(b * width, (b + 1) * width).filter((_, j) => mask[b * width + j] === 1));
    assert.deepEqual(rows, inputs, 'the batch holds the two texts');
    const last = await engine.lastLogits(rows);
    const ref = await readTensorF32(st, 'batch.last_logits');
    const V = engine.vocabRows;
    for (let b = 0; b < 2; b++) {
      const d = maxAbsDiff(last[b], ref.subarray(b * V, (b + 1) * V));
      assert.ok(d <= 1e-3, `batch.last_logits[${b}] max|Δ| = ${d}`);
    }
  } finally {
    await engine.dispose();
  }
});
