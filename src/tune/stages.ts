// A recipe of training stages for the PyTorch engine (`tune --engine torch --stages <file>`): a small
// YAML or JSON file, checked key by key against one table before anything is loaded, so that a typo in
// stage 2 does not surface after an hour of stage 1. Keys are the library's option names (camelCase),
// as in an experiment grid's `tune:`; the engine's job gets them in snake_case.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { HackError, isHackError } from '../io/errors.ts';
import { readParams, type ParamSpec } from '../io/params.ts';
import { TORCH_DEFAULTS } from './options.ts';
import { RECIPES, type Recipe } from './torch-engine.ts';

/** One stage as the launcher sends it (defaults filled in). */
export interface TorchStage {
  recipe: Recipe;
  lr: number;
  schedule: 'cosine' | 'linear' | 'constant';
  warmupSteps: number;
  weightDecay: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  epochs: number;
  maxTokens?: number;
  maxSteps?: number;
  /** Replay windows per corpus window in this stage (default: the recipe's, else --replay-ratio, when there is replay). */
  replayRatio?: number;
  loraR?: number;
  loraAlpha?: number;
  loraTargets?: string[];
  /** What the stage minimizes (engine default ce); distill and alm need recipe rows and the original model. */
  objective?: 'ce' | 'distill' | 'alm';
}

/** What a stage may set. The learning rate's default depends on the recipe (TORCH_DEFAULTS.lr). */
export const STAGE_OPTIONS: readonly ParamSpec[] = [
  { key: 'recipe', kind: 'choice', choices: RECIPES, required: true, doc: 'what this stage trains' },
  { key: 'lr', kind: 'number', above: 0, doc: 'peak learning rate', defaultText: 'by recipe' },
  { key: 'schedule', kind: 'choice', choices: ['cosine', 'linear', 'constant'], default: 'cosine', doc: 'learning-rate schedule after warmup' },
  { key: 'warmupSteps', kind: 'int', min: 0, default: 0, doc: 'linear warmup steps' },
  { key: 'weightDecay', kind: 'number', min: 0, default: 0, doc: 'AdamW weight decay (not with recipe rows)' },
  { key: 'batchSize', kind: 'int', min: 1, default: TORCH_DEFAULTS.batchSize, doc: 'windows per micro-batch' },
  { key: 'gradAccum', kind: 'int', min: 1, default: 1, doc: 'micro-batches per optimizer step' },
  { key: 'seqLen', kind: 'int', min: 2, default: TORCH_DEFAULTS.seqLen, doc: 'tokens per window' },
  { key: 'epochs', kind: 'number', above: 0, default: TORCH_DEFAULTS.epochs, doc: 'passes over the corpus windows' },
  { key: 'maxTokens', kind: 'int', min: 1, doc: 'token budget (replay included)' },
  { key: 'maxSteps', kind: 'int', min: 1, doc: 'optimizer-step budget' },
  { key: 'replayRatio', kind: 'number', min: 0, doc: 'replay windows per corpus window (0: none in this stage)' },
  { key: 'loraR', kind: 'int', min: 1, doc: 'recipe lora: adapter rank' },
  { key: 'loraAlpha', kind: 'number', above: 0, doc: 'recipe lora: adapter alpha' },
  { key: 'loraTargets', kind: 'list', doc: 'recipe lora: module names that get adapters' },
  { key: 'objective', kind: 'choice', choices: ['ce', 'distill', 'alm'], doc: 'loss: ce (next-token cross-entropy, the default); distill (new input rows: last hidden states matched to the original model on the original tokenization); alm (ce + the new token\'s log-prob matched to the original\'s log-prob of its pieces); distill and alm need recipe rows, --original, one process, and no non-rows stage before them' },
];

/** Keys of the file itself, beside `stages`. */
const TOP_KEYS = ['stages', 'replay', 'replayRatio'];

export interface StageRecipe {
  file: string;
  stages: TorchStage[];
  /** `self`, or a file (resolved against the recipe file's directory). */
  replay?: string;
  replayRatio?: number;
}

/** Check a parsed recipe; errors name the file (option `stages`) and the key, e.g. `stages[1].lrr`. */
export function parseStageRecipe(raw: unknown, file: string, baseDir = path.dirname(file)): StageRecipe {
  const fail = (detail: string) => new HackError('BAD_RECIPE', detail, { option: 'stages', file });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fail('expected a mapping with a `stages:` list');
  const top = raw as Record<string, unknown>;
  const unknown = Object.keys(top).filter((k) => !TOP_KEYS.includes(k));
  if (unknown.length) throw fail(`unknown key ${unknown[0]} (known: ${TOP_KEYS.join(', ')}; stage keys go in the items of stages)`);
  if (!Array.isArray(top.stages) || top.stages.length === 0) throw fail('`stages` must be a non-empty list of stages');
  let replay: string | undefined;
  if (top.replay !== undefined) {
    if (typeof top.replay !== 'string' || top.replay === '') throw fail('replay: expected a text file or "self"');
    replay = top.replay === 'self' ? 'self' : path.resolve(baseDir, top.replay);
  }
  let replayRatio: number | undefined;
  if (top.replayRatio !== undefined) {
    if (typeof top.replayRatio !== 'number' || !(top.replayRatio > 0)) throw fail(`replayRatio: expected a number > 0, got ${JSON.stringify(top.replayRatio)}`);
    replayRatio = top.replayRatio;
  }
  const stages = top.stages.map((item, i): TorchStage => {
    const at = `stages[${i}]`;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw fail(`${at}: expected a mapping of stage keys (${STAGE_OPTIONS.map((s) => s.key).join(', ')})`);
    let v: Record<string, unknown>;
    try {
      v = readParams(STAGE_OPTIONS, item as Record<string, unknown>, { strict: true, spelling: 'key' });
    } catch (e) {
      if (!isHackError(e)) throw e;
      throw fail(`${at}.${e.option}: ${e.detail}`);
    }
    const st = { ...v, lr: (v.lr as number | undefined) ?? TORCH_DEFAULTS.lr[v.recipe as string] } as TorchStage;
    if (st.recipe === 'rows' && st.weightDecay > 0) throw fail(`${at}.weightDecay: the rows recipe trains only the new rows; weight decay would change the old ones (use 0)`);
    const perStep = st.batchSize * st.gradAccum * st.seqLen;
    if (st.maxTokens !== undefined && st.maxTokens < perStep) {
      throw fail(`${at}.maxTokens: the budget of ${st.maxTokens} tokens is smaller than one batch (batchSize ${st.batchSize} x gradAccum ${st.gradAccum} x seqLen ${st.seqLen} = ${perStep} tokens)`);
    }
    if (st.recipe !== 'lora' && (st.loraR !== undefined || st.loraAlpha !== undefined || st.loraTargets !== undefined)) {
      throw fail(`${at}: lora keys in a ${st.recipe} stage (they apply to recipe lora only)`);
    }
    return st;
  });
  return { file, stages, replay, replayRatio };
}

/** Read and check a recipe file (.json as JSON, anything else as YAML). */
export async function readStageRecipe(file: string): Promise<StageRecipe> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HackError('NO_SUCH_FILE', code === 'ENOENT' ? 'file not found' : `cannot read (${(e as Error).message})`, { option: 'stages', file });
  }
  let raw: unknown;
  try { raw = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text); } catch (e) {
    throw new HackError('BAD_RECIPE', `not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(e as Error).message.split('\n')[0]})`, { option: 'stages', file });
  }
  return parseStageRecipe(raw, file);
}
