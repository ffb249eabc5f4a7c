// adaptivocab (exponential sub-token weights, per matrix) and align (occurrence-weighted original
// tokens under each new token in a corpus) against hand-computed values: the pure functions, then
// extendModel on tied, untied and padded test models whose tokenizer has one merge (a + b), so every
// split is known by hand.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTestModel } from './support/factory.ts';
import { runCli } from './support/cli.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir } from '../src/io/model-dir.ts';
import { readWeightF32 } from '../src/io/weights.ts';
import { HackError } from '../src/io/errors.ts';
import { encodeWithTokens, tokenizerFromJson } from '../src/tokenizer/load.ts';
import type { NewToken } from '../src/tokenizer/tokens-file.ts';
import { extendModel } from '../src/embeddings/extend-model.ts';
import { adaptivocabWeights, parseInitMethod, InitMethodError, SOURCE_METHODS, ALL_METHODS } from '../src/embeddings/init-methods.ts';
import { alignCombinations, alignLine, byteSpans, codePointBytes, emptyAlignAccumulator } from '../src/embeddings/align-init.ts';

const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'align-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));
const tmp = async (p: string) => fsp.mkdtemp(path.join(await tmpRoot, `${p}-`));

const E2 = Math.exp(2), E4 = Math.exp(4);
function close(actual: ArrayLike<number>, expected: number[], tol = 1e-12, what = ''): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what} [${i}]: ${actual[i]} vs ${expected[i]}`);
}

test('adaptivocab weights: exp(2i) for input rows, exp(-2i) for output rows, normalized (n = 1, 2, 3)', () => {
  close(adaptivocabWeights(1, 'input'), [1]);
  close(adaptivocabWeights(1, 'output'), [1]);
  close(adaptivocabWeights(2, 'input'), [1 / (1 + E2), E2 / (1 + E2)]);
  close(adaptivocabWeights(2, 'output'), [E2 / (1 + E2), 1 / (1 + E2)]);
  const s = 1 + E2 + E4;
  close(adaptivocabWeights(3, 'input'), [1 / s, E2 / s, E4 / s]);
  close(adaptivocabWeights(3, 'output'), [E4 / s, E2 / s, 1 / s]);
  // long tokenizations do not overflow
  const w = adaptivocabWeights(400, 'input');
  assert.ok(w.every(Number.isFinite) && Math.abs(w.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  // through the registry: the context's matrix picks the weights; absent = input
  const m = parseInitMethod('adaptivocab');
  const sub = [Float32Array.from([1, 0]), Float32Array.from([0, 1]), Float32Array.from([2, 2])];
  const out = new Float32Array(2);
  const ctx = { hidden: 2, stats: null, random: () => 0 };
  m.init(sub, { ...ctx, matrix: 'input' }, out);
  close(out, [(1 + 2 * E4) / s, (E2 + 2 * E4) / s], 1e-6, 'input');
  m.init(sub, ctx, out);
  close(out, [(1 + 2 * E4) / s, (E2 + 2 * E4) / s], 1e-6, 'default');
  m.init(sub, { ...ctx, matrix: 'output' }, out);
  close(out, [(E4 + 2) / s, (E2 + 2) / s], 1e-6, 'output');
  assert.throws(() => m.init([], ctx, out), InitMethodError);
});

test('parser: align and adaptivocab are plain names; arguments are refused; listed in their groups', () => {
  assert.equal(parseInitMethod('align').spec, 'align');
  assert.equal(parseInitMethod('align').needs, 'corpus');
  assert.ok(parseInitMethod('align').combine);
  assert.equal(parseInitMethod('adaptivocab').needs, 'subtokens');
  for (const bad of ['align(2)', 'align()', 'adaptivocab(1)', 'Align', 'adaptivocab ']) {
    assert.throws(() => parseInitMethod(bad), (e: Error) => e instanceof InitMethodError && /Valid forms:/.test(e.message), bad);
  }
  assert.ok(SOURCE_METHODS.includes('align') && ALL_METHODS.includes('adaptivocab'));
  assert.throws(() => parseInitMethod('align').combine!(300, {}), /align: .*needs a corpus/);
});

const spans = (ids: number[], se: Array<[number, number]>) => ({ ids, start: Int32Array.from(se.map((x) => x[0])), end: Int32Array.from(se.map((x) => x[1])) });

test('alignLine: each occurrence adds the mean of its overlapping original tokens; splits weighted by how often they occur', () => {
  const acc = emptyAlignAccumulator();
  // new token 100 over bytes [0, 2): split A = (1, 2) twice, split B = (3) once (crossing: 3 covers [0, 3))
  alignLine(spans([100], [[0, 2]]), spans([1, 2], [[0, 1], [1, 2]]), 50, new Set(), acc);
  alignLine(spans([7, 100], [[0, 1], [1, 3]]), spans([7, 1, 2], [[0, 1], [1, 2], [2, 3]]), 50, new Set(), acc);
  alignLine(spans([100, 9], [[0, 2], [3, 4]]), spans([3, 9], [[0, 3], [3, 4]]), 50, new Set(), acc);
  // special original tokens never take part; an empty new-token span is skipped
  alignLine(spans([101, 101], [[0, 1], [1, 1]]), spans([0, 4], [[0, 1], [0, 1]]), 50, new Set([0]), acc);
  const c = alignCombinations(acc);
  assert.deepEqual(acc.occurrences.get(100), 3);
  assert.deepEqual(c.get(100)!.ids, [1, 2, 3]);
  close(c.get(100)!.weights, [1 / 3, 1 / 3, 1 / 3]);
  assert.deepEqual(c.get(101), { ids: [4], weights: [1] });
  assert.equal(acc.occurrences.get(101), 1);
  assert.equal(c.has(7), false, 'old tokens are not aligned');
});

test('byte spans of byte-level pieces of multi-byte characters ("ação", "ç", "ã")', async () => {
  const dir = await writeTestModel(await tmp('bs'), { arch: 'llama', hidden: 8, merges: 1, text: 'ab ab ab ab', dtype: 'F32' });
  const m = await loadModelDir(dir);
  const tok = tokenizerFromJson(m.tokenizerJson);
  const text = 'ação';
  const e = await encodeWithTokens(tok, text);
  // a, ç (2 bytes, 2 pieces sharing the character's span), ã (2 bytes, 2 pieces), o
  assert.deepEqual(e.tokens, ['a', 'Ã', '§', 'Ã', '£', 'o']);
  assert.deepEqual(e.offsets, [[0, 1], [1, 2], [1, 2], [2, 3], [2, 3], [3, 4]]);
  assert.deepEqual([...codePointBytes(text)], [0, 1, 3, 5, 6]);
  const s = byteSpans(e.ids, e.offsets, () => 1, codePointBytes(text));
  assert.deepEqual([...s.start], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...s.end], [1, 2, 3, 4, 5, 6]);
  // a 2-byte piece starting in "x" and ending inside "ç", then the rest of "ç" (as a merge "xÃ" would give)
  const t = byteSpans([1, 2], [[0, 2], [1, 2]], (i) => [2, 1][i], codePointBytes('xç'));
  assert.deepEqual([[...t.start], [...t.end]], [[0, 2], [2, 3]]);
  // trimmed offsets (the leading space's byte not in the span) never reach past the span
  const u = byteSpans([1], [[1, 2]], () => 2, codePointBytes(' e'));
  assert.deepEqual([[...u.start], [...u.end]], [[1], [2]]);
  // a surrogate pair is one code point of 4 bytes
  assert.deepEqual([...codePointBytes('😀x')], [0, 4, 5]);
});

// The test tokenizer: 3 specials, 256 byte tokens (byte b has id 3 + b), one merge a + b (id 259).
const B = (ch: string) => 3 + ch.charCodeAt(0);
const AB = 259;

const row = async (m: ModelDir, tensor: string, id: number) => readWeightF32(m.weights, tensor, [id, id + 1]);
async function combo(m: ModelDir, tensor: string, parts: Array<[number, number]>): Promise<Float64Array> {
  const e = new Float64Array(m.hiddenSize);
  for (const [id, w] of parts) { const r = await row(m, tensor, id); for (let d = 0; d < e.length; d++) e[d] += w * r[d]; }
  return e;
}
function near(actual: Float32Array, expected: Float64Array, what: string): void {
  for (let d = 0; d < expected.length; d++) assert.ok(Math.abs(actual[d] - expected[d]) <= 1e-5, `${what} dim ${d}: ${actual[d]} vs ${expected[d]}`);
}
const added = (text: string, ids: number[]): NewToken => ({ token: text, text, originalIds: ids, frequency: 1, saved: ids.length - 1, merge: null });

const MODELS = [
  { name: 'tied llama', opts: { arch: 'llama' as const, tied: true } },
  { name: 'untied qwen2', opts: { arch: 'qwen2' as const, tied: false } },
  { name: 'untied qwen2, padded, padding rows reused', opts: { arch: 'qwen2' as const, tied: false, padRows: 3 }, usePaddingRows: true },
];

test('align on a tiny corpus: "bx" twice alone (split b x) and once in "abx" (split ab x: 2/3, 1/3); "qz" never occurs (mean, counted)', async () => {
  const corpus = path.join(await tmp('c'), 'c.txt');
  await fsp.writeFile(corpus, 'bx\nbx\n\nabx\n');
  for (const { name, opts, usePaddingRows } of MODELS) {
    const src = await loadModelDir(await writeTestModel(await tmp('m'), { ...opts, hidden: 8, merges: 1, text: 'ab ab ab ab', dtype: 'F32' }));
    assert.equal((src.tokenizerJson.model.vocab as Record<string, number>).ab, AB);
    const tokens = [added('bx', [B('b'), B('x')]), added('qz', [B('q'), B('z')])];
    const out = await tmp('out');
    const r = await extendModel({ model: src, tokens, mode: 'added', init: 'align', aux: { corpus: [corpus] }, usePaddingRows, out });
    assert.deepEqual(r.fallbacks, { input: 1, output: 1 }, name);
    assert.deepEqual(r.align, { bytes: 11, lines: 3, occurrences: 3, newSeen: 1 }, name);
    const ext = await loadModelDir(out);
    for (const tensor of src.tied ? [EMBED_TENSOR] : [EMBED_TENSOR, LM_HEAD_TENSOR]) {
      // 2/3 (b + x)/2 + 1/3 (ab + x)/2
      near(await row(ext, tensor, r.newIds[0]), await combo(src, tensor, [[B('b'), 1 / 3], [B('x'), 1 / 2], [AB, 1 / 6]]), `${name} ${tensor} bx`);
      near(await row(ext, tensor, r.newIds[1]), await combo(src, tensor, [[B('q'), 1 / 2], [B('z'), 1 / 2]]), `${name} ${tensor} qz (fallback)`);
    }
    // the corpus bound: only the first line (3 bytes) -> one occurrence, split b x
    const out2 = await tmp('out');
    const r2 = await extendModel({ model: src, tokens, mode: 'added', init: 'align', aux: { corpus: [corpus], maxBytes: 4 }, usePaddingRows, out: out2 });
    assert.deepEqual(r2.align, { bytes: 3, lines: 1, occurrences: 1, newSeen: 1 }, name);
    near(await row(await loadModelDir(out2), EMBED_TENSOR, r2.newIds[0]), await combo(src, EMBED_TENSOR, [[B('b'), 1 / 2], [B('x'), 1 / 2]]), `${name} bounded`);
  }
});

test('align compares bytes: a merged token ending inside "ç" takes only the original bytes it holds', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('m'), { arch: 'qwen2', tied: false, hidden: 8, merges: 1, text: 'ab ab ab ab', dtype: 'F32' }));
  const corpus = path.join(await tmp('c'), 'c.txt');
  await fsp.writeFile(corpus, 'aç\naçã\n');
  const c1 = 3 + 0xc3; // 'Ã': the first byte of ç (and of ã)
  const tokens: NewToken[] = [{ token: 'aÃ', text: null, originalIds: [B('a'), c1], frequency: 2, saved: 2, merge: ['a', 'Ã'] }];
  const out = await tmp('out');
  const r = await extendModel({ model: src, tokens, mode: 'merges', init: 'align', aux: { corpus: [corpus] }, out });
  assert.deepEqual(r.fallbacks, { input: 0, output: 0 });
  assert.equal(r.align!.occurrences, 2);
  const ext = await loadModelDir(out);
  // both occurrences split a + Ã (never the second byte § of ç, which shares the character's offsets)
  for (const tensor of [EMBED_TENSOR, LM_HEAD_TENSOR]) near(await row(ext, tensor, r.newIds[0]), await combo(src, tensor, [[B('a'), 0.5], [c1, 0.5]]), tensor);
});

test('adaptivocab through extendModel: input rows favour the last piece, untied output rows the first; tied: input weights', async () => {
  const s3 = 1 + E2 + E4;
  for (const { name, opts, usePaddingRows } of MODELS) {
    const src = await loadModelDir(await writeTestModel(await tmp('m'), { ...opts, hidden: 8, merges: 1, text: 'ab ab ab ab', dtype: 'F32' }));
    const tokens = [added('bx', [B('b'), B('x')]), added('qzy', [B('q'), B('z'), B('y')])];
    const out = await tmp('out');
    const r = await extendModel({ model: src, tokens, mode: 'added', init: 'adaptivocab', usePaddingRows, out });
    assert.equal(r.initOutput, 'adaptivocab');
    const ext = await loadModelDir(out);
    const input2: Array<[number, number]> = [[B('b'), 1 / (1 + E2)], [B('x'), E2 / (1 + E2)]];
    const input3: Array<[number, number]> = [[B('q'), 1 / s3], [B('z'), E2 / s3], [B('y'), E4 / s3]];
    near(await row(ext, EMBED_TENSOR, r.newIds[0]), await combo(src, EMBED_TENSOR, input2), `${name} input bx`);
    near(await row(ext, EMBED_TENSOR, r.newIds[1]), await combo(src, EMBED_TENSOR, input3), `${name} input qzy`);
    if (src.tied) continue;
    near(await row(ext, LM_HEAD_TENSOR, r.newIds[0]), await combo(src, LM_HEAD_TENSOR, [[B('b'), E2 / (1 + E2)], [B('x'), 1 / (1 + E2)]]), `${name} output bx`);
    near(await row(ext, LM_HEAD_TENSOR, r.newIds[1]), await combo(src, LM_HEAD_TENSOR, [[B('q'), E4 / s3], [B('z'), E2 / s3], [B('y'), 1 / s3]]), `${name} output qzy`);
  }
});

test('align without a corpus: a typed error naming --corpus, before anything is written', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('m'), { arch: 'llama', hidden: 8, merges: 1, text: 'ab ab ab ab', dtype: 'F32' }));
  const out = path.join(await tmp('o'), 'never');
  for (const aux of [undefined, { corpus: [] }]) {
    await assert.rejects(extendModel({ model: src, tokens: [added('bx', [B('b'), B('x')])], mode: 'added', init: 'align', aux, out }),
      (e: Error) => e instanceof HackError && e.code === 'MISSING_OPTION' && e.option === 'corpus' && /align.*corpus/.test(e.message));
  }
  await assert.rejects(fsp.stat(out), /ENOENT/);
  const tokensFile = path.join(await tmp('t'), 'tokens.json');
  await fsp.writeFile(tokensFile, JSON.stringify({ version: 1, tokenizer: 'x', method: 'continue', corpus: [], numTokens: 1, rank: 'frequency', filters: {}, tokens: [added('bx', [B('b'), B('x')])] }));
  const cli = await runCli(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'added', '--init', 'align', '--out', out]);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /align.*--corpus/s);
  const bad = await runCli(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'added', '--init', 'align(2)', '--out', out]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid init method "align\(2\)"/);
  // with a corpus (and --tokens): --aux-max-bytes bounds it, extend.json reports the alignment and the fallbacks
  const corpus = path.join(await tmp('c'), 'c.txt');
  await fsp.writeFile(corpus, 'bx\nbx\nabx\n');
  const cache = await runCli(['extend', '--model', src.dir, '--tokens', tokensFile, '--corpus', corpus, '--mode', 'added', '--init', 'align', '--aux-cache', path.join(out, 'c'), '--out', out]);
  assert.notEqual(cache.code, 0);
  assert.match(cache.stderr, /--aux-cache.*does not use them/s);
  const ok = await runCli(['extend', '--model', src.dir, '--tokens', tokensFile, '--corpus', corpus, '--mode', 'added', '--init', 'align', '--aux-max-bytes', '6', '--out', out]);
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(await fsp.readFile(path.join(out, 'extend.json'), 'utf8'));
  assert.deepEqual(report.weights.align, { bytes: 6, lines: 2, occurrences: 2, new_seen: 1 });
  assert.deepEqual(report.weights.fallbacks, { input: 0, output: 0 });
});
