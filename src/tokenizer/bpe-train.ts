// A BPE trainer over a word-frequency table: symbols of all distinct words in typed arrays
// (doubly linked per word), pair counts updated incrementally on each merge, the words that
// hold a pair indexed by pair, and a max-heap with lazy invalidation to pick the next merge.
// The same loop learns merges from characters ("fresh") or on top of an existing tokenizer's
// segmentation ("continue").
import { PAIR_SHIFT, pairKey } from './bpe-model.ts';

export interface WordTable {
  /** Initial symbols of each distinct word (ids into `tokens`). */
  words: number[][];
  /** Occurrences of each word in the corpus. */
  counts: Float64Array;
}

export interface TrainerOptions {
  /** Token strings by id (holes allowed); grows as merges add tokens. */
  tokens: string[];
  /** Ids that never take part in a merge (byte-fallback tokens, unk, added tokens). */
  frozen?: (id: number) => boolean;
  /** Merge pairs seen fewer times than this are never learned (training stops). Default 2. */
  minFrequency?: number;
  /**
   * Continued training: a merge whose result is a string that already has an id is forbidden (it
   * would let existing merges fire after a new one, so the learned order would no longer be what
   * BPE applies). In fresh training such merges reuse the id, as the tokenizers library does.
   */
  forbidExistingResult?: boolean;
  /** Forbid merges that would consume every occurrence of a token this trainer created. */
  forbidOrphans?: boolean;
  /** Veto a merge that creates a new string; returns a reason name (counted) or null. */
  veto?: (token: string, left: number, right: number) => string | null;
}

export interface LearnedMerge {
  left: number;
  right: number;
  id: number;
  /** Pair occurrences when merged (= tokens saved by this merge on the training corpus). */
  count: number;
  /** The merge made a string that had no id before. */
  created: boolean;
}

export class BpeTrainer {
  readonly tokens: string[];
  readonly index = new Map<string, number>();
  /** Reasons merges were refused, with how many distinct candidate pairs each refused. */
  readonly refused: Record<string, number> = {};
  private readonly sym: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly wordStart: Int32Array;
  private readonly wordCount: Float64Array;
  private readonly stamp: Int32Array;
  private tokCount: Float64Array;
  private createdHere: Uint8Array;
  private readonly firstNewId: number;
  private readonly pairCount = new Map<number, number>();
  private readonly pairWords = new Map<number, number[]>();
  private readonly forbidden = new Set<number>();
  private heapCount: number[] = [];
  private heapKey: number[] = [];
  private steps = 0;
  private readonly minFrequency: number;
  private readonly opts: TrainerOptions;
  private readonly frozen: (id: number) => boolean;

  constructor(table: WordTable, opts: TrainerOptions) {
    this.opts = opts;
    this.tokens = opts.tokens;
    this.frozen = opts.frozen ?? (() => false);
    this.minFrequency = Math.max(1, opts.minFrequency ?? 2);
    for (let id = 0; id < this.tokens.length; id++) {
      const t = this.tokens[id];
      if (t !== undefined && !this.index.has(t)) this.index.set(t, id);
    }
    this.firstNewId = this.tokens.length;
    let total = 0;
    for (const w of table.words) total += w.length;
    this.sym = new Int32Array(total);
    this.next = new Int32Array(total);
    this.prev = new Int32Array(total);
    this.wordStart = new Int32Array(table.words.length);
    this.wordCount = table.counts;
    this.stamp = new Int32Array(table.words.length).fill(-1);
    this.tokCount = new Float64Array(Math.max(16, this.tokens.length * 2));
    this.createdHere = new Uint8Array(this.tokCount.length);
    let pos = 0;
    for (let w = 0; w < table.words.length; w++) {
      const word = table.words[w];
      const c = table.counts[w];
      this.wordStart[w] = pos;
      for (let i = 0; i < word.length; i++) {
        const id = word[i];
        this.sym[pos + i] = id;
        this.prev[pos + i] = i === 0 ? -1 : pos + i - 1;
        this.next[pos + i] = i === word.length - 1 ? -1 : pos + i + 1;
        this.tokCount[id] += c;
        if (i > 0) this.addPair(word[i - 1], id, c, w);
      }
      pos += word.length;
    }
    for (const [key, count] of this.pairCount) this.push(count, key);
  }

  /** Occurrences of each token in the training corpus as currently segmented. */
  tokenCount(id: number): number {
    return id < this.tokCount.length ? this.tokCount[id] : 0;
  }

  /** The current segmentation of word `w`. */
  segmentation(w: number): number[] {
    const out: number[] = [];
    for (let i = this.wordStart[w]; i !== -1; i = this.next[i]) out.push(this.sym[i]);
    return out;
  }

  private addPair(a: number, b: number, c: number, w: number): void {
    if (this.frozen(a) || this.frozen(b)) return;
    const key = pairKey(a, b);
    this.pairCount.set(key, (this.pairCount.get(key) ?? 0) + c);
    let list = this.pairWords.get(key);
    if (!list) this.pairWords.set(key, (list = []));
    if (list.length === 0 || list[list.length - 1] !== w) list.push(w);
  }

