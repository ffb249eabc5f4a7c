// bench/tune.ts: no tuning vs seed heuristic vs output rows vs output + input rows on the demo model
// extended with N new PT tokens. Wall and CPU time of each tune run (/usr/bin/time), then per model:
// bits per byte PT/EN with the extended tokenizer on input and output, FertilityBoost at T = 0 and
// CalamePT (extended-vocabulary decoding: --encode-with the original), and the new tokens' median
// rank at their first use (compare-init's probes, from the PT held-out file).
//   node --import tsx bench/tune.ts [--quick] [--out runs/bench-tune] [--skip-eval] [--lr 1e-2] [--input-lr 3e-3]
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelDir } from '../src/io/model-dir.ts';
import { loadTokenizer, encodeBatch } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import { extendTokenizer } from '../src/tokenizer/extend.ts';
import { planRows, writeExtendedModel } from '../src/embeddings/surgery.ts';
import { parseInitMethod } from '../src/embeddings/init-methods.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { newTokenRank } from '../src/eval/new-token-rank.ts';
import { newTokenMap } from '../src/runtime/extended-decoding.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const skipEval = args.includes('--skip-eval');
const outIdx = args.indexOf('--out');
const out = path.resolve(outIdx >= 0 ? args[outIdx + 1] : path.join(root, 'runs', quick ? 'bench-tune-quick' : 'bench-tune'));
const flag = (name: string, def: string) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : def);
const lr = flag('--lr', '1e-2');
const inputLr = flag('--input-lr', '3e-3');
const demo = path.join(root, 'assets', 'models', 'tiny-en-llama');
const train = path.join(root, 'assets', 'corpora', 'pt-pt-parliament-train.txt.gz');
const ptHeld = path.join(root, 'assets', 'corpora', 'pt-pt-parliament-heldout.txt');
const enHeld = path.join(root, 'assets', 'corpora', 'en-books-heldout.txt');
const N = quick ? 500 : 5000;
const cfg = quick
  ? { corpusBytes: '200k', epochs: '1', inputBytes: '20k', evalBytes: '50000', boostTexts: '20', calameRows: 'handwritten', probes: 200 }
  : { corpusBytes: '1MB', epochs: '2', inputBytes: '300k', evalBytes: '100000', boostTexts: '50', calameRows: 'handwritten', probes: 1000 };
const cli = [path.join(root, 'src', 'cli', 'run.ts')];

function timed(label: string, argv: string[]): { wall: number; user: number; sys: number; stdout: string } {
  process.stderr.write(`\n--- ${label}: hack-tokenizer ${argv.join(' ')}\n`);
  const r = spawnSync('/usr/bin/time', ['-f', '@@time %e %U %S', process.execPath, '--import', 'tsx', ...cli, ...argv], {
    cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28,
  });
  const m = /@@time ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stderr ?? '');
  process.stderr.write((r.stderr ?? '').split('\n').filter((l) => !l.startsWith('@@time')).slice(-8).join('\n') + '\n');
  if (r.status !== 0 || !m) throw new Error(`${label} failed (exit ${r.status})`);
  return { wall: Number(m[1]), user: Number(m[2]), sys: Number(m[3]), stdout: r.stdout };
}

async function extendedModel(dir: string): Promise<void> {
  try {
    await fsp.access(path.join(dir, 'config.json'));
    return;
  } catch { /* build it */ }
  const base = await loadModelDir(demo);
  const tok = await loadTokenizer(base.tokenizerPath);
  const freq = await countWords(tok, bpeModelOf(base.tokenizerJson).kind, [train]);
  const learned = learnTokens(tok, freq, { method: 'continue', numTokens: N });
  const plan = planRows(base, learned.tokens.length, {});
  const ext = extendTokenizer(base.tokenizerJson, learned.tokens, { mode: 'merges', firstId: plan.firstId });
  const tmp = dir + '.tmp';
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  await writeExtendedModel(base, tmp, {
    plan, tokenizerJson: ext.json, init: parseInitMethod('mean'),
    tokens: learned.tokens.map((t, i) => ({ id: ext.newIds[i], subIds: t.originalIds })).filter((t) => t.id >= 0),
  });
  await fsp.rename(tmp, dir);
}

/**
 * compare-init's measure on one model: rank of the new token at sampled first uses, with the prefix in
 * extended ids (compare-init's setup) and the same prefix expanded to original ids (extended decoding).
 */
async function medianRank(modelDir: string, baseSize: number): Promise<{ ext: number; orig: number }> {
  const md = await loadModelDir(modelDir);
  const tok = await loadTokenizer(md.tokenizerPath);
  const map = await newTokenMap(tok, await loadTokenizer(path.join(demo, 'tokenizer.json')));
  const engine = await loadEngine(md, { threads: 2 });
  try {
    const r = await newTokenRank(engine, (t) => encodeBatch(tok, t), (id) => id >= baseSize, map, await fsp.readFile(ptHeld, 'utf8'), { probes: cfg.probes });
    return { ext: r.median_ext_prefix, orig: r.median_orig_prefix };
  } finally {
    await engine.dispose();
  }
}

