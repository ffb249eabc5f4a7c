// GloVe (Pennington et al., 2014) on token ids, as TokAlign trains it on one corpus tokenized by the
// source and by the target tokenizer: a symmetric window with 1/distance weighting, a vocabulary cut
// at a minimum count, one seeded shuffle of the co-occurrence records and AdaGrad on
// J = sum f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2 / 2, f(x) = min(1, (x / x_max)^alpha);
// the vectors are w + w~ (the reference C tool's `-model 2`). Single-threaded, so a seed gives the
// same vectors on every machine.
//
// Memory: counting goes through a fixed-size open-addressing table; when it is 70% full its entries
// are sorted and spilled to a temporary file, and the sorted runs are merged (duplicates summed) at
// the end, so counting needs the table plus one read buffer per run. The merged records (12 bytes
// each) and the parameters (4 * 2V(d+1) * 4 bytes) are held in memory for training.
import { openSync, readSync, closeSync, writeSync, promises as fsp, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HackError, opt } from '../io/errors.ts';
import { fileIdentity, hashOf } from '../io/identity.ts';
import { permutation, seededRandom } from '../io/seeded-random.ts';
import { textLines } from '../io/text.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { registerTemp, releaseTemp } from '../io/output.ts';
import { encodeBatch, type LoadedTokenizer } from '../tokenizer/load.ts';
import { tokenizerFingerprint } from '../tokenizer/fingerprint.ts';

export interface GloveSettings {
  /** Context tokens on each side. */
  window: number;
  /** Vector size. */
  dim: number;
  /** Passes over the co-occurrence records. */
  iterations: number;
  /** f(x) saturates at x_max. */
  xMax: number;
  /** f(x) = (x / x_max)^alpha below x_max. */
  alpha: number;
  /** Tokens seen fewer times get no vector (they are skipped in the stream, as GloVe's cooccur does). */
  minCount: number;
  /** AdaGrad's initial learning rate. */
  eta: number;
  seed: number;
}

/** TokAlign's settings (script/train_glove.sh) and GloVe's defaults for the rest. */
export const TOKALIGN_GLOVE: GloveSettings = { window: 15, dim: 300, iterations: 15, xMax: 10, alpha: 0.75, minCount: 5, eta: 0.05, seed: 0 };

// ---------------------------------------------------------------- co-occurrence counting

/** Co-occurrence records over a dense vocabulary 0..V-1 (both directions stored). */
export interface Cooccurrences {
  vocabSize: number;
  rows: Int32Array;
  cols: Int32Array;
  values: Float64Array;
  /** Records before any spill merge; runs spilled to disk (for tests and the note). */
  spills: number;
}

const RECORD = 16; // int32 row, int32 col, float64 value

/** A sorted run of records on disk, read back in blocks. */
class RunReader {
  private fd: number;
  private buf = Buffer.alloc(1 << 20);
  private len = 0;
  private pos = 0;
  row = 0; col = 0; value = 0; done = false;
  constructor(readonly file: string) { this.fd = openSync(file, 'r'); this.next(); }
  next(): void {
    if (this.pos + RECORD > this.len) {
      const keep = this.len - this.pos;
      this.buf.copy(this.buf, 0, this.pos, this.len);
      this.len = keep + readSync(this.fd, this.buf, keep, this.buf.length - keep, null);
      this.pos = 0;
      if (this.len < RECORD) { this.done = true; closeSync(this.fd); return; }
    }
    this.row = this.buf.readInt32LE(this.pos);
    this.col = this.buf.readInt32LE(this.pos + 4);
    this.value = this.buf.readDoubleLE(this.pos + 8);
    this.pos += RECORD;
  }
}

/** Grows typed arrays as records are appended. */
class RecordList {
  rows = new Int32Array(1024); cols = new Int32Array(1024); values = new Float64Array(1024); n = 0;
  push(r: number, c: number, v: number): void {
    if (this.n === this.rows.length) {
      const m = this.rows.length * 2;
      const nr = new Int32Array(m); nr.set(this.rows); this.rows = nr;
      const nc = new Int32Array(m); nc.set(this.cols); this.cols = nc;
      const nv = new Float64Array(m); nv.set(this.values); this.values = nv;
    }
    this.rows[this.n] = r; this.cols[this.n] = c; this.values[this.n] = v; this.n++;
  }
}

