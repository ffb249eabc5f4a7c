// `hack-tokenizer compare-init`: which embedding initialization gives new tokens the best start?
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { resolveModel } from '../io/hub.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { corpusLines, countWords } from '../tokenizer/corpus.ts';
import { bpeModelOf } from '../tokenizer/bpe-model.ts';
import { learnTokens } from '../tokenizer/learn.ts';
import { readTokensFile, type NewToken } from '../tokenizer/tokens-file.ts';
import { ALL_METHODS, SOURCE_METHODS, VALID_FORMS, parseInitMethodList } from '../embeddings/init-methods.ts';
import { checkInitNeeds } from '../embeddings/extend-model.ts';
import type { ExtendMode } from '../tokenizer/extend.ts';
import { compareInit, resultsMarkdown, writeCompareInitOutputs } from '../eval/init-analysis.ts';
import { progressBar, info, type Progress } from './progress.ts';
import { requiredNumberFlag } from './flags.ts';

interface Flags {
  model?: string;
  corpus?: string;
  methods: string;
  numTokens?: string;
  tokens?: string;
  samples: string;
  seed: string;
  mode: string;
  maxContext: string;
  batchSize: string;
  threads?: string;
  out?: string;
}

async function run(f: Flags): Promise<void> {
  if (!f.model) throw new Error('missing --model <dir|repo id>');
  if (!f.corpus) throw new Error('missing --corpus <file> (text or .gz, one paragraph per line)');
  if (!f.out) throw new Error('missing --out <dir>');
  const parsed = parseInitMethodList(f.methods === 'all' ? ALL_METHODS.join(',') : f.methods);
  checkInitNeeds(parsed, { mode: f.mode as ExtendMode, corpus: [f.corpus] });
  const methods = parsed.map((m) => m.spec);
  const samples = requiredNumberFlag('--samples', f.samples, { int: true, min: 1 });
  const seed = requiredNumberFlag('--seed', f.seed, { int: true, min: 0 });
  const maxContext = requiredNumberFlag('--max-context', f.maxContext, { int: true, min: 1 });
  const batchSize = requiredNumberFlag('--batch-size', f.batchSize, { int: true, min: 1 });
  const threads = f.threads === undefined ? undefined : requiredNumberFlag('--threads', f.threads, { int: true, min: 1 });
  if (f.mode !== 'added' && f.mode !== 'merges') throw new Error(`--mode must be "added" or "merges" (got "${f.mode}")`);
  try {
    await fsp.access(f.corpus);
  } catch {
    throw new Error(`--corpus ${f.corpus}: file not found`);
  }
  const model = await loadModelDir(await resolveModel(f.model));

  let tokens: NewToken[];
  if (f.tokens) {
    tokens = (await readTokensFile(f.tokens)).tokens;
    if (f.numTokens !== undefined) tokens = tokens.slice(0, requiredNumberFlag('--num-tokens', f.numTokens, { int: true, min: 1 }));
  } else {
    const numTokens = requiredNumberFlag('--num-tokens', f.numTokens, { int: true, min: 1 });
    info(`learning ${numTokens} new tokens on ${f.corpus} (BPE continued from the model's merges)`);
    const tok = await loadTokenizer(model.tokenizerPath);
    const freq = await countWords(tok, bpeModelOf(tok.json).kind, [f.corpus]);
    tokens = learnTokens(tok, freq, { method: 'continue', numTokens }).tokens;
  }
  const lines: string[] = [];
  for await (const line of corpusLines([f.corpus])) lines.push(line);

  let bar: Progress | null = null;
  let current = -1;
  await writeDirAtomic(f.out, async (tmp) => {
    const work = path.join(tmp, '.models');
    await fsp.mkdir(work, { recursive: true });
    const r = await compareInit({
      model, tokens, lines, methods, samples, seed, mode: f.mode as 'added' | 'merges', maxContext, batchSize, threads, workDir: work,
      // focus / wechsel / omp: auxiliary embeddings trained on --corpus, cached beside --out
      aux: { corpus: [f.corpus!], cacheDir: path.resolve(f.out!) + '.work/aux', settings: { seed }, onPhase: (p) => info(p) },
      onPhase: (p) => info(p),
      onProgress: (e) => {
        if (e.index !== current) {
          bar?.stop();
          current = e.index;
          bar = progressBar(`[${e.index + 1}/${methods.length}] ${e.method}`, e.total, 'probes');
        }
        bar!.update(e.done);
      },
    });
    (bar as Progress | null)?.stop();
    await fsp.rm(work, { recursive: true, force: true });
    const files = await writeCompareInitOutputs(tmp, r, {
      model: f.model, corpus: f.corpus, tokens: f.tokens ?? null, numTokens: tokens.length, methods, samples, seed, mode: f.mode, maxContext,
    });
    info(`${r.probes.length} probes, ${r.added} new tokens; wrote ${files.join(', ')} to ${f.out}`);
    process.stdout.write(resultsMarkdown(r.summaries));
  });
}

export function register(program: Command): void {
  program
    .command('compare-init')
    .description('Compare embedding initialization methods: cut corpus lines just before a new token, run each method\'s extended model on the prefix, and rank the new token among all logits')
    .option('--model <dir|repo>', 'model directory or Hugging Face repo id')
    .option('--corpus <file>', 'target-language corpus (text or .gz, one paragraph per line); probes are drawn from it, and new tokens learned on it unless --tokens is given')
    .option('--methods <list>', `comma-separated init methods, or "all" (${ALL_METHODS.join(', ')}; add ${SOURCE_METHODS.join(', ')} by name: they train auxiliary embeddings on --corpus / need merges mode). Forms: ${VALID_FORMS.join('; ')}`, 'all')
    .option('--num-tokens <N>', 'how many new tokens (learned on --corpus, or the first N of --tokens)')
    .option('--tokens <tokens.json>', 'use this token list (from `hack-tokenizer tokens`) instead of learning one')
    .option('--samples <n>', 'probes: lines with a new token after their first position, one occurrence each', '1000')
    .option('--seed <s>', 'seed of line / occurrence sampling and of the random init methods', '0')
    .option('--mode <added|merges>', 'how the tokenizer is extended (see `extend`)', 'merges')
    .option('--max-context <n>', 'keep at most this many prefix tokens before the new token', '64')
    .option('--batch-size <n>', 'prefixes per forward pass', '16')
    .option('--threads <n>', 'ONNX Runtime threads (default: one per physical core)')
    .option('--out <dir>', 'output directory: results.csv, results.md, samples.csv, chart.svg, chart.vl.json, run.json')
    .addHelpText('after', `
Metrics per method (over the same probes): median rank of the new token (1 = most likely; ties
take the mid-rank: 1 + larger logits + equal other logits / 2), mean
reciprocal rank, top-1 / top-10 rates, mean log-probability, and "wins": the probes on which the
method gave the best rank (a tie in rank goes to the higher log-probability; exact ties share the win).
Deterministic for a given --seed.`)
    .action(async (opts: Flags) => run(opts));
}
