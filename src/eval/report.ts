// Experiment results as flat rows, CSV, and one self-contained HTML page whose charts are
// Vega-Lite specs compiled and rendered to inline SVG in Node (no scripts, no network).
import type * as vl from 'vega-lite';
import { csvField } from '../io/csv.ts';
import { escapeHtml as esc } from '../io/html.ts';
import { renderSvg } from './chart-svg.ts';
import { isMissing, num, pct, relChange } from './number-format.ts';
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
  optimizer?: string;
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
    fertility_boost_greedy: m.fertility_boost?.greedy, fertility_boost_mean: m.fertility_boost?.mean,
    // a std over one run is 0 by construction, not a measured spread: left out
    fertility_boost_std: (m.fertility_boost?.runs ?? 2) > 1 ? m.fertility_boost?.std : undefined,
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

type Num = number | null | undefined;
const val = (r: ResultRow, k: keyof ResultRow): number | undefined => (typeof r[k] === 'number' && !isMissing(r[k] as number) ? (r[k] as number) : undefined);
const has = (rows: ResultRow[], k: keyof ResultRow) => rows.some((r) => val(r, k) !== undefined);
const shortModel = (m: string) => m.split(/[\\/]/).filter(Boolean).pop() ?? m;
const thousands = (n: number) => n.toLocaleString('en-US');
const isDefaultVariant = (r: ResultRow) => r.method === 'continue' && r.mode === 'merges';

export const NO_TUNING = 'no tuning';
export const BASE_MODEL = 'original model';

/** What a stage means to a reader; the charts colour by it, always with the same colour. */
const STAGE_NAMES: Record<string, string> = { BASELINE: BASE_MODEL, INITIALIZED_NO_TRAINING: 'extended, no tuning', INITIALIZED_WITH_TRAINING: 'extended + tuned' };
const STAGE_COLOURS = ['#8c8c8c', '#f58518', '#4c78a8'];
const stageName = (s: string) => STAGE_NAMES[s] ?? s;
/** The stage colour scale over the stages present (a legend lists only what the chart shows). */
function stageScale(stages: Iterable<string>) {
  const present = new Set(stages);
  const keep = Object.values(STAGE_NAMES).map((n, i) => [n, STAGE_COLOURS[i]] as const).filter(([n]) => present.has(n));
  return { domain: keep.map(([n]) => n), range: keep.map(([, c]) => c) };
}

/** A compact name for a row: what makes it different from the others ("mean N=5000 +tune output+input"). */
function configLabel(r: ResultRow, models: number): string {
  const model = models > 1 ? `${shortModel(r.model)} ` : '';
  if (r.stage === 'BASELINE') return `${model}original`;
  const variant = isDefaultVariant(r) ? '' : ` ${r.method}/${r.mode}`;
  const input = r.input === 'original' ? ' [orig. input]' : '';
  const tune = r.stage === 'INITIALIZED_WITH_TRAINING' ? ` +tune${r.tune && r.tune !== '-' && r.tune !== 'default' ? ` ${r.tune}` : ''}` : '';
  return `${model}${r.init} N=${r.numTokens}${variant}${input}${tune}`;
}

/** Labels for every row, made unique (a chart draws rows with the same label on top of each other). */
function configLabels(rows: ResultRow[]): string[] {
  const models = new Set(rows.map((r) => r.model)).size;
  const labels = rows.map((r) => configLabel(r, models));
  const seen = new Map<string, number>();
  return labels.map((l) => {
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    return n === 1 ? l : `${l} #${n}`;
  });
}

/** A measure: how it is shown (share as %, decimals) and whether its axis should start at 0. */
interface Measure { field: keyof ResultRow; title: string; pct?: boolean; digits?: number; lowerIsBetter?: boolean }

/** A value as the tables and the chart labels show it. */
function shown(x: Num, m: Pick<Measure, 'pct' | 'digits' | 'field'>): string {
  if (isMissing(x)) return '-';
  if (m.pct) return pct(x);
  if (m.digits !== undefined) return num(x, m.digits);
  return Number.isInteger(x) ? String(x) : x.toFixed(m.field.startsWith('bpb') ? 4 : 1);
}

