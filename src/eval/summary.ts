// A plain-text summary of results (what the CLI prints).
import type { EvalResults } from './results.ts';
import { num, pct } from './number-format.ts';


export function formatResults(r: EvalResults): string {
  const inputLabel = { extended: 'the model\'s own, extended tokenizer', original: 'the original model\'s tokenizer', model: 'the model\'s own tokenizer' }[r.input] ?? r.input;
  const lines = [`model: ${r.model}`, `input tokenizer: ${r.tokenizer} (${inputLabel})`];
  const m = r.metrics;
  if (m.fertility_input) lines.push(`fertility (tokens/word): pt ${num(m.fertility_input.pt)}  en ${num(m.fertility_input.en)}` + (m.fertility_input.original ? `  (original: pt ${num(m.fertility_input.original.pt)}  en ${num(m.fertility_input.original.en)})` : ''));
  if (m.compression) lines.push(`compression (bytes/token): pt ${num(m.compression.pt)}  en ${num(m.compression.en)}`);
  if (m.bpb) lines.push(`bits per byte: pt ${num(m.bpb.pt, 4)}  en ${num(m.bpb.en, 4)}   (per-token perplexity: pt ${num(m.bpb.perplexity.pt, 2)}  en ${num(m.bpb.perplexity.en, 2)})`);
  if (m.fertility_boost) lines.push(`FertilityBoost: greedy ${pct(m.fertility_boost.greedy)}  T=${m.fertility_boost.temperature}: ${pct(m.fertility_boost.mean)} ± ${pct(m.fertility_boost.std)} (${m.fertility_boost.runs} runs, ${m.fertility_boost.n_texts} texts)`);
  if (m.new_token_rank) {
    const k = m.new_token_rank;
    lines.push(`new tokens at their first use, median rank: ${num(k.median_ext_prefix, 1)} (extended-id prefix), ${num(k.median_orig_prefix, 1)} (original-id prefix); top-10 ${pct(k.top10_ext_prefix)} / ${pct(k.top10_orig_prefix)} (${k.n} probes)`);
    if (k.base_first_piece_median !== undefined) {
      lines.push(`  reference: the original model ranks the first piece of those words at median ${num(k.base_first_piece_median, 1)} (top-10 ${pct(k.base_first_piece_top10)})`);
    }
  }
  if (m.efficiency_gain) lines.push(`${m.efficiency_gain.label}: ${pct(m.efficiency_gain.value)}`);
  if (m.fertility_output) lines.push(`FertilityOutput (tokens per first complete word): ${num(m.fertility_output.mean)} (${m.fertility_output.n_samples} generations, ${m.fertility_output.no_complete_word} without a complete word)`);
  if (m.decode_speed) {
    const d = m.decode_speed;
    lines.push(`decode: ${num(d.extended.chars_per_step, 2)} chars/step, ${num(d.extended.chars_per_second, 1)} chars/s` + (d.original ? `  (original: ${num(d.original.chars_per_step, 2)} chars/step, ${num(d.original.chars_per_second, 1)} chars/s)` : ''));
  }
  if (m.repetition) lines.push(`repeated word 4-grams: ${pct(m.repetition.extended)}` + (m.repetition.original !== undefined ? ` (original ${pct(m.repetition.original)})` : ''));
  const b = r.benchmarks;
  if (b.calamept) lines.push(`CalamePT greedy: ${pct(b.calamept.accuracy)} of ${b.calamept.n} (handwritten ${pct(b.calamept.handwritten.accuracy)}, generated ${pct(b.calamept.generated.accuracy)})` + (b.calamept.ll_accuracy !== undefined ? `; log-likelihood (gold word is greedy): ${pct(b.calamept.ll_accuracy)}` : ''));
  if (b.mmlu) lines.push(`MMLU: ${pct(b.mmlu.accuracy)} of ${b.mmlu.n} (macro over subjects ${pct(b.mmlu.macro_accuracy)})`);
  for (const k of ['boolq-en', 'copa-en', 'boolq', 'copa', 'multirc'] as const) {
    const x = b[k];
    if (x) lines.push(`${k}: ${pct(x.accuracy)} of ${x.n} (length-normalized ${pct(x.accuracy_norm)})`);
  }
  for (const [k, v] of Object.entries(r.subsets)) lines.push(`subset (${k}): ${v}`);
  return lines.join('\n');
}
