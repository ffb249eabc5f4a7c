// Experiment results as flat rows, CSV, and one self-contained HTML page whose charts are
// Vega-Lite specs compiled and rendered to inline SVG in Node (no scripts, no network).
import type * as vl from 'vega-lite';
import { csvField } from '../io/csv.ts';
import { renderSvg } from './chart-svg.ts';
import type { EvalResults } from './results.ts';

export interface CellMeta {
  id: string;
  model: string;
  stage: string;
  input: 'extended' | 'original';
  numTokens: number;
  method: string;
  mode: string;
  init: string;
  /** Tuning variant (stage INITIALIZED_WITH_TRAINING), '-' otherwise; absent in cells written before variants existed. */
  tune?: string;
}

/** What a tuned cell records about its tuning run (results.json `cells[].tune`). */
export interface TuneRecord {
  name: string;
  /** The variant's options from the config. */
  options: Record<string, unknown>;
  /** Wall time of the tuning run (runTune's own clock, model writing excluded; a resumed run counts its last session). */
  seconds?: number;
  rows?: string;
  method?: string;
  new_tokens?: number;
  corpus_bytes?: number;
  /** The hidden-state cache: built by this run, or reused (built by an earlier variant of the same extended model). */
  cache?: { positions: number; new_targets: number; seconds: number; reused: boolean };
  output?: { steps: number; first_loss: number; last_loss: number; seconds: number; lr: number; batch: number };
  input?: { steps: number; first_loss: number; last_loss: number; seconds: number; lr: number; batch: number; tokens: number };
}

export interface ResultRow extends CellMeta {
  fertility_pt?: number; fertility_en?: number;
  bytes_per_token_pt?: number; bytes_per_token_en?: number;
  bpb_pt?: number; bpb_en?: number; ppl_pt?: number; ppl_en?: number;
  fertility_boost_greedy?: number; fertility_boost_mean?: number; fertility_boost_std?: number;
  efficiency_gain?: number; fertility_output?: number;
  chars_per_step?: number; chars_per_second?: number; repetition?: number;
  new_token_rank_ext?: number; new_token_rank_orig?: number;
  /** The original model's median rank of the new token's first original piece at the same probes (reference). */
  new_token_rank_base_first_piece?: number;
  calamept?: number; calamept_handwritten?: number; calamept_generated?: number; calamept_n?: number;
  mmlu?: number; boolq_en?: number; copa_en?: number; boolq?: number; copa?: number; multirc?: number;
  seconds?: number;
  /** Tuning wall time of this run; with the hidden-state cache's build time added when the run reused it. */
  tune_seconds?: number; tune_seconds_with_cache?: number;
  tune_output_loss?: number; tune_input_loss?: number;
}

export const ROW_COLUMNS: Array<keyof ResultRow> = [
  'id', 'model', 'stage', 'input', 'numTokens', 'method', 'mode', 'init', 'tune',
  'fertility_pt', 'fertility_en', 'bytes_per_token_pt', 'bytes_per_token_en', 'bpb_pt', 'bpb_en', 'ppl_pt', 'ppl_en',
  'fertility_boost_greedy', 'fertility_boost_mean', 'fertility_boost_std', 'efficiency_gain', 'fertility_output',
  'chars_per_step', 'chars_per_second', 'repetition', 'new_token_rank_ext', 'new_token_rank_orig', 'new_token_rank_base_first_piece',
  'calamept', 'calamept_handwritten', 'calamept_generated', 'calamept_n', 'mmlu', 'boolq_en', 'copa_en', 'boolq', 'copa', 'multirc', 'seconds',
  'tune_seconds', 'tune_seconds_with_cache', 'tune_output_loss', 'tune_input_loss',
];

