// Probes of new tokens at their first uses: a corpus line cut just before an occurrence of a new
// token (in the extended tokenization), sampled deterministically for a seed; a model reads the
// prefix and the new token's rank and log-probability among all logits are recorded, then
// summarized (median rank, MRR, top-k, wins). compare-init scores one model per init method on
// them, new-token-rank one model with two readings of the prefix.
import { permutation, seededRandom } from '../io/seeded-random.ts';
import { optionError } from '../io/errors.ts';
import { logProbAt } from '../runtime/sampling.ts';

/** One probe: a corpus line cut just before an occurrence of a new token. */
export interface InitSample {
  /** Index of the line in the corpus. */
  line: number;
  /** Token position of the occurrence in the line's extended tokenization. */
  position: number;
  /** Extended ids before the occurrence (at most maxContext of them, the nearest ones). */
  prefix: number[];
  /** The new token's id. */
  target: number;
}

export interface SampleOptions {
  samples: number;
  seed: number;
  /** Keep only the last maxContext prefix tokens (the model's useful context). */
  maxContext: number;
  /** Lines tokenized per call of `encode`. */
  batchSize?: number;
}

/**
 * Visit lines in a seeded random order, tokenize them (extended tokenizer) in batches, and take one
 * probe per line that has a new token at a position >= 1 (the occurrence is chosen uniformly, with
 * the same seed), until `samples` probes are collected or the corpus is exhausted.
 */
export async function sampleOccurrences(
  lines: string[],
  encode: (texts: string[]) => Promise<number[][]>,
  isNew: (id: number) => boolean,
  opts: SampleOptions,
): Promise<InitSample[]> {
  if (!(opts.samples >= 1)) throw optionError('samples', `must be >= 1, got ${opts.samples}`);
  if (!(opts.maxContext >= 1)) throw optionError('maxContext', `must be >= 1, got ${opts.maxContext}`);
  const order = Array.from(permutation(lines.length, seededRandom(opts.seed)));
  const pick = seededRandom((opts.seed ^ 0x5bd1e995) >>> 0);
  const batch = opts.batchSize ?? 256;
  const out: InitSample[] = [];
  for (let s = 0; s < order.length && out.length < opts.samples; s += batch) {
    const idx = order.slice(s, s + batch).filter((i) => lines[i].trim().length > 0);
    const encoded = await encode(idx.map((i) => lines[i]));
    for (let k = 0; k < idx.length && out.length < opts.samples; k++) {
      const ids = encoded[k];
      const positions: number[] = [];
      for (let p = 1; p < ids.length; p++) if (isNew(ids[p])) positions.push(p);
      if (positions.length === 0) continue;
      const p = positions[Math.floor(pick() * positions.length)];
      out.push({ line: idx[k], position: p, prefix: ids.slice(Math.max(0, p - opts.maxContext), p), target: ids[p] });
    }
  }
  return out;
}

export interface TargetScore {
  /**
   * 1 = the most likely token. Ties take the mid-rank: 1 + (larger logits) + (other equal logits) / 2,
   * so a row that merely copies another (`first`) or a value shared by every new token (`zero`) does
   * not get the best rank for free.
   */
  rank: number;
  /** log softmax of the target's logit over all logits. */
  logprob: number;
}

export function scoreTarget(logits: Float32Array, target: number): TargetScore {
  if (!(target >= 0 && target < logits.length)) throw new Error(`target id ${target} is outside the ${logits.length} logits`);
  const x = logits[target];
  let above = 0;
  let equal = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > x) above++;
    else if (v === x) equal++;
  }
  return { rank: 1 + above + (equal - 1) / 2, logprob: logProbAt(logits, target) };
}

export interface MethodSummary {
  method: string;
  samples: number;
  medianRank: number;
  /** Mean reciprocal rank. */
  mrr: number;
  top1: number;
  top10: number;
  meanLogprob: number;
  /** Probes where this method gave the best rank (ties broken by log-prob; exact ties share the win). */
  wins: number;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Per probe, the method with the best (lowest) rank wins; a rank tie goes to the higher log-prob; exact ties share. */
export function wins(scores: TargetScore[][]): number[] {
  const m = scores.length;
  const w = new Array<number>(m).fill(0);
  if (m === 0) return w;
  const n = scores[0].length;
  for (let i = 0; i < n; i++) {
    let best: number[] = [];
    for (let j = 0; j < m; j++) {
      if (best.length === 0) { best = [j]; continue; }
      const a = scores[j][i];
      const b = scores[best[0]][i];
      if (a.rank < b.rank || (a.rank === b.rank && a.logprob > b.logprob)) best = [j];
      else if (a.rank === b.rank && a.logprob === b.logprob) best.push(j);
    }
    for (const j of best) w[j] += 1 / best.length;
  }
  return w;
}

/** Summaries in the given method order; `scores[j][i]` is method j on probe i. */
export function summarize(methods: string[], scores: TargetScore[][]): MethodSummary[] {
  if (scores.length !== methods.length) throw new Error('one score list per method is required');
  const n = scores[0]?.length ?? 0;
  for (const s of scores) if (s.length !== n) throw new Error('every method must be scored on the same probes');
  const w = wins(scores);
  return methods.map((method, j) => {
    const s = scores[j];
    const ranks = s.map((x) => x.rank);
    return {
      method,
      samples: n,
      medianRank: median(ranks),
      mrr: n ? s.reduce((a, x) => a + 1 / x.rank, 0) / n : NaN,
      top1: n ? s.filter((x) => x.rank <= 1).length / n : NaN,
      top10: n ? s.filter((x) => x.rank <= 10).length / n : NaN,
      meanLogprob: n ? s.reduce((a, x) => a + x.logprob, 0) / n : NaN,
      wins: w[j],
    };
  });
}

/** What compare-init needs from an engine (the runtime's Engine satisfies it). */
export interface LogitsEngine {
  readonly vocabRows: number;
  lastLogits(batch: number[][]): Promise<Float32Array[]>;
  dispose(): Promise<void>;
}

/**
 * Score each probe's target after its prefix on one engine (`prefixOf` may rewrite the prefix, e.g.
 * into original ids); scores come back in probe order.
 */
export async function scoreProbes(
  engine: Pick<LogitsEngine, 'lastLogits'>,
  probes: InitSample[],
  opts: { batchSize?: number; prefixOf?: (p: InitSample) => number[]; onProgress?: (done: number, total: number) => void } = {},
): Promise<TargetScore[]> {
  const batch = opts.batchSize ?? 16;
  const prefixes = probes.map(opts.prefixOf ?? ((p) => p.prefix));
  // Sort probes by prefix length so batches are nearly rectangular (less padding work).
  const order = probes.map((_, i) => i).sort((a, b) => prefixes[a].length - prefixes[b].length || a - b);
  const scores = new Array<TargetScore>(probes.length);
  for (let s = 0; s < order.length; s += batch) {
    const idx = order.slice(s, s + batch);
    const logits = await engine.lastLogits(idx.map((i) => prefixes[i]));
    idx.forEach((i, k) => { scores[i] = scoreTarget(logits[k], probes[i].target); });
    opts.onProgress?.(Math.min(s + batch, order.length), order.length);
  }
  return scores;
}
