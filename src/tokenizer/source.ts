// Where a tokenizer comes from on the command line: a tokenizer.json file, a model directory,
// or a Hugging Face repo id (resolved through the hub cache).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../io/hub.ts';

export interface TokenizerSource {
  /** The tokenizer.json file. */
  tokenizerPath: string;
  /** The model directory it belongs to, when the source was a model. */
  modelDir: string | null;
  /** A short name for display. */
  label: string;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch {
    return false;
  }
}

/** A spec that may be a tokenizer.json file, a model directory or a repo id. */
export async function tokenizerSourceOf(spec: string, flag = '--model'): Promise<TokenizerSource> {
  if (await isFile(spec)) return { tokenizerPath: spec, modelDir: null, label: spec };
  const dir = await resolveModel(spec);
  const file = path.join(dir, 'tokenizer.json');
  if (!(await isFile(file))) throw new Error(`${flag} ${spec}: no tokenizer.json in ${dir}`);
  return { tokenizerPath: file, modelDir: dir, label: spec };
}

/** --model / --tokenizer: exactly one of them. */
export async function tokenizerSourceFromFlags(opts: { model?: string; tokenizer?: string }): Promise<TokenizerSource> {
  if (opts.model && opts.tokenizer) throw new Error('give either --model or --tokenizer, not both');
  if (opts.tokenizer) {
    if (!(await isFile(opts.tokenizer))) throw new Error(`--tokenizer ${opts.tokenizer}: file not found (expected a tokenizer.json)`);
    return { tokenizerPath: opts.tokenizer, modelDir: null, label: opts.tokenizer };
  }
  if (opts.model) return tokenizerSourceOf(opts.model, '--model');
  throw new Error('missing --model <dir|hub id> or --tokenizer <tokenizer.json>');
}