export function rowOf(meta: CellMeta, r: EvalResults, tune?: TuneRecord): ResultRow {
  const m = r.metrics;
  const b = r.benchmarks;
  const cache = tune?.cache?.reused ? tune.cache.seconds : 0;
  return {
    ...meta,
    tune: meta.tune ?? (meta.stage === 'INITIALIZED_WITH_TRAINING' ? 'default' : '-'),
    fertility_pt: m.fertility_input?.pt, fertility_en: m.fertility_input?.en,
    bytes_per_token_pt: m.compression?.pt, bytes_per_token_en: m.compression?.en,
    bpb_pt: m.bpb?.pt, bpb_en: m.bpb?.en, ppl_pt: m.bpb?.perplexity.pt, ppl_en: m.bpb?.perplexity.en,
    fertility_boost_greedy: m.fertility_boost?.greedy, fertility_boost_mean: m.fertility_boost?.mean, fertility_boost_std: m.fertility_boost?.std,
    efficiency_gain: m.efficiency_gain?.value, fertility_output: m.fertility_output?.mean,
    chars_per_step: m.decode_speed?.extended.chars_per_step, chars_per_second: m.decode_speed?.extended.chars_per_second,
    repetition: m.repetition?.extended,
    new_token_rank_ext: m.new_token_rank?.median_ext_prefix, new_token_rank_orig: m.new_token_rank?.median_orig_prefix,
    new_token_rank_base_first_piece: m.new_token_rank?.base_first_piece_median,
    calamept: b.calamept?.accuracy, calamept_handwritten: b.calamept?.handwritten.accuracy, calamept_generated: b.calamept?.generated.accuracy,
    calamept_n: b.calamept?.n, mmlu: b.mmlu?.accuracy, boolq_en: b['boolq-en']?.accuracy, copa_en: b['copa-en']?.accuracy,
    boolq: b.boolq?.accuracy, copa: b.copa?.accuracy, multirc: b.multirc?.accuracy,
    seconds: Object.values(r.seconds).reduce((a, x) => a + x, 0),
    tune_seconds: tune?.seconds, tune_seconds_with_cache: tune?.seconds === undefined ? undefined : tune.seconds + cache,
    tune_output_loss: tune?.output?.last_loss, tune_input_loss: tune?.input?.last_loss,
  };
}

export function toCsv(rows: ResultRow[]): string {
  return [ROW_COLUMNS.join(','), ...rows.map((r) => ROW_COLUMNS.map((c) => csvField(r[c])).join(','))].join('\n') + '\n';
}

export interface ChartSpec { id: string; title: string; note?: string; spec: vl.TopLevelSpec }

const has = (rows: ResultRow[], k: keyof ResultRow) => rows.some((r) => typeof r[k] === 'number' && !Number.isNaN(r[k] as number));
const label = (r: ResultRow) => (r.stage === 'BASELINE' ? 'baseline' : `${r.init} N=${r.numTokens}${r.method === 'continue' && r.mode === 'merges' ? '' : ` ${r.method}/${r.mode}`}${r.input === 'original' ? ' [orig. input]' : ''}${r.tune && r.tune !== '-' && r.tune !== 'default' ? ` tune=${r.tune}` : ''}`);
const shortModel = (m: string) => m.split(/[\\/]/).filter(Boolean).pop() ?? m;

export const NO_TUNING = 'no tuning';
export const BASE_MODEL = 'original model';

/** The tuning comparison's measures: row field, title, and whether the value is a share (shown as %). */
export const TUNING_MEASURES: Array<{ field: keyof ResultRow; title: string; pct?: boolean }> = [
  { field: 'bpb_pt', title: 'bits per byte PT' },
  { field: 'bpb_en', title: 'bits per byte EN' },
  { field: 'fertility_boost_greedy', title: 'FertilityBoost T=0', pct: true },
  { field: 'calamept', title: 'CalamePT', pct: true },
  { field: 'new_token_rank_ext', title: 'median rank, ext. prefix' },
  { field: 'new_token_rank_orig', title: 'median rank, orig. prefix' },
  { field: 'new_token_rank_base_first_piece', title: 'original model: median rank of the first piece' },
  { field: 'tune_seconds_with_cache', title: 'tune wall time (s)' },
];

export interface TuningGroup { key: string; label: string; variants: Array<{ variant: string; row: ResultRow }> }

/**
 * Tuning variants side by side: per model x N x method x mode x init x input that has tuned cells,
 * the original model (its BASELINE cell), the untuned extended model ("no tuning", stage
 * INITIALIZED_NO_TRAINING) and each tuning variant.
 */
