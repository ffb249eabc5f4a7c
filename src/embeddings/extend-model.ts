// Library entry for `hack-tokenizer extend --init ...`: extend the tokenizer with new tokens and
// write a complete model directory whose embedding matrices hold rows for them.
import { loadModelDir, type ModelDir } from '../io/model-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { extendTokenizer, extendTokenizerConfig, type ExtendMode, type SkippedToken } from '../tokenizer/extend.ts';
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

export async function extendModel(opts: ExtendModelOptions): Promise<ExtendModelResult> {
  const model = typeof opts.model === 'string' ? await loadModelDir(opts.model) : opts.model;
  const init = asMethod(opts.init);
  const initOutput = opts.initOutput === undefined ? init : asMethod(opts.initOutput);
  if (model.tied && initOutput.spec !== init.spec) {
    throw new SurgeryError(
      `--init-output ${initOutput.spec} differs from --init ${init.spec}, but ${model.dir} ties its input and output embeddings ` +
      '(one matrix): the --init method sets both. Drop --init-output, or untie the model first.');
  }
  const firstId = opts.usePaddingRows ? model.tokenizerSize : model.embeddingRows;
  const ext = extendTokenizer(model.tokenizerJson, opts.tokens, { mode: opts.mode, firstId });
  const specs: NewRowSpec[] = [];
  ext.newIds.forEach((id, i) => { if (id >= 0) specs.push({ id, subIds: opts.tokens[i].originalIds }); });
  specs.sort((a, b) => a.id - b.id);
  const plan = planRows(model, specs.length, { usePaddingRows: opts.usePaddingRows, padToMultipleOf: opts.padToMultipleOf });
  if (plan.firstId !== firstId) throw new SurgeryError(`internal: planned first id ${plan.firstId} differs from the tokenizer's ${firstId}`);
  const specials = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath).specialIds;
  const indexOf = new Map<number, number>();
  ext.newIds.forEach((id, i) => indexOf.set(id, i));
  validateNewRows(plan, specs, specials, (k) => `new token ${JSON.stringify(opts.tokens[indexOf.get(specs[k].id)!].token)}`);

  const extraFiles: Record<string, string> = {};
  const tokCfg = extendTokenizerConfig(model.tokenizerConfig, ext.addedEntries);
  if (tokCfg) extraFiles['tokenizer_config.json'] = JSON.stringify(tokCfg, null, 2) + '\n';
  let files: string[] = [];
  await writeDirAtomic(opts.out, async (tmp) => {
    const r = await writeExtendedModel(model, tmp, {
      plan, tokens: specs, tokenizerJson: ext.json, extraFiles, init, initOutput, seed: opts.seed ?? 0, onProgress: opts.onProgress,
    });
    files = r.files;
  });
  return {
    out: opts.out, plan, newIds: ext.newIds, skipped: ext.skipped, tied: model.tied,
    init: init.spec, initOutput: model.tied ? init.spec : initOutput.spec, files,
  };
}
