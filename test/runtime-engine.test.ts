// Engine behaviour beyond parity: ragged/left-padded batches agree with single sequences, the
// KV-cache decoder agrees with full forwards, hidden states feed the head, sampling, errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTestModel } from './support/factory.ts';
import { loadEngine, type Engine } from '../src/runtime/engine.ts';
import { readWeightF32 } from '../src/io/weights.ts';
import { argmax, sampleNext, seededRandom, logSoftmax } from '../src/runtime/sampling.ts';
import { buildGraph, safetensorsLocator } from '../src/runtime/graph.ts';
import { ropeInvFreq, ropeLayers } from '../src/runtime/model-spec.ts';
import * as ort from 'onnxruntime-node';
import { leftPad } from '../src/runtime/engine.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { parseConfig } from '../src/io/config.ts';

let tmp: string;
let llama: Engine;
let qwen: Engine;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'rt-engine-'));
  llama = await loadEngine(await writeTestModel(path.join(tmp, 'llama'), { arch: 'llama', seed: 3, padRows: 3 }), { threads: 1, maxBatch: 2 });
  qwen = await loadEngine(await writeTestModel(path.join(tmp, 'qwen'), { arch: 'qwen2', dtype: 'F16', seed: 4, shards: 2 }), { threads: 1 });
});
after(async () => {
  await llama.dispose();
  await qwen.dispose();
  await fsp.rm(tmp, { recursive: true, force: true });
});

const close = (a: Float32Array, b: Float32Array, tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  assert.ok(m <= tol, `${what}: max|Δ| ${m} > ${tol}`);
};

const seqs = [[5, 9, 30, 41, 7, 8, 100], [12], [60, 61, 62], [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]];

