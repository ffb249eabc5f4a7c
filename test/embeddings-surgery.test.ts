// Surgery on tied, untied (qwen2) and padded test models whose embedding matrices hold small
// integer patterns (exact in bf16/f16), so each method's new rows are checked against values
// computed by hand from the pattern.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { writeTestModel, type FactoryOptions } from './support/factory.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir, type TokenizerJson } from '../src/io/model-dir.ts';
import { openSafetensors, readTensorBytes, writeSafetensors, bytesSource } from '../src/io/safetensors.ts';
import { readWeightF32, readWeightRows, weightInfo } from '../src/io/weights.ts';
import { fromFloat32 } from '../src/io/dtype.ts';
import { encode, tokenizerFromJson } from '../src/tokenizer/load.ts';
import { ALL_METHODS, parseInitMethod } from '../src/embeddings/init-methods.ts';
import { planRows, writeExtendedModel, validateNewRows, type NewRowSpec, type RowPlan } from '../src/embeddings/surgery.ts';

const E = (r: number, d: number) => ((r * 7 + d * 3) % 17) - 8; // input rows
const H = (r: number, d: number) => ((r * 5 + d * 11) % 13) - 6; // output rows

const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'emb-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));

async function tmp(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(await tmpRoot, `${prefix}-`));
}

/** A factory model whose embed_tokens / lm_head hold the E / H patterns. */
async function patternModel(opts: FactoryOptions): Promise<ModelDir> {
  const dir = await writeTestModel(await tmp('src'), opts);
  const m = await loadModelDir(dir);
  for (const st of m.weights.files) {
    const sources = [];
    for (const t of st.tensors) {
      let bytes = await readTensorBytes(st, t.name);
      if (t.name === EMBED_TENSOR || t.name === LM_HEAD_TENSOR) {
        const f = t.name === EMBED_TENSOR ? E : H;
        const [rows, hidden] = t.shape;
        const v = new Float32Array(rows * hidden);
        for (let r = 0; r < rows; r++) for (let d = 0; d < hidden; d++) v[r * hidden + d] = f(r, d);
        bytes = fromFloat32(v, t.dtype);
      }
      sources.push(bytesSource(t.name, t.dtype, t.shape, bytes));
    }
    await writeSafetensors(st.path, sources);
  }
  return loadModelDir(dir);
}

const WORDS = [' deputados', ' Presidente', ' quick brown', 'ção', ' igualdade'];

/** New tokens as added tokens of the tokenizer, ids from plan.firstId; sub-ids by the original tokenizer. */
async function newTokens(m: ModelDir, plan: RowPlan): Promise<{ specs: NewRowSpec[]; json: TokenizerJson }> {
  const orig = tokenizerFromJson(m.tokenizerJson);
  const json: TokenizerJson = structuredClone(m.tokenizerJson);
  const specs: NewRowSpec[] = [];
  for (let i = 0; i < plan.count; i++) {
    const subIds = await encode(orig, WORDS[i]);
    assert.ok(subIds.length >= 1);
    specs.push({ id: plan.firstId + i, subIds });
    json.added_tokens.push({ id: plan.firstId + i, content: WORDS[i], special: false, normalized: false, lstrip: false, rstrip: false, single_word: false });
  }
  return { specs, json };
}

/** Hand reference of each method over the sub-token values of one dimension (in order), for the input or output matrix. */
function reference(spec: string, vals: number[], tensor: string): number | null {
  const n = vals.length;
  const sorted = [...vals].sort((a, b) => a - b);
  if (spec === 'mean') return vals.reduce((a, b) => a + b, 0) / n;
  if (spec === 'min') return sorted[0];
  if (spec === 'max') return sorted[n - 1];
  if (spec === 'first') return vals[0];
  if (spec === 'last') return vals[n - 1];
  if (spec === 'zero') return 0;
  if (spec === 'quantile(0.5)') return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  if (spec === 'weighted_drop(2)') {
    let s = 0;
    let w = 0;
    vals.forEach((v, i) => { s += v * 2 ** (n - i); w += 2 ** (n - i); });
    return s / w;
  }
  if (spec === 'adaptivocab') {
    // exp(2i) on embed_tokens (a tied model's one matrix), exp(-2i) on lm_head
    const sign = tensor === LM_HEAD_TENSOR ? -1 : 1;
    let s = 0;
    let w = 0;
    vals.forEach((v, i) => { s += v * Math.exp(sign * 2 * i); w += Math.exp(sign * 2 * i); });
    return s / w;
  }
  return null; // random / hf-mean-resizing: checked by range / mean
}

