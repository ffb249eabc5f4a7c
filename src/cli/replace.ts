// `hack-tokenizer replace`: give a model another tokenizer's whole vocabulary (TokAlign): GloVe on
// the corpus under both tokenizers, token alignment, each new row copied from its aligned old row.
// Every check (flags, the target tokenizer, special tokens, the output) runs before any work.
import { checkTextFiles } from '../io/text.ts';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { checkOutput, writeOutputDir } from '../io/output.ts';
import { TOKALIGN_GLOVE } from '../embeddings/glove.ts';
import { CHAT_TEMPLATE_CHOICES, chatTemplateReport, mapSpecialTokens, planChatTemplate, planReplacement, readTargetTokenizer, REPLACE_INITS, writeReplacement, type ChatTemplateChoice, type ReplaceInit } from '../embeddings/replace.ts';
import { resolveModelForCli } from './download.ts';
import { info, progressBar, type Progress } from './progress.ts';
import { NGRAM_SETTINGS } from '../embeddings/aux-embeddings.ts';
import { ALLOW_INVALID_UTF8, AUX_CACHE, AUX_MAX_BYTES, AUX_NGRAMS, CORPUS, FORCE, MODEL, OUT, SEED, command, type OptionSpec } from './options.ts';

const cacheRoot = () => path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'hack-tokenizer');
const defaultCache = () => path.join(cacheRoot(), 'glove');

export const REPLACE_OPTIONS: OptionSpec[] = [
  MODEL('the model whose vocabulary is replaced (directory or Hugging Face repo id)'),
  { key: 'tokenizer', kind: 'string', arg: '<tokenizer.json|dir>', required: true, doc: 'the target tokenizer: a tokenizer.json, or a directory with one (its tokenizer_config.json is used too)' },
  CORPUS('corpus files (plain or .gz, one paragraph per line) for the GloVe vectors of both tokenizations (--init tokalign) or the auxiliary vectors of the target tokenization (--init focus)', false),
  { key: 'init', kind: 'choice', choices: REPLACE_INITS, default: 'tokalign', doc: 'rows of tokens without an identical old token: tokalign (GloVe alignment), mean (mean of the old pieces\' rows, FVT), random (a random old row) or focus (FOCUS: sparsemax over auxiliary-vector cosines to the identical tokens, times their old rows)' },
  { key: 'gloveWindow', kind: 'int', min: 1, default: TOKALIGN_GLOVE.window, doc: 'GloVe: context tokens on each side' },
  { key: 'gloveDim', kind: 'int', min: 1, default: TOKALIGN_GLOVE.dim, doc: 'GloVe: vector size' },
  { key: 'gloveIterations', kind: 'int', min: 1, default: TOKALIGN_GLOVE.iterations, doc: 'GloVe: training passes' },
  { key: 'gloveXMax', kind: 'number', above: 0, default: TOKALIGN_GLOVE.xMax, doc: 'GloVe: x_max of the weighting f(x) = min(1, (x/x_max)^0.75)' },
  { key: 'gloveMinCount', kind: 'int', min: 1, default: TOKALIGN_GLOVE.minCount, doc: 'GloVe: tokens seen fewer times get no vector' },
  { key: 'gloveCache', kind: 'string', arg: '<dir>', doc: 'GloVe vector cache (keyed by corpus, tokenizer and settings)', defaultText: '$XDG_CACHE_HOME/hack-tokenizer/glove or ~/.cache/hack-tokenizer/glove' },
  { key: 'freshGlove', kind: 'bool', doc: 'train the GloVe vectors afresh: neither read nor write the cache' },
  { key: 'pivots', kind: 'int', min: 1, default: 300, doc: 'alignment: number of gold token pairs used as anchors of the relative representations' },
  { key: 'similarity', kind: 'choice', choices: ['dot', 'cosine'], default: 'dot', doc: 'alignment: compare relative representations by their dot product (TokAlign\'s code) or their cosine (less pull towards hub tokens)' },
  AUX_CACHE('with --init focus: cache directory of the auxiliary embeddings', '$XDG_CACHE_HOME/hack-tokenizer/aux or ~/.cache/hack-tokenizer/aux'),
  AUX_NGRAMS('with --init focus: add fastText\'s character n-grams (3-6) to the auxiliary embeddings (rare tokens get vectors; ~5x slower)'),
  AUX_MAX_BYTES('with --init focus: train the auxiliary embeddings on the first N bytes of --corpus only (whole lines)'),
  { key: 'chatTemplate', kind: 'choice', choices: CHAT_TEMPLATE_CHOICES, doc: 'the chat template the output carries: source (the model\'s own, the format it was trained on; every special or markup-like added token it spells out must be an added token of the target, and keeps its row), target (the target tokenizer\'s) or none', defaultText: 'source when the model has one, else target' },
  SEED,
  ALLOW_INVALID_UTF8,
  OUT('<dir>', 'output model directory (weights, config, the target tokenizer, alignment.json)'),
  FORCE,
];