export interface CounterOptions {
  /** Table slots (a power of two; default 2^22 = 64 MiB). */
  tableSlots?: number;
  /** Where spilled runs go (default: the OS temp directory). */
  spillDir?: string;
}

/**
 * Symmetric-window co-occurrence counts: for tokens at distance d <= window in one sequence,
 * X[a][b] and X[b][a] each gain 1/d.
 */
export class CooccurrenceCounter {
  private readonly mask: number;
  private keyA: Int32Array;
  private keyB: Int32Array;
  private vals: Float64Array;
  private used = 0;
  private readonly limit: number;
  private runs: string[] = [];
  private readonly spillDir: string;

  constructor(readonly vocabSize: number, readonly window: number, o: CounterOptions = {}) {
    const slots = o.tableSlots ?? 1 << 22;
    if ((slots & (slots - 1)) !== 0 || slots < 16) throw new HackError('BAD_OPTION', `table slots must be a power of two >= 16, got ${slots}`);
    this.mask = slots - 1;
    this.keyA = new Int32Array(slots).fill(-1);
    this.keyB = new Int32Array(slots);
    this.vals = new Float64Array(slots);
    this.limit = Math.floor(slots * 0.7);
    this.spillDir = o.spillDir ?? os.tmpdir();
  }

  private add(a: number, b: number, v: number): void {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x632be5ab, 0x85ebca77)) >>> 0;
    h = (h ^ (h >>> 15)) & this.mask;
    for (;;) {
      const ka = this.keyA[h];
      if (ka === -1) {
        this.keyA[h] = a; this.keyB[h] = b; this.vals[h] = v;
        if (++this.used >= this.limit) this.spill();
        return;
      }
      if (ka === a && this.keyB[h] === b) { this.vals[h] += v; return; }
      h = (h + 1) & this.mask;
    }
  }

  /** One sequence of dense ids (a line: windows never cross lines). */
  addSequence(ids: ArrayLike<number>): void {
    const w = this.window;
    for (let i = 0; i < ids.length; i++) {
      const a = ids[i];
      for (let j = Math.max(0, i - w); j < i; j++) {
        const v = 1 / (i - j);
        this.add(a, ids[j], v);
        this.add(ids[j], a, v);
      }
    }
  }

  /** The table's entries sorted by (row, col). */
  private sortedEntries(): RecordList {
    const idx: number[] = [];
    for (let s = 0; s <= this.mask; s++) if (this.keyA[s] !== -1) idx.push(s);
    const ka = this.keyA, kb = this.keyB;
    idx.sort((x, y) => ka[x] - ka[y] || kb[x] - kb[y]);
    const out = new RecordList();
    for (const s of idx) out.push(ka[s], kb[s], this.vals[s]);
    return out;
  }

  private clear(): void { this.keyA.fill(-1); this.used = 0; }

  private spill(): void {
    const list = this.sortedEntries();
    const file = path.join(this.spillDir, `.hack-tokenizer-cooccur-${process.pid}-${this.runs.length}-${Math.random().toString(36).slice(2, 8)}.bin`);
    registerTemp(file);
    const fd = openSync(file, 'w');
    try {
      const block = Buffer.alloc(RECORD * 65536);
      for (let i = 0; i < list.n; i += 65536) {
        const m = Math.min(65536, list.n - i);
        for (let k = 0; k < m; k++) {
          block.writeInt32LE(list.rows[i + k], k * RECORD);
          block.writeInt32LE(list.cols[i + k], k * RECORD + 4);
          block.writeDoubleLE(list.values[i + k], k * RECORD + 8);
        }
        writeSync(fd, block, 0, m * RECORD);
      }
    } finally { closeSync(fd); }
    this.runs.push(file);
    this.clear();
  }

  /** Every record, sorted by (row, col), spilled runs merged with duplicates summed. */
  async finish(): Promise<Cooccurrences> {
    let list: RecordList;
    const spills = this.runs.length;
    if (this.runs.length === 0) list = this.sortedEntries();
    else {
      if (this.used > 0) this.spill();
      list = new RecordList();
      const readers = this.runs.map((f) => new RunReader(f));
      try {
        // a k-way merge by linear scan: runs are few (each holds 70% of the table)
        for (;;) {
          let best = -1;
          for (let k = 0; k < readers.length; k++) {
            const r = readers[k];
            if (r.done) continue;
            if (best < 0 || r.row < readers[best].row || (r.row === readers[best].row && r.col < readers[best].col)) best = k;
          }
          if (best < 0) break;
          const row = readers[best].row, col = readers[best].col;
          let v = 0;
          for (const r of readers) while (!r.done && r.row === row && r.col === col) { v += r.value; r.next(); }
          list.push(row, col, v);
        }
      } finally {
        for (const f of this.runs) { await fsp.rm(f, { force: true }); releaseTemp(f); }
        this.runs = [];
      }
    }
    this.keyA = new Int32Array(0); this.keyB = new Int32Array(0); this.vals = new Float64Array(0);
    return { vocabSize: this.vocabSize, rows: list.rows.slice(0, list.n), cols: list.cols.slice(0, list.n), values: list.values.slice(0, list.n), spills };
  }
}

