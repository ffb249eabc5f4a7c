// The project's Python venv (built by `npm run setup:python`), for interop checks with gguf-py and
// transformers; HACK_TOKENIZER_PYTHON overrides it.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PYTHON = process.env.HACK_TOKENIZER_PYTHON ?? path.join(repoRoot, '.venv', 'bin', 'python');
