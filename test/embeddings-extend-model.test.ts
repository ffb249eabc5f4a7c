// extendModel end to end: tokens learned by the tokenizer library, the extended tokenizer and
// model written together, old rows bit-identical, new rows from their original sub-tokens.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir } from '../src/io/model-dir.ts';
import { readWeightF32, readWeightRows } from '../src/io/weights.ts';
import { encode, loadTokenizer, tokenizerFromJson } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import type { NewToken } from '../src/tokenizer/tokens-file.ts';
import { extendModel } from '../src/embeddings/extend-model.ts';
import { runCli } from './support/cli.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');

const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'embx-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));

async function tmp(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(await tmpRoot, `${prefix}-`));
}

async function learn(m: ModelDir, n: number, text = SAMPLE_TEXT.repeat(20)): Promise<NewToken[]> {
  const corpus = path.join(await tmp('corpus'), 'c.txt');
  await fsp.writeFile(corpus, text.replace(/\. /g, '.\n'));
  const tok = await loadTokenizer(m.tokenizerPath);
  const freq = await countWords(tok, bpeModelOf(tok.json).kind, [corpus]);
  return learnTokens(tok, freq, { method: 'continue', numTokens: n }).tokens;
}

/** Max |a - b| relative to bf16/f16 rounding of the expected value. */
function assertRowNear(actual: Float32Array, expected: Float64Array, what: string): void {
  for (let d = 0; d < expected.length; d++) {
    assert.ok(Math.abs(actual[d] - expected[d]) <= Math.abs(expected[d]) * 2 ** -7 + 1e-6, `${what} dim ${d}: ${actual[d]} vs ${expected[d]}`);
  }
}

async function meanOf(m: ModelDir, tensor: string, ids: number[]): Promise<Float64Array> {
  const out = new Float64Array(m.hiddenSize);
  for (const id of ids) {
    const r = await readWeightF32(m.weights, tensor, [id, id + 1]);
    for (let d = 0; d < out.length; d++) out[d] += r[d] / ids.length;
  }
  return out;
}

test('untied padded qwen2, merges mode, --use-padding-rows: tokenizer and rows agree', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('q'), { arch: 'qwen2', tied: false, padRows: 4, hidden: 16, merges: 40 }));
  const tokens = await learn(src, 6);
  assert.equal(tokens.length, 6);
  const out = await tmp('out');
  const r = await extendModel({ model: src, tokens, mode: 'merges', init: 'mean', initOutput: 'first', usePaddingRows: true, out });
  assert.equal(r.plan.firstId, src.tokenizerSize);
  assert.equal(r.initOutput, 'first');
  const ext = await loadModelDir(out);
  assert.equal(ext.embeddingRows, src.tokenizerSize + 6); // 4 padding rows reused, 2 appended
  assert.equal(ext.config.vocabSize, ext.embeddingRows);
  assert.deepEqual(await readWeightRows(ext.weights, EMBED_TENSOR, 0, src.tokenizerSize), await readWeightRows(src.weights, EMBED_TENSOR, 0, src.tokenizerSize));
  assert.deepEqual(await readWeightRows(ext.weights, LM_HEAD_TENSOR, 0, src.tokenizerSize), await readWeightRows(src.weights, LM_HEAD_TENSOR, 0, src.tokenizerSize));
  const extTok = tokenizerFromJson(ext.tokenizerJson);
  for (const [i, t] of tokens.entries()) {
    const id = r.newIds[i];
    assert.ok(id >= src.tokenizerSize);
    assert.ok(t.originalIds.length >= 2);
    // the sub-tokens are the original tokenizer's segmentation of the token's text
    if (t.text) assert.deepEqual(await encode(tokenizerFromJson(src.tokenizerJson), t.text), t.originalIds);
    assertRowNear(await readWeightF32(ext.weights, EMBED_TENSOR, [id, id + 1]), await meanOf(src, EMBED_TENSOR, t.originalIds), `embed ${t.token}`);
    assertRowNear(await readWeightF32(ext.weights, LM_HEAD_TENSOR, [id, id + 1]), await meanOf(src, LM_HEAD_TENSOR, t.originalIds.slice(0, 1)), `lm_head ${t.token}`);
  }
  // BPE itself now produces the new tokens
  const word = tokens.find((t) => t.text && t.text.startsWith(' '))!;
  assert.ok((await encode(extTok, word.text!)).includes(r.newIds[tokens.indexOf(word)]));
});

test('tied model: --init-output must not differ; bad method strings are refused before anything is written', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('l'), { arch: 'llama', hidden: 16, merges: 40 }));
  const tokens = await learn(src, 3);
  const out = path.join(await tmp('out'), 'model');
  await assert.rejects(extendModel({ model: src, tokens, mode: 'merges', init: 'mean', initOutput: 'zero', out }), /ties its input and output embeddings/);
  await assert.rejects(extendModel({ model: src, tokens, mode: 'merges', init: 'quantile(2)', out }), /Valid forms/);
  await assert.rejects(fsp.access(out));
  const r = await extendModel({ model: src, tokens, mode: 'added', init: 'weighted_drop(2)', initOutput: 'weighted_drop(2)', out });
  assert.equal(r.tied, true);
  const ext = await loadModelDir(out);
  assert.equal(ext.tied, true);
  assert.equal(ext.embeddingRows, src.embeddingRows + r.newIds.filter((id) => id >= 0).length);
});

