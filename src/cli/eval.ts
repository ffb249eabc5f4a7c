// `hack-tokenizer eval`: metrics and benchmarks of one model, written to results.json.
import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../io/hub.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { BENCHMARKS, METRICS, defaultBenchFiles, evaluate, parseList, type BenchFiles, type EvalOptions } from '../eval/evaluate.ts';
import { loadSetup } from '../eval/setup.ts';
import { textPrefix } from '../eval/bpb.ts';
import { formatResults } from '../eval/summary.ts';
import { progressBar, info } from './progress.ts';
import { ASSETS_DIR } from './assets-dir.ts';
import { numberFlag } from './flags.ts';

interface EvalFlags {
  model: string; encodeWith?: string; original?: string; metrics?: string; bench?: string; pt?: string; en?: string; out?: string;
  maxBytes?: string; calameptRows?: string; calameptFile?: string; mmluDir?: string; mmluSubjects?: string;
  boolqEnFile?: string; copaEnFile?: string; boolqFile?: string; copaFile?: string; multircFile?: string;
  boostTexts?: string; boostRuns?: string; rankProbes?: string; threads?: string; calameptLl?: boolean; precision?: string;
}

const posInt = (flag: string, v: string | undefined) => numberFlag(flag, v, { int: true, min: 1 });