/**
 * A y (or x) domain that shows the differences: shares and counts from 0 (never an empty axis when
 * every value is 0), other quantities (bits per byte) around the data with the shortest bar still visible.
 */
function domainOf(values: number[], fromZero: boolean, isPct = false): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (fromZero) return [0, hi > 0 ? hi * 1.18 : isPct ? 0.01 : 1];
  const range = hi - lo || Math.abs(hi) * 0.02 || 1;
  return [Math.max(0, lo - 0.6 * range), hi + 0.2 * range];
}

/** The tuning comparison's measures: row field, title, and whether the value is a share (shown as %). */
export const TUNING_MEASURES: Measure[] = [
  { field: 'bpb_pt', title: 'bits per byte PT', lowerIsBetter: true },
  { field: 'bpb_en', title: 'bits per byte EN', lowerIsBetter: true },
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
      const variant = isDefaultVariant(r) ? '' : ` ${r.method}/${r.mode}`;
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
  const measures = TUNING_MEASURES.filter((m) => groups.some((g) => g.variants.some((v) => val(v.row, m.field) !== undefined)));
  if (groups.length === 0 || measures.length === 0) return null;
  const order = [...new Set(groups.flatMap((g) => g.variants.map((v) => v.variant)))];
  const values = groups.flatMap((g) => g.variants.flatMap((v) => measures.flatMap((m) => {
    const x = val(v.row, m.field);
    return x === undefined ? [] : [{ group: g.label, variant: v.variant, measure: m.title, value: x, label: shown(x, m) }];
  })));
  // the original model and the untuned model in the colours the other charts give them
  const others = ['#4c78a8', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#9d755d', '#ff9da6'];
  let next = 0;
  const variantColours = order.map((v) => (v === BASE_MODEL ? STAGE_COLOURS[0] : v === NO_TUNING ? STAGE_COLOURS[1] : others[next++ % others.length]));
  // one panel row per measure, each with its own axis: bits per byte around the data (differences of 1%
  // matter there), shares and counts from 0
  const rowsOfPanels = measures.map((m, i) => {
    const xs = values.filter((v) => v.measure === m.title).map((v) => v.value);
    const domain = domainOf(xs, !m.lowerIsBetter, m.pct);
    return {
      title: { text: m.title + (m.lowerIsBetter ? ' (lower is better)' : ''), anchor: 'start', fontSize: 12 },
      transform: [{ filter: { field: 'measure', equal: m.title } }],
      facet: { column: { field: 'group', type: 'nominal', title: null, header: { labels: i === 0, labelLimit: 320 } } },
      spec: {
        width: 220, height: { step: 14 },
        encoding: {
          y: { field: 'variant', type: 'nominal', sort: order, title: null },
          x: { field: 'value', type: 'quantitative', title: null, scale: { domain, nice: false }, axis: { format: m.pct ? '.1%' : undefined, tickCount: 4 } },
        },
        layer: [
          { mark: { type: 'bar', clip: true }, encoding: { color: { field: 'variant', type: 'nominal', scale: { domain: order, range: variantColours }, legend: null }, tooltip: [{ field: 'group' }, { field: 'variant' }, { field: 'measure' }, { field: 'label', title: 'value' }] } },
          { mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 }, encoding: { text: { field: 'label' } } },
        ],
      },
    };
  });
  return {
    id: 'tuning', title: 'Tuning variants: the original model, no tuning and each tuning of the same extended model',
    note: 'Bits per byte: lower is better (extended tokenizer on the input unless marked [orig. input]); its axis does not start at 0. FertilityBoost, CalamePT: higher is better. ' +
      'Median rank of the new token at its first uses in the PT held-out text, prefix in extended ids / read as original ids (extended-vocabulary decoding): lower is better. ' +
      'Tune wall time includes the hidden-state cache even when a variant reused one built by another.',
    spec: { background: 'white', data: { values }, vconcat: rowsOfPanels, spacing: 14 } as unknown as vl.TopLevelSpec,
  };
}

