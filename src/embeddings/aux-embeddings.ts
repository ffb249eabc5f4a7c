// Auxiliary token embeddings trained here, on the user's corpus tokenized with the EXTENDED
// tokenizer (FOCUS / WECHSEL / OMP compare new and old tokens in this space). No download: users may
// be offline, and published vectors do not match a new tokenizer. The trainer is word2vec/fastText's
// CBOW with negative sampling over token ids, in typed arrays, single-threaded and deterministic for
// a seed. With `minn`..`maxn` > 0, fastText's character n-grams of the token strings are added (hashed
// into `buckets` rows): a token's vector is the mean of its own row and its n-gram rows, and a token
// seen fewer than minCount times still gets the mean of its n-gram rows. Without n-grams (minn = 0)
// such a token has no vector; FOCUS-style methods fall back for it (counted).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { HackError } from '../io/errors.ts';
import { seededRandom } from '../io/seeded-random.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { fileIdentity, hashOf } from '../io/identity.ts';
import type { TokenizerJson } from '../io/model-dir.ts';
import { corpusLines } from '../tokenizer/corpus.ts';
import { encodeBatch, tokenizerFromJson } from '../tokenizer/load.ts';
import { tokenizerFingerprint } from '../tokenizer/fingerprint.ts';

export interface AuxSettings {
  dim: number;
  /** Largest context radius; each position draws its radius in [1, window] (word2vec's reduced window). */
  window: number;
  negatives: number;
  epochs: number;
  /** Tokens seen fewer times get no vector. 0 = automatic: 5 for >= 5M tokens, 3 for >= 500k, else 1. */
  minCount: number;
  /** Initial learning rate, decayed linearly to ~0 (fastText's CBOW default 0.05). */
  lr: number;
  /** Subsampling threshold of frequent tokens (word2vec's `sample`); 0 disables it. */
  sample: number;
  seed: number;
  /** Character n-gram lengths (fastText's minn / maxn, on the token strings with < > around); minn 0 = none. */
  minn: number;
  maxn: number;
  /** Hash buckets of the n-gram rows. */
  buckets: number;
}

export const DEFAULT_AUX_SETTINGS: AuxSettings = { dim: 100, window: 5, negatives: 10, epochs: 3, minCount: 0, lr: 0.05, sample: 1e-4, seed: 0, minn: 0, maxn: 0, buckets: 200_000 };
/** fastText / deepfocus's character n-grams (3-6). */
export const NGRAM_SETTINGS: Partial<AuxSettings> = { minn: 3, maxn: 6 };

export function autoMinCount(tokens: number): number {
  return tokens >= 5_000_000 ? 5 : tokens >= 500_000 ? 3 : 1;
}

/** Token sequences (one per corpus line) as one flat array with line starts. */
export interface TokenCorpus {
  ids: Int32Array;
  /** starts[i] .. starts[i+1] is line i (length lines + 1). */
  starts: Int32Array;
  vocabSize: number;
  /** Each id's token string (vocab form), for character n-grams. */
  strings?: string[];
}

/** fastText's FNV-1a hash of an n-gram (over UTF-16 code units here). */
function fnv1a(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  return h >>> 0;
}

/** Rows of a token: its own (id) and those of its character n-grams (vocabSize + hash mod buckets). */
export function subwordRows(id: number, str: string | undefined, vocabSize: number, s: Pick<AuxSettings, 'minn' | 'maxn' | 'buckets'>): Int32Array {
  const rows = [id];
  if (s.minn > 0 && str) {
    const w = '<' + str + '>';
    for (let i = 0; i < w.length; i++) {
      for (let n = s.minn; n <= s.maxn && i + n <= w.length; n++) {
        if (n === w.length) continue; // the whole word is the token's own row
        rows.push(vocabSize + (fnv1a(w.slice(i, i + n)) % s.buckets));
      }
    }
  }
  return Int32Array.from(rows);
}