// ---------------------------------------------------------------- training

/** Parameters: rows 0..V-1 are w, rows V..2V-1 are w~; biases alike; AdaGrad's squared-gradient sums. */
export interface GloveParams {
  vocabSize: number;
  dim: number;
  w: Float32Array;
  b: Float32Array;
  gw: Float32Array;
  gb: Float32Array;
}

/** GloVe's initialization: uniform in [-0.5, 0.5) / dim, biases too; squared-gradient sums 1. */
export function initGloveParams(vocabSize: number, dim: number, seed: number): GloveParams {
  const rnd = seededRandom(seed);
  const w = new Float32Array(2 * vocabSize * dim);
  for (let i = 0; i < w.length; i++) w[i] = (rnd() - 0.5) / dim;
  const b = new Float32Array(2 * vocabSize);
  for (let i = 0; i < b.length; i++) b[i] = (rnd() - 0.5) / dim;
  return { vocabSize, dim, w, b, gw: new Float32Array(w.length).fill(1), gb: new Float32Array(b.length).fill(1) };
}

/** f(x) = min(1, (x / x_max)^alpha). */
export const gloveWeight = (x: number, xMax: number, alpha: number) => (x >= xMax ? 1 : Math.pow(x / xMax, alpha));

/** The loss of one record: f(x) (w_i . w~_j + b_i + b~_j - log x)^2 / 2. */
export function gloveRecordLoss(p: GloveParams, i: number, j: number, x: number, s: Pick<GloveSettings, 'xMax' | 'alpha'>): number {
  const d = p.dim, l1 = i * d, l2 = (j + p.vocabSize) * d;
  let dot = 0;
  for (let k = 0; k < d; k++) dot += p.w[l1 + k] * p.w[l2 + k];
  const diff = dot + p.b[i] + p.b[j + p.vocabSize] - Math.log(x);
  return 0.5 * gloveWeight(x, s.xMax, s.alpha) * diff * diff;
}

/** GloVe's per-coordinate gradient clip (glove.c's `-grad-clip`, default 100). */
export const GLOVE_GRAD_CLIP = 100;

/**
 * One AdaGrad step on one record, exactly as stanfordnlp/GloVe's glove.c does it (measured against it: the plain
 * textbook form eta * g / sqrt(sum g^2) trained to twice the reference's loss in 15 passes). Word vectors: u =
 * eta * clip(g, +-100); w -= u / sqrt(G); G += u^2, so the squared sums hold eta-scaled steps and the
 * effective rate stays high. Biases: b -= g / sqrt(G_b); G_b += g^2 (no eta, no clip). Returns the loss before the step.
 */