for (const [name, get] of [['llama (bf16, tied, padded rows)', () => llama], ['qwen2 (f16, bias, untied, sharded)', () => qwen]] as const) {
  test(`${name}: batched APIs equal one-at-a-time`, async () => {
    const e = get();
    const V = e.vocabRows;
    const batched = await e.lastLogits(seqs);
    const lps = await e.tokenLogprobs(seqs);
    const hs = await e.hiddenStates(seqs);
    for (let i = 0; i < seqs.length; i++) {
      const all = await e.logits(seqs[i]);
      const n = seqs[i].length;
      close(batched[i], all.subarray((n - 1) * V), 1e-4, `lastLogits[${i}]`);
      assert.equal(lps[i].length, n - 1);
      for (let t = 1; t < n; t++) {
        const ls = logSoftmax(all.subarray((t - 1) * V, t * V));
        assert.ok(Math.abs(ls[seqs[i][t]] - lps[i][t - 1]) < 1e-4, `tokenLogprobs[${i}][${t}]`);
      }
      assert.equal(hs[i].length, n * e.model.hiddenSize);
    }
    // the head applied to the hidden states gives the logits
    const head = await readWeightF32(e.model.weights, e.model.tied ? 'model.embed_tokens.weight' : 'lm_head.weight');
    const H = e.model.hiddenSize;
    const all0 = await e.logits(seqs[0]);
    for (const v of [0, 17, V - 1]) {
      let dot = 0;
      for (let k = 0; k < H; k++) dot += hs[0][k] * head[v * H + k];
      assert.ok(Math.abs(dot - all0[v]) < 1e-3, `hidden @ head^T = logits (row ${v})`);
    }
    // ragged contexts and continuations in one batch: same values as tokenLogprobs
    const splits = [3, 1, 1, 9];
    const sc = await e.scoreContinuations(seqs.map((q, i) => ({ context: q.slice(0, splits[i]), continuation: q.slice(splits[i]) })));
    for (let i = 0; i < seqs.length; i++) {
      close(sc[i].logprobs, lps[i].subarray(splits[i] - 1), 1e-4, `scoreContinuations[${i}]`);
      assert.ok(Math.abs(sc[i].sum - lps[i].subarray(splits[i] - 1).reduce((a, b) => a + b, 0)) < 1e-3);
    }
    assert.equal(sc[1].logprobs.length, 0);
    assert.equal(sc[1].sum, 0);
    // continuations sharing a context (choices of one question): the context runs once on the KV cache
    const ctx = [5, 9, 30, 41, 7, 8, 100, 12, 60];
    const conts = [[61], [62, 63, 64], [3, 4], [70, 71, 72, 73], [8]];
    const shared = await e.scoreContinuations([
      ...conts.map((x) => ({ context: ctx, continuation: x })),
      { context: [60, 61], continuation: [62] },
    ]);
    const whole = await e.tokenLogprobs([...conts.map((x) => [...ctx, ...x]), [60, 61, 62]]);
    shared.forEach((r, i) => {
      const n = i < conts.length ? conts[i].length : 1;
      close(r.logprobs, whole[i].subarray(whole[i].length - n), 1e-4, `shared-context continuation ${i}`);
    });
    await assert.rejects(e.scoreContinuations([{ context: [], continuation: [3] }]), /empty context/);
  });

  test(`${name}: KV-cache decoding equals full forwards (ragged feeds, batched generation)`, async () => {
    const e = get();
    const V = e.vocabRows;
    const dec = e.decoder(2);
    let out = await dec.feed([[5, 9, 30], [12]]);
    close(out[0], (await e.lastLogits([[5, 9, 30]]))[0], 1e-4, 'prefill row 0');
    close(out[1], (await e.lastLogits([[12]]))[0], 1e-4, 'prefill row 1');
    out = await dec.feed([[41], [60, 61, 62, 63]]);
    close(out[0], (await e.lastLogits([[5, 9, 30, 41]]))[0], 1e-4, 'step row 0');
    close(out[1], (await e.lastLogits([[12, 60, 61, 62, 63]]))[0], 1e-4, 'ragged step row 1');
    const kept = out[1];
    out = await dec.feed([[7], []]);
    close(out[0], (await e.lastLogits([[5, 9, 30, 41, 7]]))[0], 1e-4, 'row 0 alone');
    assert.equal(out[1], kept, 'an empty row keeps its logits');
    assert.deepEqual([...dec.lengths], [5, 5]);
    // dropping and reordering rows keeps each row's cache
    const three = e.decoder(3);
    await three.feed([[5, 9], [12, 13, 14], [60]]);
    three.retain([2, 0]);
    assert.equal(three.batchSize, 2);
    assert.deepEqual([...three.lengths], [1, 2]);
    out = await three.feed([[61, 62], [30]]);
    close(out[0], (await e.lastLogits([[60, 61, 62]]))[0], 1e-4, 'kept row 2 after retain');
    close(out[1], (await e.lastLogits([[5, 9, 30]]))[0], 1e-4, 'kept row 0 after retain');
    three.retain([1]);
    [out[0]] = await three.feed([[41]]);
    close(out[0], (await e.lastLogits([[5, 9, 30, 41]]))[0], 1e-4, 'single row after a second retain');
    assert.throws(() => three.retain([1]), /row 1 is not in the batch/);
    // greedy generation = argmax over re-run prefixes; batched = single
    const prompts = [[5, 9, 30], [60, 61, 62, 63, 64, 65]];
    const gens = await e.generateBatch(prompts, { maxNewTokens: 6, eosIds: [] });
    for (let b = 0; b < prompts.length; b++) {
      assert.deepEqual(gens[b], await e.generate(prompts[b], { maxNewTokens: 6, eosIds: [] }));
      const seq = [...prompts[b]];
      for (const id of gens[b]) {
        const all = await e.logits(seq);
        assert.equal(argmax(all.subarray((seq.length - 1) * V)), id);
        seq.push(id);
      }
    }
    // per-sequence stop: rows leave the batch at different steps, the rest decode on unchanged
    const four = [[5, 9, 30], [60, 61, 62, 63, 64, 65], [12], [7, 8, 9, 10]];
    const full = await e.generateBatch(four, { maxNewTokens: 7, eosIds: [] });
    const x = full[0][1]; // row 0 stops after its second id (or its first, if that is x too)
    const expected = full.map((g) => (g.includes(x) ? g.slice(0, g.indexOf(x) + 1) : g));
    const cut = await e.generateBatch(four, { maxNewTokens: 7, eosIds: [], stopWhen: (g) => g[g.length - 1] === x });
    assert.deepEqual(cut, expected);
    assert.ok(cut[0].length <= 2 && expected.some((g) => g.length === 7), 'rows left at different steps');
  });
}

