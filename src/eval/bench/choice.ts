// Zero-shot multiple choice by log-likelihood of each choice after its context (BoolQ, COPA,
// extraGLUE), and MMLU by the log-likelihood of the answer letters.
import type { EvalEngine, ProgressFn, TextCodec } from '../engine-api.ts';
import { MMLU_LETTERS, mmluPrompt, type ChoiceItem, type MmluQuestion } from './readers.ts';

export interface ChoiceResult {
  /** Share of items whose highest summed log-probability choice is the gold one. */
  accuracy: number;
  /** The same with log-probability per UTF-8 byte of the choice (length-normalized). */
  accuracy_norm: number;
  correct: number;
  n: number;
}

/** Keep the last `max` tokens of a context so context + continuation fit the model's window. */
function fit(ctx: number[], cont: number[], maxTokens: number): number[] {
  const room = Math.max(1, maxTokens - cont.length);
  return ctx.length > room ? ctx.slice(ctx.length - room) : ctx;
}

export async function runChoices(engine: EvalEngine, codec: TextCodec, items: ChoiceItem[], opts: { maxTokens?: number; batch?: number; onProgress?: ProgressFn } = {}): Promise<ChoiceResult> {
  const maxTokens = opts.maxTokens ?? 512;
  const batch = opts.batch ?? 16;
  const ctxIds = await codec.encodeBatch(items.map((it) => it.context));
  const flat: Array<{ item: number; choice: number; context: number[]; continuation: number[]; bytes: number }> = [];
  for (let i = 0; i < items.length; i++) {
    const conts = await codec.encodeBatch(items[i].choices);
    items[i].choices.forEach((c, j) => flat.push({ item: i, choice: j, context: fit(ctxIds[i], conts[j], maxTokens), continuation: conts[j], bytes: Buffer.byteLength(c, 'utf8') }));
  }
  const sums = items.map((it) => new Array<number>(it.choices.length).fill(-Infinity));
  const norms = items.map((it) => new Array<number>(it.choices.length).fill(-Infinity));
  for (let k = 0; k < flat.length; k += batch) {
    const chunk = flat.slice(k, k + batch);
    const res = await engine.scoreContinuations(chunk.map((f) => ({ context: f.context, continuation: f.continuation })));
    chunk.forEach((f, j) => { sums[f.item][f.choice] = res[j].sum; norms[f.item][f.choice] = res[j].sum / Math.max(1, f.bytes); });
    opts.onProgress?.(Math.min(k + batch, flat.length), flat.length);
  }
  const best = (xs: number[]) => xs.indexOf(Math.max(...xs));
  let correct = 0;
  let correctNorm = 0;
  items.forEach((it, i) => { if (best(sums[i]) === it.gold) correct++; if (best(norms[i]) === it.gold) correctNorm++; });
  return { accuracy: correct / items.length, accuracy_norm: correctNorm / items.length, correct, n: items.length };
}

export interface MmluResult { accuracy: number; correct: number; n: number; macro_accuracy: number; subjects: Record<string, { accuracy: number; n: number }> }

/**
 * MMLU zero-shot: one forward pass per question, comparing the log-probabilities of " A" … " D"
 * at the last position (falls back to scoring the letters as continuations when one is not a
 * single token under the input tokenizer). Long prompts keep their last `maxTokens` tokens.
 */
export async function runMmlu(engine: EvalEngine, codec: TextCodec, questions: MmluQuestion[], opts: { maxTokens?: number; batch?: number; onProgress?: ProgressFn } = {}): Promise<MmluResult> {
  const maxTokens = opts.maxTokens ?? 512;
  const batch = opts.batch ?? 8;
  const letterIds = await codec.encodeBatch(MMLU_LETTERS.map((l) => ' ' + l));
  const single = letterIds.every((l) => l.length === 1);
  const prompts = await codec.encodeBatch(questions.map(mmluPrompt));
  const pred = new Array<number>(questions.length).fill(-1);
  // sort by length so each batch pads little
  const order = questions.map((_, i) => i).sort((a, b) => prompts[a].length - prompts[b].length);
  let done = 0;
  for (let k = 0; k < order.length; k += batch) {
    const idx = order.slice(k, k + batch);
    if (single) {
      const seqs = idx.map((i) => fit(prompts[i], [], maxTokens));
      const logits = await engine.lastLogits(seqs);
      idx.forEach((i, j) => {
        const scores = letterIds.map((l) => logits[j][l[0]]);
        pred[i] = scores.indexOf(Math.max(...scores));
      });
    } else {
      const items = idx.flatMap((i) => letterIds.map((l) => ({ context: fit(prompts[i], l, maxTokens), continuation: l })));
      const res = await engine.scoreContinuations(items);
      idx.forEach((i, j) => {
        const scores = res.slice(j * 4, j * 4 + 4).map((r) => r.sum);
        pred[i] = scores.indexOf(Math.max(...scores));
      });
    }
    done += idx.length;
    opts.onProgress?.(done, questions.length);
  }
  const subjects: MmluResult['subjects'] = {};
  let correct = 0;
  questions.forEach((q, i) => {
    const s = (subjects[q.subject] ??= { accuracy: 0, n: 0 });
    s.n++;
    if (pred[i] === q.answer) { correct++; s.accuracy++; }
  });
  for (const s of Object.values(subjects)) s.accuracy /= s.n;
  const subs = Object.values(subjects);
  return {
    accuracy: correct / questions.length, correct, n: questions.length,
    macro_accuracy: subs.reduce((a, s) => a + s.accuracy, 0) / Math.max(1, subs.length), subjects,
  };
}
