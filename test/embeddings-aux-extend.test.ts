// extendModel with the combining methods: merge follows the merge tree on the model's rows, focus /
// omp apply one combination to the input and output rows of an untied model, fallbacks are counted,
// and a method that needs a corpus or merges mode says so before anything is written.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir } from '../src/io/model-dir.ts';
import { readWeightF32 } from '../src/io/weights.ts';
import { loadTokenizer, tokenizerFromJson } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import type { NewToken } from '../src/tokenizer/tokens-file.ts';
import { auxSpaceOf, extendModel } from '../src/embeddings/extend-model.ts';
import { auxEmbeddings } from '../src/embeddings/aux-embeddings.ts';
import { parseInitMethod } from '../src/embeddings/init-methods.ts';
import { runCli } from './support/cli.ts';

const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'auxx-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));
const tmp = async (p: string) => fsp.mkdtemp(path.join(await tmpRoot, `${p}-`));

async function corpusFile(): Promise<string> {
  const f = path.join(await tmp('corpus'), 'c.txt');
  await fsp.writeFile(f, SAMPLE_TEXT.repeat(40).replace(/\. /g, '.\n'));
  return f;
}

async function learn(m: ModelDir, corpus: string, n: number): Promise<NewToken[]> {
  const tok = await loadTokenizer(m.tokenizerPath);
  const freq = await countWords(tok, bpeModelOf(tok.json).kind, [corpus]);
  return learnTokens(tok, freq, { method: 'continue', numTokens: n }).tokens;
}

const row = async (m: ModelDir, tensor: string, id: number) => readWeightF32(m.weights, tensor, [id, id + 1]);

function near(actual: Float32Array, expected: Float64Array, what: string): void {
  for (let d = 0; d < expected.length; d++) assert.ok(Math.abs(actual[d] - expected[d]) <= 1e-5, `${what} dim ${d}: ${actual[d]} vs ${expected[d]}`);
}

test('merge: each new row is the recursive mean of its merge parts, down to old rows (untied, padded)', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('q'), { arch: 'qwen2', tied: false, padRows: 3, hidden: 16, merges: 20, dtype: 'F32' }));
  const tokens = await learn(src, await corpusFile(), 80);
  const out = await tmp('out');
  const r = await extendModel({ model: src, tokens, mode: 'merges', init: 'merge', out });
  assert.deepEqual(r.fallbacks, { input: 0, output: 0 });
  const ext = await loadModelDir(out);
  const vocab = src.tokenizerJson.model.vocab as Record<string, number>;
  const byString = new Map(tokens.map((t) => [t.token, t]));
  // the expected row, by strings: an old token is its own row, a new one the mean of its merge's parts
  const expected = async (tensor: string, s: string): Promise<Float64Array> => {
    if (vocab[s] !== undefined) return Float64Array.from(await row(src, tensor, vocab[s]));
    const [a, b] = byString.get(s)!.merge!;
    const ra = await expected(tensor, a), rb = await expected(tensor, b);
    return ra.map((x, d) => (x + rb[d]) / 2);
  };
  let deep = 0;
  for (const [i, t] of tokens.entries()) {
    if (byString.has(t.merge![0]) || byString.has(t.merge![1])) deep++;
    for (const tensor of [EMBED_TENSOR, LM_HEAD_TENSOR]) near(await row(ext, tensor, r.newIds[i]), await expected(tensor, t.token), `${tensor} ${t.token}`);
  }
  assert.ok(deep > 0, 'some token is built on another new token (the recursion is exercised)');
});

