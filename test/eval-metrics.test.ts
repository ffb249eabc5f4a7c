import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scoringWindows, bitsPerByte } from '../src/eval/windows.ts';
import { measureBpbIds } from '../src/eval/bpb.ts';
import { textPrefix } from '../src/io/text.ts';
import { repetitionRate, efficiencyGain, firstWord, firstWordSettled, meanStd } from '../src/eval/text-metrics.ts';
import { tokensForFirstWord, prefixLengths, fertilityOutput } from '../src/eval/fertility-output.ts';
import { fertilityBoost } from '../src/eval/fertility-boost.ts';
import { countWordsInLine } from '../src/tokenizer/fertility.ts';
import { sampleMany, seededRandom } from '../src/eval/sampling.ts';
import type { EvalEngine, TextCodec } from '../src/eval/engine-api.ts';

/** A fake engine whose logits row at each position is a fixed function of the previous token. */
function fakeEngine(V: number, row: (prev: number, pos: number) => Float32Array, gen: number[] = []): EvalEngine & { calls: number[][] } {
  const calls: number[][] = [];
  const logSoftmax = (r: Float32Array) => { const m = Math.max(...r); const s = r.reduce((a, x) => a + Math.exp(x - m), 0); return (i: number) => r[i] - m - Math.log(s); };
  return {
    vocabRows: V, calls,
    async tokenLogprobs(batch) { batch.forEach((b) => calls.push(b)); return batch.map((ids) => Float32Array.from(ids.slice(1), (t, i) => logSoftmax(row(ids[i], i))(t))); },
    async scoreContinuations() { throw new Error('unused'); },
    async lastLogits(batch) { return batch.map((ids) => row(ids[ids.length - 1], ids.length - 1)); },
    async logits(ids) { const out = new Float32Array(ids.length * V); ids.forEach((t, p) => out.set(row(t, p), p * V)); return out; },
    async generate(_p, o) { return gen.slice(0, o.maxNewTokens); },
  };
}

test('scoring windows: 513-token windows overlapping by one score every token but the first once', () => {
  assert.deepEqual(scoringWindows(1, 512), []);
  assert.deepEqual(scoringWindows(513, 512), [[0, 513]]);
  assert.deepEqual(scoringWindows(514, 512), [[0, 513], [512, 514]]);
  assert.deepEqual(scoringWindows(1200, 512), [[0, 513], [512, 1025], [1024, 1200]]);
  for (const n of [2, 7, 100, 1025, 1026]) {
    const w = scoringWindows(n, 4);
    const scored = w.reduce((a, [s, e]) => a + (e - s - 1), 0);
    assert.equal(scored, n - 1, `n=${n}`);
    for (let i = 1; i < w.length; i++) assert.equal(w[i][0], w[i - 1][1] - 1);
  }
});

test('bits per byte: hand-computed from log-probs', () => {
  const r = bitsPerByte([Float32Array.of(Math.log(0.5), Math.log(0.25))], 3, 3);
  assert.ok(Math.abs(r.bits - 3) < 1e-6);
  assert.ok(Math.abs(r.bpb - 1) < 1e-6);
  assert.ok(Math.abs(r.perplexity - Math.sqrt(8)) < 1e-5);
  assert.equal(r.bytesPerToken, 1);
});

test('measureBpbIds feeds the windows in batches and sums every token once (uniform model: log2 V bits/token)', async () => {
  const V = 16;
  const eng = fakeEngine(V, () => new Float32Array(V));
  const ids = Array.from({ length: 30 }, (_, i) => i % V);
  const r = await measureBpbIds(eng, ids, 60, { context: 8, batch: 3 });
  assert.equal(r.scoredTokens, 29);
  assert.ok(Math.abs(r.bits - 29 * 4) < 1e-3);
  assert.ok(Math.abs(r.bpb - (29 * 4) / 60) < 1e-5);
  assert.deepEqual(eng.calls.map((c) => c.length), [9, 9, 9, 6]);
  assert.deepEqual(eng.calls[1].slice(0, 1), [8]);
});

test('textPrefix cuts at a line end near the byte limit, never inside a character', () => {
  const t = 'ação\n'.repeat(100);
  const p = textPrefix(t, 52);
  assert.ok(Buffer.byteLength(p) <= 52);
  assert.ok(p.endsWith('\n'));
  assert.ok(!textPrefix('ççç', 3).includes('\uFFFD'));
  assert.equal(textPrefix('abc', 10), 'abc');
});

test('repetition: share of repeated word 4-grams', () => {
  assert.deepEqual(repetitionRate(['a b c d a b c d']), { rate: 1 / 5, repeated: 1, total: 5 });
  assert.equal(repetitionRate(['x y z']).rate, 0);
  assert.equal(repetitionRate(['a a a a a a']).rate, 2 / 3);
});

test('efficiency gain and helpers', () => {
  assert.ok(Math.abs(efficiencyGain(2, 1.6, 0.4) - 0.1) < 1e-12);
  assert.equal(firstWord(' , Câmara dos'), 'Câmara');
  assert.equal(firstWord('...'), null);
  // settled = no continuation can change the first word
  for (const t of [' , Câmara', ' Câmara', '', '...', ' \uFFFD', ' Câ\uFFFD dos ', ' \uFFFD água ']) assert.equal(firstWordSettled(t), false, JSON.stringify(t));
  for (const t of [' , Câmara dos', ' Câmara.', 'x ', ' água \uFFFD']) assert.equal(firstWordSettled(t), true, JSON.stringify(t));
  assert.equal(meanStd([1, 3]).mean, 2);
  assert.ok(Math.abs(meanStd([1, 3]).std - Math.SQRT2) < 1e-12);
});