test('demo model: 300 new tokens, old rows bit-identical, config and side files carried over', async () => {
  const src = await loadModelDir(DEMO);
  const text = (await fsp.readFile(path.join(repoRoot, 'assets', 'corpora', 'pt-pt-parliament-heldout.txt'), 'utf8')).slice(0, 200_000);
  const tokens = await learn(src, 300, text);
  const out = await tmp('demo');
  const r = await extendModel({ model: src, tokens, mode: 'merges', init: 'weighted_drop(2)', out });
  const ext = await loadModelDir(out);
  const added = r.newIds.filter((id) => id >= 0).length;
  assert.equal(added + r.skipped.length, 300);
  assert.ok(added >= 250, `only ${added} tokens added`);
  assert.equal(ext.embeddingRows, 8192 + added);
  assert.equal(r.plan.firstId, 8192);
  assert.deepEqual(await readWeightRows(ext.weights, EMBED_TENSOR, 0, 8192), await readWeightRows(src.weights, EMBED_TENSOR, 0, 8192));
  assert.deepEqual({ ...ext.config.raw, vocab_size: 8192 }, src.config.raw);
  assert.equal(ext.config.raw.vocab_size, 8192 + added);
  assert.deepEqual(ext.generationConfig, src.generationConfig);
  assert.equal(ext.tokenizerSize, 8192 + added);
  // tokenizers.js loads it and agrees with the Rust binding on a Portuguese sentence
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const js = new Tokenizer(ext.tokenizerJson as never, ext.tokenizerConfig as never);
  const sentence = text.split('\n')[3];
  assert.deepEqual(js.encode(sentence, { add_special_tokens: false } as never).ids, await encode(tokenizerFromJson(ext.tokenizerJson), sentence));
});

/** The CLI in-process (no child process per error case): rejects with its stderr when it exits non-zero. */
const cliFails = async (args: string[]) => { const r = await runCli(args, { cwd: repoRoot }); if (r.code === 0) return r; throw new Error(r.stderr); };

test('extend CLI with --init writes a loadable model; weight flags without --init are refused', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'extend', ...args], { cwd: repoRoot });
  const src = await loadModelDir(await writeTestModel(await tmp('cli'), { arch: 'qwen2', tied: false, padRows: 3, hidden: 16, merges: 40 }));
  const tokens = await learn(src, 5);
  const tokensFile = path.join(await tmp('tok'), 'tokens.json');
  await fsp.writeFile(tokensFile, JSON.stringify({ version: 1, tokenizer: 'x', method: 'continue', corpus: [], numTokens: 5, rank: 'merge', filters: {}, tokens }));
  const out = path.join(await tmp('cliout'), 'm');
  const { stdout } = await run(['--model', src.dir, '--tokens', tokensFile, '--mode', 'merges', '--init', 'quantile(0.5)', '--init-output', 'last', '--pad-to-multiple-of', '64', '--out', out]);
  assert.equal(JSON.parse(stdout).init_output, 'last');
  const ext = await loadModelDir(out);
  assert.equal(ext.embeddingRows % 64, 0);
  assert.equal(ext.config.vocabSize, ext.embeddingRows);
  const report = JSON.parse(await fsp.readFile(path.join(out, 'extend.json'), 'utf8'));
  assert.deepEqual(report.weights, { init: 'quantile(0.5)', init_output: 'last', tied: false, old_rows: src.embeddingRows, rows: ext.embeddingRows, seed: 0 });
  const id = report.new_ids[0];
  assertRowNear(await readWeightF32(ext.weights, LM_HEAD_TENSOR, [id, id + 1]), await meanOf(src, LM_HEAD_TENSOR, tokens[0].originalIds.slice(-1)), 'lm_head last');
  await assert.rejects(cliFails(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'merges', '--use-padding-rows', '--out', out + '2']), /need --init/);
  await assert.rejects(cliFails(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'merges', '--init', 'quantile(1.5)', '--out', out + '2']), /q must be within \[0, 1\].*Valid forms/s);
  await assert.rejects(fsp.access(out + '2'));
});

test('extended demo (tied, bf16) and random-qwen2 (untied, f16) still match transformers on old tokens', async () => {
  const { openSafetensors, readTensorBytes, readTensorF32 } = await import('../src/io/safetensors.ts');
  const { toIntArray } = await import('../src/io/dtype.ts');
  const { loadEngine } = await import('../src/runtime/engine.ts');
  const shared = path.resolve(repoRoot, '..', 'shared', 'fixtures');
  const text = (await fsp.readFile(path.join(repoRoot, 'assets', 'corpora', 'pt-pt-parliament-heldout.txt'), 'utf8')).slice(0, 100_000);
  for (const [dir, ref] of [[DEMO, 'tiny-en-llama'], [path.join(shared, 'models', 'random-qwen2'), 'random-qwen2']]) {
    const src = await loadModelDir(dir);
    const tokens = await learn(src, 200, text);
    const out = await tmp(ref);
    const r = await extendModel({ model: src, tokens, mode: 'merges', init: 'mean', out });
    const added = r.newIds.filter((id) => id >= 0).length;
    assert.ok(added > 150);
    const st = await openSafetensors(path.join(shared, 'reference', `${ref}.reference.safetensors`));
    const input = Array.from(toIntArray(await readTensorBytes(st, 'text0.input_ids'), st.byName.get('text0.input_ids')!.dtype));
    const want = await readTensorF32(st, 'text0.logits');
    const engine = await loadEngine(out, { threads: 2 });
    try {
      assert.equal(engine.vocabRows, src.embeddingRows + added);
      const got = await engine.logits(input);
      const V = src.embeddingRows;
      let maxDiff = 0;
      for (let p = 0; p < input.length; p++) {
        for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(got[p * engine.vocabRows + v] - want[p * V + v]));
      }
      assert.ok(maxDiff <= 1e-3, `${ref}: old-token logits max|Δ| vs transformers = ${maxDiff}`);
    } finally {
      await engine.dispose();
    }
  }
});
