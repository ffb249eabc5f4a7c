// The project's Python venv (built by `npm run setup:python`), for interop checks with gguf-py and
// transformers; HACK_TOKENIZER_PYTHON overrides it.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PYTHON = process.env.HACK_TOKENIZER_PYTHON ?? path.join(repoRoot, '.venv', 'bin', 'python');

/** transformers' float32 logits (eager attention) of `ids` on the model directory `dir`, flattened [ids.length x vocab]. */
export function transformersLogits(python: string, dir: string, ids: number[]): number[] {
  const r = spawnSync(python, ['-c', [
    'import sys, json, torch', 'from transformers import AutoModelForCausalLM',
    'm = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation="eager").eval()',
    'ids = torch.tensor([json.loads(sys.argv[2])])',
    'print(json.dumps(m(input_ids=ids).logits[0].flatten().tolist()))',
  ].join('\n'), dir, JSON.stringify(ids)], { encoding: 'utf8', env: { ...process.env, TRANSFORMERS_VERBOSITY: 'error', HF_HUB_DISABLE_PROGRESS_BARS: '1' } });
  if (r.status !== 0) throw new Error(`transformers could not run ${dir}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
}
