// config.json (v4 and v5 forms), model directories (tied/untied, padded vocabulary, shards) and
// the errors a broken directory gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseConfig, withVocabSize } from '../src/io/config.ts';
import { copySideFiles, EMBED_TENSOR, LM_HEAD_TENSOR, loadModelDir, ModelDirError, tokenizerSizeOf } from '../src/io/model-dir.ts';
import { openWeights, parameterCount, readWeightBytes, readWeightF32, readWeightRows, weightInfo } from '../src/io/weights.ts';
import { SafetensorsError } from '../src/io/safetensors.ts';
import { formatSummary, summarizeModel } from '../src/io/summary.ts';
import { writeTestModel } from './support/factory.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO_DIR = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const QWEN_DIR = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'models', 'random-qwen2');

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'modeldir-test-'));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fsp.readFile(file, 'utf8'));
}

test('config v5 form (demo model): rope_parameters, dtype', async () => {
  const c = parseConfig(await readJson(path.join(DEMO_DIR, 'config.json')));
  assert.equal(c.format, 'v5');
  assert.equal(c.architecture, 'LlamaForCausalLM');
  assert.equal(c.modelType, 'llama');
  assert.deepEqual(
    [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize],
    [384, 1024, 8, 6, 2, 64, 8192],
  );
  assert.equal(c.ropeTheta, 10000);
  assert.deepEqual(c.ropeScaling, { type: 'default' });
  assert.equal(c.rmsNormEps, 1e-5);
  assert.equal(c.dtype, 'bfloat16');
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.attentionBias, false);
  assert.equal(c.bosTokenId, 0);
  assert.equal(c.padTokenId, null);
});

test('config v4 form (random-qwen2): top-level rope_theta, torch_dtype, qwen2 bias default', async () => {
  const c = parseConfig(await readJson(path.join(QWEN_DIR, 'config.json')));
  assert.equal(c.format, 'v4');
  assert.equal(c.architecture, 'Qwen2ForCausalLM');
  assert.deepEqual([c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim], [256, 3, 8, 2, 32]);
  assert.equal(c.ropeTheta, 1_000_000);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.dtype, 'float16');
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.attentionBias, true, 'Qwen2 has qkv bias without an attention_bias field');
});

