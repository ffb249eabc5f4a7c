// The tuner's TypeScript forward (tune/frozen-model.ts, the pass whose exact gradients train the new
// rows) against the ORT engine (runtime/graph.ts, checked against transformers in
// runtime-parity.test.ts): both read runtime/model-spec.ts, and their final hidden states agree.
// The gradient tests check the backward against finite differences of this same forward, so this is
// what ties the tuner to the model transformers runs.
// Measured (2026-12-03, f32 forward with the ORT kernels, as tuning runs it; 4 sequences of 1-61
// tokens): max |Δ| 2.2e-6 tied Llama, 1.6e-6 untied Qwen2 (q/k/v biases), 1.8e-6 SmolLM3 (NoPE
// layers 2 and 3; treating them as RoPE layers gives 0.54).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadModelDir } from '../src/io/model-dir.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { ropeLayers } from '../src/runtime/model-spec.ts';
import { createOrtKernels } from '../src/tune/ort-kernels.ts';
import { hiddenStates, loadFrozenModel } from '../src/tune/frozen-model.ts';
import { writeTestModel, rng } from './support/factory.ts';

const cases = [
  { name: 'tied Llama', arch: 'llama', tied: true },
  { name: 'untied Qwen2 (q/k/v biases)', arch: 'qwen2', tied: false },
  { name: 'SmolLM3 (NoPE layers)', arch: 'llama', tied: true, smollm3: { no_rope_layers: [1, 1, 0, 0] } },
] as const;

for (const c of cases) {
  test(`TypeScript forward = ORT engine, final hidden states (${c.name})`, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tune-parity-'));
    try {
      await writeTestModel(dir, { arch: c.arch, tied: c.tied, layers: 4, hidden: 32, heads: 4, kvHeads: 2, intermediate: 48, merges: 40, seed: 21 });
      if ('smollm3' in c) {
        const p = path.join(dir, 'config.json');
        const cfg = JSON.parse(await readFile(p, 'utf8'));
        await writeFile(p, JSON.stringify({ ...cfg, architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', ...c.smollm3, use_sliding_window: false }));
      }
      const md = await loadModelDir(dir);
      if ('smollm3' in c) assert.deepEqual(ropeLayers(md.config), [true, true, false, false]);
      const r = rng(5);
      // ragged lengths (the engine left-pads, the tuner packs); positions up to 60
      const seqs = [61, 17, 1, 33].map((n) => Array.from({ length: n }, () => Math.floor(r() * md.embeddingRows)));
      const engine = await loadEngine(md, { threads: 1 });
      const kernels = await createOrtKernels(1);
      try {
        const ref = await engine.hiddenStates(seqs);
        const ours = await hiddenStates(await loadFrozenModel(md, 'f32'), kernels, seqs);
        let max = 0;
        seqs.forEach((s, i) => {
          assert.equal(ours[i].length, s.length * md.config.hiddenSize);
          assert.equal(ref[i].length, ours[i].length);
          for (let j = 0; j < ours[i].length; j++) max = Math.max(max, Math.abs(ours[i][j] - ref[i][j]));
        });
        assert.ok(max <= 1e-4, `max |Δ| ${max}`);
        console.log(`${c.name}: max |Δ| hidden states ${max.toExponential(2)}`);
      } finally {
        await kernels.dispose();
        await engine.dispose();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
