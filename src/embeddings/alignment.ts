// Token alignment (TokAlign, Li et al. 2025; its cal_trans_matrix.py): which source token each target
// token takes its embedding rows from.
// - Gold: a target token whose canonical string (the bytes it stands for: GPT-2 byte-level 'Ġ',
//   SentencePiece '▁' and '<0xNN>' byte tokens all reduced to bytes) is also a source token's.
// - Pivots: up to 300 gold pairs, drawn at random (seeded) among those with a GloVe vector on both sides.
// - Relative representation: the cosines of a token's normalized vector to the pivots' normalized
//   vectors, in its own space; the two spaces become comparable through the pivots.
// - Aligned: target -> argmax over source tokens of the dot product of relative representations (as
//   TokAlign computes it, not re-normalized), never the source's unk or special tokens.
// - Fallback: target tokens with neither gold nor a vector (never seen min-count times in the corpus).
//   TokAlign picks a random source row; here they are reported with source -1 and the caller fills
//   them (replace.ts: the mean of the rows of the token's pieces under the source tokenizer, as FVT).
import { HackError } from '../io/errors.ts';
import { seededRandom } from '../io/seeded-random.ts';
import type { TokenizerJson } from '../io/model-dir.ts';
import { CHAR_TO_BYTE } from '../tokenizer/byte-level.ts';
import { pieceSchemeOf, tokenBytes } from '../tokenizer/token-pieces.ts';

/** GloVe vectors of some tokens (GloveEmbedding satisfies it). */
export interface TokenVectors {
  tokenIds: Int32Array;
  dim: number;
  /** [tokenIds.length, dim] */
  vectors: Float32Array;
}

export type AlignKind = 'gold' | 'special' | 'aligned' | 'fallback';
export const ALIGN_KINDS: readonly AlignKind[] = ['gold', 'special', 'aligned', 'fallback'];

/** Every id's token string (model vocab and added tokens); '' where an id has none. */
export function tokenStrings(json: TokenizerJson): string[] {
  const out: string[] = [];
  const vocab = json.model?.vocab;
  if (Array.isArray(vocab)) vocab.forEach(([t], i) => { out[i] = t; });
  else if (vocab) for (const [t, id] of Object.entries(vocab)) out[id] = t;
  for (const t of json.added_tokens ?? []) out[t.id] = t.content;
  for (let i = 0; i < out.length; i++) if (out[i] === undefined) out[i] = '';
  return out;
}

/**
 * The canonical form of every id: its bytes as a latin-1 string for ordinary tokens ('Ġthe', '▁the'
 * and the bytes ' the' all give ' the'; '<0x41>' gives 'A'); special added tokens keep their content
 * behind a marker, so they match only the same special token.
 */
export function canonicalTokens(json: TokenizerJson): string[] {
  const scheme = pieceSchemeOf(json);
  const added = new Set((json.added_tokens ?? []).map((t) => t.content));
  const special = new Set((json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
  return tokenStrings(json).map((t, id) => {
    if (t === '') return '';
    if (special.has(id)) return `\u0000special:${t}`;
    return String.fromCharCode(...tokenBytes(t, scheme, CHAR_TO_BYTE, added));
  });
}

/** target id -> source id for tokens with the same canonical form (the lowest source id when several share it). */
export function goldMap(target: TokenizerJson, source: TokenizerJson): Map<number, number> {
  const src = new Map<string, number>();
  canonicalTokens(source).forEach((k, id) => { if (k !== '' && !src.has(k)) src.set(k, id); });
  const gold = new Map<number, number>();
  canonicalTokens(target).forEach((k, id) => {
    const s = k === '' ? undefined : src.get(k);
    if (s !== undefined) gold.set(id, s);
  });
  return gold;
}

export interface AlignOptions {
  /** Number of pivots (TokAlign: 300). */
  pivots?: number;
  seed?: number;
  /** Source ids never chosen by argmax (unk, specials). */
  skipSource?: ReadonlySet<number>;
  /**
   * How relative representations are compared: `dot` (TokAlign's code: their dot product, which
   * favours source tokens with long relative representations) or `cosine` (both normalized first).
   */
  similarity?: 'dot' | 'cosine';
  /** Pairs fixed for tokens without gold (special tokens: bos -> bos...), reported as `special`. */
  forced?: ReadonlyMap<number, number>;
}

export interface Alignment {
  /** target id -> source id (-1: fallback, to be filled by the caller). */
  sourceOf: Int32Array;
  kind: AlignKind[];
  /** Relative-representation similarity of aligned pairs (NaN otherwise). */
  similarity: Float32Array;
  /** Target ids of the pivots (their source ids are gold's). */
  pivots: number[];
  counts: Record<AlignKind, number>;
}

/** Unit-length copies of the vectors (a zero vector stays zero). */
function normalized(v: TokenVectors): Float32Array {
  const d = v.dim, out = new Float32Array(v.vectors.length);
  for (let r = 0; r < v.tokenIds.length; r++) {
    let n = 0;
    for (let k = 0; k < d; k++) n += v.vectors[r * d + k] ** 2;
    const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
    for (let k = 0; k < d; k++) out[r * d + k] = v.vectors[r * d + k] * inv;
  }
  return out;
}

/** Scale each row of a [rows, width] matrix to unit length in place. */
function normalizeRows(m: Float32Array, width: number): void {
  for (let a = 0; a < m.length; a += width) {
    let n = 0;
    for (let k = 0; k < width; k++) n += m[a + k] ** 2;
    const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
    for (let k = 0; k < width; k++) m[a + k] *= inv;
  }
}

/** [rows, P]: each row's cosines to the pivot rows. */
function relative(unit: Float32Array, rows: number, d: number, pivotRows: number[]): Float32Array {
  const P = pivotRows.length, out = new Float32Array(rows * P);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < P; p++) {
      const a = r * d, b = pivotRows[p] * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += unit[a + k] * unit[b + k];
      out[r * P + p] = s;
    }
  }
  return out;
}