export async function readTextFile(flag: string, file: string, maxBytes?: number): Promise<{ file: string; text: string }> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    throw new Error(`${flag} ${file}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (text.trim().length === 0) throw new Error(`${flag} ${file}: the file is empty`);
  return { file: path.resolve(file), text: textPrefix(text, maxBytes) };
}

export const CALAME_ROWS: Record<string, ((r: { source: string }) => boolean) | undefined> = {
  all: undefined,
  handwritten: (r) => r.source === 'handwritten',
  generated: (r) => r.source !== 'handwritten',
};

export function stageBars(label: string) {
  const bar = progressBar(label, 0);
  let started = false;
  return {
    tick: (done: number, total: number) => { if (!started) { bar.setTotal(total); started = true; } bar.update(done); },
    stop: () => bar.stop(),
  };
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('Evaluate a model: input fertility, bits per byte, FertilityBoost/Output, decode speed, benchmarks (CalamePT, MMLU, BoolQ, COPA, extraGLUE); writes results.json')
    .requiredOption('--model <dir>', 'model directory (or Hub id) to evaluate, usually an extended model')
    .option('--encode-with <dir>', 'encode the input with this ORIGINAL model\'s tokenizer (the research\'s setup); also identifies the added tokens')
    .option('--original <dir>', 'the original model (identifies the added tokens, generates for decode-speed) without changing the input tokenizer')
    .option('--metrics <list>', `comma-separated: ${METRICS.join(', ')} (or all)`)
    .option('--bench <list>', `comma-separated: ${BENCHMARKS.join(', ')} (or all)`)
    .option('--pt <file>', 'Portuguese held-out text')
    .option('--en <file>', 'English held-out text')
    .option('--max-bytes <n>', 'use only the first N bytes of --pt / --en (documented subset)')
    .option('--calamept-rows <which>', 'CalamePT rows: all | handwritten | generated', 'all')
    .option('--calamept-file <file>', 'CalamePT JSONL', defaultBenchFiles(ASSETS_DIR).calamept)
    .option('--calamept-ll', 'CalamePT: also the log-likelihood variant (is the gold word the greedy continuation, teacher-forced)')
    .option('--mmlu-dir <dir>', 'MMLU directory with test/<subject>_test.csv', defaultBenchFiles(ASSETS_DIR).mmlu)
    .option('--mmlu-subjects <list>', 'comma-separated MMLU subjects (default: all 57)')
    .option('--boolq-en-file <file>', 'English BoolQ JSONL {query, choices, gold}', defaultBenchFiles(ASSETS_DIR)['boolq-en'])
    .option('--copa-en-file <file>', 'English COPA JSONL {query, choices, gold}', defaultBenchFiles(ASSETS_DIR)['copa-en'])
    .option('--boolq-file <file>', 'extraGLUE pt-PT BoolQ JSONL (passage, question, label)')
    .option('--copa-file <file>', 'extraGLUE pt-PT COPA JSONL (premise, choice1, choice2, question, label)')
    .option('--multirc-file <file>', 'extraGLUE pt-PT MultiRC JSONL (paragraph, question, answer, label)')
    .option('--boost-texts <n>', 'FertilityBoost: number of PT paragraphs (default 100)')
    .option('--boost-runs <n>', 'FertilityBoost: runs at T = 0.8 (default 10)')
    .option('--rank-probes <n>', 'new-token-rank: first uses of new tokens sampled from --pt (default 1000)')
    .option('--threads <n>', 'inference threads')
    .option('--precision <p>', 'float32 (exact) or int8 (decoder linear layers quantized per column: ~2x faster prefill on CPU, approximate; recorded in the results)', 'float32')
    .requiredOption('--out <file>', 'results.json to write')
    .action(async (o: EvalFlags) => {
      const metrics = parseList('--metrics', o.metrics, METRICS);
      const bench = parseList('--bench', o.bench, BENCHMARKS);
      if (metrics.length === 0 && bench.length === 0) throw new Error('nothing to do: pass --metrics and/or --bench');
      if (o.precision !== 'float32' && o.precision !== 'int8') throw new Error(`--precision: expected float32 or int8, got ${o.precision}`);
      const precision = o.precision;
      if (!(o.calameptRows! in CALAME_ROWS)) throw new Error(`--calamept-rows: expected all, handwritten or generated, got ${o.calameptRows}`);
      const maxBytes = posInt('--max-bytes', o.maxBytes);
      const texts: EvalOptions['texts'] = {};
      if (o.pt) texts.pt = await readTextFile('--pt', o.pt, maxBytes);
      if (o.en) texts.en = await readTextFile('--en', o.en, maxBytes);
      const benchFiles: BenchFiles = {
        calamept: o.calameptFile, mmlu: o.mmluDir, 'boolq-en': o.boolqEnFile, 'copa-en': o.copaEnFile,
        boolq: o.boolqFile, copa: o.copaFile, multirc: o.multircFile,
      };
      const model = await resolveModel(o.model);
      const encodeWith = o.encodeWith ? await resolveModel(o.encodeWith) : undefined;
      const original = o.original ? await resolveModel(o.original) : undefined;
      const { setup, engines } = await loadSetup(model, {
        encodeWith, original, threads: posInt('--threads', o.threads), precision, originalEngine: metrics.includes('decode-speed') || metrics.includes('repetition') || metrics.includes('new-token-rank'),
      });
      const subsets: Record<string, string> = {};
      if (maxBytes) subsets.texts = `first ${maxBytes} bytes of each held-out file`;
      if (precision === 'int8') subsets.precision = 'int8: decoder linear layers quantized per output column (approximate logits)';
      if (o.calameptRows !== 'all') subsets.calamept = `${o.calameptRows} rows only`;
      try {
        const res = await evaluate(setup, {
          metrics, bench, texts, benchFiles, calameFilter: CALAME_ROWS[o.calameptRows!], calameLogLikelihood: o.calameptLl === true,
          mmluSubjects: o.mmluSubjects?.split(',').map((s) => s.trim()).filter(Boolean),
          boostTexts: posInt('--boost-texts', o.boostTexts), boostRuns: posInt('--boost-runs', o.boostRuns), rankProbes: posInt('--rank-probes', o.rankProbes), subsets,
          onStage: stageBars,
        });
        await writeFileAtomic(o.out!, JSON.stringify(res, null, 1) + '\n');
        process.stdout.write(formatResults(res) + '\n');
        info(`wrote ${o.out}`);
      } finally {
        for (const e of engines) await e.dispose();
      }
    });
}
