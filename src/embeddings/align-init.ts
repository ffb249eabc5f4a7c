// The `align` init method's source (Yamaguchi et al., vocabulary expansion for low-resource
// languages): each new token's row is the average, over its occurrences in a corpus tokenized with
// the EXTENDED tokenizer, of the mean row of the ORIGINAL tokenizer's tokens that overlap that
// occurrence in the original tokenization of the same line. So each distinct split of the token's
// text is weighted by how often it occurs, and a split that crosses the token's boundary (the
// original tokenizer merged a neighbouring character in) counts with the whole overlapping tokens.
//
// Spans are compared in BYTES of the line: the tokenizers binding gives offsets in characters (code
// points), and a byte-level BPE token may hold part of a multi-byte character ("ç" is two bytes,
// often two tokens, both reported with the character's span). Each token's byte span is rebuilt from
// its character span and its byte length (token-pieces.ts): a token that starts inside the character
// where the previous token ended continues after the previous token's bytes, and no span reaches past
// its character span's end (trimmed offsets, SentencePiece's added prefix space).
import type { TokenizerJson } from '../io/model-dir.ts';
import { corpusLines } from '../tokenizer/corpus.ts';
import { tokenizerFromJson, type LoadedTokenizer } from '../tokenizer/load.ts';
import { CHAR_TO_BYTE } from '../tokenizer/byte-level.ts';
import { pieceSchemeOf, tokenBytes } from '../tokenizer/token-pieces.ts';
import type { Combination } from './init-methods.ts';

/** Corpus bytes `align` reads when no limit is given (whole lines). */
export const ALIGN_DEFAULT_MAX_BYTES = 10_000_000;

/** One line's tokens with their byte spans [start[i], end[i]). */
export interface ByteSpans { ids: ArrayLike<number>; start: Int32Array; end: Int32Array }

/** Byte offset of each code point of `text` (length: code points + 1). */
export function codePointBytes(text: string): Int32Array {
  const cps = Array.from(text);
  const out = new Int32Array(cps.length + 1);
  for (let k = 0; k < cps.length; k++) {
    const c = cps[k].codePointAt(0)!;
    out[k + 1] = out[k] + (c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4);
  }
  return out;
}

/**
 * Byte spans of one encoding from its character offsets and each token's byte length (see the file
 * comment): start = the character's byte offset, or the previous token's end when this token starts
 * inside the previous token's character span; end = start + byte length, capped at the span's last character.
 */
export function byteSpans(ids: ArrayLike<number>, offsets: ArrayLike<readonly [number, number]>, byteLength: (i: number) => number, cpBytes: Int32Array): ByteSpans {
  const n = ids.length;
  const start = new Int32Array(n);
  const end = new Int32Array(n);
  const at = (k: number) => cpBytes[Math.min(Math.max(k, 0), cpBytes.length - 1)];
  for (let i = 0; i < n; i++) {
    const [a, b] = offsets[i];
    let s = at(a);
    if (i > 0 && a < offsets[i - 1][1] && b > offsets[i - 1][0]) s = Math.max(s, end[i - 1]);
    const cap = at(b);
    start[i] = Math.min(s, cap);
    end[i] = Math.max(start[i], Math.min(s + byteLength(i), cap));
  }
  return { ids, start, end };
}

/** Per new token: occurrences seen, and the accumulated weight of each original id (Σ over occurrences of 1 / split length). */
export interface AlignAccumulator {
  occurrences: Map<number, number>;
  weights: Map<number, Map<number, number>>;
}

export const emptyAlignAccumulator = (): AlignAccumulator => ({ occurrences: new Map(), weights: new Map() });

/**
 * Add one line: every extended token with id >= firstNew, and the original tokens overlapping its
 * byte span (special ids never). An occurrence with no overlapping original token (an empty span) is skipped.
 */
