// `hack-tokenizer compare-init`: which embedding initialization gives new tokens the best start?
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { checkOutput, writeOutputDir } from '../io/output.ts';
import { checkTextFiles, emptyStats, textLines } from '../io/text.ts';
import { checkTokensFor } from '../tokenizer/provenance.ts';
import { resolveModelForCli } from './download.ts';
import { ALLOW_INVALID_UTF8, FORCE, MODEL, NUM_TOKENS, OUT, SEED, THREADS, command, type OptionSpec } from './options.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { countWords } from '../tokenizer/corpus.ts';
import { bpeModelOf } from '../tokenizer/bpe-model.ts';
import { learnTokens } from '../tokenizer/learn.ts';
import { readTokensFile, type NewToken } from '../tokenizer/tokens-file.ts';
import { ALL_METHODS, InitMethodError, SOURCE_METHODS, VALID_FORMS, parseInitMethodList } from '../embeddings/init-methods.ts';
import { checkInitNeeds } from '../embeddings/extend-model.ts';
import { COMPARE_INIT_DEFAULTS, compareInit, resultsMarkdown, writeCompareInitOutputs } from '../eval/init-analysis.ts';
import { progressBar, info, type Progress } from './progress.ts';

export const COMPARE_INIT_OPTIONS: OptionSpec[] = [
  MODEL(),
  { key: 'corpus', kind: 'string', arg: '<file>', required: true, doc: 'target-language corpus (text or .gz, one paragraph per line); probes are drawn from it, and new tokens learned on it unless --tokens is given' },
  { key: 'methods', kind: 'list', default: 'all', doc: `comma-separated init methods, or "all" (${ALL_METHODS.join(', ')}; add ${SOURCE_METHODS.join(', ')} by name: they train auxiliary embeddings on --corpus / need merges mode / align on --corpus). Forms: ${VALID_FORMS.join('; ')}` },
  NUM_TOKENS('how many new tokens (learned on --corpus, or the first N of --tokens)'),
  { key: 'tokens', kind: 'string', arg: '<tokens.json>', doc: 'use this token list (from `hack-tokenizer tokens`) instead of learning one' },
  { key: 'samples', kind: 'int', min: 1, default: COMPARE_INIT_DEFAULTS.samples, doc: 'probes: lines with a new token after their first position, one occurrence each' },
  { ...SEED, doc: 'seed of line / occurrence sampling and of the random init methods' },
  { key: 'mode', kind: 'choice', choices: ['merges', 'added'], default: COMPARE_INIT_DEFAULTS.mode, doc: 'how the tokenizer is extended (see `extend`)' },
  { key: 'maxContext', kind: 'int', min: 1, default: COMPARE_INIT_DEFAULTS.maxContext, doc: 'keep at most this many prefix tokens before the new token' },
  { key: 'batchSize', kind: 'int', min: 1, default: 16, doc: 'prefixes per forward pass' },
  THREADS,
  OUT('<dir>', 'output directory: results.csv, results.md, samples.csv, chart.svg, chart.vl.json, run.json (new or empty; --force replaces an earlier compare-init output)'),
  FORCE,
  ALLOW_INVALID_UTF8,
];

interface Flags {
  model: string;
  corpus: string;
  methods: string[];
  numTokens?: number;
  tokens?: string;
  samples: number;
  seed: number;
  mode: 'added' | 'merges';
  maxContext: number;
  batchSize: number;
  threads?: number;
  out: string;
  force?: boolean;
  allowInvalidUtf8?: boolean;
}

async function run(f: Flags): Promise<void> {
  let parsed;
  try {
    // the list flag splits on every comma; the method parser splits outside parentheses (wechsel(10,0.1))
    parsed = parseInitMethodList(f.methods.length === 1 && f.methods[0] === 'all' ? ALL_METHODS.join(',') : f.methods.join(','));
  } catch (e) {
    if (e instanceof InitMethodError) throw new InitMethodError(e.detail, 'methods');
    throw e;
  }
  checkInitNeeds(parsed, { mode: f.mode, corpus: [f.corpus] });
  const methods = parsed.map((m) => m.spec);
  if (!f.tokens && f.numTokens === undefined) throw new HackError('MISSING_OPTION', 'missing {opt:numTokens} (or give {opt:tokens})', { option: 'numTokens' });
  const inputs = [f.model, f.corpus, f.tokens];
  // every check before any work: the output, the corpus text, the token list's provenance
  await checkOutput({ path: f.out, kind: 'dir', command: 'compare-init', inputs, force: f.force });
  await checkTextFiles([f.corpus], 'corpus');
  // the probes' lines, read (strict UTF-8) before any model is loaded
  const stats = emptyStats();
  const lines: string[] = [];
  for await (const line of textLines([f.corpus], { option: 'corpus', allowInvalidUtf8: f.allowInvalidUtf8 }, stats)) lines.push(line);
  const model = await loadModelDir(await resolveModelForCli(f.model));

  let tokens: NewToken[];
  if (f.tokens) {
    const list = await readTokensFile(f.tokens);
    checkTokensFor(list, f.tokens, model.tokenizerJson, model.dir);
    tokens = list.tokens;
    if (f.numTokens !== undefined) tokens = tokens.slice(0, f.numTokens);
  } else {
    const numTokens = f.numTokens!;
    info(`learning ${numTokens} new tokens on ${f.corpus} (BPE continued from the model's merges)`);
    const tok = await loadTokenizer(model.tokenizerPath);
    const freq = await countWords(tok, bpeModelOf(tok.json).kind, [f.corpus]);
    tokens = learnTokens(tok, freq, { method: 'continue', numTokens }).tokens;
  }

  let bar: Progress | null = null;
  let current = -1;
  await writeOutputDir({ path: f.out, command: 'compare-init', inputs, force: f.force }, async (tmp) => {
    const work = path.join(tmp, '.models');
    await fsp.mkdir(work, { recursive: true });
    const r = await compareInit({
      model, tokens, lines, methods, samples: f.samples, seed: f.seed, mode: f.mode, maxContext: f.maxContext, batchSize: f.batchSize, threads: f.threads, workDir: work,
      // focus / wechsel / omp: auxiliary embeddings trained on --corpus, cached beside --out; align reads its first 10MB
      aux: { corpus: [f.corpus], cacheDir: path.resolve(f.out) + '.work/aux', settings: { seed: f.seed }, onPhase: (p) => info(p) },
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
      model: f.model, corpus: f.corpus, tokens: f.tokens ?? null, numTokens: tokens.length, methods, samples: f.samples, seed: f.seed, mode: f.mode, maxContext: f.maxContext,
    });
    info(`${r.probes.length} probes, ${r.added} new tokens; wrote ${files.join(', ')} to ${f.out}`);
    process.stdout.write(resultsMarkdown(r.summaries));
  }, true);
}

const HELP_AFTER = `
Metrics per method (over the same probes): median rank of the new token (1 = most likely; ties
take the mid-rank: 1 + larger logits + equal other logits / 2), mean
reciprocal rank, top-1 / top-10 rates, mean log-probability, and "wins": the probes on which the
method gave the best rank (a tie in rank goes to the higher log-probability; exact ties share the win).
Deterministic for a given --seed.`;

export function register(program: Command): void {
  command(program, 'compare-init', 'Compare embedding initialization methods: cut corpus lines just before a new token, run each method\'s extended model on the prefix, and rank the new token among all logits',
    COMPARE_INIT_OPTIONS, async (o) => run(o as unknown as Flags)).addHelpText('after', HELP_AFTER);
}