function near(a: number, e: number, what: string, abs = 1e-6): void {
  assert.ok(Math.abs(a - e) <= Math.abs(e) * 2 ** -7 + abs, `${what}: got ${a}, expected ${e}`);
}

/** Check the new rows of one matrix against the pattern `f`. */
async function checkNewRows(out: ModelDir, tensor: string, f: (r: number, d: number) => number, spec: string, specs: NewRowSpec[], oldRows: number, hidden: number): Promise<void> {
  for (const t of specs) {
    const row = await readWeightF32(out.weights, tensor, [t.id, t.id + 1]);
    for (let d = 0; d < hidden; d++) {
      const vals = t.subIds.map((s) => f(s, d));
      const ref = reference(spec, vals, tensor);
      const col = Array.from({ length: oldRows }, (_, r) => f(r, d));
      const lo = Math.min(...col);
      const hi = Math.max(...col);
      if (ref !== null) near(row[d], ref, `${spec} ${tensor} row ${t.id} dim ${d}`);
      else if (spec === 'random') assert.ok(row[d] >= lo && row[d] <= hi, `random dim ${d}: ${row[d]} not in [${lo}, ${hi}]`);
      else {
        // N(mean, 1e-9 cov): within 6 standard deviations of the mean (sd = sqrt(1e-9 var))
        const mu = col.reduce((a, b) => a + b, 0) / oldRows;
        const sd = Math.sqrt(1e-9 * col.reduce((a, b) => a + (b - mu) ** 2, 0) / oldRows);
        near(row[d], mu, `hf-mean-resizing ${tensor} dim ${d}`, 6 * sd);
      }
    }
  }
}

async function sameBytes(a: ModelDir, b: ModelDir, tensor: string, start: number, end: number): Promise<void> {
  assert.deepEqual(await readWeightRows(a.weights, tensor, start, end), await readWeightRows(b.weights, tensor, start, end), `${tensor} rows [${start}, ${end})`);
}

/** Every tensor other than the grown ones is byte-identical, in the same file, order, dtype and shape. */
async function otherTensorsIdentical(src: ModelDir, out: ModelDir): Promise<void> {
  assert.equal(out.weights.files.length, src.weights.files.length);
  for (let i = 0; i < src.weights.files.length; i++) {
    const a = src.weights.files[i];
    const b = out.weights.files[i];
    assert.equal(path.basename(a.path), path.basename(b.path));
    assert.deepEqual(b.tensors.map((t) => t.name), a.tensors.map((t) => t.name));
    assert.deepEqual(b.metadata, a.metadata);
    for (const t of a.tensors) {
      const u = b.byName.get(t.name)!;
      assert.equal(u.dtype, t.dtype);
      if (t.name === EMBED_TENSOR || t.name === LM_HEAD_TENSOR) continue;
      assert.deepEqual(u.shape, t.shape);
      assert.deepEqual(await readTensorBytes(b, t.name), await readTensorBytes(a, t.name), t.name);
    }
  }
}

async function extend(m: ModelDir, count: number, init: string, initOutput: string | undefined, planOpts = {}) {
  const plan = planRows(m, count, planOpts);
  const { specs, json } = await newTokens(m, plan);
  validateNewRows(plan, specs, tokenizerFromJson(m.tokenizerJson).specialIds, (i) => WORDS[i]);
  const dir = await tmp('out');
  await writeExtendedModel(m, dir, { plan, tokens: specs, tokenizerJson: json, init: parseInitMethod(init), initOutput: initOutput ? parseInitMethod(initOutput) : undefined, seed: 5 });
  return { plan, specs, out: await loadModelDir(dir), dir };
}