export interface AuxVectors {
  dim: number;
  vocabSize: number;
  /** vocabSize x dim input vectors (row-major); rows of tokens without a vector are zero. */
  vectors: Float32Array;
  /** Occurrences of each id in the corpus. */
  counts: Uint32Array;
  /** The minCount used (after `auto`). */
  minCount: number;
  seconds: number;
  tokens: number;
  /** With n-grams: which ids have a vector (also rare ones, from their n-grams); absent: counts >= minCount. */
  withVector?: Uint8Array;
}

export const hasVector = (a: AuxVectors, id: number): boolean => id >= 0 && id < a.vocabSize &&
  (a.withVector ? a.withVector[id] === 1 : a.counts[id] >= a.minCount && a.counts[id] > 0);

/** Token sequences from id arrays (tests, callers with their own tokenization). */
export function tokenCorpus(lines: ArrayLike<number>[], vocabSize: number): TokenCorpus {
  let n = 0;
  for (const l of lines) n += l.length;
  const ids = new Int32Array(n);
  const starts = new Int32Array(lines.length + 1);
  let k = 0;
  lines.forEach((l, i) => { starts[i] = k; for (let j = 0; j < l.length; j++) ids[k++] = l[j]; });
  starts[lines.length] = k;
  return { ids, starts, vocabSize };
}