test('config: rope scaling in both forms, defaults, withVocabSize keeps the form', () => {
  const base = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, num_attention_heads: 4, intermediate_size: 128, num_hidden_layers: 2, vocab_size: 100 };
  const scaling = { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const v4 = parseConfig({ ...base, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', ...scaling } });
  const v5 = parseConfig({ ...base, rope_parameters: { rope_theta: 500000, rope_type: 'llama3', ...scaling } });
  for (const c of [v4, v5]) {
    assert.equal(c.ropeTheta, 500000);
    assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  }
  assert.deepEqual([v4.format, v5.format], ['v4', 'v5']);
  const d = parseConfig(base);
  // absent tie_word_embeddings: LlamaConfig's default (false); a generic model type: PretrainedConfig's (true)
  assert.deepEqual([d.numKvHeads, d.headDim, d.ropeTheta, d.tieWordEmbeddings, d.dtype], [4, 16, 10000, false, 'float32']);
  assert.equal(parseConfig({ ...base, model_type: 'gpt_neox_like' }).tieWordEmbeddings, true);
  const wider = withVocabSize(v5, 128);
  assert.equal(wider.vocab_size, 128);
  assert.ok('rope_parameters' in wider && !('rope_theta' in wider));
  assert.equal(v5.raw.vocab_size, 100, 'the original raw config is not modified');
});

test('config: clear errors for missing or wrong fields', () => {
  const base: Record<string, unknown> = { model_type: 'llama', hidden_size: 64, num_attention_heads: 4, intermediate_size: 128, num_hidden_layers: 2, vocab_size: 100 };
  for (const field of ['hidden_size', 'num_attention_heads', 'intermediate_size', 'num_hidden_layers', 'vocab_size']) {
    const raw = { ...base };
    delete raw[field];
    assert.throws(() => parseConfig(raw, 'x/config.json'), (e: unknown) =>
      e instanceof ConfigError && e.message.includes('x/config.json') && e.message.includes(`"${field}"`), field);
  }
  assert.throws(() => parseConfig({ ...base, hidden_size: '64' }), /"hidden_size" must be a number/);
  assert.throws(() => parseConfig({ ...base, hidden_size: 66 }), /not divisible/);
  assert.throws(() => parseConfig({ hidden_size: 64 }), /neither "architectures" nor "model_type"/);
  for (const raw of [null, [], 'x', 3]) assert.throws(() => parseConfig(raw), ConfigError);
});

test('demo model directory: tied, 8192 rows = tokenizer size, summary', async () => {
  const m = await loadModelDir(DEMO_DIR);
  assert.equal(m.tied, true);
  assert.equal(m.embeddingRows, 8192);
  assert.equal(m.tokenizerSize, 8192);
  assert.equal(m.hiddenSize, 384);
  assert.equal(m.weights.sharded, false);
  assert.equal(m.generationConfig?.eos_token_id, 0);
  const s = summarizeModel(m);
  // 8192*384 embeddings + 8 layers * (attn 384*384*2 + 384*128*2 + mlp 3*384*1024 + 2 norms) + final norm
  assert.equal(s.parameters, 8192 * 384 + 8 * (2 * 384 * 384 + 2 * 128 * 384 + 3 * 384 * 1024 + 2 * 384) + 384);
  assert.equal(s.tokenizerModel, 'BPE');
  assert.equal(s.paddedRows, 0);
  assert.match(formatSummary(s), /tied \(lm_head shares embed_tokens\)/);
});

test('random-qwen2 (v4, untied, f16): lm_head detected', async () => {
  const m = await loadModelDir(QWEN_DIR);
  assert.equal(m.tied, false);
  assert.equal(m.config.format, 'v4');
  assert.equal(weightInfo(m.weights, LM_HEAD_TENSOR).dtype, 'F16');
  assert.match(formatSummary(summarizeModel(m)), /untied/);
});

test('factory models: tied llama v5 / untied qwen2 v4, padded vocabulary', async () => {
  await withTmp(async (tmp) => {
    const llama = await loadModelDir(await writeTestModel(path.join(tmp, 'llama'), { arch: 'llama', merges: 20 }));
    assert.deepEqual([llama.tied, llama.config.format, llama.embeddingRows, llama.tokenizerSize], [true, 'v5', 3 + 256 + 20, 3 + 256 + 20]);
    const qwen = await loadModelDir(await writeTestModel(path.join(tmp, 'qwen'), { arch: 'qwen2', merges: 20, padRows: 13, dtype: 'F16' }));
    assert.deepEqual([qwen.tied, qwen.config.format, qwen.config.attentionBias], [false, 'v4', true]);
    assert.equal(qwen.tokenizerSize, 279);
    assert.equal(qwen.embeddingRows, 279 + 13);
    assert.equal(qwen.config.vocabSize, 279 + 13);
    assert.equal(summarizeModel(qwen).paddedRows, 13);
    assert.match(formatSummary(summarizeModel(qwen)), /\(13 padding\)/);
    assert.equal(tokenizerSizeOf(qwen.tokenizerJson), 279);
    // untied llama / tied qwen2 can be made too: tied-ness comes from the weights
    const untiedLlama = await loadModelDir(await writeTestModel(path.join(tmp, 'ul'), { arch: 'llama', tied: false, merges: 5 }));
    assert.equal(untiedLlama.tied, false);
  });
});

test('sharded weights: same tensors and values as the single-file model; index errors are typed', async () => {
  await withTmp(async (tmp) => {
    const single = await writeTestModel(path.join(tmp, 'single'), { arch: 'qwen2', merges: 10, seed: 5 });
    const sharded = await writeTestModel(path.join(tmp, 'sharded'), { arch: 'qwen2', merges: 10, seed: 5, shards: 3 });
    const a = await openWeights(single);
    const b = await openWeights(sharded);
    assert.equal(b.sharded, true);
    assert.equal(b.files.length, 3);
    assert.equal(parameterCount(a), parameterCount(b));
    assert.deepEqual([...b.location.keys()].sort(), [...a.location.keys()].sort());
    for (const name of a.location.keys()) {
      assert.ok(Buffer.from(await readWeightBytes(a, name)).equals(Buffer.from(await readWeightBytes(b, name))), name);
    }
    assert.deepEqual(await readWeightF32(b, EMBED_TENSOR, [3, 9]), await readWeightF32(a, EMBED_TENSOR, [3, 9]));
    assert.ok(Buffer.from(await readWeightRows(b, LM_HEAD_TENSOR, 0, 2)).equals(Buffer.from(await readWeightRows(a, LM_HEAD_TENSOR, 0, 2))));
    const m = await loadModelDir(sharded);
    assert.equal(summarizeModel(m).shards, 3);
    await assert.rejects(readWeightBytes(b, 'nope'), (e: unknown) => e instanceof SafetensorsError && e.code === 'NO_SUCH_TENSOR');

    const indexPath = path.join(sharded, 'model.safetensors.index.json');
    const index = await readJson(indexPath);
    const wm = index.weight_map as Record<string, string>;
    const bad = async (content: string, code: string, pattern: RegExp) => {
      await fsp.writeFile(indexPath, content);
      await assert.rejects(openWeights(sharded), (e: unknown) => e instanceof SafetensorsError && e.code === code && pattern.test(e.message));
    };
    await bad('{not json', 'BAD_HEADER', /index\.json: not valid JSON/);
    await bad(JSON.stringify({ metadata: {} }), 'BAD_HEADER', /weight_map/);
    await bad(JSON.stringify({ weight_map: { ...wm, x: '../model.safetensors' } }), 'BAD_HEADER', /plain file name/);
    await bad(JSON.stringify({ weight_map: { ...wm, 'ghost.weight': Object.values(wm)[0] } }), 'NO_SUCH_TENSOR', /ghost\.weight/);
    await bad(JSON.stringify({ weight_map: { ...wm, x: 'model-00009-of-00009.safetensors' } }), 'NOT_FOUND', /model-00009-of-00009/);
  });
});

test('model directory errors name the file and what was expected', async () => {
  await withTmp(async (tmp) => {
    const dir = await writeTestModel(path.join(tmp, 'm'), { arch: 'llama', merges: 5 });
    await assert.rejects(loadModelDir(path.join(tmp, 'absent')), (e: unknown) => e instanceof ModelDirError && /absent: model directory not found/.test(e.message));
    await assert.rejects(loadModelDir(path.join(dir, 'config.json')), (e: unknown) => e instanceof ModelDirError && /expected a model directory/.test(e.message));

    const cfg = await fsp.readFile(path.join(dir, 'config.json'), 'utf8');
    const breakFile = async (file: string, content: string | null, pattern: RegExp | ((e: unknown) => boolean)) => {
      const p = path.join(dir, file);
      const saved = await fsp.readFile(p).catch(() => null);
      if (content === null) await fsp.rm(p); else await fsp.writeFile(p, content);
      try {
        await assert.rejects(loadModelDir(dir), pattern);
      } finally {
        if (saved) await fsp.writeFile(p, saved);
      }
    };
    await breakFile('config.json', null, /missing config\.json/);
    await breakFile('config.json', '{"hidden_size": ', /config\.json: not valid JSON/);
    const noHidden = JSON.parse(cfg);
    delete noHidden.hidden_size;
    await breakFile('config.json', JSON.stringify(noHidden), /config\.json: missing required field "hidden_size"/);
    await breakFile('config.json', JSON.stringify({ ...JSON.parse(cfg), hidden_size: 64, head_dim: 16 }), /has 32 columns but hidden_size is 64/);
    await breakFile('config.json', JSON.stringify({ ...JSON.parse(cfg), tie_word_embeddings: false }), /tie_word_embeddings=false but the weights have no "lm_head\.weight"/);
    await breakFile('tokenizer.json', null, /missing tokenizer\.json/);
    await breakFile('tokenizer.json', '{"version": "1.0"}', /tokenizer\.json has no "model" section/);
    await breakFile('model.safetensors', null, /no model\.safetensors or model\.safetensors\.index\.json/);
    await breakFile('model.safetensors', 'garbage!', (e: unknown) => e instanceof SafetensorsError && e.message.includes('model.safetensors'));
    // generation_config.json is optional
    await fsp.rm(path.join(dir, 'generation_config.json'));
    assert.equal((await loadModelDir(dir)).generationConfig, null);
  });
});

test('copySideFiles copies the side files that exist', async () => {
  await withTmp(async (tmp) => {
    const src = await writeTestModel(path.join(tmp, 'src'), { arch: 'llama', merges: 5 });
    const dst = path.join(tmp, 'dst');
    await fsp.mkdir(dst);
    assert.deepEqual(await copySideFiles(src, dst), ['generation_config.json', 'tokenizer_config.json']);
    assert.deepEqual(await copySideFiles(src, dst, ['tokenizer_config.json']), ['generation_config.json']);
  });
});
