// CalamePT: last-word prediction in European Portuguese, measured as the demo model's training card
// did: prompt = sentence with surrounding spaces stripped, no special tokens, greedy, 8 new tokens,
// decoded without special tokens; the first \w+ match (Unicode, as Python's re), lower-cased, against
// last_word stripped and lower-cased. Plus a log-likelihood variant (LAMBADA style): is the gold word
// the greedy continuation under teacher forcing, and its mean log-probability.
import type { EvalEngine, ProgressFn, TextCodec } from '../engine-api.ts';
import { argmax, logProbAt } from '../../runtime/sampling.ts';
import { firstWord, firstWordSettled } from '../text-metrics.ts';
import type { CalameRow } from './readers.ts';
import { generateMany } from './generate-many.ts';

export interface PartScore { accuracy: number; correct: number; n: number }
export interface CalameResult extends PartScore {
  handwritten: PartScore;
  generated: PartScore;
  /** Log-likelihood variant: share of rows whose gold word is the greedy continuation (teacher-forced). */
  ll_accuracy?: number;
  ll_handwritten?: number;
  ll_generated?: number;
  /** Mean log-probability (nats) of the gold word (" " + last_word) given the prompt. */
  ll_mean_logprob?: number;
  max_new_tokens: number;
  samples: Array<{ idx: number; prompt: string; generated: string; predicted: string | null; gold: string }>;
}

export interface CalameOptions {
  maxNewTokens?: number;
  eosIds?: number[];
  logLikelihood?: boolean;
  onProgress?: ProgressFn;
}

function part(rows: CalameRow[], ok: boolean[], pred: (r: CalameRow) => boolean): PartScore {
  let n = 0;
  let correct = 0;
  rows.forEach((r, i) => { if (pred(r)) { n++; if (ok[i]) correct++; } });
  return { accuracy: n > 0 ? correct / n : NaN, correct, n };
}

export async function runCalame(engine: EvalEngine, codec: TextCodec, rows: CalameRow[], opts: CalameOptions = {}): Promise<CalameResult> {
  const maxNew = opts.maxNewTokens ?? 8;
  const prompts = rows.map((r) => r.sentence.trim());
  const ids = await codec.encodeBatch(prompts);
  const total = rows.length * (opts.logLikelihood ? 2 : 1);
  // a row stops as soon as its first word is settled: the answer is the same as after all maxNew tokens
  const stopWhen = async (g: readonly number[]) => firstWordSettled(await codec.decode([...g]));
  const outs = await generateMany(engine, ids, { maxNewTokens: maxNew, temperature: 0, eosIds: opts.eosIds, stopWhen }, (d) => opts.onProgress?.(d, total));
  const ok: boolean[] = [];
  const samples: CalameResult['samples'] = [];
  for (let i = 0; i < rows.length; i++) {
    const gen = await codec.decode(outs[i]);
    const w = firstWord(gen);
    const predicted = w === null ? null : w.toLowerCase();
    ok.push(predicted !== null && predicted === rows[i].last_word.trim().toLowerCase());
    if (samples.length < 20) samples.push({ idx: rows[i].idx, prompt: prompts[i], generated: gen, predicted, gold: rows[i].last_word });
  }
  const isHand = (r: CalameRow) => r.source === 'handwritten';
  const all = part(rows, ok, () => true);
  const res: CalameResult = {
    ...all, handwritten: part(rows, ok, isHand), generated: part(rows, ok, (r) => !isHand(r)), max_new_tokens: maxNew, samples,
  };
  if (opts.logLikelihood) {
    const llOk: boolean[] = [];
    let sumLp = 0;
    const conts = await codec.encodeBatch(rows.map((r) => ' ' + r.last_word.trim()));
    for (let i = 0; i < rows.length; i++) {
      const ctx = ids[i];
      const cont = conts[i];
      const seq = [...ctx, ...cont];
      const logits = await engine.logits(seq);
      const V = engine.vocabRows;
      let greedy = ctx.length > 0;
      let lp = 0;
      for (let k = 0; k < cont.length; k++) {
        const p = ctx.length - 1 + k; // the position predicting cont[k]
        if (p < 0) { greedy = false; continue; }
        const off = p * V;
        if (argmax(logits, off, V) !== cont[k]) greedy = false;
        lp += logProbAt(logits, cont[k], off, V);
      }
      llOk.push(greedy);
      sumLp += lp;
      opts.onProgress?.(rows.length + i + 1, total);
    }
    res.ll_accuracy = part(rows, llOk, () => true).accuracy;
    res.ll_handwritten = part(rows, llOk, isHand).accuracy;
    res.ll_generated = part(rows, llOk, (r) => !isHand(r)).accuracy;
    res.ll_mean_logprob = sumLp / rows.length;
  }
  return res;
}