test('focus and omp: one combination of old rows for input and output rows of an untied model; cache reused', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('q'), { arch: 'qwen2', tied: false, hidden: 16, merges: 40, dtype: 'F32' }));
  const corpus = await corpusFile();
  const tokens = await learn(src, corpus, 6);
  const cacheDir = await tmp('cache');
  const aux = { corpus: [corpus], cacheDir, settings: { dim: 12, epochs: 2 } };
  for (const spec of ['focus', 'omp(3)']) {
    const out = await tmp('out');
    const r = await extendModel({ model: src, tokens, mode: 'merges', init: spec, aux, out });
    assert.ok(r.aux && r.aux.shared > 10 && r.aux.newWithVector === tokens.length, JSON.stringify(r.aux));
    assert.equal(r.aux.cached, spec !== 'focus');
    assert.deepEqual(r.fallbacks, { input: 0, output: 0 });
    const ext = await loadModelDir(out);
    // recompute the combination from the cached vectors and apply it to the source rows
    const a = await auxEmbeddings({ corpus: [corpus], tokenizer: ext.tokenizerJson, settings: aux.settings, cacheDir });
    assert.equal(a.cached, true);
    const space = auxSpaceOf(a, src.embeddingRows, tokenizerFromJson(src.tokenizerJson).specialIds);
    const m = parseInitMethod(spec);
    for (const id of r.newIds) {
      const c = m.combine!(id, { aux: space })!;
      assert.ok(c.ids.every((x) => x < src.embeddingRows && x > 2), 'only old, non-special rows');
      if (spec === 'focus') assert.ok(Math.abs(c.weights.reduce((s, w) => s + w, 0) - 1) < 1e-9 && c.weights.every((w) => w > 0));
      else assert.ok(c.ids.length <= 3);
      for (const tensor of [EMBED_TENSOR, LM_HEAD_TENSOR]) {
        const e = new Float64Array(src.hiddenSize);
        for (const [k, old] of c.ids.entries()) { const rr = await row(src, tensor, old); for (let d = 0; d < e.length; d++) e[d] += c.weights[k] * rr[d]; }
        near(await row(ext, tensor, id), e, `${spec} ${tensor} ${id}`);
      }
    }
  }
});

test('tokens without an auxiliary vector fall back to the mean of their sub-token rows, counted', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('l'), { arch: 'llama', tied: true, hidden: 16, merges: 40, dtype: 'F32' }));
  const corpus = await corpusFile();
  const tokens = await learn(src, corpus, 4);
  // a corpus that never contains the new tokens: no vector for any of them
  const other = path.join(await tmp('other'), 'o.txt');
  await fsp.writeFile(other, 'xyz qwv zzz\n'.repeat(50));
  const out = await tmp('out');
  const r = await extendModel({ model: src, tokens, mode: 'merges', init: 'wechsel(5,0.1)', aux: { corpus: [other], settings: { dim: 8, epochs: 1 } }, out });
  assert.deepEqual(r.fallbacks, { input: tokens.length, output: tokens.length });
  const ext = await loadModelDir(out);
  for (const [i, t] of tokens.entries()) {
    const e = new Float64Array(src.hiddenSize);
    for (const id of t.originalIds) { const rr = await row(src, EMBED_TENSOR, id); for (let d = 0; d < e.length; d++) e[d] += rr[d] / t.originalIds.length; }
    near(await row(ext, EMBED_TENSOR, r.newIds[i]), e, t.token);
  }
});

test('a method that needs a corpus or merges mode says so before anything is written', async () => {
  const src = await loadModelDir(await writeTestModel(await tmp('l'), { arch: 'llama', tied: true, hidden: 16, merges: 40 }));
  const tokens = await learn(src, await corpusFile(), 4);
  const out = path.join(await tmp('o'), 'never');
  await assert.rejects(extendModel({ model: src, tokens, mode: 'merges', init: 'focus', out }), /corpus/);
  await assert.rejects(extendModel({ model: src, tokens, mode: 'merges', init: 'omp(8)', aux: { corpus: [] }, out }), /corpus/);
  await assert.rejects(extendModel({ model: src, tokens, mode: 'added', init: 'merge', out }), /merges/);
  await assert.rejects(fsp.stat(out), /ENOENT/);
});

