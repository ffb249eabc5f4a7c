// End to end on small test models: extend a tokenizer + model with the library, tune, and check
// that only the new rows changed, the loss went down, checkpoints resume to the exact same result,
// and the windows cover every extended token once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR, type ModelDir } from '../src/io/model-dir.ts';
import { readTensorBytes } from '../src/io/safetensors.ts';
import { readWeightRows } from '../src/io/weights.ts';
import { loadTokenizer } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import { extendTokenizer } from '../src/tokenizer/extend.ts';
import { planRows, writeExtendedModel } from '../src/embeddings/surgery.ts';
import { parseInitMethod } from '../src/embeddings/init-methods.ts';
import { runTune, type TuneOptions } from '../src/tune/run-tune.ts';
import { decodingWindows, inputWindows } from '../src/tune/windows.ts';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';

async function extendedPair(root: string, arch: 'llama' | 'qwen2'): Promise<{ base: ModelDir; ext: ModelDir; corpus: string }> {
  const baseDir = await writeTestModel(path.join(root, 'base'), { arch, hidden: 32, merges: 40, layers: 2, seed: 3 });
  const corpus = path.join(root, 'corpus.txt');
  await fsp.writeFile(corpus, SAMPLE_TEXT.repeat(30).replace(/\. /g, '.\n'));
  const base = await loadModelDir(baseDir);
  const tok = await loadTokenizer(base.tokenizerPath);
  const freq = await countWords(tok, bpeModelOf(base.tokenizerJson).kind, [corpus]);
  const learned = learnTokens(tok, freq, { method: 'continue', numTokens: 12 });
  const plan = planRows(base, learned.tokens.length, {});
  const ext = extendTokenizer(base.tokenizerJson, learned.tokens, { mode: 'merges', firstId: plan.firstId });
  const extDir = path.join(root, 'ext');
  await fsp.mkdir(extDir, { recursive: true });
  await writeExtendedModel(base, extDir, {
    plan, tokenizerJson: ext.json, init: parseInitMethod('mean'),
    tokens: learned.tokens.map((t, i) => ({ id: ext.newIds[i], subIds: t.originalIds })).filter((t) => t.id >= 0),
  });
  return { base, ext: await loadModelDir(extDir), corpus };
}

function opts(p: { base: ModelDir; ext: ModelDir; corpus: string }, out: string, over: Partial<TuneOptions> = {}): TuneOptions {
  return {
    model: p.ext, original: p.base, corpus: [p.corpus], out, workDir: out + '.work', rows: 'output', optimizer: 'adam',
    corpusBytes: 100_000, inputCorpusBytes: 3_000, epochs: 3, inputEpochs: 1, lr: 0.02, inputLr: 0.01, batchSize: 64,
    inputBatchSize: 4, seqLen: 48, inputSeqLen: 32, threads: 1, resume: false, checkpointSeconds: 3600, seed: 1, ...over,
  };
}

