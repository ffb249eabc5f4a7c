// `hack-tokenizer extend`: extend a tokenizer (added tokens or real BPE merges) with new tokens,
// learned here from a corpus or read from tokens.json, and with --init write the whole model.
// Every check (flags, the output, the token list's provenance, the count) runs before any work.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { snakeKeys } from '../io/json-keys.ts';
import { checkOutput, writeOutputDir } from '../io/output.ts';
import { emptyStats } from '../io/text.ts';
import { readTokenizerJson, type TokenizerJson } from '../io/model-dir.ts';
import { extendTokenizer, extendTokenizerConfig, writeTokenizerFiles, type ExtendMode, type ExtendResult } from '../tokenizer/extend.ts';
import { tokenizerFromJson } from '../tokenizer/load.ts';
import { checkTokensFor } from '../tokenizer/provenance.ts';
import { tokenizerSourceFromFlags, type TokenizerSource } from '../tokenizer/source.ts';
import { readTokensFile, writeTokensFile, type NewTokenList } from '../tokenizer/tokens-file.ts';
import { info, progressBar } from './progress.ts';
import { resolveModelForCli } from './download.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { INIT_METHODS, InitMethodError, VALID_FORMS, parseInitMethod, type InitMethodDef } from '../embeddings/init-methods.ts';
import { NGRAM_SETTINGS } from '../embeddings/aux-embeddings.ts';
import { checkInitNeeds, modelFirstId, resolveInitMethods, writeModelExtension } from '../embeddings/extend-model.ts';
import { LEARN_OPTIONS, learnOptionsFromFlags, learnWithProgress, reportInvalidText, type LearnFlags } from './tokens.ts';
import { AUX_CACHE, AUX_MAX_BYTES, AUX_NGRAMS, CORPUS, FORCE, MODEL, NUM_TOKENS, OUT, command, type OptionSpec } from './options.ts';

export interface ExtendFlags extends LearnFlags {
  model?: string;
  tokenizer?: string;
  tokens?: string;
  mode?: string;
  out?: string;
  force?: boolean;
  allowInvalidUtf8?: boolean;
  // model weights: given --init, a complete model directory is written
  init?: string;
  initOutput?: string;
  usePaddingRows?: boolean;
  padToMultipleOf?: number;
  seed?: number;
  auxCache?: string;
  auxMaxBytes?: number;
  auxNgrams?: boolean;
}

export interface Extension {
  source: TokenizerSource;
  original: TokenizerJson;
  list: NewTokenList;
  mode: ExtendMode;
  result: ExtendResult;
  /** tokenizer_config.json for the output (null when the source had none). */
  config: Record<string, unknown> | null;
  /** How many tokens were asked for. */
  requested: number;
}

async function readJsonIfExists(file: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new HackError('BAD_FILE', `could not read (${(e as Error).message})`, { file });
  }
}

/** Candidates learned beyond N, so that N can still be added when some cannot (added mode). */
const spare = (n: number) => Math.ceil(n * 0.25) + 50;

/**
 * Resolve the tokenizer, get the token list (file or corpus), check that it was made for this
 * tokenizer, and extend the tokenizer in memory with exactly the requested number of tokens (the
 * next ranked candidates replace those that cannot be added; too few is an error that says why).
 */