test('planRows: append after padding by default, reuse padding rows on request, pad to a multiple', () => {
  const m = { embeddingRows: 330, tokenizerSize: 323 };
  assert.deepEqual(planRows(m, 5), { oldRows: 330, rows: 335, tokenizerSize: 323, firstId: 330, count: 5, fillRows: [335, 335] });
  assert.deepEqual(planRows(m, 5, { usePaddingRows: true }), { oldRows: 330, rows: 330, tokenizerSize: 323, firstId: 323, count: 5, fillRows: [330, 330] });
  assert.deepEqual(planRows(m, 10, { usePaddingRows: true }), { oldRows: 330, rows: 333, tokenizerSize: 323, firstId: 323, count: 10, fillRows: [333, 333] });
  assert.deepEqual(planRows(m, 5, { padToMultipleOf: 64 }), { oldRows: 330, rows: 384, tokenizerSize: 323, firstId: 330, count: 5, fillRows: [335, 384] });
  assert.deepEqual(planRows(m, 0, { padToMultipleOf: 64 }).rows, 384);
  assert.throws(() => planRows(m, 5, { padToMultipleOf: 0 }), /pad-to-multiple-of/);
  assert.throws(() => planRows(m, -1), /non-negative/);
});

test('tied llama (bf16): every method, old rows bit-identical, other tensors byte-identical', async () => {
  const src = await patternModel({ arch: 'llama', tied: true, dtype: 'BF16', hidden: 16, merges: 48 });
  for (const spec of ALL_METHODS) {
    const { plan, specs, out } = await extend(src, 4, spec, undefined);
    assert.equal(out.tied, true);
    assert.equal(out.embeddingRows, src.embeddingRows + 4);
    assert.equal(out.config.vocabSize, out.embeddingRows);
    assert.equal(weightInfo(out.weights, EMBED_TENSOR).dtype, 'BF16');
    await sameBytes(src, out, EMBED_TENSOR, 0, src.embeddingRows);
    await checkNewRows(out, EMBED_TENSOR, E, spec, specs, plan.oldRows, src.hiddenSize);
    await otherTensorsIdentical(src, out);
  }
});

test('untied qwen2 (f16, padded, v4 config): output rows by --init-output from lm_head rows', async () => {
  const src = await patternModel({ arch: 'qwen2', tied: false, dtype: 'F16', hidden: 16, merges: 48, padRows: 6, configForm: 'v4' });
  assert.equal(src.embeddingRows - src.tokenizerSize, 6);
  for (const [init, initOutput] of [['mean', 'weighted_drop(2)'], ['first', undefined], ['quantile(0.5)', 'last'], ['min', 'max'], ['zero', 'random'], ['hf-mean-resizing', 'mean'], ['adaptivocab', undefined]] as const) {
    const { plan, specs, out } = await extend(src, 5, init, initOutput);
    assert.equal(out.tied, false);
    assert.equal(plan.firstId, src.embeddingRows, 'appended after the padding rows');
    assert.equal(out.embeddingRows, src.embeddingRows + 5);
    assert.equal(out.config.format, 'v4');
    assert.equal(out.config.raw.rope_theta, src.config.raw.rope_theta);
    assert.equal(out.config.vocabSize, out.embeddingRows);
    // every old row (padding rows included) unchanged, both matrices
    await sameBytes(src, out, EMBED_TENSOR, 0, src.embeddingRows);
    await sameBytes(src, out, LM_HEAD_TENSOR, 0, src.embeddingRows);
    await checkNewRows(out, EMBED_TENSOR, E, init, specs, plan.oldRows, src.hiddenSize);
    await checkNewRows(out, LM_HEAD_TENSOR, H, initOutput ?? init, specs, plan.oldRows, src.hiddenSize);
    await otherTensorsIdentical(src, out);
  }
});

