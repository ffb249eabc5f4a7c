import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alignTokens, canonicalTokens, choosePivots, goldMap, type TokenVectors } from '../src/embeddings/alignment.ts';
import type { TokenizerJson } from '../src/io/model-dir.ts';

const byteLevel = (vocab: Record<string, number>, added: TokenizerJson['added_tokens'] = []): TokenizerJson => ({
  added_tokens: added, normalizer: null, pre_tokenizer: { type: 'ByteLevel' }, post_processor: null,
  decoder: { type: 'ByteLevel' }, model: { type: 'BPE', vocab, merges: [] },
});
const sentencePiece = (vocab: Record<string, number>, added: TokenizerJson['added_tokens'] = []): TokenizerJson => ({
  added_tokens: added, normalizer: null, pre_tokenizer: null, post_processor: null,
  decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
  model: { type: 'BPE', vocab, merges: [], byte_fallback: true },
});

test('canonical strings: byte-level Ġ, SentencePiece ▁ and <0xNN> reduce to the same bytes; gold map', () => {
  // 'Ã©' is é's two bytes in the GPT-2 alphabet; 'Ġ' is the space byte
  const src = byteLevel({ 'Ġthe': 0, the: 1, 'Ã©': 2, 'Ã': 3, 'Ġ': 4, xyz: 5, '<|endoftext|>': 6 },
    [{ id: 6, content: '<|endoftext|>', special: true }]);
  const tgt = sentencePiece({ '<unk>': 0, '▁the': 1, the: 2, 'é': 3, '<0xC3>': 4, '<0x20>': 5, '▁': 6, '▁é': 7, '<|endoftext|>': 8 },
    [{ id: 0, content: '<unk>', special: true }, { id: 8, content: '<|endoftext|>', special: true }]);
  const c = canonicalTokens(tgt);
  assert.equal(c[1], ' the');
  assert.equal(c[3], '\u00c3\u00a9');
  assert.equal(c[4], '\u00c3');
  assert.equal(c[5], ' ');
  assert.equal(canonicalTokens(src)[2], '\u00c3\u00a9');
  const gold = goldMap(tgt, src);
  assert.deepEqual([...gold].sort((a, b) => a[0] - b[0]), [[1, 0], [2, 1], [3, 2], [4, 3], [5, 4], [6, 4], [8, 6]]);
  // '<unk>' (special, absent from the source) and '▁é' (no source token ' é') have no gold
  assert.ok(!gold.has(0) && !gold.has(7));
});

/** Rows as TokenVectors. */
const vecs = (ids: number[], rows: number[][]): TokenVectors => ({ tokenIds: Int32Array.from(ids), dim: rows[0].length, vectors: Float32Array.from(rows.flat()) });

test('alignment through relative representations recovers a rotated space; unk skipped; fallback counted', () => {
  // source space: pivots are the axes, so a token's relative representation is its unit vector
  const s = Math.SQRT1_2;
  const srcRows = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [s, s, 0], [0, s, s], [s, 0, -s], [0.6, 0.8, 0]];
  const srcIds = [10, 11, 12, 13, 14, 15, 16]; // 16 is the source's unk
  // target space: the same tokens rotated (an orthogonal matrix) and scaled; cosines are unchanged
  const R = [[0, 0, 1], [1, 0, 0], [0, 1, 0]].map((r) => r.map((x) => x));
  const rot = (v: number[], scale: number) => R.map((row) => scale * row.reduce((a, x, k) => a + x * v[k], 0));
  // target ids 0, 1, 2 are gold for source 10, 11, 12; 3 is source 13's twin, 4 is 14's, 5 is 15's;
  // 6 is nearly 16 (the unk) but also close to 13; 7 has no vector; 8 is forced to 12
  const tgtRows = [rot(srcRows[0], 2), rot(srcRows[1], 0.5), rot(srcRows[2], 3), rot(srcRows[3], 1), rot(srcRows[4], 7), rot(srcRows[5], 1), rot([0.62, 0.78, 0], 1)];
  const target = vecs([0, 1, 2, 3, 4, 5, 6], tgtRows);
  const source = vecs(srcIds, srcRows);
  const gold = new Map([[0, 10], [1, 11], [2, 12]]);
  const a = alignTokens(9, gold, target, source, { skipSource: new Set([16]), forced: new Map([[8, 12]]) });
  assert.deepEqual([...a.pivots].sort(), [0, 1, 2]);
  assert.deepEqual([...a.sourceOf], [10, 11, 12, 13, 14, 15, 13, -1, 12]);
  assert.deepEqual(a.kind, ['gold', 'gold', 'gold', 'aligned', 'aligned', 'aligned', 'aligned', 'fallback', 'special']);
  assert.deepEqual(a.counts, { gold: 3, special: 1, aligned: 4, fallback: 1 });
  // the similarity of an exact twin is its cosine with itself: 1
  assert.ok(Math.abs(a.similarity[3] - 1) < 1e-6 && Math.abs(a.similarity[4] - 1) < 1e-6);
  assert.ok(Number.isNaN(a.similarity[0]));
  // without skipping the unk, token 6 goes to it
  const b = alignTokens(9, gold, target, source, {});
  assert.equal(b.sourceOf[6], 16);
});

test('pivots: seeded, at most n, only pairs with a vector on both sides', () => {
  const gold = new Map(Array.from({ length: 50 }, (_, i) => [i, 100 + i] as [number, number]));
  const has = (id: number) => id % 2 === 0;
  const p1 = choosePivots(gold, has, () => true, 10, 1);
  assert.equal(p1.length, 10);
  assert.ok(p1.every(has));
  assert.deepEqual(choosePivots(gold, has, () => true, 10, 1), p1);
  assert.notDeepEqual(choosePivots(gold, has, () => true, 10, 2), p1);
  assert.equal(choosePivots(gold, has, (s) => s < 110, 300, 0).length, 5);
});

test('dot similarity favours a long relative representation (hub); cosine does not', () => {
  // pivots 10/0, 11/1, 12/2 are not orthogonal ([1,0,0], [0.8,0.6,0], [0,0,1]), so relative
  // representations differ in length: the hub 21 (near the first two pivots) has a long one.
  // Target token 3 is source 20's exact twin; dot products still prefer the hub (1.155 vs 0.869,
  // computed by hand), cosines the twin (1 vs 0.924).
  const source = vecs([10, 11, 12, 20, 21], [[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0.4, 1, -0.1], [0.95, 0.3, 0]]);
  const target = vecs([0, 1, 2, 3], [[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0.4, 1, -0.1]]);
  const gold = new Map([[0, 10], [1, 11], [2, 12]]);
  const dot = alignTokens(4, gold, target, source, { similarity: 'dot' });
  assert.equal(dot.sourceOf[3], 21);
  assert.ok(Math.abs(dot.similarity[3] - 1.15516) < 1e-4, String(dot.similarity[3]));
  const cos = alignTokens(4, gold, target, source, { similarity: 'cosine' });
  assert.equal(cos.sourceOf[3], 20);
  assert.ok(Math.abs(cos.similarity[3] - 1) < 1e-5);
});