export async function buildExtension(o: ExtendFlags, at: {
  /** The first new id (the model's next free row); default the tokenizer's size. */
  firstId?: number;
  source?: TokenizerSource;
  /** With --tokens, --corpus trains the auxiliary embeddings of the init method. */
  corpusForAux?: boolean;
  /** tokenizer_config.json as the loaded model directory read it; default: read beside the tokenizer. */
  tokenizerConfig?: Record<string, unknown> | null;
} = {}): Promise<Extension> {
  const { firstId, corpusForAux = false } = at;
  let source = at.source;
  const mode = o.mode as ExtendMode;
  // with --tokens, a corpus is allowed only when the init method trains auxiliary embeddings on it
  if (o.tokens && o.corpus && !corpusForAux) throw new HackError('BAD_OPTION', 'give either {opt:tokens} or {opt:corpus}, not both', { option: 'tokens' });
  source ??= await tokenizerSourceFromFlags(o);
  const original = await readTokenizerJson(source.tokenizerPath);
  let list: NewTokenList;
  let requested: number;
  if (o.tokens) {
    list = await readTokensFile(o.tokens);
    checkTokensFor(list, o.tokens, original, source.label);
    requested = o.numTokens ?? list.tokens.length;
    if (requested > list.tokens.length) {
      throw new HackError('TOO_FEW_TOKENS', `${requested} tokens asked for, but ${o.tokens} holds only ${list.tokens.length}; ask for at most ${list.tokens.length} or learn a longer list`, { option: 'numTokens' });
    }
  } else if (o.corpus && o.corpus.length > 0) {
    const opts = learnOptionsFromFlags(o);
    requested = opts.numTokens;
    const stats = emptyStats();
    list = await learnWithProgress(source.tokenizerPath, o.corpus, { ...opts, numTokens: opts.numTokens + (mode === 'added' ? spare(opts.numTokens) : 0), allowInvalidUtf8: o.allowInvalidUtf8, stats });
    reportInvalidText(stats, o.corpus);
  } else {
    throw new HackError('MISSING_OPTION', 'missing {opt:tokens} <tokens.json> or {opt:corpus} <file...> with {opt:numTokens} N', { option: 'tokens' });
  }
  if (mode === 'merges' && list.rank !== 'merge') {
    info(`note: ${o.tokens ?? 'the token list'} is ranked by ${list.rank}, not in merge order; tokens whose merge needs a later token are skipped`);
  }
  const result = extendTokenizer(original, list.tokens, { mode, firstId, count: requested });
  const added = result.newIds.filter((id) => id >= 0).length;
  if (added < requested) {
    const reasons = new Map<string, number>();
    for (const sk of result.skipped) reasons.set(sk.reason, (reasons.get(sk.reason) ?? 0) + 1);
    const why = [...reasons].map(([r, n]) => `${n} ${r}`).join('; ');
    const cause = result.skipped.length > 0 ? `${result.skipped.length} candidates skipped: ${why}` : `the token list has only ${list.tokens.length} candidates`;
    throw new HackError('TOO_FEW_TOKENS', `only ${added} of the ${requested} requested tokens can be added in ${mode} mode (${cause})` +
      (mode === 'added' ? '; ask for fewer, or use {opt:mode} merges' : '; ask for fewer'), { option: 'numTokens' });
  }
  tokenizerFromJson(result.json, 'extended tokenizer'); // the tokenizers library must accept it
  const configDir = source.modelDir ?? path.dirname(source.tokenizerPath);
  const originalConfig = at.tokenizerConfig !== undefined ? at.tokenizerConfig : await readJsonIfExists(path.join(configDir, 'tokenizer_config.json'));
  const config = extendTokenizerConfig(originalConfig, result.addedEntries);
  // the list as used: the candidates considered, in order
  let used = 0;
  result.newIds.forEach((id, i) => { if (id >= 0) used = i + 1; });
  list = { ...list, tokens: list.tokens.slice(0, used), numTokens: added };
  return { source, original, list, mode, result: { ...result, newIds: result.newIds.slice(0, used) }, config, requested };
}

export function extensionReport(ext: Extension): Record<string, unknown> {
  const reasons: Record<string, number> = {};
  for (const s of ext.result.skipped) reasons[s.reason] = (reasons[s.reason] ?? 0) + 1;
  const ids = ext.result.newIds.filter((id) => id >= 0);
  return {
    tokenizer: ext.source.tokenizerPath,
    mode: ext.mode,
    requested: ext.requested,
    added: ids.length,
    firstId: ids.length ? Math.min(...ids) : null,
    lastId: ids.length ? Math.max(...ids) : null,
    skipped: ext.result.skipped.length,
    skippedReasons: reasons,
  };
}

const jsonOut = (v: unknown) => JSON.stringify(snakeKeys(v, ['skippedReasons', 'skipped_reasons']), null, 2) + '\n';