/** Pivot target ids: gold pairs in a seeded random order, the first `n` with a vector on both sides. */
export function choosePivots(gold: ReadonlyMap<number, number>, hasTarget: (id: number) => boolean, hasSource: (id: number) => boolean, n: number, seed: number): number[] {
  const ids = [...gold.keys()].sort((a, b) => a - b);
  const rnd = seededRandom(seed);
  for (let i = ids.length - 1; i > 0; i--) {
    const k = Math.floor(rnd() * (i + 1));
    [ids[i], ids[k]] = [ids[k], ids[i]];
  }
  const out: number[] = [];
  for (const t of ids) {
    if (out.length >= n) break;
    if (hasTarget(t) && hasSource(gold.get(t)!)) out.push(t);
  }
  return out;
}

/**
 * Align every target id 0..targetSize-1 to a source id: gold (identical strings stay bit-identical),
 * then forced pairs, then the argmax of
 * relative-representation similarity for target tokens with a vector, else fallback (-1).
 */
export function alignTokens(targetSize: number, gold: ReadonlyMap<number, number>, target: TokenVectors, source: TokenVectors, o: AlignOptions = {}): Alignment {
  if (target.dim !== source.dim) throw new HackError('BAD_ALIGNMENT', `GloVe vector sizes differ: target ${target.dim}, source ${source.dim}`);
  const d = target.dim;
  const tRow = new Map<number, number>(), sRow = new Map<number, number>();
  target.tokenIds.forEach((id, r) => tRow.set(id, r));
  source.tokenIds.forEach((id, r) => sRow.set(id, r));
  const pivots = choosePivots(gold, (t) => tRow.has(t), (s) => sRow.has(s), o.pivots ?? 300, o.seed ?? 0);

  const sourceOf = new Int32Array(targetSize).fill(-1);
  const kind: AlignKind[] = new Array(targetSize);
  const similarity = new Float32Array(targetSize).fill(NaN);
  const counts: Record<AlignKind, number> = { gold: 0, special: 0, aligned: 0, fallback: 0 };
  const toAlign: number[] = [];
  for (let t = 0; t < targetSize; t++) {
    const f = o.forced?.get(t);
    const g = gold.get(t);
    if (g !== undefined) { sourceOf[t] = g; kind[t] = 'gold'; }
    else if (f !== undefined) { sourceOf[t] = f; kind[t] = 'special'; }
    else if (tRow.has(t) && pivots.length > 0) { toAlign.push(t); continue; }
    else kind[t] = 'fallback';
    counts[kind[t]]++;
  }
  if (toAlign.length > 0) {
    const P = pivots.length;
    const tUnit = normalized(target), sUnit = normalized(source);
    const tRel = relative(tUnit, target.tokenIds.length, d, pivots.map((t) => tRow.get(t)!));
    const sRel = relative(sUnit, source.tokenIds.length, d, pivots.map((t) => sRow.get(gold.get(t)!)!));
    if (o.similarity === 'cosine') { normalizeRows(tRel, P); normalizeRows(sRel, P); }
    const skip = o.skipSource ?? new Set<number>();
    const candidates: number[] = [];
    source.tokenIds.forEach((id, r) => { if (!skip.has(id)) candidates.push(r); });
    for (const t of toAlign) {
      const a = tRow.get(t)! * P;
      let best = -1, bestSim = -Infinity;
      for (const r of candidates) {
        const b = r * P;
        let s = 0;
        for (let k = 0; k < P; k++) s += tRel[a + k] * sRel[b + k];
        if (s > bestSim) { bestSim = s; best = r; }
      }
      if (best < 0) { kind[t] = 'fallback'; counts.fallback++; continue; }
      sourceOf[t] = source.tokenIds[best];
      similarity[t] = bestSim;
      kind[t] = 'aligned';
      counts.aligned++;
    }
  }
  return { sourceOf, kind, similarity, pivots, counts };
}
