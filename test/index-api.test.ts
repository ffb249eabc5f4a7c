// The public API (src/index.ts) is enough to run every stage as a library user would: only names
// imported from the index, one small call per stage, on a factory model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as api from '../src/index.ts';
import {
  HackError, loadModelDir, loadTokenizer, encode, learnTokensFromCorpus, extendModel, parseInitMethod, loadEngine,
  generateExtended, newTokenMap, loadSetup, evaluate, fertility, exportOnnx, parseGridConfig, pipelineSteps, runGrid, runTune,
  exportGguf, planReplacement, compareInit, readTokensFile, writeTokensFile,
} from '../src/index.ts';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';

let tmp: string;
before(async () => { tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'index-api-')); });
after(async () => { await fsp.rm(tmp, { recursive: true, force: true }); });

test('index: internals are not exported; every error class is a HackError', () => {
  for (const internal of ['serializeHeader', 'bytesSource', 'copySource', 'buildGraph', 'parseSafetensorsHeader', 'snakeKeys']) {
    assert.equal(internal in api, false, `${internal} is internal`);
  }
  const errors = Object.entries(api).filter(([name]) => /^[A-Z]\w*Error$/.test(name) && name !== 'HackError');
  assert.ok(errors.length >= 13, `error classes exported: ${errors.map(([n]) => n).join(', ')}`);
  for (const [name, cls] of errors) assert.ok((cls as { prototype: unknown }).prototype instanceof HackError, `${name} extends HackError`);
  for (const fn of [runGrid, runTune, exportGguf, planReplacement, compareInit, pipelineSteps]) assert.equal(typeof fn, 'function');
});

test('index: learn tokens -> extend the model -> generate with extended decoding -> evaluate -> export ONNX', async () => {
  const orig = await writeTestModel(path.join(tmp, 'orig'), { arch: 'llama', dtype: 'F32', seed: 3, merges: 48 });
  const corpus = path.join(tmp, 'corpus.txt');
  await fsp.writeFile(corpus, Array.from({ length: 40 }, () => SAMPLE_TEXT).join('\n') + '\n');

  // tokenizer stage
  const model = await loadModelDir(orig);
  const tok = await loadTokenizer(model.tokenizerPath);
  const list = await learnTokensFromCorpus(tok, model.tokenizerPath, [corpus], { method: 'continue', numTokens: 4 });
  assert.equal(list.tokens.length, 4);
  const tokensFile = path.join(tmp, 'tokens.json');
  await writeTokensFile(tokensFile, list);
  assert.deepEqual((await readTokensFile(tokensFile)).tokens.map((t) => t.token), list.tokens.map((t) => t.token));

  // embeddings stage
  assert.equal(parseInitMethod('mean').spec, 'mean');
  const ext = path.join(tmp, 'ext');
  const r = await extendModel({ model, tokens: list.tokens, mode: 'added', init: 'mean', out: ext });
  assert.equal(r.plan.rows, model.embeddingRows + r.newIds.filter((id) => id >= 0).length);

  // runtime stage: the research's setup, original ids in, extended tokens out
  const extModel = await loadModelDir(ext);
  const extTok = await loadTokenizer(extModel.tokenizerPath);
  const map = await newTokenMap(extTok, tok);
  assert.equal(map.size, r.newIds.filter((id) => id >= 0).length);
  const engine = await loadEngine(extModel, { threads: 1 });
  try {
    const { ids } = await generateExtended(engine, map, await encode(tok, 'O Sr. Presidente'), { maxNewTokens: 3 });
    assert.ok(ids.length >= 1 && ids.length <= 3);
  } finally { await engine.dispose(); }

  // eval stage: loadSetup + evaluate, and tokenizer fertility directly
  const { setup, engines } = await loadSetup(ext, { encodeWith: orig, threads: 1 });
  try {
    const res = await evaluate(setup, { metrics: ['fertility'], bench: [], texts: { pt: { file: corpus, text: SAMPLE_TEXT } }, benchFiles: {} });
    assert.ok(res.metrics.fertility_input?.pt! > 0);
  } finally { for (const e of engines) await e.dispose(); }
  assert.ok((await fertility(extTok, [SAMPLE_TEXT])).fertilityInput > 0);
  const cfg = parseGridConfig(`models: [${orig}]\ncorpus: [${corpus}]\nnumTokens: [4]\nstages: [BASELINE]\nmetrics: [fertility]\npt: ${corpus}\n`, path.join(tmp, 'grid.yaml'));
  assert.equal(typeof pipelineSteps(cfg, { benchFiles: {} }).evaluate, 'function');

  // export stage
  const onnx = await exportOnnx(extModel, path.join(tmp, 'onnx'));
  assert.ok(onnx.graphBytes > 0 && onnx.dataBytes > 0);
});
