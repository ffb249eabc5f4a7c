// Where the shipped assets (demo model, corpora, benchmarks) live, relative to this file (src/ or dist/).
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ASSETS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'assets');
export const DEMO_MODEL_DIR = path.join(ASSETS_DIR, 'models', 'tiny-en-llama');