test('plain-operator, hybrid and stored-layout graphs compute the same as the default fused graphs', async () => {
  // small models default to transposed weight copies; 'stored' is what large models get
  for (const [e, ops, matmul] of [[llama, 'plain'], [qwen, 'plain'], [llama, 'hybrid'], [qwen, 'hybrid'], [llama, 'fused', 'stored'], [qwen, 'fused', 'stored']] as const) {
    const plain = await loadEngine(e.model, { threads: 1, ops, matmul });
    try {
      const a = await plain.lastLogits(seqs);
      const b = await e.lastLogits(seqs);
      for (let i = 0; i < seqs.length; i++) close(a[i], b[i], 1e-4, `plain vs fused [${i}]`);
      const dec = plain.decoder(2);
      await dec.feed([[5, 9, 30], [12]]);
      const [x] = await dec.feed([[41], [60, 61]]);
      close(x, (await e.lastLogits([[5, 9, 30, 41]]))[0], 1e-4, 'plain KV-cache step');
      assert.deepEqual(await plain.generate([5, 9], { maxNewTokens: 6, eosIds: [] }), await e.generate([5, 9], { maxNewTokens: 6, eosIds: [] }));
    } finally {
      await plain.dispose();
    }
  }
});

test('generate stops at eos ids and on request; sampling is seeded', async () => {
  const first = (await llama.generate([5, 9], { maxNewTokens: 1, eosIds: [] }))[0];
  assert.deepEqual(await llama.generate([5, 9], { maxNewTokens: 5, eosIds: [first] }), [first]);
  let n = 0;
  assert.equal((await llama.generate([5, 9], { maxNewTokens: 9, eosIds: [], onToken: () => ++n === 2 })).length, 2);
  const s = (seed: number) => llama.generate([5, 9], { maxNewTokens: 8, temperature: 1, seed, eosIds: [] });
  assert.deepEqual(await s(1), await s(1));
  assert.notDeepEqual(await s(1), await s(2));
  assert.deepEqual(await llama.generate([5, 9], { maxNewTokens: 8, temperature: 1, topK: 1, eosIds: [] }),
    await llama.generate([5, 9], { maxNewTokens: 8, eosIds: [] }), 'top-k 1 is greedy');
  assert.deepEqual(await llama.generate([], { maxNewTokens: 0 }).catch((e: Error) => e.message), 'generate: the prompt is empty (no token ids)');
});

test('sampleNext: greedy ties go to the lowest id; top-p keeps the nucleus; frequencies follow softmax', () => {
  assert.equal(sampleNext(Float32Array.from([1, 3, 3, 2]), {}, Math.random), 1);
  const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const rand = seededRandom(5);
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sampleNext(logits, { temperature: 1 }, rand)]++;
  assert.ok(Math.abs(counts[0] / 20000 - 0.5) < 0.02 && Math.abs(counts[2] / 20000 - 0.2) < 0.02, `counts ${counts}`);
  for (let i = 0; i < 200; i++) assert.notEqual(sampleNext(logits, { temperature: 1, topP: 0.7 }, rand), 2);
  for (let i = 0; i < 200; i++) assert.equal(sampleNext(logits, { temperature: 1, topP: 0.4 }, rand), 0);
  const k2 = [0, 0, 0];
  for (let i = 0; i < 20000; i++) k2[sampleNext(logits, { temperature: 1, topK: 2 }, rand)]++;
  assert.equal(k2[2], 0);
  assert.ok(Math.abs(k2[0] / 20000 - 0.625) < 0.02, `top-k 2 renormalizes: ${k2}`);
  // temperature 0.5 squares the odds: p ∝ 0.25, 0.09, 0.04
  const t2 = [0, 0, 0];
  for (let i = 0; i < 20000; i++) t2[sampleNext(logits, { temperature: 0.5 }, rand)]++;
  assert.ok(Math.abs(t2[0] / 20000 - 0.25 / 0.38) < 0.02, `temperature: ${t2}`);
});

test('RoPE inverse frequencies: default, linear and llama3 scaling as transformers computes them', () => {
  const base = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 512, num_attention_heads: 4, intermediate_size: 8, num_hidden_layers: 1, vocab_size: 8 };
  const def = ropeInvFreq(parseConfig({ ...base, rope_theta: 500000 }));
  assert.equal(def.length, 64);
  const rel = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.abs(b);
  assert.ok(rel(def[1], 1 / Math.pow(500000, 2 / 128)));
  const lin = ropeInvFreq(parseConfig({ ...base, rope_theta: 500000, rope_scaling: { rope_type: 'linear', factor: 4 } }));
  assert.ok(rel(lin[5], def[5] / 4));
  const l3 = ropeInvFreq(parseConfig({ ...base, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }));
  // high frequencies (short wavelengths) unchanged, low frequencies divided by the factor
  assert.equal(l3[0], def[0]);
  assert.ok(rel(l3[63], def[63] / 8));
  // a medium frequency is interpolated between the two
  const i = [...def].findIndex((f) => { const wl = 2 * Math.PI / f; return wl > 8192 / 4 && wl < 8192; });
  assert.ok(l3[i] < def[i] && l3[i] > def[i] / 8);
});

