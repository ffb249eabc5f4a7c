// Replay text in tuning: the interleaving, the cached self-sample, and the effect it exists for
// (the new tokens lose probability on text where they never occur).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadModelDir, type ModelDir } from '../src/io/model-dir.ts';
import { decode, encode, loadTokenizer } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import { extendTokenizer } from '../src/tokenizer/extend.ts';
import { planRows, writeExtendedModel } from '../src/embeddings/surgery.ts';
import { parseInitMethod } from '../src/embeddings/init-methods.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { runTune, type TuneOptions } from '../src/tune/run-tune.ts';
import { interleave, replayStartId, selfReplayFile } from '../src/tune/replay.ts';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';

// text whose words the corpus never has: no new token can occur in it
const REPLAY_TEXT = Array.from({ length: 60 }, (_, i) => `ZYX ${i} KW-JQ, ${i * 7}% WXYZ? QK ${i * 13}!`).join('\n') + '\n';

test('interleave: keeps both orders and spreads the shorter list evenly', () => {
  assert.deepEqual(interleave([1, 2, 3], ['a', 'b', 'c']), [1, 'a', 2, 'b', 3, 'c']);
  assert.deepEqual(interleave([1, 2, 3, 4, 5, 6], ['a', 'b']), [1, 2, 3, 'a', 4, 5, 6, 'b']);
  const out = interleave([...Array(100).keys()], ['x', 'y', 'z', 'w']);
  assert.equal(out.length, 104);
  assert.deepEqual(out.filter((v) => typeof v === 'number'), [...Array(100).keys()]);
  assert.deepEqual(out.filter((v) => typeof v === 'string'), ['x', 'y', 'z', 'w']);
  // each replay item lands within its quarter of the list
  ['x', 'y', 'z', 'w'].forEach((s, k) => {
    const at = out.indexOf(s);
    assert.ok(at >= k * 26 && at < (k + 1) * 26, `${s} at ${at}`);
  });
  assert.deepEqual(interleave([], ['a']), ['a']);
  assert.deepEqual(interleave([1], []), [1]);
});

async function extendedPair(root: string): Promise<{ base: ModelDir; ext: ModelDir; corpus: string; replay: string }> {
  const baseDir = await writeTestModel(path.join(root, 'base'), { arch: 'llama', hidden: 32, merges: 40, layers: 2, seed: 5 });
  const corpus = path.join(root, 'corpus.txt');
  await fsp.writeFile(corpus, SAMPLE_TEXT.repeat(30).replace(/\. /g, '.\n'));
  const replay = path.join(root, 'replay.txt');
  await fsp.writeFile(replay, REPLAY_TEXT);
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
  return { base, ext: await loadModelDir(extDir), corpus, replay };
}

/** Mean probability mass the model puts on the new ids, over the positions of `text` (extended tokenization). */
async function newTokenMass(model: ModelDir, newIds: number[], text: string): Promise<number> {
  const ids = await encode(await loadTokenizer(model.tokenizerPath), text, false);
  const engine = await loadEngine(model, { threads: 1 });
  try {
    const V = engine.vocabRows;
    const logits = await engine.logits(ids.slice(0, 200));
    let sum = 0;
    const n = logits.length / V;
    for (let p = 0; p < n; p++) {
      const row = logits.subarray(p * V, (p + 1) * V);
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let all = 0;
      for (const x of row) all += Math.exp(x - max);
      let mass = 0;
      for (const id of newIds) mass += Math.exp(row[id] - max);
      sum += mass / all;
    }
    return sum / n;
  } finally {
    await engine.dispose();
  }
}

