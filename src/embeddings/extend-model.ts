// Library entry for `hack-tokenizer extend --init ...`: extend the tokenizer with new tokens and
// write a complete model directory whose embedding matrices hold rows for them.
import { loadModelDir, type ModelDir } from '../io/model-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { extendTokenizer, extendTokenizerConfig, type ExtendMode, type ExtendResult, type SkippedToken } from '../tokenizer/extend.ts';
import type { NewToken } from '../tokenizer/tokens-file.ts';
import { tokenizerFromJson } from '../tokenizer/load.ts';
import { parseInitMethod, type InitMethod } from './init-methods.ts';
import { planRows, validateNewRows, writeExtendedModel, SurgeryError, type NewRowSpec, type RowPlan } from './surgery.ts';

export interface ExtendModelOptions {
  /** A loaded model directory or its path. */
  model: ModelDir | string;
  /** New tokens, best first (tokens.json's `tokens`). */
  tokens: NewToken[];
  mode: ExtendMode;
  /** Input-embedding init method (a method string such as `weighted_drop(2)` or a parsed method). */
  init: string | InitMethod;
  /** Output rows of untied models (default: `init`). Tied models have one matrix: must equal `init` if given. */
  initOutput?: string | InitMethod;
  usePaddingRows?: boolean;
  padToMultipleOf?: number;
  /** Seed of the random methods (random, hf-mean-resizing). Default 0. */
  seed?: number;
  /** Output model directory (written atomically). */
  out: string;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ExtendModelResult {
  out: string;
  plan: RowPlan;
  /** Id of tokens[i], or -1 when the tokenizer skipped it. */
  newIds: number[];
  skipped: SkippedToken[];
  tied: boolean;
  init: string;
  /** Method of the output rows (the input method for tied models). */
  initOutput: string;
  files: string[];
}

const asMethod = (m: string | InitMethod): InitMethod => (typeof m === 'string' ? parseInitMethod(m) : m);

export interface ModelExtensionOptions {
  /** The tokens given to extendTokenizer (same order as result.newIds). */
  tokens: NewToken[];
  /** extendTokenizer's result, computed with firstId = modelFirstId(model, usePaddingRows). */
  result: ExtendResult;
  /** tokenizer_config.json to write (null: none). */
  tokenizerConfig: Record<string, unknown> | null;
  init: string | InitMethod;
  initOutput?: string | InitMethod;
  usePaddingRows?: boolean;
  padToMultipleOf?: number;
  seed?: number;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** First id of the new tokens: after every existing row, or after the tokenizer with usePaddingRows. */
export function modelFirstId(model: ModelDir, usePaddingRows = false): number {
  return usePaddingRows ? model.tokenizerSize : model.embeddingRows;
}

/** The init methods to use, checked against the model (a tied model has one matrix, so one method). */
export function resolveInitMethods(model: ModelDir, init: string | InitMethod, initOutput?: string | InitMethod): { init: InitMethod; initOutput: InitMethod } {
  const i = asMethod(init);
  const o = initOutput === undefined ? i : asMethod(initOutput);
  if (model.tied && o.spec !== i.spec) {
    throw new SurgeryError(
      `--init-output ${o.spec} differs from --init ${i.spec}, but ${model.dir} ties its input and output embeddings ` +
      '(one matrix): the --init method sets both. Drop --init-output, or untie the model first.');
  }
  return { init: i, initOutput: model.tied ? i : o };
}

/**
 * Write the extended model (weights, config, tokenizer files, side files) into the existing
 * directory `dir`, from a tokenizer extension computed beforehand.
 */
export async function writeModelExtension(model: ModelDir, dir: string, opts: ModelExtensionOptions): Promise<{ plan: RowPlan; files: string[]; init: string; initOutput: string }> {
  const { init, initOutput } = resolveInitMethods(model, opts.init, opts.initOutput);
  const firstId = modelFirstId(model, opts.usePaddingRows);
  const ext = opts.result;
  const specs: NewRowSpec[] = [];
  const indexOf = new Map<number, number>();
  ext.newIds.forEach((id, i) => {
    if (id < 0) return;
    specs.push({ id, subIds: opts.tokens[i].originalIds });
    indexOf.set(id, i);
  });
  specs.sort((a, b) => a.id - b.id);
  const plan = planRows(model, specs.length, { usePaddingRows: opts.usePaddingRows, padToMultipleOf: opts.padToMultipleOf });
  if (specs.length > 0 && specs[0].id !== firstId) {
    throw new SurgeryError(`the extended tokenizer's first new id is ${specs[0].id}, but the model needs ${firstId} ` +
      `(${opts.usePaddingRows ? 'the tokenizer size, --use-padding-rows' : 'the embedding rows'})`);
  }
  const specials = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath).specialIds;
  validateNewRows(plan, specs, specials, (k) => `new token ${JSON.stringify(opts.tokens[indexOf.get(specs[k].id)!].token)}`);
  const extraFiles: Record<string, string> = {};
  if (opts.tokenizerConfig) extraFiles['tokenizer_config.json'] = JSON.stringify(opts.tokenizerConfig, null, 2) + '\n';
  const r = await writeExtendedModel(model, dir, {
    plan, tokens: specs, tokenizerJson: ext.json, extraFiles, init, initOutput, seed: opts.seed ?? 0, onProgress: opts.onProgress,
  });
  return { plan, files: r.files, init: init.spec, initOutput: initOutput.spec };
}

export async function extendModel(opts: ExtendModelOptions): Promise<ExtendModelResult> {
  const model = typeof opts.model === 'string' ? await loadModelDir(opts.model) : opts.model;
  resolveInitMethods(model, opts.init, opts.initOutput); // fail on a bad method before any work
  const ext = extendTokenizer(model.tokenizerJson, opts.tokens, { mode: opts.mode, firstId: modelFirstId(model, opts.usePaddingRows) });
  const tokenizerConfig = extendTokenizerConfig(model.tokenizerConfig, ext.addedEntries);
  let written!: Awaited<ReturnType<typeof writeModelExtension>>;
  await writeDirAtomic(opts.out, async (tmp) => {
    written = await writeModelExtension(model, tmp, { ...opts, result: ext, tokenizerConfig });
  });
  return {
    out: opts.out, plan: written.plan, newIds: ext.newIds, skipped: ext.skipped, tied: model.tied,
    init: written.init, initOutput: written.initOutput, files: written.files,
  };
}