interface ReplaceFlags {
  model: string; tokenizer: string; corpus?: string[]; init: ReplaceInit; gloveWindow: number; gloveDim: number; gloveIterations: number;
  gloveXMax: number; gloveMinCount: number; gloveCache?: string; freshGlove?: boolean; pivots: number; similarity: 'dot' | 'cosine'; seed: number;
  auxCache?: string; auxNgrams?: boolean; auxMaxBytes?: number; chatTemplate?: ChatTemplateChoice;
  allowInvalidUtf8?: boolean; out: string; force?: boolean;
  [k: string]: unknown;
}

export function register(program: Command): void {
  command(program, 'replace', 'Replace a model\'s vocabulary with another tokenizer\'s (TokAlign: GloVe token alignment; identical tokens keep their rows bit for bit)', REPLACE_OPTIONS, async (o: ReplaceFlags) => {
    if (o.init === 'tokalign' && !o.corpus?.length) throw new HackError('MISSING_OPTION', 'missing {opt:corpus} <file...>: --init tokalign trains GloVe vectors on it', { option: 'corpus' });
    if (o.init === 'focus' && !o.corpus?.length) throw new HackError('MISSING_OPTION', 'missing {opt:corpus} <file...>: --init focus trains auxiliary embeddings on it', { option: 'corpus' });
    if (o.init !== 'focus' && (o.auxCache !== undefined || o.auxNgrams || o.auxMaxBytes !== undefined)) {
      throw new HackError('BAD_OPTION', '{opt:auxCache}, {opt:auxMaxBytes} and {opt:auxNgrams} shape the auxiliary embeddings of --init focus; this {opt:init} does not use them', { option: 'init' });
    }
    const model = await loadModelDir(await resolveModelForCli(o.model));
    const target = await readTargetTokenizer(o.tokenizer);
    // a missing bos/eos/pad or chat-template token is an error before any work
    mapSpecialTokens(model, target, await planChatTemplate(model, target, o.chatTemplate));
    const inputs = [model.dir, target.file, ...(o.corpus ?? [])];
    const req = { path: o.out, command: 'replace', inputs, force: o.force };
    await checkOutput({ ...req, kind: 'dir' });
    if (o.corpus?.length) await checkTextFiles(o.corpus, 'corpus'); // exists and is a regular file, before any work
    const bars = new Map<string, Progress>();
    const plan = await planReplacement(model, target, {
      corpus: o.corpus ?? [], init: o.init, chatTemplate: o.chatTemplate, pivots: o.pivots, similarity: o.similarity, seed: o.seed, allowInvalidUtf8: o.allowInvalidUtf8,
      glove: { window: o.gloveWindow, dim: o.gloveDim, iterations: o.gloveIterations, xMax: o.gloveXMax, minCount: o.gloveMinCount },
      gloveCacheDir: o.freshGlove ? undefined : o.gloveCache ?? defaultCache(),
      aux: {
        maxBytes: o.auxMaxBytes, cacheDir: o.auxCache ?? path.join(cacheRoot(), 'aux'), settings: o.auxNgrams ? NGRAM_SETTINGS : {},
        onPhase: (msg) => info(msg),
        onProgress: (phase, done, total) => {
          const stage = phase === 'tokenize' ? 'auxiliary embeddings: tokenizing' : 'auxiliary embeddings: training';
          let b = bars.get(stage);
          if (!b) { for (const x of bars.values()) x.stop(); bars.clear(); b = progressBar(stage, total); bars.set(stage, b); }
          b.update(done);
        },
      },
      onProgress: (stage, done, total) => {
        let b = bars.get(stage);
        if (!b) { for (const x of bars.values()) x.stop(); bars.clear(); b = progressBar(stage, total); bars.set(stage, b); }
        b.update(done);
      },
    });
    for (const x of bars.values()) x.stop();
    const bar = progressBar('writing model', 100, '%');
    await writeOutputDir(req, async (tmp) => {
      await writeReplacement(model, tmp, plan, (done, total) => bar.update(Math.floor((100 * done) / total)));
    }, true);
    bar.stop();
    const report = { rows: plan.rows, init: plan.init, counts: plan.counts, tied: model.tied, special_token_ids: plan.special.ids, chat_template: chatTemplateReport(plan), glove: plan.glove, ...(plan.aux ? { aux: plan.aux } : {}) };
    info(`wrote ${o.out}: ${plan.rows} rows (${Object.entries(plan.counts).map(([k, n]) => `${n} ${k}`).join(', ')})`);
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  });
}