  // ---- max-heap on (count desc, key asc) ----
  private better(i: number, j: number): boolean {
    const ci = this.heapCount[i];
    const cj = this.heapCount[j];
    return ci > cj || (ci === cj && this.heapKey[i] < this.heapKey[j]);
  }
  private swap(i: number, j: number): void {
    const c = this.heapCount[i];
    this.heapCount[i] = this.heapCount[j];
    this.heapCount[j] = c;
    const k = this.heapKey[i];
    this.heapKey[i] = this.heapKey[j];
    this.heapKey[j] = k;
  }
  private push(count: number, key: number): void {
    this.heapCount.push(count);
    this.heapKey.push(key);
    let i = this.heapCount.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  private pop(): { count: number; key: number } | null {
    const n = this.heapCount.length;
    if (n === 0) return null;
    const top = { count: this.heapCount[0], key: this.heapKey[0] };
    const lastC = this.heapCount.pop()!;
    const lastK = this.heapKey.pop()!;
    if (n > 1) {
      this.heapCount[0] = lastC;
      this.heapKey[0] = lastK;
      let i = 0;
      const m = n - 1;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < m && this.better(l, best)) best = l;
        if (r < m && this.better(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }

  private refuse(key: number, reason: string): void {
    this.forbidden.add(key);
    this.refused[reason] = (this.refused[reason] ?? 0) + 1;
  }

  private ensureId(id: number): void {
    if (id < this.tokCount.length) return;
    const n = Math.max(id + 1, this.tokCount.length * 2);
    const tc = new Float64Array(n);
    tc.set(this.tokCount);
    this.tokCount = tc;
    const ch = new Uint8Array(n);
    ch.set(this.createdHere);
    this.createdHere = ch;
  }

  private wouldOrphan(id: number, pairOccurrences: number, self: boolean): boolean {
    if (!this.createdHere[id]) return false;
    // a==b: overlapping runs ("aaa") leave some behind; be conservative.
    return self ? this.tokCount[id] <= 2 * pairOccurrences : this.tokCount[id] <= pairOccurrences;
  }

  /** Learn one merge; null when no pair is left at or above the minimum frequency. */
  step(): LearnedMerge | null {
    for (;;) {
      const top = this.pop();
      if (!top) return null;
      const current = this.pairCount.get(top.key) ?? 0;
      if (current !== top.count) continue; // stale entry; an up-to-date one is in the heap
      if (current < this.minFrequency) return null;
      if (this.forbidden.has(top.key)) continue;
      const a = Math.floor(top.key / PAIR_SHIFT);
      const b = top.key - a * PAIR_SHIFT;
      const str = this.tokens[a] + this.tokens[b];
      let id = this.index.get(str);
      const created = id === undefined;
      if (!created && this.opts.forbidExistingResult) {
        this.refuse(top.key, 'existing');
        continue;
      }
      if (created && this.opts.veto) {
        const reason = this.opts.veto(str, a, b);
        if (reason) {
          this.refuse(top.key, reason);
          continue;
        }
      }
      if (this.opts.forbidOrphans && (this.wouldOrphan(a, current, a === b) || this.wouldOrphan(b, current, a === b))) {
        this.refuse(top.key, 'orphan');
        continue;
      }
      if (id === undefined) {
        id = this.tokens.length;
        this.tokens.push(str);
        this.index.set(str, id);
        this.ensureId(id);
        this.createdHere[id] = 1;
      }
      const merged = this.apply(a, b, id, top.key);
      return { left: a, right: b, id, count: merged, created };
    }
  }

  private changePair(a: number, b: number, delta: number, w: number, changed: Set<number>): void {
    if (this.frozen(a) || this.frozen(b)) return;
    const key = pairKey(a, b);
    this.pairCount.set(key, (this.pairCount.get(key) ?? 0) + delta);
    changed.add(key);
    if (delta > 0) {
      let list = this.pairWords.get(key);
      if (!list) this.pairWords.set(key, (list = []));
      if (list.length === 0 || list[list.length - 1] !== w) list.push(w);
    }
  }

  private apply(a: number, b: number, c: number, key: number): number {
    const step = this.steps++;
    const changed = new Set<number>();
    const words = this.pairWords.get(key) ?? [];
    this.pairWords.delete(key);
    let total = 0;
    const { sym, next, prev } = this;
    for (const w of words) {
      if (this.stamp[w] === step) continue;
      this.stamp[w] = step;
      const f = this.wordCount[w];
      let i = this.wordStart[w];
      while (i !== -1) {
        const j = next[i];
        if (j === -1) break;
        if (sym[i] !== a || sym[j] !== b) {
          i = j;
          continue;
        }
        const p = prev[i];
        const n = next[j];
        if (p !== -1) this.changePair(sym[p], a, -f, w, changed);
        if (n !== -1) this.changePair(b, sym[n], -f, w, changed);
        this.changePair(a, b, -f, w, changed);
        sym[i] = c;
        next[i] = n;
        if (n !== -1) prev[n] = i;
        if (p !== -1) this.changePair(sym[p], c, f, w, changed);
        if (n !== -1) this.changePair(c, sym[n], f, w, changed);
        this.tokCount[a] -= f;
        this.tokCount[b] -= f;
        this.tokCount[c] += f;
        total += f;
        i = n;
      }
    }
    for (const k of changed) {
      const cnt = this.pairCount.get(k)!;
      if (cnt <= 0) {
        this.pairCount.delete(k);
        if (k !== key) this.pairWords.delete(k);
      } else this.push(cnt, k);
    }
    this.pairCount.delete(key);
    return total;
  }
}