export function gloveStep(p: GloveParams, i: number, j: number, x: number, s: Pick<GloveSettings, 'xMax' | 'alpha' | 'eta'>): number {
  const d = p.dim, w = p.w, gw = p.gw, l1 = i * d, l2 = (j + p.vocabSize) * d, bj = j + p.vocabSize;
  let dot = 0;
  for (let k = 0; k < d; k++) dot += w[l1 + k] * w[l2 + k];
  const diff = dot + p.b[i] + p.b[bj] - Math.log(x);
  const fx = gloveWeight(x, s.xMax, s.alpha);
  const loss = 0.5 * fx * diff * diff;
  const g = fx * diff; // dJ/d(dot) = dJ/db_i = dJ/db~_j
  if (!Number.isFinite(g)) return loss; // glove.c skips such a record
  const eta = s.eta, clip = GLOVE_GRAD_CLIP;
  for (let k = 0; k < d; k++) {
    let g1 = g * w[l2 + k]; // dJ/dw_i[k]
    let g2 = g * w[l1 + k]; // dJ/dw~_j[k]
    g1 = (g1 > clip ? clip : g1 < -clip ? -clip : g1) * eta;
    g2 = (g2 > clip ? clip : g2 < -clip ? -clip : g2) * eta;
    w[l1 + k] -= g1 / Math.sqrt(gw[l1 + k]);
    w[l2 + k] -= g2 / Math.sqrt(gw[l2 + k]);
    gw[l1 + k] += g1 * g1;
    gw[l2 + k] += g2 * g2;
  }
  p.b[i] -= g / Math.sqrt(p.gb[i]);
  p.b[bj] -= g / Math.sqrt(p.gb[bj]);
  p.gb[i] += g * g;
  p.gb[bj] += g * g;
  return loss;
}

/** A seeded permutation of the records (GloVe's shuffle, done once). */
export function shuffleRecords(co: Cooccurrences, seed: number): Cooccurrences {
  const n = co.rows.length;
  const perm = permutation(n, seededRandom(seed ^ 0x5bd1e995));
  const rows = new Int32Array(n), cols = new Int32Array(n), values = new Float64Array(n);
  for (let i = 0; i < n; i++) { rows[i] = co.rows[perm[i]]; cols[i] = co.cols[perm[i]]; values[i] = co.values[perm[i]]; }
  return { ...co, rows, cols, values };
}

export interface TrainProgress { iteration: number; iterations: number; loss: number; seconds: number }

/** Train on (shuffled) records; returns the mean loss of each pass. */
export function trainGlove(co: Cooccurrences, s: GloveSettings, onIteration?: (p: TrainProgress) => void): { params: GloveParams; losses: number[]; seconds: number } {
  const p = initGloveParams(co.vocabSize, s.dim, s.seed);
  const shuffled = shuffleRecords(co, s.seed);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let it = 0; it < s.iterations; it++) {
    let total = 0;
    for (let r = 0; r < shuffled.rows.length; r++) total += gloveStep(p, shuffled.rows[r], shuffled.cols[r], shuffled.values[r], s);
    const loss = total / Math.max(1, shuffled.rows.length);
    losses.push(loss);
    onIteration?.({ iteration: it + 1, iterations: s.iterations, loss, seconds: (performance.now() - t0) / 1000 });
  }
  return { params: p, losses, seconds: (performance.now() - t0) / 1000 };
}

/** w + w~ for each vocabulary index, [V, dim]. */
export function gloveVectors(p: GloveParams): Float32Array {
  const d = p.dim, V = p.vocabSize, out = new Float32Array(V * d);
  for (let i = 0; i < V * d; i++) out[i] = p.w[i] + p.w[V * d + i];
  return out;
}

// ---------------------------------------------------------------- on a corpus, cached

/** Vectors of the tokens that passed the minimum count. */
export interface GloveEmbedding {
  /** Token id of each vector. */
  tokenIds: Int32Array;
  dim: number;
  /** [tokenIds.length, dim]. */
  vectors: Float32Array;
  /** What the run saw and cost (kept in the cache's side file). */
  stats: GloveStats;
}