test('tokensForFirstWord: skips a continued word, needs a terminator, counts the spanning tokens', () => {
  // tokens: " pal", "avra", " bonita", "."
  const cum = [' pal', ' palavra', ' palavra bonita', ' palavra bonita.'];
  assert.equal(tokensForFirstWord(cum, false), 2);
  // prompt ended mid-word: "ção" continues it, the first complete new word is "bom"
  assert.equal(tokensForFirstWord(['ção', 'ção bom', 'ção bom!'], true), 1);
  assert.equal(tokensForFirstWord(['ção', 'ção bom', 'ção bom!'], false), 1);
  assert.equal(tokensForFirstWord([' inacab', ' inacabado'], false), null);
  assert.equal(tokensForFirstWord(['...', '... !'], false), null);
  assert.equal(tokensForFirstWord([], false), null);
});

test('one word definition, Python\'s \\w+: água is one word in NFC and two (a, gua) in NFD, everywhere', () => {
  const nfc = 'água fria';
  const nfd = nfc.normalize('NFD');
  assert.notEqual(nfc, nfd);
  // re.findall(r'\w+', s) in Python: ['água', 'fria'] and ['a', 'gua', 'fria'] (combining marks are not \w)
  assert.equal(countWordsInLine(nfc), 2);
  assert.equal(countWordsInLine(nfd), 3);
  assert.equal(firstWord(' ' + nfc), 'água');
  assert.equal(firstWord(' ' + nfd), 'a');
  assert.equal(firstWordSettled(' ' + nfd), true);
  assert.equal(firstWordSettled(' água'), false);
  // FertilityOutput: the first complete word of NFD 'água ' ends at the mark, one token in
  assert.equal(tokensForFirstWord([' a', ' a\u0301', ' a\u0301gua '], false), 1);
  assert.equal(tokensForFirstWord([' á', ' água', ' água '], false), 2);
});

test('prefixLengths spreads at most maxPrefixes lengths from minPrefix to the end', () => {
  assert.deepEqual(prefixLengths(8, 6, 10), [6, 7, 8]);
  assert.deepEqual(prefixLengths(5, 6, 10), []);
  const p = prefixLengths(100, 6, 4);
  assert.equal(p.length, 4);
  assert.equal(p[0], 6);
  assert.equal(p[3], 100);
});

test('fertilityOutput: texts without words are counted apart, no crash', async () => {
  const codec: TextCodec = {
    async encode(t) { return [...t].map((c) => c.charCodeAt(0)); },
    async encodeBatch(ts) { return Promise.all(ts.map((t) => this.encode(t))); },
    async decode(ids) { return String.fromCharCode(...ids); },
  };
  const gen = [...' ab cd.'].map((c) => c.charCodeAt(0));
  const eng = fakeEngine(128, () => new Float32Array(128), gen);
  const r = await fertilityOutput(eng, codec, ['... ??? !!!', 'uma frase com palavras'], { maxPrefixes: 2 });
  assert.equal(r.texts_without_words, 1);
  assert.equal(r.n_texts, 1);
  assert.equal(r.n_samples, 2);
  assert.equal(r.mean, 2); // " ab" spans the tokens "a" and "b"
  const none = await fertilityOutput(eng, codec, ['!!!!!!!!'], {});
  assert.ok(Number.isNaN(none.mean));
});

test('fertilityBoost: counts the FIRST new id too (no off-by-one), greedy and sampled', async () => {
  const V = 6; // original ids 0..3, new ids 4, 5
  const firstNew = 4;
  // after token 0 the model prefers id 4 (exactly the first new id), elsewhere id 1
  const row = (prev: number) => { const r = new Float32Array(V).fill(-30); r[prev === 0 ? 4 : 1] = 10; return r; };
  const eng = fakeEngine(V, row);
  const r = await fertilityBoost(eng, [[0, 1, 0, 1], [1, 1]], (id) => id >= firstNew, { runs: 10, temperature: 0.8 });
  assert.equal(r.greedy, (2 / 4 + 0) / 2);
  assert.equal(r.greedy_pooled, 2 / 6);
  assert.equal(r.per_run.length, 10);
  assert.ok(Math.abs(r.mean - 0.25) < 1e-9); // logits so peaked that sampling = greedy
  assert.equal(r.std, 0);
  assert.equal(r.n_positions, 6);
});

test('sampleMany follows the softmax distribution at temperature T', () => {
  const row = Float32Array.of(0, Math.log(3));
  const rand = seededRandom(7);
  const draws = Array.from({ length: 20000 }, () => rand());
  const picks = sampleMany(row, 0, 2, 1, draws, new Float64Array(2));
  const share = picks.filter((p) => p === 1).length / picks.length;
  assert.ok(Math.abs(share - 0.75) < 0.02, String(share));
  const hot = sampleMany(row, 0, 2, 1e6, draws, new Float64Array(2)).filter((p) => p === 1).length / draws.length;
  assert.ok(Math.abs(hot - 0.5) < 0.02, String(hot));
});