export const EXTEND_OPTIONS: OptionSpec[] = [
  MODEL('model directory or Hugging Face repo id (with --init, the model whose weights are extended)', false),
  { key: 'tokenizer', kind: 'string', arg: '<tokenizer.json>', doc: 'a tokenizer.json file (instead of --model; tokenizer files only)' },
  { key: 'tokens', kind: 'string', arg: '<tokens.json>', doc: 'token list written by `hack-tokenizer tokens` for this tokenizer (with --num-tokens: its first N that can be added)' },
  CORPUS('learn the tokens from these corpus files instead (plain or .gz)', false),
  NUM_TOKENS('number of new tokens (exactly this many are added, or the command says why not)'),
  ...LEARN_OPTIONS,
  { key: 'mode', kind: 'choice', choices: ['added', 'merges'], required: true, doc: 'added: added tokens (normalized, not special); merges: vocabulary entries + merges after the existing ones' },
  OUT('<dir>', 'output directory (tokenizer.json, tokenizer_config.json, tokens.json, extend.json; with --init the whole model)'),
  FORCE,
  { key: 'init', kind: 'string', arg: '<method>', doc: `initialize the new tokens' embedding rows and write a complete model directory (needs --model). Methods: ${VALID_FORMS.join('; ')}` },
  { key: 'initOutput', kind: 'string', arg: '<method>', doc: 'method for the output (lm_head) rows of untied models (default: --init); tied models have one matrix, set by --init' },
  { key: 'usePaddingRows', kind: 'bool', doc: 'with --init: give new tokens the free padding rows past the tokenizer first (default: append after every existing row)' },
  { key: 'padToMultipleOf', kind: 'int', min: 1, arg: '<M>', doc: 'with --init: round the new vocabulary size up to a multiple of M (e.g. 64); extra rows hold the mean row' },
  { key: 'seed', kind: 'int', min: 0, default: 0, doc: 'with --init: seed of the random and hf-mean-resizing methods, and of the auxiliary embeddings' },
  AUX_CACHE('with --init focus|wechsel|omp: cache directory of the auxiliary embeddings', '<out>.work/aux'),
  AUX_NGRAMS('with --init focus|wechsel|omp: add fastText\'s character n-grams (3-6) to the auxiliary embeddings (rare tokens get vectors; ~5x slower)'),
  AUX_MAX_BYTES('with --init focus|wechsel|omp: train the auxiliary embeddings on the first N bytes of --corpus only (whole lines); with --init align: align over the first N bytes (default 10MB)'),
];

export function register(program: Command): void {
  command(program, 'extend', 'Extend a tokenizer with new tokens: as added tokens, or as real BPE tokens with merges after the existing ones; with --init, the whole model', EXTEND_OPTIONS, async (o: ExtendFlags) => {
    if (o.init !== undefined) return extendWithWeights(o);
    if (o.initOutput !== undefined || o.usePaddingRows || o.padToMultipleOf !== undefined || o.auxCache !== undefined || o.auxMaxBytes !== undefined || o.auxNgrams) {
      throw new HackError('BAD_OPTION', '{opt:initOutput}, {opt:usePaddingRows} and {opt:padToMultipleOf} need {opt:init} <method> (they shape the model weights)', { option: 'init' });
    }
    const source = await tokenizerSourceFromFlags(o);
    await checkOutput({ path: o.out!, kind: 'dir', command: 'extend', inputs: inputsOf(o, source), force: o.force });
    const ext = await buildExtension(o, { source });
    const report = extensionReport(ext);
    await writeOutputDir({ path: o.out!, command: 'extend', inputs: inputsOf(o, source), force: o.force }, async (tmp) => {
      await writeTokenizerFiles(tmp, ext.result.json, ext.config);
      await writeTokensFile(path.join(tmp, 'tokens.json'), ext.list, 'extend');
      await fsp.writeFile(path.join(tmp, 'extend.json'), jsonOut({ ...report, newIds: ext.result.newIds, skippedTokens: ext.result.skipped }));
    }, true);
    if (ext.source.modelDir) info('note: wrote the tokenizer files only; add --init <method> (e.g. --init "weighted_drop(2)") to write the model weights too');
    info(`wrote ${o.out}: ${report.added} new tokens (${report.skipped} skipped)`);
    process.stdout.write(jsonOut(report));
  }).addHelpText('after', INIT_HELP);
}