export interface GloveStats {
  corpusTokens: number;
  vocabSize: number;
  records: number;
  spills: number;
  countSeconds: number;
  trainSeconds: number;
  losses: number[];
  /** Training throughput: corpus tokens x iterations / training seconds. */
  tokensPerSecond: number;
  /**
   * Record updates x iterations x 16 x dim: per dimension a dot-product term (2), two gradients (2),
   * two AdaGrad steps (2 x 3, with a square root counted as one) and two squared sums (2 x 2).
   */
  trainFlops: number;
  cached?: boolean;
}

export interface GloveCorpusOptions {
  settings?: Partial<GloveSettings>;
  /** Cache directory (default: no cache). */
  cacheDir?: string;
  /** Token ids never given a vector (special tokens). */
  exclude?: ReadonlySet<number>;
  tableSlots?: number;
  allowInvalidUtf8?: boolean;
  onProgress?: (stage: 'tokenize' | 'count' | 'train', done: number, total: number, detail?: string) => void;
}

const BATCH_LINES = 1000;

/** The cache key of a GloVe run: the corpus files' identities, the tokenizer's fingerprint, the settings. */
export async function gloveCacheKey(tok: LoadedTokenizer, files: string[], s: GloveSettings, exclude: ReadonlySet<number>): Promise<string> {
  const corpus = await Promise.all(files.map(async (f) => { const { path: _p, ...rest } = await fileIdentity(f); return rest; }));
  return hashOf({ kind: 'glove-v1', corpus, tokenizer: tokenizerFingerprint(tok.json), settings: s, exclude: [...exclude].sort((a, b) => a - b) });
}

function checkSettings(s: GloveSettings): void {
  const pos = (k: keyof GloveSettings, int: boolean) => {
    const v = s[k];
    if (!(Number.isFinite(v) && v > 0 && (!int || Number.isInteger(v)))) throw new HackError('BAD_OPTION', `expected ${int ? 'an integer' : 'a number'} > 0, got ${v}`, { option: `glove${k[0].toUpperCase()}${k.slice(1)}` });
  };
  pos('window', true); pos('dim', true); pos('iterations', true); pos('xMax', false); pos('alpha', false); pos('minCount', true); pos('eta', false);
}

/**
 * GloVe vectors of `tok`'s tokens over the corpus files (each line a sequence). The token stream is
 * tokenized once into a temporary file (4 bytes a token), counted, filtered by the minimum count and
 * windowed from that file.
 */