function evalModel(label: string, model: string, extra: string[]): Record<string, unknown> {
  const file = path.join(out, `eval-${label}-${extra.includes('--encode-with') ? 'orig' : 'ext'}.json`);
  timed(`eval ${label}`, ['eval', '--model', model, ...extra, '--threads', '2', '--out', file]);
  return JSON.parse(spawnSync('cat', [file], { encoding: 'utf8' }).stdout);
}

async function main(): Promise<void> {
  await fsp.mkdir(out, { recursive: true });
  const ext = path.join(out, `ext${N}`);
  await extendedModel(ext);
  const baseSize = (await loadModelDir(demo)).embeddingRows;
  const work = path.join(out, 'work');
  const common = ['--base', demo, '--corpus', train, '--corpus-bytes', cfg.corpusBytes, '--epochs', cfg.epochs, '--threads', '2', '--work-dir', work, '--lr', lr];
  const runs: Record<string, { dir: string; time?: ReturnType<typeof timed>; summary?: Record<string, unknown> }> = { none: { dir: ext } };
  const variants: Array<[string, string[]]> = [
    ['output', ['--rows', 'output']],
    ['seed-heuristic', ['--rows', 'output', '--method', 'seed-heuristic', '--resume', '--lr', '1e-6']],
    ['output+input', ['--rows', 'both', '--resume', '--input-corpus-bytes', cfg.inputBytes, '--input-lr', inputLr]],
  ];
  for (const [name, flags] of variants) {
    const dir = path.join(out, `tuned-${name}`);
    const t = timed(`tune ${name}`, ['tune', '--model', ext, ...common, ...flags, '--out', dir]);
    runs[name] = { dir, time: t, summary: JSON.parse(t.stdout) };
  }
  const results: Record<string, Record<string, unknown>> = {};
  for (const [name, r] of Object.entries(runs)) {
    const row: Record<string, unknown> = {};
    if (r.time) Object.assign(row, { wall_s: r.time.wall, cpu_s: r.time.user + r.time.sys, summary: r.summary });
    const mr = await medianRank(r.dir, baseSize);
    row.median_rank = mr.ext;
    row.median_rank_original_prefix = mr.orig;
    if (!skipEval) {
      const e = evalModel(name, r.dir, ['--metrics', 'bpb', '--pt', ptHeld, '--en', enHeld, '--max-bytes', cfg.evalBytes]) as { metrics: { bpb: { pt: number; en: number } } };
      row.bpb_pt = e.metrics.bpb.pt;
      row.bpb_en = e.metrics.bpb.en;
      const o = evalModel(name, r.dir, ['--encode-with', demo, '--metrics', 'fertility-boost', '--bench', 'calamept', '--pt', ptHeld,
        '--boost-texts', cfg.boostTexts, '--boost-runs', '1', '--calamept-rows', cfg.calameRows]) as {
        metrics: { fertility_boost: { greedy: number } }; benchmarks: { calamept: { accuracy: number } };
      };
      row.fertility_boost_t0 = o.metrics.fertility_boost.greedy;
      row.calamept = o.benchmarks.calamept.accuracy;
    }
    results[name] = row;
    await fsp.writeFile(path.join(out, 'results.json'), JSON.stringify(results, null, 2));
  }
  if (!skipEval) {
    const b = evalModel('base', demo, ['--metrics', 'bpb', '--pt', ptHeld, '--en', enHeld, '--max-bytes', cfg.evalBytes]) as { metrics: { bpb: { pt: number; en: number } } };
    const c = evalModel('base-calame', demo, ['--bench', 'calamept', '--calamept-rows', cfg.calameRows]) as { benchmarks: { calamept: { accuracy: number } } };
    results.base = { bpb_pt: b.metrics.bpb.pt, bpb_en: b.metrics.bpb.en, calamept: c.benchmarks.calamept.accuracy };
  }
  await fsp.writeFile(path.join(out, 'results.json'), JSON.stringify(results, null, 2));
  const f = (x: unknown, d = 4) => (typeof x === 'number' ? x.toFixed(d) : '-');
  const lines = ['| variant | bpb PT | bpb EN | FertilityBoost T=0 | CalamePT | median rank (ext. / orig. prefix) | tune wall s | tune CPU s |', '|---|---|---|---|---|---|---|---|'];
  for (const [name, r] of Object.entries(results)) {
    lines.push(`| ${name} | ${f(r.bpb_pt)} | ${f(r.bpb_en)} | ${f(r.fertility_boost_t0, 3)} | ${f(r.calamept, 3)} | ${f(r.median_rank, 0)} / ${f(r.median_rank_original_prefix, 0)} | ${f(r.wall_s, 0)} | ${f(r.cpu_s, 0)} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench/tune: ${(e as Error).message}\n`);
  process.exit(1);
});