/** A bar per row (one colour per stage, named in the legend), its value printed on it. */
function perConfigChart(rows: ResultRow[], labels: string[], id: string, title: string, m: Measure, note?: string): ChartSpec | null {
  const data = rows.flatMap((r, i) => {
    const x = val(r, m.field);
    return x === undefined ? [] : [{ config: labels[i], model: shortModel(r.model), stage: stageName(r.stage), input: r.input, value: x, label: shown(x, m) }];
  });
  if (data.length === 0) return null;
  const domain = domainOf(data.map((d) => d.value), !m.lowerIsBetter, m.pct);
  const axisNote = m.lowerIsBetter ? `The axis starts at ${domain[0].toFixed(2)}, not 0, so that the differences show.` : '';
  return {
    id, title, note: [note, axisNote].filter(Boolean).join(' ') || undefined,
    spec: {
      width: Math.max(320, 42 * data.length), height: 240, background: 'white', data: { values: data },
      encoding: { x: { field: 'config', type: 'nominal', title: null, sort: null, axis: { labelAngle: -30, labelLimit: 0 } } },
      layer: [
        { mark: { type: 'bar', clip: true },
          encoding: {
            y: { field: 'value', type: 'quantitative', title: m.title, scale: { domain, nice: false }, axis: { format: m.pct ? '.1%' : undefined } },
            color: { field: 'stage', type: 'nominal', title: 'stage', scale: stageScale(data.map((d) => d.stage)), legend: { labelLimit: 320, orient: 'top' } },
            tooltip: [{ field: 'model' }, { field: 'config' }, { field: 'stage' }, { field: 'input' }, { field: 'label', title: m.title }],
          } },
        { mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 10 }, encoding: { y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } } },
      ],
    } as vl.TopLevelSpec,
  };
}