export function tuningComparison(rows: ResultRow[]): TuningGroup[] {
  const keyOf = (r: ResultRow) => [r.model, r.numTokens, r.method, r.mode, r.init, r.input].join('|');
  const tuned = rows.filter((r) => r.stage === 'INITIALIZED_WITH_TRAINING');
  const groups = new Map<string, TuningGroup>();
  for (const r of tuned) {
    const k = keyOf(r);
    if (!groups.has(k)) {
      const untuned = rows.find((u) => u.stage === 'INITIALIZED_NO_TRAINING' && keyOf(u) === k);
      const base = rows.find((u) => u.stage === 'BASELINE' && u.model === r.model);
      const variant = r.method === 'continue' && r.mode === 'merges' ? '' : ` ${r.method}/${r.mode}`;
      groups.set(k, {
        key: k, label: `${shortModel(r.model)} N=${r.numTokens} ${r.init}${variant}${r.input === 'original' ? ' [orig. input]' : ''}`,
        // the original model first: what the tuned variants are trying to get back to
        variants: [...(base ? [{ variant: BASE_MODEL, row: base }] : []), ...(untuned ? [{ variant: NO_TUNING, row: untuned }] : [])],
      });
    }
    groups.get(k)!.variants.push({ variant: r.tune ?? 'default', row: r });
  }
  return [...groups.values()];
}

function tuningChart(groups: TuningGroup[]): ChartSpec | null {
  const measures = TUNING_MEASURES.filter((m) => groups.some((g) => g.variants.some((v) => typeof v.row[m.field] === 'number' && !Number.isNaN(v.row[m.field]))));
  if (groups.length === 0 || measures.length === 0) return null;
  const order = [...new Set(groups.flatMap((g) => g.variants.map((v) => v.variant)))];
  const values = groups.flatMap((g) => g.variants.flatMap((v) => measures.flatMap((m) => {
    const x = v.row[m.field];
    if (typeof x !== 'number' || Number.isNaN(x)) return [];
    const label = m.pct ? `${(100 * x).toFixed(2)}%` : Number.isInteger(x) ? String(x) : x.toFixed(m.field.startsWith('bpb') ? 4 : 1);
    return [{ group: g.label, variant: v.variant, measure: m.title, value: x, label }];
  })));
  return {
    id: 'tuning', title: 'Tuning variants: the original model, no tuning and each tuning of the same extended model',
    note: 'Bits per byte: lower is better (extended tokenizer on the input unless marked [orig. input]). FertilityBoost, CalamePT: higher is better. ' +
      'Median rank of the new token at its first uses in the PT held-out text, prefix in extended ids / read as original ids (extended-vocabulary decoding): lower is better. ' +
      'Tune wall time includes the hidden-state cache even when a variant reused one built by another.',
    spec: {
      background: 'white', data: { values },
      facet: {
        row: { field: 'measure', type: 'nominal', sort: measures.map((m) => m.title), title: null, header: { labelAngle: 0, labelOrient: 'top', labelAnchor: 'start', labelAlign: 'left', labelFontWeight: 'bold', labelLimit: 0 } },
        column: { field: 'group', type: 'nominal', title: null, header: { labelLimit: 320 } },
      },
      spec: {
        width: 220, height: { step: 14 },
        encoding: {
          y: { field: 'variant', type: 'nominal', sort: order, title: null },
          x: { field: 'value', type: 'quantitative', title: null, scale: { zero: true } },
        },
        layer: [
          { mark: 'bar', encoding: { color: { field: 'variant', type: 'nominal', sort: order, legend: null }, tooltip: [{ field: 'group' }, { field: 'variant' }, { field: 'measure' }, { field: 'label', title: 'value' }] } },
          { mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 }, encoding: { text: { field: 'label' } } },
        ],
      },
      resolve: { scale: { x: 'independent' } },
    } as vl.TopLevelSpec,
  };
}

