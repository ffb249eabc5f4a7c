// `generate` and `export-onnx` end to end: the CLI reproduces the transformers greedy
// continuations, stop strings stop, --encode-with decodes through the original tokenizer, and an
// exported graph runs in plain ORT and in transformers.js with the same results as the engine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { writeTestModel } from './support/factory.ts';
import { loadEngine, leftPad } from '../src/runtime/engine.ts';
import { newTokenMap } from '../src/runtime/extended-decoding.ts';
import { TextStream } from '../src/runtime/text-stream.ts';
import { encode, loadTokenizer } from '../src/tokenizer/load.ts';
import { exportOnnx } from '../src/export/onnx.ts';
import { loadModelDir } from '../src/io/model-dir.ts';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demo = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const refJson = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'reference', 'tiny-en-llama.reference.json');

async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli', 'run.ts'), ...args], { cwd: repoRoot, encoding: 'utf8' });
}

let tmp: string;
before(async () => { tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'rt-cli-')); });
after(async () => { await fsp.rm(tmp, { recursive: true, force: true }); });

test('generate --temperature 0 --max-new-tokens 32 reproduces the transformers greedy text of all three texts', async () => {
  const ref = JSON.parse(await fsp.readFile(refJson, 'utf8'));
  for (let i = 0; i < 3; i++) {
    const { stdout } = await cli(['generate', '--model', demo, '--prompt', ref.texts[i], '--temperature', '0', '--max-new-tokens', '32', '--threads', '1']);
    assert.equal(stdout, ref[`text${i}.greedy32_text`], `text${i}`);
  }
});

test('generate --stop stops generating and does not print the stop string; bad flags are errors', async () => {
  const ref = JSON.parse(await fsp.readFile(refJson, 'utf8'));
  const full: string = ref['text0.greedy32_text'];
  const { stdout, stderr } = await cli(['generate', '--model', demo, '--prompt', ref.texts[0], '--max-new-tokens', '32', '--stop', 'os meus', '--stats']);
  assert.equal(stdout, full.slice(0, full.indexOf('os meus')));
  const n = Number(/(\d+) new tokens/.exec(stderr)?.[1]);
  assert.ok(n < 32, `generation stopped early (${n} tokens)`);
  await assert.rejects(cli(['generate', '--model', demo, '--prompt', 'x', '--temperature', '-1']), /--temperature -1: expected a number >= 0/);
  await assert.rejects(cli(['generate', '--model', path.join(tmp, 'nope'), '--prompt', 'x']), /nope/);
});

test('TextStream holds back incomplete UTF-8 and possible stop-string prefixes', async () => {
  // decoded text after 1..5 ids (the 2nd ends inside a UTF-8 sequence)
  const texts = ['Hel', 'Hello \uFFFD', 'Hello é', 'Hello é wor', 'Hello é world STOP here'];
  const s = new TextStream((ids) => texts[ids.length - 1], ['STOP']);
  const outs: string[] = [];
  for (let i = 1; i <= texts.length; i++) outs.push(await s.update(new Array(i).fill(0)));
  assert.deepEqual(outs, ['', 'Hel', 'l', 'o é ', 'world ']);
  assert.ok(s.stopped);
  assert.equal(s.flush(), '');
  const t = new TextStream(() => 'abc\uFFFD');
  assert.equal(await t.update([1]), 'abc');
  assert.equal(t.flush(), '\uFFFD');
});