/** The charts that the rows have data for. */
export function chartSpecs(rows: ResultRow[]): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const labels = configLabels(rows);
  const models = new Set(rows.map((r) => r.model)).size;
  if (has(rows, 'fertility_pt')) {
    // input fertility depends on the tokenizer only: one point per model x method x mode x N (baseline at N = 0)
    const seen = new Set<string>();
    const variants = new Set(rows.filter((r) => r.stage !== 'BASELINE').map((r) => `${r.method}/${r.mode}`)).size;
    const pts = rows.filter((r) => val(r, 'fertility_pt') !== undefined && (r.input === 'extended' || r.stage === 'BASELINE')).filter((r) => {
      const k = `${r.model}|${r.method}|${r.mode}|${r.numTokens}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    }).flatMap((r) => {
      // a series per language (and per model and tokens method when there are several): its own colour and legend name
      const prefix = `${models > 1 ? `${shortModel(r.model)} ` : ''}${variants > 1 && r.stage !== 'BASELINE' ? `${r.method}/${r.mode} ` : ''}`;
      const series = (lang: string) => r.stage === 'BASELINE' && variants > 1 ? null : `${prefix}${lang}`;
      const out = [];
      for (const [lang, x] of [['PT', val(r, 'fertility_pt')], ['EN', val(r, 'fertility_en')]] as const) {
        if (x === undefined) continue;
        // the original tokenizer starts every tokens method's line
        const names = series(lang) === null ? [...new Set(rows.filter((u) => u.stage !== 'BASELINE' && u.model === r.model).map((u) => `${models > 1 ? `${shortModel(r.model)} ` : ''}${u.method}/${u.mode} ${lang}`))] : [series(lang)!];
        for (const s of names) out.push({ numTokens: r.numTokens, series: s, value: x, label: x.toFixed(2) });
      }
      return out;
    });
    const domain = domainOf(pts.map((p) => p.value), false);
    // the top point at each N gets its label above, the others below (close values would overprint)
    const top = new Map<number, number>();
    for (const p of pts) top.set(p.numTokens, Math.max(top.get(p.numTokens) ?? -Infinity, p.value));
    const labelled = pts.map((p) => ({ ...p, above: p.value >= top.get(p.numTokens)! }));
    charts.push({
      id: 'fertility', title: 'Input fertility (tokens per word) vs number of new tokens (lower is better)', note: 'N = 0 is the original tokenizer.',
      spec: {
        width: 420, height: 240, background: 'white', data: { values: labelled },
        encoding: {
          x: { field: 'numTokens', type: 'quantitative', title: 'new tokens (N)' },
          y: { field: 'value', type: 'quantitative', title: 'tokens per word', scale: { domain, nice: false } },
          color: { field: 'series', type: 'nominal', title: 'text', legend: { orient: 'top', labelLimit: 320 } },
        },
        layer: [
          { mark: { type: 'line', point: { filled: true, size: 50 } } },
          { transform: [{ filter: 'datum.above' }], mark: { type: 'text', dy: -9, fontSize: 10 }, encoding: { text: { field: 'label' } } },
          { transform: [{ filter: '!datum.above' }], mark: { type: 'text', dy: 12, fontSize: 10 }, encoding: { text: { field: 'label' } } },
        ],
      } as vl.TopLevelSpec,
    });
  }
  const perConfig = (id: string, title: string, m: Measure, note?: string) => {
    const c = perConfigChart(rows, labels, id, title, m, note);
    if (c) charts.push(c);
  };
  perConfig('bpb-pt', 'Bits per byte, PT held-out (lower is better)', { field: 'bpb_pt', title: 'bits per byte', lowerIsBetter: true },
    'Tokenizer-independent; one bar per init method and N ([orig. input]: the original tokenizer encoded the input).');
  perConfig('bpb-en', 'Bits per byte, EN held-out (lower is better)', { field: 'bpb_en', title: 'bits per byte', lowerIsBetter: true });
  perConfig('calamept', 'CalamePT greedy accuracy', { field: 'calamept', title: 'accuracy', pct: true });
  perConfig('mmlu', 'MMLU accuracy (zero-shot)', { field: 'mmlu', title: 'accuracy', pct: true });
  perConfig('boolq-en', 'BoolQ (EN) accuracy', { field: 'boolq_en', title: 'accuracy', pct: true });
  perConfig('copa-en', 'COPA (EN) accuracy', { field: 'copa_en', title: 'accuracy', pct: true });
  if (has(rows, 'fertility_boost_greedy')) {
    const pts = rows.flatMap((r, i) => {
      const g = val(r, 'fertility_boost_greedy');
      if (g === undefined) return [];
      const out = [{ config: labels[i], temperature: 'T = 0 (greedy)', value: g, lo: g, hi: g, label: pct(g) }];
      const mean = val(r, 'fertility_boost_mean');
      const sd = val(r, 'fertility_boost_std') ?? 0;
      if (mean !== undefined) out.push({ config: labels[i], temperature: 'T = 0.8 (mean of runs)', value: mean, lo: Math.max(0, mean - sd), hi: mean + sd, label: pct(mean) });
      return out;
    });
    const domain = domainOf(pts.map((p) => p.hi), true, true);
    const temperature = { field: 'temperature', type: 'nominal', title: 'decoding' } as const;
    charts.push({
      id: 'fertility-boost', title: 'FertilityBoost: share of positions where the model picks a new token',
      note: 'Teacher-forced on PT held-out paragraphs read through the original tokenizer; error bars: ±1 std over runs. 0.00% means the model never picked a new token.',
      spec: {
        width: Math.max(320, 70 * new Set(pts.map((p) => p.config)).size), height: 240, background: 'white', data: { values: pts },
        encoding: { x: { field: 'config', type: 'nominal', title: null, sort: null, axis: { labelAngle: -30, labelLimit: 0 } }, xOffset: temperature },
        layer: [
          { mark: 'bar', encoding: {
            y: { field: 'value', type: 'quantitative', title: 'share of positions', scale: { domain, nice: false }, axis: { format: '.1%' } },
            color: { ...temperature, scale: { range: ['#4c78a8', '#e45756'] }, legend: { labelLimit: 320, orient: 'top' } },
            tooltip: [{ field: 'config' }, { field: 'temperature' }, { field: 'label', title: 'share' }],
          } },
          { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
          { mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 9 }, encoding: { y: { field: 'hi', type: 'quantitative' }, text: { field: 'label' } } },
        ],
      } as vl.TopLevelSpec,
    });
  }
  // which init method wins (lowest PT bpb) within each model x N x method x mode x stage x input group
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    if (r.stage === 'BASELINE' || val(r, 'bpb_pt') === undefined) continue;
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
    const values = inits.map((init) => ({ init, wins: wins.get(init) ?? 0 }));
    charts.push({
      id: 'init-wins', title: 'Init-analysis wins: lowest PT bits per byte per comparison', note: `${contested} comparison(s): model x N x method x mode x stage (x tuning) x input.`,
      spec: {
        width: Math.max(240, 90 * inits.length), height: 200, background: 'white', data: { values },
        encoding: { x: { field: 'init', type: 'nominal', title: 'init method', sort: null, axis: { labelAngle: 0 } } },
        layer: [
          { mark: 'bar', encoding: { y: { field: 'wins', type: 'quantitative', title: 'wins', scale: { domain: [0, Math.max(...values.map((v) => v.wins)) + 1] }, axis: { tickMinStep: 1 } }, color: { value: '#4c78a8' } } },
          { mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 11 }, encoding: { y: { field: 'wins', type: 'quantitative' }, text: { field: 'wins' } } },
        ],
      } as vl.TopLevelSpec,
    });
  }
  return charts;
}

/** Relative change as a sentence part: "50% fewer" / "3.2% more" (tokens), "+4.0%" (other measures). */
function fewerMore(now: number, before: number): string {
  const r = now / before - 1;
  const a = Math.abs(100 * r);
  const s = a >= 10 ? a.toFixed(0) : a.toFixed(1);
  return r <= 0 ? `${s}% fewer` : `${s}% more`;
}

/**
 * The report's first paragraph, from the numbers (one per model): how many tokens the extension saves
 * in Portuguese (and English), and, for the best configuration at the largest N (tuned ones first,
 * lowest PT bits per byte), what it costs in bits per byte and how often the model picks a new token.
 * Every clause is left out when its numbers are missing.
 */
export function headline(rows: ResultRow[]): string[] {
  const out: string[] = [];
  const models = [...new Set(rows.map((r) => r.model))];
  for (const model of models) {
    const mine = rows.filter((r) => r.model === model);
    const base = mine.find((r) => r.stage === 'BASELINE');
    const ext = mine.filter((r) => r.stage !== 'BASELINE');
    const name = models.length > 1 ? `${shortModel(model)}: ` : '';
    if (ext.length === 0) {
      if (!base) continue;
      const parts = [
        val(base, 'fertility_pt') !== undefined ? `Portuguese ${num(base.fertility_pt, 2)} tokens per word` : '',
        val(base, 'bpb_pt') !== undefined ? `PT bits/byte ${num(base.bpb_pt, 3)}` : '',
        val(base, 'bpb_en') !== undefined ? `English ${num(base.bpb_en, 3)}` : '',
      ].filter(Boolean);
      out.push(`${name}the original model only${parts.length ? `: ${parts.join(', ')}` : ''}.`);
      continue;
    }
    const pool0 = ext.some((r) => r.input === 'extended') ? ext.filter((r) => r.input === 'extended') : ext;
    const n = Math.max(...pool0.map((r) => r.numTokens));
    const atN = pool0.filter((r) => r.numTokens === n);
    const tuned = atN.filter((r) => r.stage === 'INITIALIZED_WITH_TRAINING');
    const pool = tuned.length ? tuned : atN;
    const score = (r: ResultRow) => val(r, 'bpb_pt') ?? (val(r, 'fertility_boost_greedy') !== undefined ? -val(r, 'fertility_boost_greedy')! : Infinity);
    const best = pool.reduce((a, b) => (score(b) < score(a) ? b : a));
    const how = isDefaultVariant(best) ? '' : ` (${best.method}/${best.mode})`;
    const tokens: string[] = [];
    for (const [lang, k] of [['Portuguese', 'fertility_pt'], ['English', 'fertility_en']] as const) {
      const now = val(best, k);
      if (now === undefined) continue;
      const before = base ? val(base, k) : undefined;
      const takes = tokens.length ? '' : ' takes';
      if (before === undefined || before <= 0) tokens.push(`${lang}${takes} ${num(now, 2)} tokens per word`);
      else if (num(now, 2) === num(before, 2)) tokens.push(`${lang} unchanged (${num(now, 2)} tokens per word)`);
      else tokens.push(`${lang}${takes} ${fewerMore(now, before)} tokens per word (${num(before, 2)} → ${num(now, 2)})`);
    }
    let s = `${name}${thousands(n)} new tokens${how}${tokens.length ? `: ${tokens.join(', ')}` : ''}.`;
    const stage = best.stage === 'INITIALIZED_WITH_TRAINING'
      ? `After tuning${best.tune && best.tune !== '-' && best.tune !== 'default' ? ` (${best.tune})` : ''}`
      : 'Without tuning';
    const effects: string[] = [];
    const bpb: string[] = [];
    for (const [lang, k] of [['PT', 'bpb_pt'], ['English', 'bpb_en']] as const) {
      const now = val(best, k);
      if (now === undefined) continue;
      const before = base ? val(base, k) : undefined;
      bpb.push(before !== undefined ? `${lang} ${relChange(now, before)} (${num(before, 3)} → ${num(now, 3)})` : `${lang} ${num(now, 3)}`);
    }
    if (bpb.length) effects.push(`bits/byte (lower is better) ${bpb.join(', ')}`);
    const boost = val(best, 'fertility_boost_greedy');
    if (boost !== undefined) effects.push(boost > 0 ? `the model picks a new token at ${pct(boost, boost >= 0.1 ? 0 : 1)} of positions (greedy)` : 'the model never picks a new token (greedy)');
    const cal = val(best, 'calamept');
    if (cal !== undefined) {
      const before = base ? val(base, 'calamept') : undefined;
      effects.push(`CalamePT ${before !== undefined ? `${pct(before)} → ` : ''}${pct(cal)}`);
    }
    if (effects.length) s += ` ${stage}, init ${best.init}: ${effects.join('; ')}.`;
    if (pool.length > 1) s += ` (The best of ${pool.length} ${tuned.length ? 'tuned ' : ''}configurations at N = ${thousands(n)} by PT bits/byte; all of them below.)`;
    out.push(s);
  }
  return out;
}

/** The key metrics: short headers (the full name on hover), the columns that fit 1400 px. */
const KEY_METRICS: Array<Measure & { head: string; delta?: boolean }> = [
  { field: 'fertility_pt', head: 'PT tokens/word', title: 'input fertility, PT held-out (tokens per word; lower is better)', digits: 3 },
  { field: 'fertility_en', head: 'EN tokens/word', title: 'input fertility, EN held-out (tokens per word)', digits: 3 },
  { field: 'bpb_pt', head: 'PT bits/byte', title: 'bits per UTF-8 byte, PT held-out (lower is better); change vs the original model', digits: 4, delta: true },
  { field: 'bpb_en', head: 'EN bits/byte', title: 'bits per UTF-8 byte, EN held-out (lower is better); change vs the original model', digits: 4, delta: true },
  { field: 'fertility_boost_greedy', head: 'new-token picks T=0', title: 'FertilityBoost, greedy: share of positions where the model picks a new token', pct: true },
  { field: 'fertility_boost_mean', head: 'new-token picks T=0.8', title: 'FertilityBoost at T = 0.8, mean ± std over runs', pct: true },
  { field: 'calamept', head: 'CalamePT', title: 'CalamePT greedy accuracy', pct: true },
  { field: 'mmlu', head: 'MMLU', title: 'MMLU accuracy (zero-shot)', pct: true },
  { field: 'boolq_en', head: 'BoolQ EN', title: 'BoolQ (EN) accuracy', pct: true },
  { field: 'copa_en', head: 'COPA EN', title: 'COPA (EN) accuracy', pct: true },
  { field: 'boolq', head: 'BoolQ PT', title: 'BoolQ (PT) accuracy', pct: true },
  { field: 'copa', head: 'COPA PT', title: 'COPA (PT) accuracy', pct: true },
  { field: 'multirc', head: 'MultiRC', title: 'MultiRC (PT) accuracy', pct: true },
  { field: 'chars_per_step', head: 'chars/step', title: 'greedy decoding: characters per decode step (higher is faster)', digits: 2 },
  { field: 'new_token_rank_ext', head: 'new-token rank', title: 'median rank of the new token at its first uses (extended-id prefix; lower is better)', digits: 1 },
  { field: 'tune_seconds_with_cache', head: 'tune s', title: 'tuning wall time in seconds (hidden-state cache included)', digits: 0 },
];

const KEY_COLUMNS = 11;
const KEY_PRIORITY: Array<keyof ResultRow> = ['fertility_pt', 'fertility_en', 'bpb_pt', 'bpb_en', 'fertility_boost_greedy', 'fertility_boost_mean', 'calamept',
  'chars_per_step', 'new_token_rank_ext', 'tune_seconds_with_cache', 'mmlu', 'boolq_en', 'copa_en', 'boolq', 'copa', 'multirc'];

function keyTable(rows: ResultRow[]): string {
  const labels = configLabels(rows);
  // at most KEY_COLUMNS metrics (what fits 1400 px), by priority; the rest are in the full table
  const keep = new Set(KEY_PRIORITY.filter((f) => has(rows, f)).slice(0, KEY_COLUMNS));
  const metrics = KEY_METRICS.filter((m) => keep.has(m.field));
  const baseOf = (r: ResultRow) => rows.find((u) => u.stage === 'BASELINE' && u.model === r.model);
  const cell = (r: ResultRow, m: (typeof metrics)[number]) => {
    const x = val(r, m.field);
    if (x === undefined) return '<td class="na">-</td>';
    let s = esc(shown(x, m));
    if (m.field === 'fertility_boost_mean' && val(r, 'fertility_boost_std') !== undefined) s += `<span class="delta"> ± ${esc(pct(r.fertility_boost_std))}</span>`;
    const b = baseOf(r);
    if (m.delta && b && b !== r && val(b, m.field) !== undefined) s += `<span class="delta"> ${esc(relChange(x, val(b, m.field)))}</span>`;
    return `<td>${s}</td>`;
  };
  const head = `<tr><th class="id">configuration</th><th class="id">stage</th>${metrics.map((m) => `<th title="${esc(m.title)}" data-metric="${esc(m.field)}">${esc(m.head)}</th>`).join('')}</tr>`;
  const body = rows.map((r, i) => `<tr><td class="id" title="${esc(r.id)}">${esc(labels[i])}</td><td class="id">${esc(stageName(r.stage))}</td>${metrics.map((m) => cell(r, m)).join('')}</tr>`).join('');
  return `<table class="key" id="key-table"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function tuningTable(groups: TuningGroup[]): string {
  if (groups.length === 0) return '';
  const measures = TUNING_MEASURES.filter((m) => groups.some((g) => g.variants.some((v) => val(v.row, m.field) !== undefined)));
  const head = ['model × N × init', 'tuning', ...measures.map((m) => m.title)];
  const body = groups.flatMap((g) => g.variants.map((v) => `<tr><td>${esc(g.label)}</td><td>${esc(v.variant)}</td>${measures.map((m) => `<td>${esc(shown(val(v.row, m.field), m))}</td>`).join('')}</tr>`));
  return `<details><summary>Tuning comparison as a table</summary>
<table class="tuning" id="tuning-table"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table></details>`;
}


/** Full-table cells: shares as %, the way the key table and the charts show them. */
function fmt(v: unknown, col: string): string {
  if (typeof v !== 'number') return v === undefined || v === null ? '' : esc(v);
  if (Number.isNaN(v)) return '';
  if (/^(calamept|mmlu|boolq|copa|multirc|fertility_boost|efficiency_gain|repetition)/.test(col) && col !== 'calamept_n') return pct(v);
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(4);
}

export interface ReportOptions {
  title: string;
  subtitle?: string;
  notes?: string[];
  /** What was evaluated on less than the full sets (results.json `subsets`), shown once. */
  subsets?: Record<string, string>;
  /** What a time budget chose (corpus sizes, steps), shown once. */
  budget?: string;
}

/** " (406 rows)" when every row with CalamePT ran the same number of rows. */
function calameRows(rows: ResultRow[]): string {
  const ns = new Set(rows.map((r) => val(r, 'calamept_n')).filter((n) => n !== undefined));
  return ns.size === 1 ? ` (${[...ns][0]} rows)` : '';
}

export async function renderReport(rows: ResultRow[], opts: ReportOptions): Promise<string> {
  const charts = chartSpecs(rows);
  const svgs = await Promise.all(charts.map((c) => renderSvg(c.spec)));
  const cols = ROW_COLUMNS.filter((c) => c === 'id' || rows.some((r) => r[c] !== undefined && r[c] !== null && !(typeof r[c] === 'number' && Number.isNaN(r[c] as number))));
  const table = `<table class="results"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${cols.map((c) => `<td>${c === 'model' ? esc(shortModel(r.model)) : fmt(r[c], c)}</td>`).join('')}</tr>`).join('') + '</tbody></table>';
  const setup = [
    ...(opts.budget ? [`<li><b>Budget:</b> ${esc(opts.budget)}</li>`] : []),
    ...Object.entries(opts.subsets ?? {}).map(([k, v]) => `<li><b>Subset (${esc(k)}):</b> ${esc(v)}${k === 'calamept' ? esc(calameRows(rows)) : ''}</li>`),
  ];
  const head = headline(rows);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(opts.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 6px} .sub,.note{color:#666;font-size:13px}
.headline{font-size:16px;line-height:1.45;margin:14px 0;padding:10px 14px;background:#f3f7fb;border-left:4px solid #4c78a8;max-width:1100px}
ul.setup{font-size:13px;color:#444;margin:6px 0;padding-left:18px}
.charts{display:flex;flex-wrap:wrap;gap:24px} .chart{border:1px solid #ddd;border-radius:6px;padding:10px;background:#fff;max-width:100%;overflow-x:auto}
.chart h3{font-size:14px;margin:0 0 6px} .chart .note{max-width:520px}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap} th{background:#f4f4f4;position:sticky;top:0}
table.key th{white-space:normal;max-width:86px;vertical-align:bottom} table.key .id{text-align:left} td.na{color:#aaa} .delta{color:#777;font-size:11px}
details{margin-top:14px} summary{cursor:pointer;font-weight:600;font-size:14px} details table{display:block;overflow-x:auto;max-width:100%}
table.results td:nth-child(-n+9),table.tuning td:nth-child(-n+2){text-align:left}
</style></head><body>
<h1>${esc(opts.title)}</h1>
${opts.subtitle ? `<div class="sub">${esc(opts.subtitle)}</div>` : ''}
${head.length ? `<div class="headline" id="headline">${head.map((p) => `<p>${esc(p)}</p>`).join('')}</div>` : ''}
${(opts.notes ?? []).map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
${setup.length ? `<ul class="setup">${setup.join('')}</ul>` : ''}
<h2>Key metrics</h2>
<p class="note">Bits per byte: tokenizer-independent, lower is better, with the change vs the original model. New-token picks (FertilityBoost): share of positions where the model picks a new token. Hover a header for its definition; every column is in the full table below.</p>
${keyTable(rows)}
<h2>Charts</h2>
<div class="charts">
${charts.map((c, i) => `<div class="chart" id="chart-${esc(c.id)}" data-chart="${esc(c.id)}"><h3>${esc(c.title)}</h3>${svgs[i]}${c.note ? `<div class="note">${esc(c.note)}</div>` : ''}</div>`).join('\n')}
</div>
${tuningTable(tuningComparison(rows))}
<details id="full-results"><summary>All results (${cols.length} columns)</summary>
<p class="note">bpb: bits per UTF-8 byte (tokenizer-independent); ppl: per-token perplexity (depends on the tokenizer); input: which tokenizer encoded the input (extended = the model's own, original = the research's setup).</p>
${table}
</details>
</body></html>
`;
}
