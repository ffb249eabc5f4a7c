// Extended-vocabulary decoding: the model reads original ids, may emit new ids; an emitted new id
// is fed back as its original sub-token ids. Checked against a quadratic oracle that re-runs the
// whole expanded sequence at every step (what the research code did).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTestModel } from './support/factory.ts';
import { openSafetensors, readTensorF32, writeSafetensors, bytesSource } from '../src/io/safetensors.ts';
import { fromFloat32 } from '../src/io/dtype.ts';
import { loadEngine, type Engine, type Decoder } from '../src/runtime/engine.ts';
import { generateExtended, expandToOriginal } from '../src/runtime/extended-decoding.ts';
import { argmax } from '../src/runtime/sampling.ts';

let tmp: string;
before(async () => { tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'rt-ext-')); });
after(async () => { await fsp.rm(tmp, { recursive: true, force: true }); });

const PAD = 4;

/** A tied F32 Llama with PAD extra embedding rows (the "new tokens"), rows set by `rows(id)`. */
async function modelWithNewRows(name: string, rows: (id: number, hidden: number) => Float32Array): Promise<string> {
  const dir = await writeTestModel(path.join(tmp, name), { arch: 'llama', dtype: 'F32', padRows: PAD, seed: 7, merges: 40 });
  const file = path.join(dir, 'model.safetensors');
  const st = await openSafetensors(file);
  const sources = [];
  for (const t of st.tensors) {
    const data = await readTensorF32(st, t.name);
    if (t.name === 'model.embed_tokens.weight') {
      const [n, h] = t.shape;
      for (let id = n - PAD; id < n; id++) data.set(rows(id, h), id * h);
    }
    sources.push(bytesSource(t.name, 'F32', t.shape, fromFloat32(data, 'F32')));
  }
  await writeSafetensors(file, sources);
  return dir;
}

/** Greedy oracle: re-run the full expanded sequence every step. */
async function oracle(engine: Engine, map: Map<number, number[]>, prompt: number[], n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const [logits] = await engine.lastLogits([[...prompt, ...expandToOriginal(out, map)]]);
    out.push(argmax(logits));
  }
  return out;
}

/** Record what the decoder is fed. */
function spy(engine: Engine, feeds: number[][][]): Engine {
  return new Proxy(engine, {
    get(target, prop, recv) {
      if (prop === 'decoder') {
        return (b?: number): Decoder => {
          const d = target.decoder(b);
          return { batchSize: d.batchSize, get lengths() { return d.lengths; }, feed: (ids) => { feeds.push(ids); return d.feed(ids); }, retain: (rows) => d.retain(rows) };
        };
      }
      return Reflect.get(target, prop, recv);
    },
  });
}

test('extended decoding equals plain decoding when no new token can win', async () => {
  const dir = await modelWithNewRows('zero', (_, h) => new Float32Array(h)); // new logits are exactly 0
  const engine = await loadEngine(dir, { threads: 1 });
  try {
    const base = engine.model.tokenizerSize;
    const map = new Map<number, number[]>([[base, [70, 71]], [base + 1, [72]], [base + 2, [80, 81, 82]], [base + 3, [90]]]);
    const prompt = [40, 50, 60, 70, 80];
    const steps = 12;
    const plain = await engine.generate(prompt, { maxNewTokens: steps, temperature: 0, eosIds: [] });
    // precondition: an original token beats the new rows (logit 0) at every step
    const dec = engine.decoder(1);
    let [logits] = await dec.feed([prompt]);
    for (const id of plain) {
      assert.ok(logits[argmax(logits)] > 0 && argmax(logits) < base, 'an original token wins');
      [logits] = await dec.feed([[id]]);
    }
    const { ids } = await generateExtended(engine, map, prompt, { maxNewTokens: steps, temperature: 0, eosIds: [] });
    assert.deepEqual(ids, plain);
  } finally {
    await engine.dispose();
  }
});

test('an emitted new token is re-fed as its original sub-token ids (matches the re-encoding oracle)', async () => {
  const prompt = [40, 50, 60, 70, 80];
  // Make new id `base` win right after the prompt: its row is a large multiple of the last hidden state.
  const probe = await loadEngine(await writeTestModel(path.join(tmp, 'probe'), { arch: 'llama', dtype: 'F32', padRows: PAD, seed: 7, merges: 40 }), { threads: 1 });
  const [hs] = await probe.hiddenStates([prompt]);
  const [probeLogits] = await probe.lastLogits([prompt]);
  const H = probe.model.hiddenSize;
  const base = probe.model.tokenizerSize;
  await probe.dispose();
  const hLast = hs.slice(hs.length - H);
  // logit of the new row = 1.5 x the best original logit at the last prompt position
  const norm2 = hLast.reduce((a, v) => a + v * v, 0);
  const scale = (1.5 * Math.max(...probeLogits)) / norm2;
  const dir = await modelWithNewRows('winner', (id, h) => (id === base ? hLast.map((v) => v * scale) : new Float32Array(h)));
  const engine = await loadEngine(dir, { threads: 1 });
  try {
    const map = new Map<number, number[]>([[base, [101, 102, 103]], [base + 1, [72]], [base + 2, [80, 81]], [base + 3, [90]]]);
    const feeds: number[][][] = [];
    const steps = 8;
    const { ids } = await generateExtended(spy(engine, feeds), map, prompt, { maxNewTokens: steps, temperature: 0, eosIds: [] });
    assert.equal(ids[0], base, 'the new token wins first');
    assert.deepEqual(feeds[0], [prompt]);
    assert.deepEqual(feeds[1], [[101, 102, 103]], 'the new token is fed back as its sub-token ids');
    for (let i = 1; i < ids.length - 1; i++) assert.deepEqual(feeds[i + 1], [map.get(ids[i]) ?? [ids[i]]]);
    assert.deepEqual(ids, await oracle(engine, map, prompt, steps));
    // plain decoding feeds the new id itself (its embedding row), a different context
    const plain = await engine.generate(prompt, { maxNewTokens: steps, temperature: 0, eosIds: [] });
    assert.equal(plain[0], base);
    assert.notDeepEqual(ids, plain);
  } finally {
    await engine.dispose();
  }
});

test('generateExtended: stop callback, eos and bad maps', async () => {
  const dir = await modelWithNewRows('zero2', (_, h) => new Float32Array(h));
  const engine = await loadEngine(dir, { threads: 1 });
  try {
    const prompt = [40, 50];
    let calls = 0;
    const { ids } = await generateExtended(engine, new Map(), prompt, { maxNewTokens: 10, eosIds: [], onToken: async () => ++calls === 3 });
    assert.equal(ids.length, 3);
    const first = (await engine.generate(prompt, { maxNewTokens: 1, eosIds: [] }))[0];
    const r = await generateExtended(engine, new Map(), prompt, { maxNewTokens: 10, eosIds: [first] });
    assert.deepEqual(r.ids, [first]);
    await assert.rejects(generateExtended(engine, new Map([[300, []]]), prompt, { maxNewTokens: 2 }), /no original sub-token/);
    await assert.rejects(generateExtended(engine, new Map(), [], { maxNewTokens: 2 }), /prompt is empty/);
  } finally {
    await engine.dispose();
  }
});