test('--encode-with: new tokens map to original sub-ids; output equals plain decoding when new rows cannot win', async () => {
  const orig = await writeTestModel(path.join(tmp, 'orig'), { arch: 'llama', seed: 5, padRows: 2 });
  const ext = path.join(tmp, 'ext');
  await fsp.cp(orig, ext, { recursive: true });
  const tjPath = path.join(ext, 'tokenizer.json');
  const tj = JSON.parse(await fsp.readFile(tjPath, 'utf8'));
  const base = Object.keys(tj.model.vocab).length;
  tj.added_tokens.push({ id: base, content: ' deputados', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  await fsp.writeFile(tjPath, JSON.stringify(tj));
  const map = await newTokenMap(await loadTokenizer(tjPath), await loadTokenizer(path.join(orig, 'tokenizer.json')));
  assert.deepEqual([...map.keys()], [base]);
  assert.deepEqual(map.get(base), await encode(await loadTokenizer(path.join(orig, 'tokenizer.json')), ' deputados'));
  assert.ok(map.get(base)!.length > 1);
  // merges mode: a new vocabulary entry + merge; its sub-ids are the original BPE segmentation
  const tjm = JSON.parse(await fsp.readFile(path.join(orig, 'tokenizer.json'), 'utf8'));
  const merged = 'Ġdeputados';
  const origTok = await loadTokenizer(path.join(orig, 'tokenizer.json'));
  const subIds = await encode(origTok, ' deputados');
  const pieces = subIds.map((id) => Object.entries(tjm.model.vocab as Record<string, number>).find(([, v]) => v === id)![0]);
  assert.equal(pieces.join(''), merged);
  // merge the pieces left to right into the whole word (intermediate entries are new tokens too)
  let acc = pieces[0];
  let next = base;
  const expected = new Map<number, number[]>();
  for (let i = 1; i < pieces.length; i++) {
    tjm.model.merges.push([acc, pieces[i]]);
    acc += pieces[i];
    if (tjm.model.vocab[acc] === undefined) {
      tjm.model.vocab[acc] = next;
      expected.set(next++, await encode(origTok, acc.replace(/Ġ/g, ' ')));
    }
  }
  const mergesPath = path.join(tmp, 'merges-tokenizer.json');
  await fsp.writeFile(mergesPath, JSON.stringify(tjm));
  const mmap = await newTokenMap(await loadTokenizer(mergesPath), origTok);
  assert.deepEqual(mmap, expected);
  assert.deepEqual(mmap.get(next - 1), subIds);
  const args = ['--prompt', 'O Sr. Presidente', '--max-new-tokens', '12', '--threads', '1'];
  const plain = await cli(['generate', '--model', orig, ...args]);
  const extended = await cli(['generate', '--model', ext, '--encode-with', orig, ...args]);
  // the new row is a random row of a toy model: check on the engine that it never wins here
  const engine = await loadEngine(ext, { threads: 1 });
  try {
    const prompt = await encode(await loadTokenizer(path.join(orig, 'tokenizer.json')), 'O Sr. Presidente');
    const ids = await engine.generate(prompt, { maxNewTokens: 12 });
    assert.ok(ids.every((id) => id < base), 'precondition: no new id wins (fixed seed)');
    assert.equal(extended.stdout, plain.stdout);
    assert.ok(plain.stdout.length > 0);
  } finally {
    await engine.dispose();
  }
  await assert.rejects(cli(['generate', '--model', ext, '--encode-with', path.join(tmp, 'missing'), ...args]), /--encode-with/);
});

test('export-onnx: the graph runs in plain ORT and in transformers.js with the engine\'s results', async () => {
  const src = await writeTestModel(path.join(tmp, 'exp-src'), { arch: 'qwen2', seed: 9, dtype: 'BF16' });
  const out = path.join(tmp, 'exported');
  await cli(['export-onnx', '--model', src, '--out', out]);
  const config = JSON.parse(await fsp.readFile(path.join(out, 'config.json'), 'utf8'));
  assert.equal(config['transformers.js_config'].use_external_data_format, true);
  const engine = await loadEngine(src, { threads: 1 });
  try {
    const ids = [20, 30, 40, 50, 60];
    const session = await ort.InferenceSession.create(path.join(out, 'onnx', 'model.onnx'), { intraOpNumThreads: 1 });
    const p = leftPad([ids]);
    const c = engine.model.config;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', p.ids, [1, p.len]),
      attention_mask: new ort.Tensor('int64', p.mask, [1, p.len]),
      position_ids: new ort.Tensor('int64', p.pos, [1, p.len]),
    };
    for (let l = 0; l < c.numLayers; l++) for (const kv of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, c.numKvHeads, 0, c.headDim]);
    }
    const res = await session.run(feeds);
    assert.deepEqual(res.logits.data, await engine.logits(ids));
    assert.deepEqual(res['present.1.value'].dims, [1, c.numKvHeads, ids.length, c.headDim]);
    await session.release();

    const { AutoModelForCausalLM, env, Tensor } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.localModelPath = path.dirname(out);
    const tjsModel = await AutoModelForCausalLM.from_pretrained(path.basename(out), { dtype: 'fp32', device: 'cpu' });
    const input = new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const mask = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
    const gen = await tjsModel.generate({ input_ids: input, attention_mask: mask, max_new_tokens: 10, do_sample: false, eos_token_id: -1 } as never) as { tolist(): bigint[][] };
    const tjsIds = gen.tolist()[0].slice(ids.length).map(Number);
    assert.deepEqual(tjsIds, await engine.generate(ids, { maxNewTokens: 10, eosIds: [] }));
    await tjsModel.dispose();
  } finally {
    await engine.dispose();
  }
  // unsupported model: nothing written
  const bad = await loadModelDir(src);
  bad.config.architecture = 'GPTNeoXForCausalLM';
  await assert.rejects(exportOnnx(bad, path.join(tmp, 'bad-out')), /unsupported architecture/);
  await assert.rejects(fsp.access(path.join(tmp, 'bad-out')));
});