export async function gloveOnCorpus(tok: LoadedTokenizer, files: string[], o: GloveCorpusOptions = {}): Promise<GloveEmbedding> {
  const s: GloveSettings = { ...TOKALIGN_GLOVE, ...(o.settings ?? {}) };
  checkSettings(s);
  const exclude = o.exclude ?? tok.specialIds;
  let cacheFile: string | null = null;
  if (o.cacheDir) {
    cacheFile = path.join(o.cacheDir, `glove-${await gloveCacheKey(tok, files, s, exclude)}`);
    if (existsSync(cacheFile + '.json') && existsSync(cacheFile + '.bin')) {
      const meta = JSON.parse(await fsp.readFile(cacheFile + '.json', 'utf8')) as { dim: number; count: number; stats: GloveStats };
      const bin = await fsp.readFile(cacheFile + '.bin');
      const ab = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
      const tokenIds = new Int32Array(ab, 0, meta.count);
      const vectors = new Float32Array(ab, meta.count * 4, meta.count * meta.dim);
      return { tokenIds, dim: meta.dim, vectors, stats: { ...meta.stats, cached: true } };
    }
  }

  // pass 1: tokenize to a temporary stream file (-1 between lines), count tokens
  const t0 = performance.now();
  const streamFile = path.join(os.tmpdir(), `.hack-tokenizer-glove-${process.pid}-${Math.random().toString(36).slice(2, 8)}.ids`);
  registerTemp(streamFile);
  try {
    const counts = new Float64Array(Math.max(tok.size, 1));
    let corpusTokens = 0, sequences = 0;
    const fd = openSync(streamFile, 'w');
    try {
      let batch: string[] = [];
      const flush = async () => {
        const encs = await encodeBatch(tok, batch);
        let n = 0;
        for (const e of encs) n += e.length + 1;
        const buf = new Int32Array(n);
        let k = 0;
        for (const e of encs) {
          for (const id of e) { buf[k++] = id; if (id < counts.length) counts[id]++; }
          buf[k++] = -1;
          corpusTokens += e.length;
          sequences++;
        }
        writeSync(fd, new Uint8Array(buf.buffer, 0, n * 4));
        batch = [];
      };
      for await (const line of textLines(files, { option: 'corpus', allowInvalidUtf8: o.allowInvalidUtf8, onProgress: (p) => o.onProgress?.('tokenize', p.bytesRead, p.totalBytes) })) {
        if (line.length === 0) continue;
        batch.push(line);
        if (batch.length >= BATCH_LINES) await flush();
      }
      if (batch.length) await flush();
    } finally { closeSync(fd); }

    // the vocabulary: tokens seen at least minCount times, specials excluded, dense ids by token id
    const dense = new Int32Array(counts.length).fill(-1);
    const ids: number[] = [];
    for (let id = 0; id < counts.length; id++) if (counts[id] >= s.minCount && !exclude.has(id)) { dense[id] = ids.length; ids.push(id); }
    if (ids.length < 2) {
      throw new HackError('CORPUS_TOO_SMALL', `only ${ids.length} token(s) of ${tok.source} occur at least ${s.minCount} times in ${corpusTokens} corpus tokens; give a larger ${opt('corpus')} or a lower ${opt('gloveMinCount')}`, { option: 'corpus' });
    }

    // pass 2: windows over the filtered stream
    const counter = new CooccurrenceCounter(ids.length, s.window, { tableSlots: o.tableSlots });
    const rfd = openSync(streamFile, 'r');
    try {
      const block = Buffer.alloc(4 << 20);
      let seq: number[] = [];
      let read = 0;
      for (;;) {
        const n = readSync(rfd, block, 0, block.length, null);
        if (n === 0) break;
        const view = new Int32Array(block.buffer, block.byteOffset, n >> 2);
        for (let i = 0; i < view.length; i++) {
          const id = view[i];
          if (id === -1) { if (seq.length > 1) counter.addSequence(seq); seq = []; continue; }
          const d = dense[id];
          if (d >= 0) seq.push(d); // out-of-vocabulary tokens are dropped, as GloVe's cooccur does
        }
        read += view.length;
        o.onProgress?.('count', read, corpusTokens + sequences); // the stream holds a separator per line
      }
      if (seq.length > 1) counter.addSequence(seq);
    } finally { closeSync(rfd); }
    const co = await counter.finish();
    const countSeconds = (performance.now() - t0) / 1000;

    const { params, losses, seconds } = trainGlove(co, s, (p) => o.onProgress?.('train', p.iteration, p.iterations, `loss ${p.loss.toFixed(4)}`));
    const vectors = gloveVectors(params);
    const stats: GloveStats = {
      corpusTokens, vocabSize: ids.length, records: co.rows.length, spills: co.spills, countSeconds, trainSeconds: seconds, losses,
      tokensPerSecond: (corpusTokens * s.iterations) / Math.max(seconds, 1e-9),
      trainFlops: co.rows.length * s.iterations * 16 * s.dim,
    };
    const tokenIds = Int32Array.from(ids);
    if (cacheFile) {
      const bin = new Uint8Array(tokenIds.byteLength + vectors.byteLength);
      bin.set(new Uint8Array(tokenIds.buffer), 0);
      bin.set(new Uint8Array(vectors.buffer), tokenIds.byteLength);
      await writeFileAtomic(cacheFile + '.bin', bin);
      await writeFileAtomic(cacheFile + '.json', JSON.stringify({ dim: s.dim, count: ids.length, settings: s, tokenizer: tokenizerFingerprint(tok.json), stats }, null, 2) + '\n');
    }
    return { tokenIds, dim: s.dim, vectors, stats };
  } finally {
    await fsp.rm(streamFile, { force: true });
    releaseTemp(streamFile);
  }
}