test('SmolLM3: NoPE layers skip RoPE (position-independent), RoPE layers match Llama', async () => {
  const dir = await writeTestModel(path.join(tmp, 'smollm3'), { arch: 'llama', seed: 11, layers: 2 });
  const cfgPath = path.join(dir, 'config.json');
  const cfg = JSON.parse(await fsp.readFile(cfgPath, 'utf8'));
  const withLayers = async (noRope: number[] | undefined) => {
    const c = { ...cfg, architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', no_rope_layers: noRope, use_sliding_window: false };
    if (!noRope) delete c.no_rope_layers;
    await fsp.writeFile(cfgPath, JSON.stringify(c));
    return loadModelDir(dir);
  };
  // transformers' default: every 4th layer is NoPE
  assert.deepEqual(ropeLayers((await withLayers(undefined)).config), [true, true]);
  const m8 = await withLayers(undefined);
  m8.config.numLayers = 8;
  assert.deepEqual(ropeLayers(m8.config), [true, true, true, false, true, true, true, false]);
  // all RoPE layers: the same model as Llama
  const ids = [7, 8, 9, 10, 11, 12];
  const allRope = await loadEngine(await withLayers([1, 1]), { threads: 1 });
  close(await allRope.logits(ids), await llamaLogits(cfg, dir, ids), 1e-6, 'SmolLM3 with RoPE everywhere = Llama');
  await allRope.dispose();
  // all NoPE: spreading the position ids apart changes nothing (a uniform shift would not change RoPE either)
  const run = async (model: Awaited<ReturnType<typeof loadModelDir>>, ops: 'fused' | 'plain', stretch: number) => {
    const built = buildGraph(model, { logits: 'all', hidden: false, cache: false, targets: false, ops }, safetensorsLocator(model, path.resolve(dir)));
    const sess = await ort.InferenceSession.create(built.bytes, { intraOpNumThreads: 1, extra: { session: { model_external_initializers_file_folder_path: path.resolve(dir) } } });
    const p = leftPad([ids]);
    const out = await sess.run({
      input_ids: new ort.Tensor('int64', p.ids, [1, p.len]),
      attention_mask: new ort.Tensor('int64', p.mask, [1, p.len]),
      position_ids: new ort.Tensor('int64', p.pos.map((v) => v * BigInt(stretch)), [1, p.len]),
    });
    await sess.release();
    return out.logits.data as Float32Array;
  };
  for (const ops of ['fused', 'plain'] as const) {
    const nope = await withLayers([0, 0]);
    close(await run(nope, ops, 1), await run(nope, ops, 3), 1e-5, `${ops}: NoPE ignores positions`);
    const mixed = await withLayers([1, 0]);
    const a = await run(mixed, ops, 1);
    const b = await run(mixed, ops, 3);
    assert.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-3), `${ops}: a RoPE layer makes positions matter`);
  }
  const mixed = await withLayers([1, 0]);
  close(await run(mixed, 'fused', 1), await run(mixed, 'plain', 1), 1e-4, 'fused = plain with a NoPE layer');
});

async function llamaLogits(cfg: Record<string, unknown>, dir: string, ids: number[]): Promise<Float32Array> {
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const e = await loadEngine(dir, { threads: 1 });
  try {
    return await e.logits(ids);
  } finally {
    await e.dispose();
  }
}

test('unsupported architectures and features are clear errors', async () => {
  const dir = await writeTestModel(path.join(tmp, 'gpt2'), { arch: 'llama', seed: 1 });
  const cfgPath = path.join(dir, 'config.json');
  const cfg = JSON.parse(await fsp.readFile(cfgPath, 'utf8'));
  await fsp.writeFile(cfgPath, JSON.stringify({ ...cfg, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
  await assert.rejects(loadEngine(dir), /unsupported architecture "GPT2LMHeadModel"; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, SmolLM3ForCausalLM/);
  await fsp.writeFile(cfgPath, JSON.stringify({ ...cfg, rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 10000 } }));
  await assert.rejects(loadEngine(dir), /RoPE scaling "yarn" is not supported/);
  await fsp.writeFile(cfgPath, JSON.stringify({ ...cfg, layer_types: ['full_attention', 'sliding_attention'] }));
  await assert.rejects(loadEngine(dir), /sliding-window/);
});