test('tune --replay: replay text joins both phases and lowers the new tokens\' probability where they never occur', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-replay-'));
  try {
    const p = await extendedPair(root);
    const newIds = [...Array(p.ext.embeddingRows - p.base.embeddingRows).keys()].map((i) => p.base.embeddingRows + i);
    const extTok = await loadTokenizer(p.ext.tokenizerPath);
    const replayIds = await encode(extTok, REPLAY_TEXT, false);
    assert.ok(!replayIds.some((id) => newIds.includes(id)), `the replay text has no new token: ${await Promise.all(replayIds.filter((id) => newIds.includes(id)).slice(0, 8).map((id) => decode(extTok, [id], false)))}`);
    const opts = (out: string, over: Partial<TuneOptions> = {}): TuneOptions => ({
      model: p.ext, original: p.base, corpus: [p.corpus], out, workDir: out + '.work', rows: 'both', optimizer: 'adam',
      corpusBytes: 100_000, inputCorpusBytes: 4_000, epochs: 3, inputEpochs: 2, lr: 0.05, inputLr: 0.01, batchSize: 64,
      inputBatchSize: 4, seqLen: 48, inputSeqLen: 32, threads: 1, resume: false, checkpointSeconds: 3600, seed: 1, ...over,
    });
    const plain = await runTune(opts(path.join(root, 'plain')));
    const mixed = await runTune(opts(path.join(root, 'mixed'), { replay: p.replay, replayRatio: 0.5 }));
    assert.equal(plain.replay, undefined);
    const corpusBytes = mixed.corpusBytes;
    // whole lines up to ratio x the phase's corpus bytes
    assert.ok(mixed.replay!.bytes <= corpusBytes * 0.5 && mixed.replay!.bytes > Math.min(corpusBytes * 0.5, REPLAY_TEXT.length) - 80, `replay bytes ${mixed.replay!.bytes}`);
    assert.ok(mixed.replay!.inputBytes > 0 && mixed.replay!.inputBytes <= 2_000);
    assert.ok(mixed.cache!.positions > plain.cache!.positions, 'the replay text adds cached positions');
    assert.ok(mixed.input!.tokens > plain.input!.tokens, 'the replay text adds input windows');
    const before = await newTokenMass(p.ext, newIds, REPLAY_TEXT);
    const massPlain = await newTokenMass(await loadModelDir(path.join(root, 'plain')), newIds, REPLAY_TEXT);
    const massMixed = await newTokenMass(await loadModelDir(path.join(root, 'mixed')), newIds, REPLAY_TEXT);
    assert.ok(massMixed < massPlain * 0.5, `new-token mass on replay text: ${before} untuned, ${massPlain} without replay, ${massMixed} with`);
    await assert.rejects(runTune(opts(path.join(root, 'bad'), { replay: path.join(root, 'missing.txt') })), /: replay .*missing\.txt: file not found/);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('--replay self: samples from the base model once, then reuses the sample while model and seed match', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-replay-self-'));
  try {
    const base = await loadModelDir(await writeTestModel(path.join(root, 'base'), { arch: 'llama', hidden: 32, merges: 40, layers: 2, seed: 5 }));
    // the factory's config.json has bos_token_id 0; without a BOS the first EOS starts a sample; without both, a clear error
    assert.equal(replayStartId(base), 0);
    assert.equal(replayStartId({ ...base, config: { ...base.config, bosTokenId: null, eosTokenId: [7, 9] } }), 7);
    assert.equal(replayStartId({ ...base, config: { ...base.config, bosTokenId: [3], eosTokenId: 7 } }), 3);
    assert.throws(() => replayStartId({ ...base, config: { ...base.config, bosTokenId: null, eosTokenId: null } }), /names no bos_token_id or eos_token_id/);
    const work = path.join(root, 'work');
    let ticks = 0;
    const a = await selfReplayFile(work, base, { bytes: 3_000, seed: 4, batch: 4, maxNewTokens: 24, threads: 1, onProgress: () => { ticks++; } });
    assert.equal(a.reused, false);
    assert.ok(ticks > 0);
    const text = await fsp.readFile(a.file, 'utf8');
    assert.ok(Buffer.byteLength(text) >= 3_000, `${Buffer.byteLength(text)} bytes`);
    const b = await selfReplayFile(work, base, { bytes: 2_000, seed: 4, batch: 4, maxNewTokens: 24, threads: 1 });
    assert.equal(b.reused, true, 'a smaller request reuses the sample');
    assert.equal(await fsp.readFile(b.file, 'utf8'), text);
    const c = await selfReplayFile(work, base, { bytes: 2_000, seed: 5, batch: 4, maxNewTokens: 24, threads: 1 });
    assert.equal(c.reused, false, 'another seed samples again');
    assert.notEqual(await fsp.readFile(c.file, 'utf8'), text);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('tune CLI: --replay-ratio must be positive', async () => {
  const { runCli } = await import('./support/cli.ts');
  const r = await runCli(['tune', '--model', 'm', '--original', 'b', '--corpus', 'c', '--out', 'o', '--replay', 'self', '--replay-ratio', '0']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--replay-ratio 0: expected a number > 0/);
});
