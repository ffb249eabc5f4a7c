// The new tokens at their first uses in held-out text, on one extended model: compare-init's probes
// (a line cut just before an occurrence of a new token in the extended tokenization) scored twice:
// with the prefix in extended ids (the model reads its own tokenizer, compare-init's setup) and with
// the same prefix read as original ids (extended-vocabulary decoding: the model reads the original
// tokenizer and should pick the new token next). Rank 1 = the model's first choice.
import { expandToOriginal } from '../runtime/extended-decoding.ts';
import { sampleOccurrences, scoreProbes, summarize, type LogitsEngine } from './probes.ts';
import { HackError } from '../io/errors.ts';

export interface NewTokenRankResult {
  /** Median rank of the new token after the extended-id prefix. */
  median_ext_prefix: number;
  /** Median rank after the same prefix in original ids. */
  median_orig_prefix: number;
  /** Share of probes with the new token in the top 10. */
  top10_ext_prefix: number;
  top10_orig_prefix: number;
  /** Mean log-probability of the new token (nats). */
  mean_logprob_ext_prefix: number;
  mean_logprob_orig_prefix: number;
  /** Probes scored (at most one per line). */
  n: number;
  /** Distinct new tokens among the probes. */
  distinct_tokens: number;
  max_context: number;
  seed: number;
  /**
   * Reference, when the original model is loaded: the ORIGINAL model's median rank of the new token's
   * first original sub-token at the same probes (same original-id prefix), i.e. how well plain
   * decoding predicts the first piece of the word the new token covers; and its top-10 share.
   */
  base_first_piece_median?: number;
  base_first_piece_top10?: number;
}

export interface NewTokenRankOptions {
  /** Probes to sample (default 1000). */
  probes?: number;
  seed?: number;
  /** Extended ids kept before the occurrence (default 64). */
  maxContext?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  /** The original model: adds the base_first_piece_* reference. */
  base?: Pick<LogitsEngine, 'lastLogits'>;
}

export async function newTokenRank(
  engine: Pick<LogitsEngine, 'lastLogits'>,
  /** The extended model's own tokenizer. */
  encodeBatch: (texts: string[]) => Promise<number[][]>,
  isNew: (id: number) => boolean,
  /** New id -> its original sub-token ids (newTokenMap). */
  originalIds: Map<number, number[]>,
  text: string,
  opts: NewTokenRankOptions = {},
): Promise<NewTokenRankResult> {
  const seed = opts.seed ?? 0;
  const maxContext = opts.maxContext ?? 64;
  const probes = await sampleOccurrences(text.split(/\r?\n/).filter((l) => l.trim().length > 0), encodeBatch, isNew, { samples: opts.probes ?? 1000, seed, maxContext });
  if (probes.length === 0) throw new HackError('NO_PROBES', 'new-token-rank: no line of the PT text has a new token after its first position', { option: 'metrics' });
  const total = (opts.base ? 3 : 2) * probes.length;
  const ext = await scoreProbes(engine, probes, { batchSize: opts.batchSize, onProgress: (d) => opts.onProgress?.(d, total) });
  const orig = await scoreProbes(engine, probes, {
    batchSize: opts.batchSize, prefixOf: (p) => expandToOriginal(p.prefix, originalIds), onProgress: (d) => opts.onProgress?.(probes.length + d, total),
  });
  const [e, o] = summarize(['ext', 'orig'], [ext, orig]);
  let ref: Pick<NewTokenRankResult, 'base_first_piece_median' | 'base_first_piece_top10'> = {};
  if (opts.base) {
    const first = probes.map((p) => ({ ...p, target: (originalIds.get(p.target) ?? [p.target])[0] }));
    const scores = await scoreProbes(opts.base, first, {
      batchSize: opts.batchSize, prefixOf: (p) => expandToOriginal(p.prefix, originalIds), onProgress: (d) => opts.onProgress?.(2 * probes.length + d, total),
    });
    const [b] = summarize(['base'], [scores]);
    ref = { base_first_piece_median: b.medianRank, base_first_piece_top10: b.top10 };
  }
  return {
    ...ref,
    median_ext_prefix: e.medianRank, median_orig_prefix: o.medianRank,
    top10_ext_prefix: e.top10, top10_orig_prefix: o.top10,
    mean_logprob_ext_prefix: e.meanLogprob, mean_logprob_orig_prefix: o.meanLogprob,
    n: probes.length, distinct_tokens: new Set(probes.map((p) => p.target)).size, max_context: maxContext, seed,
  };
}