export function alignLine(ext: ByteSpans, orig: ByteSpans, firstNew: number, specialIds: ReadonlySet<number>, acc: AlignAccumulator): void {
  let j0 = 0;
  for (let i = 0; i < ext.ids.length; i++) {
    const id = ext.ids[i];
    if (id < firstNew) continue;
    const s = ext.start[i], e = ext.end[i];
    if (e <= s) continue;
    // original spans are in text order: skip those that end before this occurrence starts
    while (j0 < orig.ids.length && orig.end[j0] <= s) j0++;
    const split: number[] = [];
    for (let j = j0; j < orig.ids.length && orig.start[j] < e; j++) {
      if (orig.end[j] > s && orig.end[j] > orig.start[j] && !specialIds.has(orig.ids[j])) split.push(orig.ids[j]);
    }
    if (split.length === 0) continue;
    acc.occurrences.set(id, (acc.occurrences.get(id) ?? 0) + 1);
    let w = acc.weights.get(id);
    if (!w) { w = new Map(); acc.weights.set(id, w); }
    for (const o of split) w.set(o, (w.get(o) ?? 0) + 1 / split.length);
  }
}

/** The accumulated occurrences as combinations (weights sum to 1; ids ascending). */
export function alignCombinations(acc: AlignAccumulator): Map<number, Combination> {
  const out = new Map<number, Combination>();
  for (const [id, w] of acc.weights) {
    const n = acc.occurrences.get(id)!;
    const ids = [...w.keys()].sort((a, b) => a - b);
    out.set(id, { ids, weights: ids.map((o) => w.get(o)! / n) });
  }
  return out;
}

/** The byte length of each token of a tokenizer, by its token string (cached per string). */
function byteLengthOf(tok: LoadedTokenizer): (token: string) => number {
  const scheme = pieceSchemeOf(tok.json);
  const added = new Set((tok.json.added_tokens ?? []).map((t) => t.content));
  const memo = new Map<string, number>();
  return (t) => {
    let n = memo.get(t);
    if (n === undefined) { n = tokenBytes(t, scheme, CHAR_TO_BYTE, added).length; memo.set(t, n); }
    return n;
  };
}

export interface AlignRequest {
  corpus: string[];
  original: TokenizerJson;
  extended: TokenizerJson;
  /** Ids from here on are new tokens. */
  firstNew: number;
  /** Read at most this many bytes (whole lines; default ALIGN_DEFAULT_MAX_BYTES). */
  maxBytes?: number;
  onPhase?: (msg: string) => void;
}

export interface AlignReport {
  /** Corpus bytes and non-blank lines read. */
  bytes: number;
  lines: number;
  /** New-token occurrences aligned, and distinct new tokens seen at least once. */
  occurrences: number;
  newSeen: number;
}

/** Stream the corpus (bounded), tokenize each batch of lines with both tokenizers, and align. */
export async function corpusAlignment(req: AlignRequest): Promise<{ combos: Map<number, Combination>; report: AlignReport }> {
  const maxBytes = req.maxBytes ?? ALIGN_DEFAULT_MAX_BYTES;
  const orig = tokenizerFromJson(req.original, 'original tokenizer');
  const ext = tokenizerFromJson(req.extended, 'extended tokenizer');
  const origLen = byteLengthOf(orig), extLen = byteLengthOf(ext);
  const specials = new Set([...orig.specialIds, ...ext.specialIds]);
  const acc = emptyAlignAccumulator();
  let bytes = 0, lines = 0;
  req.onPhase?.(`align: tokenizing the first ${maxBytes} bytes of the corpus with both tokenizers`);
  let batch: string[] = [];
  const flush = async () => {
    const [eo, ee] = await Promise.all([orig.native.encodeBatch(batch, { addSpecialTokens: false }), ext.native.encodeBatch(batch, { addSpecialTokens: false })]);
    batch.forEach((line, k) => {
      const cp = codePointBytes(line);
      const spans = (enc: typeof eo[number], len: (t: string) => number) => {
        const toks = enc.getTokens();
        return byteSpans(enc.getIds(), enc.getOffsets() as Array<[number, number]>, (i) => len(toks[i]), cp);
      };
      alignLine(spans(ee[k], extLen), spans(eo[k], origLen), req.firstNew, specials, acc);
    });
    batch = [];
  };
  for await (const line of corpusLines(req.corpus)) {
    const b = Buffer.byteLength(line, 'utf8') + 1;
    if (bytes + b > maxBytes && bytes > 0) break;
    bytes += b;
    if (line.trim().length === 0) continue;
    lines++;
    batch.push(line);
    if (batch.length >= 1000) await flush();
  }
  if (batch.length) await flush();
  let occurrences = 0;
  for (const n of acc.occurrences.values()) occurrences += n;
  return { combos: alignCombinations(acc), report: { bytes, lines, occurrences, newSeen: acc.occurrences.size } };
}
