// A Hugging Face model directory: config.json, generation_config.json, tokenizer files and
// safetensors weights. Later stages read a ModelDir and write a new one next to it.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type ModelConfig, ConfigError, parseConfig } from './config.ts';
import { openWeights, hasTensor, weightInfo, type WeightSet } from './weights.ts';
import { HackError } from './errors.ts';

export const EMBED_TENSOR = 'model.embed_tokens.weight';
export const LM_HEAD_TENSOR = 'lm_head.weight';

/** Files a model directory may carry besides weights; copied over when a model is rewritten. */
export const SIDE_FILES = [
  'generation_config.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
  'added_tokens.json',
  'README.md',
  'LICENSE',
];

export class ModelDirError extends HackError {
  constructor(readonly dir: string, message: string) {
    super('BAD_MODEL_DIR', message, { file: dir });
    this.name = 'ModelDirError';
  }
}

export interface TokenizerJson {
  version?: string;
  added_tokens: Array<{ id: number; content: string; special: boolean; normalized?: boolean; lstrip?: boolean; rstrip?: boolean; single_word?: boolean }>;
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type: string; vocab: Record<string, number> | Array<[string, number]>; merges?: Array<string | [string, string]>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface ModelDir {
  dir: string;
  config: ModelConfig;
  generationConfig: Record<string, unknown> | null;
  tokenizerConfig: Record<string, unknown> | null;
  tokenizerPath: string;
  tokenizerJson: TokenizerJson;
  weights: WeightSet;
  /** True when the output head shares the input embedding matrix (no separate lm_head tensor). */
  tied: boolean;
  /** Rows of the input embedding matrix (may exceed the tokenizer's size: padded vocabulary). */
  embeddingRows: number;
  hiddenSize: number;
  /** Number of ids the tokenizer can produce (max id + 1, added tokens included). */
  tokenizerSize: number;
}

async function readJson(file: string, required: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !required) return null;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelDirError(path.dirname(file), `missing ${path.basename(file)}`);
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, `not valid JSON (${(e as Error).message})`);
  }
}

/** Number of ids a tokenizer.json can emit: one past the largest id in its vocabulary or added tokens. */
export function tokenizerSizeOf(tj: TokenizerJson): number {
  let max = -1;
  const vocab = tj.model?.vocab;
  if (Array.isArray(vocab)) max = vocab.length - 1; // Unigram: [piece, score] pairs, id = index
  else if (vocab) for (const id of Object.values(vocab)) if (id > max) max = id;
  for (const t of tj.added_tokens ?? []) if (t.id > max) max = t.id;
  return max + 1;
}

export async function readTokenizerJson(file: string): Promise<TokenizerJson> {
  const tj = (await readJson(file, true)) as unknown as TokenizerJson;
  if (!tj || typeof tj !== 'object' || !tj.model || typeof tj.model !== 'object') {
    throw new ModelDirError(path.dirname(file), `${path.basename(file)} has no "model" section (not a Hugging Face tokenizer.json)`);
  }
  return tj;
}

/** Load a local model directory (see hub.ts for repo ids). */
export async function loadModelDir(dir: string): Promise<ModelDir> {
  let st;
  try {
    st = await fsp.stat(dir);
  } catch {
    throw new ModelDirError(dir, 'model directory not found');
  }
  if (!st.isDirectory()) throw new ModelDirError(dir, 'expected a model directory (config.json, tokenizer.json, *.safetensors)');
  const configPath = path.join(dir, 'config.json');
  const config = parseConfig(await readJson(configPath, true), configPath);
  const tokenizerPath = path.join(dir, 'tokenizer.json');
  const tokenizerJson = await readTokenizerJson(tokenizerPath);
  const weights = await openWeights(dir);
  if (!hasTensor(weights, EMBED_TENSOR)) throw new ModelDirError(dir, `weights have no "${EMBED_TENSOR}" tensor`);
  const embed = weightInfo(weights, EMBED_TENSOR);
  if (embed.shape.length !== 2) throw new ModelDirError(dir, `"${EMBED_TENSOR}" must be 2-D, has shape [${embed.shape.join(', ')}]`);
  const tied = !hasTensor(weights, LM_HEAD_TENSOR);
  if (!tied) {
    const head = weightInfo(weights, LM_HEAD_TENSOR);
    if (head.shape[0] !== embed.shape[0] || head.shape[1] !== embed.shape[1]) {
      throw new ModelDirError(dir, `"${LM_HEAD_TENSOR}" shape [${head.shape}] differs from "${EMBED_TENSOR}" shape [${embed.shape}]`);
    }
  } else if (config.raw.tie_word_embeddings === false) {
    throw new ModelDirError(dir, `config says tie_word_embeddings=false but the weights have no "${LM_HEAD_TENSOR}"`);
  }
  if (embed.shape[1] !== config.hiddenSize) {
    throw new ModelDirError(dir, `"${EMBED_TENSOR}" has ${embed.shape[1]} columns but hidden_size is ${config.hiddenSize}`);
  }
  const tokenizerSize = tokenizerSizeOf(tokenizerJson);
  if (tokenizerSize > embed.shape[0]) {
    throw new ModelDirError(dir, `tokenizer.json has ${tokenizerSize} ids but the embedding matrix only ${embed.shape[0]} rows`);
  }
  return {
    dir,
    config,
    generationConfig: await readJson(path.join(dir, 'generation_config.json'), false),
    tokenizerConfig: await readJson(path.join(dir, 'tokenizer_config.json'), false),
    tokenizerPath,
    tokenizerJson,
    weights,
    tied,
    embeddingRows: embed.shape[0],
    hiddenSize: embed.shape[1],
    tokenizerSize,
  };
}

/**
 * A chat template as a model or tokenizer directory stores it: tokenizer_config.json's `chat_template`
 * (a string, or a list of {name, template}), else chat_template.jinja, else chat_template.json's
 * `chat_template`. `text` joins every template (to search them); `value` is what was stored.
 */
export interface ChatTemplate { value: string | Array<{ name: string; template: string }>; text: string; file: string }

export async function readChatTemplate(dir: string, tokenizerConfig: Record<string, unknown> | null): Promise<ChatTemplate | null> {
  const of = (v: unknown, file: string): ChatTemplate | null => {
    if (typeof v === 'string') return { value: v, text: v, file };
    if (Array.isArray(v) && v.every((x) => x && typeof x.name === 'string' && typeof x.template === 'string')) {
      return { value: v as ChatTemplate['value'], text: (v as Array<{ template: string }>).map((x) => x.template).join('\n'), file };
    }
    return null;
  };
  const fromConfig = of(tokenizerConfig?.chat_template, path.join(dir, 'tokenizer_config.json'));
  if (fromConfig) return fromConfig;
  try {
    const file = path.join(dir, 'chat_template.jinja');
    return of(await fsp.readFile(file, 'utf8'), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const file = path.join(dir, 'chat_template.json');
  const j = await readJson(file, false);
  return j ? of(j.chat_template, file) : null;
}

/** Copy the side files (generation config, chat template, special tokens...) that exist. */
export async function copySideFiles(src: string, dst: string, skip: string[] = []): Promise<string[]> {
  const copied: string[] = [];
  for (const f of SIDE_FILES) {
    if (skip.includes(f)) continue;
    try {
      await fsp.copyFile(path.join(src, f), path.join(dst, f));
      copied.push(f);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return copied;
}