const repoRootDir = path.resolve(import.meta.dirname, '..');
/** The CLI in-process (no child process per error case): rejects with its stderr when it exits non-zero. */
const cliFails = async (args: string[]) => { const r = await runCli(args, { cwd: repoRootDir }); if (r.code === 0) return r; throw new Error(r.stderr); };

test('extend CLI: --init focus with --tokens trains on --corpus (cache dir), refuses to run without one; merge needs --mode merges', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const repoRoot = path.resolve(import.meta.dirname, '..');
  const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'extend', ...args], { cwd: repoRoot });
  const src = await loadModelDir(await writeTestModel(await tmp('cli'), { arch: 'qwen2', tied: false, hidden: 16, merges: 40 }));
  const corpus = await corpusFile();
  const tokens = await learn(src, corpus, 5);
  const tokensFile = path.join(await tmp('tok'), 'tokens.json');
  await fsp.writeFile(tokensFile, JSON.stringify({ version: 1, tokenizer: 'x', method: 'continue', corpus: [], numTokens: 5, rank: 'merge', filters: {}, tokens }));
  const out = path.join(await tmp('cliout'), 'm');
  await assert.rejects(cliFails(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'merges', '--init', 'focus', '--out', out]), /focus.*--corpus/s);
  await assert.rejects(cliFails(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'added', '--init', 'merge', '--out', out]), /--mode merges/);
  await assert.rejects(cliFails(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'merges', '--init', 'omp(0)', '--out', out]), /integer >= 1/);
  await assert.rejects(cliFails(['extend', '--model', src.dir, '--tokens', tokensFile, '--mode', 'merges', '--init', 'mean', '--aux-ngrams', '--out', out]), /--aux-ngrams.*does not use them/s);
  await assert.rejects(fsp.access(out));
  const cache = path.join(await tmp('c'), 'aux');
  await run(['--model', src.dir, '--tokens', tokensFile, '--corpus', corpus, '--mode', 'merges', '--init', 'wechsel(10,0.1)', '--init-output', 'merge', '--aux-cache', cache, '--out', out]);
  const report = JSON.parse(await fsp.readFile(path.join(out, 'extend.json'), 'utf8'));
  assert.equal(report.weights.init, 'wechsel(10,0.1)');
  assert.equal(report.weights.init_output, 'merge');
  assert.deepEqual(report.weights.fallbacks, { input: 0, output: 0 });
  assert.equal(report.weights.aux.settings.dim, 100);
  assert.ok((await fsp.readdir(cache)).some((f) => f.endsWith('.bin')));
});

test('compare-init CLI scores focus, merge, align and adaptivocab beside mean (auxiliary embeddings from --corpus); merge refused in added mode', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const repoRoot = path.resolve(import.meta.dirname, '..');
  const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'compare-init', ...args], { cwd: repoRoot });
  const model = await writeTestModel(await tmp('ci'), { arch: 'llama', tied: true, hidden: 16, merges: 40 });
  const corpus = await corpusFile();
  const base = await tmp('ciout');
  await assert.rejects(cliFails(['compare-init', '--model', model, '--corpus', corpus, '--num-tokens', '4', '--methods', 'mean,merge', '--mode', 'added', '--out', path.join(base, 'bad')]), /--mode merges/);
  await assert.rejects(fsp.access(path.join(base, 'bad')));
  const out = path.join(base, 'out');
  const { stdout } = await run(['--model', model, '--corpus', corpus, '--num-tokens', '4', '--methods', 'mean,focus,merge,align,adaptivocab', '--samples', '4', '--max-context', '6', '--threads', '1', '--out', out]);
  for (const m of ['mean', 'focus', 'merge', 'align', 'adaptivocab']) assert.match(stdout, new RegExp(`\\| ${m} \\|`));
  assert.ok((await fsp.readdir(out + '.work/aux')).some((f) => f.endsWith('.json')));
});