test('padded: --use-padding-rows fills free rows first; --pad-to-multiple-of fills the tail with the mean row', async () => {
  const src = await patternModel({ arch: 'qwen2', tied: false, dtype: 'BF16', hidden: 16, merges: 48, padRows: 6 });
  const tok = src.tokenizerSize;
  // 3 tokens fit in the 6 padding rows: the matrix keeps its size
  let r = await extend(src, 3, 'mean', 'first', { usePaddingRows: true });
  assert.equal(r.plan.firstId, tok);
  assert.equal(r.out.embeddingRows, src.embeddingRows);
  await sameBytes(src, r.out, EMBED_TENSOR, 0, tok);
  await sameBytes(src, r.out, LM_HEAD_TENSOR, 0, tok);
  await sameBytes(src, r.out, EMBED_TENSOR, tok + 3, src.embeddingRows); // untouched padding rows
  await checkNewRows(r.out, EMBED_TENSOR, E, 'mean', r.specs, src.embeddingRows, 16);
  await checkNewRows(r.out, LM_HEAD_TENSOR, H, 'first', r.specs, src.embeddingRows, 16);
  // 5 tokens with a multiple of 64: rows tok+5 rounded up; the tail rows are the mean of old rows
  r = await extend(src, 5, 'last', undefined, { usePaddingRows: true, padToMultipleOf: 64 });
  assert.equal(r.out.embeddingRows % 64, 0);
  assert.equal(r.out.embeddingRows, Math.ceil(Math.max(src.embeddingRows, tok + 5) / 64) * 64);
  assert.equal(r.out.config.vocabSize, r.out.embeddingRows);
  const tail = await readWeightF32(r.out.weights, LM_HEAD_TENSOR, [r.out.embeddingRows - 1, r.out.embeddingRows]);
  for (let d = 0; d < 16; d++) {
    let s = 0;
    for (let i = 0; i < src.embeddingRows; i++) s += H(i, d);
    near(tail[d], s / src.embeddingRows, `fill row dim ${d}`);
  }
});

test('sharded model stays sharded with a consistent index; tokenizer loads in both tokenizer libraries', async () => {
  const src = await patternModel({ arch: 'llama', tied: false, dtype: 'BF16', hidden: 16, merges: 48, shards: 3, configForm: 'v5' });
  const { out, dir, specs } = await extend(src, 4, 'weighted_drop(2)', undefined);
  assert.equal(out.weights.sharded, true);
  const index = JSON.parse(await fsp.readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  const srcIndex = JSON.parse(await fsp.readFile(path.join(src.dir, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(index.weight_map, srcIndex.weight_map);
  let total = 0;
  for (const f of out.weights.files) for (const t of f.tensors) total += t.byteLength;
  assert.equal(index.metadata.total_size, total);
  // every header is consistent with its file size (validated again by a fresh open)
  for (const f of out.weights.files) {
    const st = await openSafetensors(f.path);
    const end = Math.max(...st.tensors.map((t) => t.dataOffsets[1]));
    assert.equal(st.dataStart + end, st.fileSize);
  }
  assert.equal(out.config.format, 'v5');
  assert.deepEqual((out.config.raw.rope_parameters as object), src.config.raw.rope_parameters);
  // side files carried over
  assert.deepEqual(JSON.parse(await fsp.readFile(path.join(dir, 'generation_config.json'), 'utf8')), src.generationConfig);
  assert.deepEqual(JSON.parse(await fsp.readFile(path.join(dir, 'tokenizer_config.json'), 'utf8')), src.tokenizerConfig);
  // the tokenizer emits the new ids, in the Rust binding and in tokenizers.js
  const native = tokenizerFromJson(out.tokenizerJson);
  assert.deepEqual(await encode(native, WORDS[0]), [specs[0].id]);
  const js = new JsTokenizer(out.tokenizerJson as never, out.tokenizerConfig as never);
  assert.deepEqual(js.encode(WORDS[1], { add_special_tokens: false } as never).ids, [specs[1].id]);
  assert.ok(native.size <= out.embeddingRows);
});

test('validateNewRows rejects special, unknown and empty sub-token lists', async () => {
  const m = { embeddingRows: 300, tokenizerSize: 290 };
  const plan = planRows(m, 2);
  const specials = new Set([0, 1, 2]);
  const label = (i: number) => `token #${i}`;
  validateNewRows(plan, [{ id: 300, subIds: [5, 6] }, { id: 301, subIds: [7] }], specials, label);
  assert.throws(() => validateNewRows(plan, [{ id: 300, subIds: [0, 6] }], specials, label), /special token/);
  assert.throws(() => validateNewRows(plan, [{ id: 300, subIds: [295] }], specials, label), /not an id of the original tokenizer/);
  assert.throws(() => validateNewRows(plan, [{ id: 300, subIds: [] }], specials, label), /empty tokenization/);
  assert.throws(() => validateNewRows(plan, [{ id: 299, subIds: [5] }], specials, label), /outside the planned range/);
  assert.throws(() => validateNewRows(plan, [{ id: 300, subIds: [5] }, { id: 300, subIds: [5] }], specials, label), /twice/);
});