function tuningTable(groups: TuningGroup[]): string {
  if (groups.length === 0) return '';
  const measures = TUNING_MEASURES.filter((m) => groups.some((g) => g.variants.some((v) => typeof v.row[m.field] === 'number')));
  const head = ['model × N × init', 'tuning', ...measures.map((m) => m.title)];
  const body = groups.flatMap((g) => g.variants.map((v) => `<tr><td>${esc(g.label)}</td><td>${esc(v.variant)}</td>${measures.map((m) => {
    const x = v.row[m.field];
    if (typeof x !== 'number' || Number.isNaN(x)) return '<td></td>';
    return `<td>${m.pct ? (100 * x).toFixed(2) + '%' : Number.isInteger(x) ? x : x.toFixed(m.field.startsWith('bpb') ? 4 : 1)}</td>`;
  }).join('')}</tr>`));
  return `<h2>Tuning comparison</h2>
<table class="tuning" id="tuning-table"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

/** The charts that the rows have data for. */
export function chartSpecs(rows: ResultRow[]): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const data = rows.map((r) => ({ ...r, model: shortModel(r.model), config: label(r) }));
  const base = { width: 420, height: 240, background: 'white' } as const;
  if (has(rows, 'fertility_pt')) {
    // input fertility depends on the tokenizer only: one point per model x method x mode x N (baseline at N = 0)
    const seen = new Set<string>();
    const pts = data.filter((r) => r.fertility_pt !== undefined && (r.input === 'extended' || r.stage === 'BASELINE')).filter((r) => {
      const k = `${r.model}|${r.method}|${r.mode}|${r.numTokens}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    }).flatMap((r) => [{ ...r, lang: 'pt', value: r.fertility_pt }, ...(r.fertility_en !== undefined ? [{ ...r, lang: 'en', value: r.fertility_en }] : [])]);
    charts.push({
      id: 'fertility', title: 'Input fertility (tokens per word) vs number of new tokens', note: 'N = 0 is the original tokenizer.',
      spec: { ...base, data: { values: pts }, mark: { type: 'line', point: true },
        encoding: { x: { field: 'numTokens', type: 'quantitative', title: 'new tokens (N)' }, y: { field: 'value', type: 'quantitative', title: 'tokens per word', scale: { zero: false } },
          color: { field: 'model', type: 'nominal' }, strokeDash: { field: 'lang', type: 'nominal' } } },
    });
  }
  const perConfig = (id: string, title: string, field: keyof ResultRow, yTitle: string, note?: string) => {
    if (!has(rows, field)) return;
    charts.push({
      id, title, note,
      spec: { ...base, data: { values: data.filter((r) => typeof r[field] === 'number') }, mark: 'bar',
        encoding: { x: { field: 'config', type: 'nominal', title: null, axis: { labelAngle: -30, labelLimit: 0 } },
          y: { field, type: 'quantitative', title: yTitle }, color: { field: 'stage', type: 'nominal', legend: { labelLimit: 320 } },
          tooltip: [{ field: 'model' }, { field: 'config' }, { field: 'stage' }, { field: 'input' }, { field, type: 'quantitative', format: '.4f' }] } },
    });
  };
  perConfig('bpb-pt', 'Bits per byte, PT held-out (lower is better)', 'bpb_pt', 'bits per byte', 'Tokenizer-independent; one bar per init method and N ([orig. input]: the original tokenizer encoded the input).');
  perConfig('bpb-en', 'Bits per byte, EN held-out (lower is better)', 'bpb_en', 'bits per byte');
  perConfig('calamept', 'CalamePT greedy accuracy', 'calamept', 'accuracy');
  perConfig('mmlu', 'MMLU accuracy (zero-shot)', 'mmlu', 'accuracy');
  perConfig('boolq-en', 'BoolQ (EN) accuracy', 'boolq_en', 'accuracy');
  perConfig('copa-en', 'COPA (EN) accuracy', 'copa_en', 'accuracy');
  if (has(rows, 'fertility_boost_greedy')) {
    const pts = data.filter((r) => r.fertility_boost_greedy !== undefined).flatMap((r) => [
      { ...r, temperature: 'T = 0 (greedy)', value: r.fertility_boost_greedy, lo: r.fertility_boost_greedy, hi: r.fertility_boost_greedy },
      { ...r, temperature: 'T = 0.8 (mean of runs)', value: r.fertility_boost_mean, lo: (r.fertility_boost_mean ?? 0) - (r.fertility_boost_std ?? 0), hi: (r.fertility_boost_mean ?? 0) + (r.fertility_boost_std ?? 0) },
    ]);
    charts.push({
      id: 'fertility-boost', title: 'FertilityBoost: share of positions where the model picks a new token', note: 'Teacher-forced on PT held-out paragraphs read through the original tokenizer; error bars: ±1 std over runs.',
      spec: { ...base, data: { values: pts }, encoding: { x: { field: 'config', type: 'nominal', title: null, axis: { labelAngle: -30, labelLimit: 0 } }, xOffset: { field: 'temperature', type: 'nominal' } },
        layer: [
          { mark: 'bar', encoding: { y: { field: 'value', type: 'quantitative', title: 'share of positions', axis: { format: '%' } }, color: { field: 'temperature', type: 'nominal', legend: { labelLimit: 320 } } } },
          { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        ] } as vl.TopLevelSpec,
    });
  }
  // which init method wins (lowest PT bpb) within each model x N x method x mode x stage x input group
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    if (r.stage === 'BASELINE' || r.bpb_pt === undefined) continue;
    const k = [r.model, r.numTokens, r.method, r.mode, r.stage, r.tune ?? '-', r.input].join('|');
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const wins = new Map<string, number>();
  let contested = 0;
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    contested++;
    const best = g.reduce((a, b) => (b.bpb_pt! < a.bpb_pt! ? b : a));
    wins.set(best.init, (wins.get(best.init) ?? 0) + 1);
  }
  const tuning = tuningChart(tuningComparison(rows));
  if (tuning) charts.push(tuning);
  if (contested > 0) {
    const inits = [...new Set(rows.filter((r) => r.stage !== 'BASELINE').map((r) => r.init))];
    charts.push({
      id: 'init-wins', title: 'Init-analysis wins: lowest PT bits per byte per comparison', note: `${contested} comparison(s): model x N x method x mode x stage (x tuning) x input.`,
      spec: { ...base, data: { values: inits.map((init) => ({ init, wins: wins.get(init) ?? 0 })) }, mark: 'bar',
        encoding: { x: { field: 'init', type: 'nominal', title: 'init method', axis: { labelAngle: 0 } }, y: { field: 'wins', type: 'quantitative', title: 'wins', axis: { tickMinStep: 1 } } } },
    });
  }
  return charts;
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function fmt(v: unknown, col: string): string {
  if (typeof v !== 'number') return v === undefined ? '' : esc(v);
  if (Number.isNaN(v)) return '';
  if (/^(calamept|mmlu|boolq|copa|multirc|fertility_boost|efficiency_gain|repetition)/.test(col) && col !== 'calamept_n') return (100 * v).toFixed(2) + '%';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(4);
}