async function assertOnlyNewRowsChanged(orig: ModelDir, tuned: ModelDir, newIds: number[], changed: string[]): Promise<void> {
  const st0 = orig.weights.files[0];
  const st1 = tuned.weights.files[0];
  assert.deepEqual(st1.tensors.map((t) => t.name), st0.tensors.map((t) => t.name));
  for (const t of st0.tensors) {
    const a = await readTensorBytes(st0, t.name);
    const b = await readTensorBytes(st1, t.name);
    if (!changed.includes(t.name)) {
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${t.name} must be bit-identical`);
      continue;
    }
    const rowBytes = a.byteLength / t.shape[0];
    const isNew = new Set(newIds);
    let moved = 0;
    for (let r = 0; r < t.shape[0]; r++) {
      const same = Buffer.from(a.subarray(r * rowBytes, (r + 1) * rowBytes)).equals(Buffer.from(b.subarray(r * rowBytes, (r + 1) * rowBytes)));
      if (!isNew.has(r)) assert.ok(same, `${t.name} row ${r} (old token) must be bit-identical`);
      else if (!same) moved++;
    }
    assert.ok(moved >= newIds.length / 2, `${t.name}: only ${moved} of ${newIds.length} new rows moved`);
  }
}

test('windows: every extended token after the first is predicted once, from its expanded context', () => {
  const map = new Map([[100, [1, 2, 3]], [101, [4, 5]]]);
  const ext = [7, 100, 8, 101, 101, 9, 100];
  const ws = decodingWindows(ext, map, 6);
  assert.deepEqual(ws.flatMap((w) => w.targets), ext.slice(1));
  for (const w of ws) {
    assert.ok(w.input.length <= 6);
    for (const p of w.positions) assert.ok(p >= 0 && p < w.input.length);
  }
  // the first window reads 7 | 1 2 3 | 8 and predicts 100 after 7, 8 after 3, 101 after 8
  assert.deepEqual(ws[0], { input: [7, 1, 2, 3, 8], positions: [0, 3, 4], targets: [100, 8, 101] });
  const iw = inputWindows([1, 2, 3, 4, 5, 6, 7], 3);
  assert.deepEqual(iw, [[1, 2, 3], [3, 4, 5], [5, 6, 7]]);
});

test('tune --rows output (tied): loss falls, only the new rows change, an interrupted run resumes to the same rows', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-run-'));
  try {
    const p = await extendedPair(root, 'llama');
    const out = path.join(root, 'tuned');
    const s = await runTune(opts(p, out));
    assert.ok(s.output!.lastLoss < s.output!.firstLoss - 0.05, `loss ${s.output!.firstLoss} -> ${s.output!.lastLoss}`);
    assert.ok(s.cache!.newTargets > 0);
    const tuned = await loadModelDir(out);
    const extTok = await loadTokenizer(p.ext.tokenizerPath);
    const newIds = [...Array(p.ext.embeddingRows - p.base.embeddingRows).keys()].map((i) => p.base.embeddingRows + i);
    assert.ok(newIds.length > 0 && extTok.size === p.ext.embeddingRows);
    await assertOnlyNewRowsChanged(p.ext, tuned, newIds, [EMBED_TENSOR]);
    assert.equal(await fsp.readFile(path.join(out, 'tokenizer.json'), 'utf8'), await fsp.readFile(p.ext.tokenizerPath, 'utf8'));
    assert.ok(JSON.parse(await fsp.readFile(path.join(out, 'tune.json'), 'utf8')).output.steps > 0);

    // interrupted after a few steps (checkpoint every step), then resumed: same rows as uninterrupted
    const out2 = path.join(root, 'tuned2');
    let n = 0;
    await assert.rejects(runTune(opts(p, out2, {
      checkpointSeconds: 1e-6,
      onTick: (_d, info) => { if (info && ++n === 4) throw new Error('interrupted'); },
    })), /interrupted/);
    await assert.rejects(fsp.access(out2), 'no output after an interrupted run');
    const r = await runTune(opts(p, out2, { resume: true }));
    assert.equal(r.cache!.reused, true);
    assert.equal(r.output!.resumedAt, 3);
    const rows = async (m: ModelDir) => Buffer.from(await readWeightRows(m.weights, EMBED_TENSOR, newIds[0], newIds[newIds.length - 1] + 1));
    assert.ok((await rows(await loadModelDir(out2))).equals(await rows(tuned)), 'resumed rows equal uninterrupted rows');
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('tune --rows both (untied): input and output rows move, everything else is bit-identical; seed heuristic runs', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-run-'));
  try {
    const p = await extendedPair(root, 'qwen2');
    const out = path.join(root, 'tuned');
    const s = await runTune(opts(p, out, { rows: 'both', inputEpochs: 2 }));
    assert.ok(s.input!.steps > 0 && Number.isFinite(s.input!.lastLoss));
    assert.ok(s.input!.lastLoss < s.input!.firstLoss, `input phase loss ${s.input!.firstLoss} -> ${s.input!.lastLoss}`);
    const newIds = [...Array(p.ext.embeddingRows - p.base.embeddingRows).keys()].map((i) => p.base.embeddingRows + i);
    await assertOnlyNewRowsChanged(p.ext, await loadModelDir(out), newIds, [EMBED_TENSOR, LM_HEAD_TENSOR]);
    const outH = path.join(root, 'heuristic');
    const h = await runTune(opts(p, outH, { optimizer: 'seed-heuristic', lr: 1e-2, resume: true, workDir: out + '.work' }));
    assert.equal(h.cache!.reused, true);
    await assertOnlyNewRowsChanged(p.ext, await loadModelDir(outH), newIds, [LM_HEAD_TENSOR]);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('tune CLI: bad flags are reported by name before any work (old names still accepted)', async () => {
  const { runCli } = await import('./support/cli.ts');
  const run = (extra: string[]) => runCli(['tune', '--model', '/nonexistent/m', '--original', '/nonexistent/b', '--corpus', 'c', '--out', 'o', ...extra]);
  const cases: Array<[string[], RegExp]> = [
    [['--rows', 'middle'], /--rows middle: expected one of output, input, both/],
    [['--optimizer', 'sgd'], /--optimizer sgd: expected one of adam, seed-heuristic/],
    [['--method', 'sgd'], /--optimizer sgd: expected one of adam, seed-heuristic/],
    [['--rows', 'both', '--optimizer', 'seed-heuristic'], /seed-heuristic only applies to --rows output/],
    // numeric flags too: the model paths do not exist, so reaching them would give another error
    [['--batch-size', '0'], /--batch-size 0: expected an integer >= 1/],
    [['--batch', '0'], /--batch-size 0: expected an integer >= 1/],
    [['--corpus-bytes', 'lots'], /--corpus-bytes lots: expected a size/],
  ];
  for (const [extra, re] of cases) {
    const r = await run(extra);
    assert.notEqual(r.code, 0, extra.join(' '));
    assert.match(r.stderr, re, extra.join(' '));
  }
  const old = await runCli(['tune', '--model', '/nonexistent/m', '--base', '/nonexistent/b', '--corpus', 'c', '--out', 'o', '--method', 'adam']);
  assert.match(old.stderr, /--base is now --original/);
  assert.match(old.stderr, /--method is now --optimizer/);
});

test('distillation targets in the cache equal the base model\'s log-probability of the pieces (transformers-equivalent engine scoring)', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-distill-'));
  try {
    const { loadEngine } = await import('../src/runtime/engine.ts');
    const { newTokenMap } = await import('../src/runtime/extended-decoding.ts');
    const { buildHiddenCache, HiddenCache } = await import('../src/tune/hidden-cache.ts');
    const { createOrtKernels } = await import('../src/tune/ort-kernels.ts');
    const { readWeightF32 } = await import('../src/io/weights.ts');
    const { encode } = await import('../src/tokenizer/load.ts');
    const p = await extendedPair(root, 'qwen2');
    const extTok = await loadTokenizer(p.ext.tokenizerPath);
    const map = await newTokenMap(extTok, await loadTokenizer(p.base.tokenizerPath));
    const ids = await encode(extTok, SAMPLE_TEXT, false);
    // one window, so the cache order is the window's order
    const [w] = decodingWindows(ids, map, 10_000);
    assert.ok(w.targets.filter((t) => map.has(t)).length >= 3, 'the text has new-token targets');
    const ext = await loadEngine(p.ext, { threads: 1 });
    const base = await loadEngine(p.base, { threads: 1 });
    const kernels = await createOrtKernels(1);
    const dir = path.join(root, 'cache');
    try {
      const meta = await buildHiddenCache({
        dir, key: {}, windows: [w], hidden: p.ext.hiddenSize, head: await readWeightF32(p.ext.weights, LM_HEAD_TENSOR),
        headRows: p.ext.embeddingRows, newIds: new Set(map.keys()), kernels, hiddenStates: (b) => ext.hiddenStates(b), distillPieces: map,
      });
      const cache = await HiddenCache.open(dir);
      const b = await cache.batch(0, meta.positions, new Map([...map.keys()].map((id, i) => [id, i])));
      await cache.close();
      let checked = 0;
      for (let j = 0; j < w.positions.length; j++) {
        const pieces = map.get(w.targets[j]);
        const T = b.distillTarget![j];
        if (!pieces || j === w.positions.length - 1) {
          assert.ok(Number.isNaN(T), `position ${j}: no distillation target expected`);
          continue;
        }
        const [ref] = await base.scoreContinuations([{ context: w.input.slice(0, w.positions[j] + 1), continuation: pieces }]);
        assert.ok(Math.abs(T - ref.sum) < 1e-4, `position ${j}: cache ${T} vs base model ${ref.sum}`);
        checked++;
      }
      assert.equal(meta.distillTargets, checked);
      assert.ok(checked >= 3);
    } finally {
      await ext.dispose();
      await base.dispose();
      await kernels.dispose();
    }
    // and a tuning run with it: the distillation term pulls log p(new token) toward the targets
    const plain = await runTune(opts(p, path.join(root, 'plain'), { rows: 'output' }));
    const dist = await runTune(opts(p, path.join(root, 'dist'), { rows: 'output', distill: 1, resume: true, cacheDir: path.join(root, 'dist-cache') }));
    assert.equal(plain.cache!.distillTargets, undefined);
    assert.ok(dist.cache!.distillTargets! > 0);
    assert.equal(dist.output!.distill, 1);
    const gap = async (dir: string) => {
      const c = await HiddenCache.open(path.join(root, 'dist-cache'));
      const k = await createOrtKernels(1);
      try {
        const m = await loadModelDir(dir);
        const newIds = [...map.keys()].sort((a, b) => a - b);
        const rows = await readWeightF32(m.weights, LM_HEAD_TENSOR);
        const W = new Float32Array(newIds.length * m.hiddenSize);
        newIds.forEach((id, i) => W.set(rows.subarray(id * m.hiddenSize, (id + 1) * m.hiddenSize), i * m.hiddenSize));
        const { outputLossAndGrad } = await import('../src/tune/output-rows.ts');
        const batch = await c.batch(0, c.meta.positions, new Map(newIds.map((id, i) => [id, i])));
        const r = await outputLossAndGrad(k, { data: W, rows: newIds.length, cols: m.hiddenSize }, batch, 1);
        return r.distillSq / r.distillCount;
      } finally {
        await c.close();
        await k.dispose();
      }
    };
    const gPlain = await gap(path.join(root, 'plain'));
    const gDist = await gap(path.join(root, 'dist'));
    assert.ok(gDist < gPlain * 0.8, `mean squared log-prob gap: ${gPlain} (cross-entropy only) vs ${gDist} (with distillation)`);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