/** The model being trained: input vectors (the result) and output vectors (negative sampling). */
export interface CbowModel {
  dim: number;
  input: Float32Array;
  output: Float32Array;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * One CBOW step: h = mean of the context's input vectors; for each target t (the center with label
 * 1, then negatives with label 0) g = lr * (label - sigmoid(h . out_t)), e += g * out_t, out_t += g * h;
 * finally every context input vector += e (word2vec's update; exact sigmoid, no table).
 * `h` and `e` are scratch arrays of length dim.
 */
export function cbowStep(m: CbowModel, context: ArrayLike<number>, nContext: number, targets: ArrayLike<number>, nTargets: number, lr: number, h: Float32Array, e: Float32Array): void {
  const dim = m.dim;
  const inp = m.input;
  const out = m.output;
  h.fill(0);
  e.fill(0);
  for (let c = 0; c < nContext; c++) {
    const o = context[c] * dim;
    for (let d = 0; d < dim; d++) h[d] += inp[o + d];
  }
  const inv = 1 / nContext;
  for (let d = 0; d < dim; d++) h[d] *= inv;
  for (let t = 0; t < nTargets; t++) {
    const o = targets[t] * dim;
    let f = 0;
    for (let d = 0; d < dim; d++) f += h[d] * out[o + d];
    const g = lr * ((t === 0 ? 1 : 0) - sigmoid(f));
    for (let d = 0; d < dim; d++) {
      e[d] += g * out[o + d];
      out[o + d] += g * h[d];
    }
  }
  for (let c = 0; c < nContext; c++) {
    const o = context[c] * dim;
    for (let d = 0; d < dim; d++) inp[o + d] += e[d];
  }
}

const NEG_TABLE = 1 << 20;

/** Train CBOW vectors over a token corpus (deterministic for settings.seed). */
export function trainAuxVectors(corpus: TokenCorpus, settings: AuxSettings, onProgress?: (done: number, total: number) => void): AuxVectors {
  const t0 = Date.now();
  const { dim, window, negatives, epochs, lr: lr0, sample } = settings;
  const V = corpus.vocabSize;
  const counts = new Uint32Array(V);
  for (let i = 0; i < corpus.ids.length; i++) {
    const id = corpus.ids[i];
    if (id >= 0 && id < V) counts[id]++;
  }
  const total = corpus.ids.length;
  const minCount = settings.minCount > 0 ? settings.minCount : autoMinCount(total);
  const keep = new Float64Array(V);
  let kept = 0;
  for (let i = 0; i < V; i++) if (counts[i] >= minCount && counts[i] > 0) kept += counts[i];
  for (let i = 0; i < V; i++) {
    if (counts[i] < minCount || counts[i] === 0) continue;
    // word2vec's keep probability: (sqrt(f / (s N)) + 1) * s N / f
    const f = counts[i];
    keep[i] = sample > 0 ? Math.min(1, (Math.sqrt(f / (sample * kept)) + 1) * (sample * kept) / f) : 1;
  }
  // unigram^0.75 table for negatives
  const table = new Int32Array(NEG_TABLE);
  let pow = 0;
  for (let i = 0; i < V; i++) if (keep[i] > 0) pow += Math.pow(counts[i], 0.75);
  const vectorsOut = new Float32Array(V * dim);
  if (pow === 0) return { dim, vocabSize: V, vectors: vectorsOut, counts, minCount, seconds: (Date.now() - t0) / 1000, tokens: total };
  {
    let i = 0;
    while (keep[i] === 0) i++;
    let cum = Math.pow(counts[i], 0.75) / pow;
    for (let a = 0; a < NEG_TABLE; a++) {
      table[a] = i;
      if ((a + 1) / NEG_TABLE > cum) {
        let j = i + 1;
        while (j < V && keep[j] === 0) j++;
        if (j < V) { i = j; cum += Math.pow(counts[i], 0.75) / pow; }
      }
    }
  }
  const random = seededRandom(settings.seed);
  const ngrams = settings.minn > 0 && corpus.strings !== undefined;
  const inRows = ngrams ? V + settings.buckets : V;
  const sub: Int32Array[] = [];
  if (ngrams) for (let i = 0; i < V; i++) sub.push(subwordRows(i, corpus.strings![i], V, settings));
  const m: CbowModel = { dim, input: new Float32Array(inRows * dim), output: new Float32Array(V * dim) };
  for (let k = 0; k < m.input.length; k++) m.input[k] = (random() - 0.5) / dim; // word2vec's init
  const h = new Float32Array(dim);
  const e = new Float32Array(dim);
  const targets = new Int32Array(negatives + 1);
  let ctx = new Int32Array(2 * window);
  let sent = new Int32Array(1024);
  const lines = corpus.starts.length - 1;
  const work = epochs * kept;
  let processed = 0;
  let lastReport = 0;
  for (let ep = 0; ep < epochs; ep++) {
    for (let line = 0; line < lines; line++) {
      const a = corpus.starts[line];
      const b = corpus.starts[line + 1];
      if (b - a > sent.length) sent = new Int32Array(2 * (b - a));
      let n = 0;
      for (let p = a; p < b; p++) {
        const id = corpus.ids[p];
        if (id < 0 || id >= V || keep[id] === 0) continue;
        processed++;
        if (keep[id] < 1 && random() >= keep[id]) continue;
        sent[n++] = id;
      }
      const lr = lr0 * Math.max(1e-4, 1 - processed / (work + 1));
      for (let p = 0; p < n; p++) {
        const r = 1 + Math.floor(random() * window);
        let nc = 0;
        for (let q = Math.max(0, p - r); q <= Math.min(n - 1, p + r); q++) {
          if (q === p) continue;
          if (!ngrams) { ctx[nc++] = sent[q]; continue; }
          // fastText: the context's rows are every context token's own row and n-gram rows
          const rows = sub[sent[q]];
          if (nc + rows.length > ctx.length) { const g = new Int32Array(2 * (nc + rows.length)); g.set(ctx.subarray(0, nc)); ctx = g; }
          ctx.set(rows, nc);
          nc += rows.length;
        }
        if (nc === 0) continue;
        const center = sent[p];
        targets[0] = center;
        let nt = 1;
        for (let k = 0; k < negatives; k++) {
          const neg = table[Math.floor(random() * NEG_TABLE)];
          if (neg !== center) targets[nt++] = neg;
        }
        cbowStep(m, ctx, nc, targets, nt, lr, h, e);
      }
      if (onProgress && processed - lastReport > 100_000) { lastReport = processed; onProgress(processed, work); }
    }
  }
  onProgress?.(work, work);
  if (!ngrams) {
    for (let i = 0; i < V; i++) if (keep[i] > 0) vectorsOut.set(m.input.subarray(i * dim, (i + 1) * dim), i * dim);
  } else {
    // fastText's word vector: the mean of the token's own row (if trained) and its n-gram rows
    const hasNgram = new Uint8Array(V);
    for (let i = 0; i < V; i++) {
      const rows = keep[i] > 0 ? sub[i] : sub[i].subarray(1);
      if (rows.length === 0) continue;
      hasNgram[i] = 1;
      for (const r of rows) for (let d = 0; d < dim; d++) vectorsOut[i * dim + d] += m.input[r * dim + d] / rows.length;
    }
    return { dim, vocabSize: V, vectors: vectorsOut, counts, minCount, seconds: (Date.now() - t0) / 1000, tokens: total, withVector: hasNgram };
  }
  return { dim, vocabSize: V, vectors: vectorsOut, counts, minCount, seconds: (Date.now() - t0) / 1000, tokens: total };
}

/** The corpus (first maxBytes UTF-8 bytes, whole lines) tokenized with `tokenizer`, special tokens never added. */
export async function tokenizeCorpus(tokenizer: TokenizerJson, files: string[], maxBytes = Infinity, onProgress?: (bytes: number) => void): Promise<TokenCorpus> {
  const tok = tokenizerFromJson(tokenizer, 'extended tokenizer');
  let ids = new Int32Array(1 << 20);
  const starts: number[] = [0];
  let n = 0;
  let bytes = 0;
  let batch: string[] = [];
  const flush = async () => {
    for (const seq of await encodeBatch(tok, batch)) {
      if (n + seq.length > ids.length) { const g = new Int32Array(Math.max(2 * ids.length, n + seq.length)); g.set(ids.subarray(0, n)); ids = g; }
      for (const id of seq) ids[n++] = id;
      starts.push(n);
    }
    batch = [];
    onProgress?.(bytes);
  };
  for await (const line of corpusLines(files)) {
    const b = Buffer.byteLength(line, 'utf8') + 1;
    if (bytes + b > maxBytes && bytes > 0) break;
    bytes += b;
    if (line.trim().length === 0) continue;
    batch.push(line);
    if (batch.length >= 2000) await flush();
  }
  if (batch.length) await flush();
  const strings: string[] = new Array(tok.size).fill('');
  const v = tokenizer.model.vocab;
  for (const [t, i] of Array.isArray(v) ? v.map(([t], i) => [t, i] as [string, number]) : Object.entries(v)) if (i < tok.size) strings[i] = t;
  for (const t of tokenizer.added_tokens ?? []) if (t.id < tok.size && !t.special) strings[t.id] = t.content;
  return { ids: ids.slice(0, n), starts: Int32Array.from(starts), vocabSize: tok.size, strings };
}

export interface AuxRequest {
  /** Corpus files (plain or .gz). */
  corpus: string[];
  /** The EXTENDED tokenizer (its ids index the vectors); replacement's target tokenizer. */
  tokenizer: TokenizerJson;
  /** What the tokenizer is, in progress messages (default: extended). */
  tokenizerName?: string;
  settings?: Partial<AuxSettings>;
  /** Use only the first maxBytes of the corpus (whole lines). */
  maxBytes?: number;
  /** Cache directory (absent: no cache). */
  cacheDir?: string;
  onPhase?: (msg: string) => void;
  onProgress?: (phase: 'tokenize' | 'train', done: number, total: number) => void;
}

export interface AuxResult extends AuxVectors {
  settings: AuxSettings;
  cached: boolean;
  cacheFile: string | null;
}

const CACHE_VERSION = 2;

/** Auxiliary vectors for a corpus and tokenizer: from the cache when the corpus, tokenizer and settings are the same. */
export async function auxEmbeddings(req: AuxRequest): Promise<AuxResult> {
  if (req.corpus.length === 0) throw new HackError('MISSING_OPTION', 'auxiliary embeddings need a corpus: give {opt:corpus} <file...>', { option: 'corpus' });
  const settings: AuxSettings = { ...DEFAULT_AUX_SETTINGS, ...req.settings };
  const identities = await Promise.all(req.corpus.map(async (f) => {
    try {
      const { path: _p, ...rest } = await fileIdentity(f);
      return rest;
    } catch (e) {
      throw new HackError('BAD_FILE', `could not read the corpus (${(e as Error).message})`, { file: f, option: 'corpus' });
    }
  }));
  const key = hashOf({ v: CACHE_VERSION, corpus: identities, tokenizer: tokenizerFingerprint(req.tokenizer), settings, maxBytes: req.maxBytes ?? null });
  const base = req.cacheDir ? path.join(req.cacheDir, `aux-${key}`) : null;
  if (base) {
    const hit = await readCache(base, settings);
    if (hit) { req.onPhase?.(`auxiliary embeddings: reusing ${base}.json`); return { ...hit, settings, cached: true, cacheFile: base + '.json' }; }
  }
  req.onPhase?.(`auxiliary embeddings: tokenizing the corpus with the ${req.tokenizerName ?? 'extended'} tokenizer${req.maxBytes ? ` (first ${req.maxBytes} bytes)` : ''}`);
  const corpus = await tokenizeCorpus(req.tokenizer, req.corpus, req.maxBytes, (b) => req.onProgress?.('tokenize', b, req.maxBytes ?? 0));
  req.onPhase?.(`auxiliary embeddings: CBOW over ${corpus.ids.length} tokens (dim ${settings.dim}, window ${settings.window}, ${settings.negatives} negatives, ${settings.epochs} epochs)`);
  const v = trainAuxVectors(corpus, settings, (d, t) => req.onProgress?.('train', d, t));
  if (base) await writeCache(base, v, settings);
  return { ...v, settings, cached: false, cacheFile: base ? base + '.json' : null };
}

async function writeCache(base: string, v: AuxVectors, settings: AuxSettings): Promise<void> {
  const bin = new Uint8Array(v.vectors.byteLength + v.counts.byteLength + (v.withVector ? v.vocabSize : 0));
  bin.set(new Uint8Array(v.vectors.buffer, v.vectors.byteOffset, v.vectors.byteLength), 0);
  bin.set(new Uint8Array(v.counts.buffer, v.counts.byteOffset, v.counts.byteLength), v.vectors.byteLength);
  if (v.withVector) bin.set(v.withVector, v.vectors.byteLength + v.counts.byteLength);
  await writeFileAtomic(base + '.bin', bin);
  // the JSON is written last: its presence means the binary is complete
  const meta = { version: CACHE_VERSION, dim: v.dim, vocabSize: v.vocabSize, minCount: v.minCount, seconds: v.seconds, tokens: v.tokens, settings, ngrams: !!v.withVector };
  await writeFileAtomic(base + '.json', JSON.stringify(meta, null, 2) + '\n');
}

async function readCache(base: string, settings: AuxSettings): Promise<AuxVectors | null> {
  let meta: { version: number; dim: number; vocabSize: number; minCount: number; seconds: number; tokens: number; settings: AuxSettings; ngrams: boolean };
  let bin: Buffer;
  try {
    meta = JSON.parse(await fsp.readFile(base + '.json', 'utf8'));
    bin = await fsp.readFile(base + '.bin');
  } catch {
    return null;
  }
  const vecBytes = meta.vocabSize * meta.dim * 4;
  if (meta.version !== CACHE_VERSION || meta.dim !== settings.dim || bin.length !== vecBytes + meta.vocabSize * (meta.ngrams ? 5 : 4)) return null;
  const buf = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length);
  return {
    dim: meta.dim, vocabSize: meta.vocabSize, vectors: new Float32Array(buf, 0, meta.vocabSize * meta.dim),
    counts: new Uint32Array(buf, vecBytes, meta.vocabSize), minCount: meta.minCount, seconds: meta.seconds, tokens: meta.tokens,
    ...(meta.ngrams ? { withVector: new Uint8Array(buf, vecBytes + meta.vocabSize * 4, meta.vocabSize) } : {}),
  };
}