export interface ReportOptions { title: string; subtitle?: string; notes?: string[] }

export async function renderReport(rows: ResultRow[], opts: ReportOptions): Promise<string> {
  const charts = chartSpecs(rows);
  const svgs = await Promise.all(charts.map((c) => renderSvg(c.spec)));
  const cols = ROW_COLUMNS.filter((c) => c === 'id' || rows.some((r) => r[c] !== undefined && !(typeof r[c] === 'number' && Number.isNaN(r[c] as number))));
  const table = `<table class="results"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${cols.map((c) => `<td>${c === 'model' ? esc(shortModel(r.model)) : fmt(r[c], c)}</td>`).join('')}</tr>`).join('') + '</tbody></table>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(opts.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 6px} .sub,.note{color:#666;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:24px} .chart{border:1px solid #ddd;border-radius:6px;padding:10px;background:#fff}
.chart h3{font-size:14px;margin:0 0 6px} table{border-collapse:collapse;font-size:12px;margin-top:8px;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap} th{background:#f4f4f4;position:sticky;top:0} table.results td:nth-child(-n+9),table.tuning td:nth-child(-n+2){text-align:left}
</style></head><body>
<h1>${esc(opts.title)}</h1>
${opts.subtitle ? `<div class="sub">${esc(opts.subtitle)}</div>` : ''}
${(opts.notes ?? []).map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
<h2>Charts</h2>
<div class="charts">
${charts.map((c, i) => `<div class="chart" id="chart-${esc(c.id)}" data-chart="${esc(c.id)}"><h3>${esc(c.title)}</h3>${svgs[i]}${c.note ? `<div class="note">${esc(c.note)}</div>` : ''}</div>`).join('\n')}
</div>
${tuningTable(tuningComparison(rows))}
<h2>Results</h2>
<p class="note">bpb: bits per UTF-8 byte (tokenizer-independent); ppl: per-token perplexity (depends on the tokenizer); input: which tokenizer encoded the input (extended = the model's own, original = the research's setup).</p>
${table}
</body></html>
`;
}
