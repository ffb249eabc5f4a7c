// The experiment rows as a fixed-width text table (printed by `demo` and `experiment`).
import type { ResultRow } from './report.ts';
import { num, pct } from './number-format.ts';

export function formatTable(rows: ResultRow[]): string {
  // tuning variants and the new-token rank get columns only when the rows have them
  const tuned = rows.some((r) => r.tune !== undefined && r.tune !== '-');
  const ranked = rows.some((r) => r.new_token_rank_ext !== undefined);
  const head = ['stage', 'N', 'init', ...(tuned ? ['tune', 'tune s'] : []), 'input', 'fert pt', 'fert en', 'bpb pt', 'bpb en', 'boost T=0', 'boost T=0.8',
    ...(ranked ? ['rank ext/orig'] : []), 'CalamePT'];
  const body = rows.map((r) => [
    r.stage, r.stage === 'BASELINE' ? '-' : String(r.numTokens), r.init, ...(tuned ? [r.tune ?? '-', num(r.tune_seconds_with_cache, 1)] : []), r.input,
    num(r.fertility_pt), num(r.fertility_en), num(r.bpb_pt, 4), num(r.bpb_en, 4),
    pct(r.fertility_boost_greedy), r.fertility_boost_mean === undefined ? '-' : `${pct(r.fertility_boost_mean)}${r.fertility_boost_std === undefined ? '' : ` ± ${pct(r.fertility_boost_std)}`}`,
    ...(ranked ? [r.new_token_rank_ext === undefined ? '-' : `${num(r.new_token_rank_ext, 1)} / ${num(r.new_token_rank_orig, 1)}`] : []), pct(r.calamept),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}