/** Every input of an extend run: nothing may be written over or into them. */
function inputsOf(o: ExtendFlags, source: TokenizerSource): string[] {
  return [source.modelDir ?? source.tokenizerPath, source.tokenizerPath, o.tokens, ...(o.corpus ?? [])].filter((x): x is string => !!x);
}

// ------------------------------------------------------------------ model weights

/** An init method flag, parsed; a bad one names the flag. */
function initFlag(v: string, option: string) {
  try {
    return parseInitMethod(v);
  } catch (e) {
    if (e instanceof InitMethodError) throw new InitMethodError(e.detail, option);
    throw e;
  }
}

/** The registry's methods of one group as --help lines: usage in a column, the doc wrapped beside it. */
function methodLines(group: InitMethodDef['group']): string {
  const col = 26;
  const width = 106;
  return INIT_METHODS.filter((d) => d.group === group).map((d) => {
    const lines: string[] = [];
    let line = `  ${d.usage}`.padEnd(col);
    for (const word of d.doc.split(' ')) {
      if (line.length + word.length > width && line.trim().length > d.usage.length) { lines.push(line.trimEnd()); line = ' '.repeat(col); }
      line += word + ' ';
    }
    lines.push(line.trimEnd());
    return lines.join('\n');
  }).join('\n');
}

const INIT_HELP = `
Embedding initialization (--init, --init-output): each new token's row is computed from the rows of
its sub-tokens, i.e. its tokenization by the ORIGINAL tokenizer (special tokens never included):
${methodLines('model')}
Untied models (separate lm_head): output rows use the same methods on the lm_head rows (--init-output,
default --init). Tied models have one matrix, so --init sets both the input row and the output row;
as an output row, a linear method makes the new token's logit the same combination of its sub-tokens'
logits (mean: their average; weighted_drop(K): mostly the first sub-token's; first/last: exactly that
sub-token's logit), min/max/quantile act per dimension (not on logits), zero gives logit 0 in every
context, random / hf-mean-resizing ignore the sub-tokens (hf-mean-resizing ~ the average row's logit).
adaptivocab weighs the pieces per matrix (input exp(2i), output exp(-2i)); a tied model's one row takes the
input weights (mostly the last sub-token's row, so also mostly its logit).
Methods that combine EXISTING tokens' rows (the same combination for input and output rows):
${methodLines('sources')}
The auxiliary embeddings (focus, wechsel, omp) are trained here on --corpus tokenized with the EXTENDED
tokenizer: word-level CBOW with negative sampling (dim 100, window 5, 10 negatives, 3 epochs, seeded),
cached in --aux-cache; --aux-ngrams adds fastText's character n-grams 3-6. With --tokens, --corpus is then used for these embeddings only. New tokens without
a vector (too rare in the corpus) or without a known merge get the mean of their sub-token rows (counted).
align tokenizes the first --aux-max-bytes of --corpus (default 10MB, whole lines) with both tokenizers;
spans are compared in bytes (a byte-level piece of "ç" overlaps only the bytes it holds); tokens that
never occur there get the mean (counted as fallbacks).
Old rows are copied byte for byte; new ids start after every existing row (padding rows kept) unless
--use-padding-rows.`;

async function extendWithWeights(o: ExtendFlags): Promise<void> {
  if (!o.model) throw new HackError('BAD_OPTION', 'writes model weights: give {opt:model} <model dir|hub id> (not {opt:tokenizer})', { option: 'init' });
  const init = initFlag(o.init!, 'init');
  const initOutput = o.initOutput === undefined ? undefined : initFlag(o.initOutput, 'initOutput');
  checkInitNeeds([init, initOutput ?? init], { mode: o.mode as ExtendMode, corpus: o.corpus });
  const needsAux = [init, initOutput ?? init].some((m) => m.needs === 'aux');
  const needsCorpus = needsAux || [init, initOutput ?? init].some((m) => m.needs === 'corpus');
  if (!needsAux && (o.auxCache !== undefined || o.auxNgrams || (!needsCorpus && o.auxMaxBytes !== undefined))) {
    throw new HackError('BAD_OPTION', '{opt:auxCache}, {opt:auxMaxBytes} and {opt:auxNgrams} shape the auxiliary embeddings of focus, wechsel(k,t) and omp(k) ({opt:auxMaxBytes} also bounds align\'s corpus); this {opt:init} does not use them', { option: 'init' });
  }
  const model = await loadModelDir(await resolveModelForCli(o.model));
  resolveInitMethods(model, init, initOutput);
  const source: TokenizerSource = { tokenizerPath: model.tokenizerPath, modelDir: model.dir, label: o.model };
  const req = { path: o.out!, command: 'extend', inputs: inputsOf(o, source), force: o.force };
  await checkOutput({ ...req, kind: 'dir' });
  const ext = await buildExtension(o, { firstId: modelFirstId(model, o.usePaddingRows === true), source, corpusForAux: needsCorpus, tokenizerConfig: model.tokenizerConfig });
  const report = extensionReport(ext);
  let bar: ReturnType<typeof progressBar> | null = null;
  let barPhase = '';
  let written!: Awaited<ReturnType<typeof writeModelExtension>>;
  const aux = needsCorpus ? {
    corpus: o.corpus!, maxBytes: o.auxMaxBytes, cacheDir: o.auxCache ?? path.resolve(o.out!) + '.work/aux', settings: { seed: o.seed ?? 0, ...(o.auxNgrams ? NGRAM_SETTINGS : {}) },
    onPhase: (m: string) => info(m),
    onProgress: (phase: 'tokenize' | 'train', done: number, total: number) => {
      if (phase !== 'train') return;
      if (barPhase !== phase) { bar?.stop(); barPhase = phase; bar = progressBar('auxiliary embeddings', total, 'tokens'); }
      bar!.update(done);
    },
  } : undefined;
  await writeOutputDir(req, async (tmp) => {
    written = await writeModelExtension(model, tmp, {
      tokens: ext.list.tokens, result: ext.result, tokenizerConfig: ext.config, init, initOutput, mode: o.mode as ExtendMode, aux,
      usePaddingRows: o.usePaddingRows === true, padToMultipleOf: o.padToMultipleOf, seed: o.seed ?? 0,
      onProgress: (done, total) => {
        if (barPhase !== 'write') { bar?.stop(); barPhase = 'write'; bar = progressBar('writing model', 100, '%'); }
        bar!.update(Math.floor((100 * done) / total));
      },
    });
    await writeTokensFile(path.join(tmp, 'tokens.json'), ext.list, 'extend');
    const weights = {
      init: written.init, initOutput: written.initOutput, tied: model.tied, oldRows: written.plan.oldRows, rows: written.plan.rows, seed: o.seed ?? 0,
      // only combining methods (focus, wechsel, omp, merge, align) report fallbacks, auxiliary embeddings, alignment
      ...(init.combine || initOutput?.combine ? { fallbacks: written.fallbacks } : {}), ...(written.aux ? { aux: written.aux } : {}),
      ...(written.align ? { align: written.align } : {}),
    };
    await fsp.writeFile(path.join(tmp, 'extend.json'), jsonOut({ ...report, weights, newIds: ext.result.newIds, skippedTokens: ext.result.skipped }));
  }, true);
  (bar as ReturnType<typeof progressBar> | null)?.stop();
  if (written.fallbacks.input || written.fallbacks.output) {
    info(`note: ${written.fallbacks.input} new tokens (input rows) / ${written.fallbacks.output} (output rows) had no auxiliary vector, merge or occurrence in the corpus (align) and got the mean of their sub-token rows`);
  }
  info(`wrote ${o.out}: model with ${written.plan.rows} embedding rows (${written.plan.oldRows} before), ${report.added} new tokens (${report.skipped} skipped)`);
  process.stdout.write(jsonOut({ ...report, init: written.init, initOutput: written.initOutput, tied: model.tied, rows: written.plan.rows }));
}
