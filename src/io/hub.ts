// Resolve a --model argument: a local model directory, or a Hugging Face repo id
// downloaded into a local cache. (Download is being implemented: issue #2.)
import { promises as fsp } from 'node:fs';

export async function resolveModel(spec: string): Promise<string> {
  try {
    await fsp.access(spec);
    return spec;
  } catch {
    throw new Error(`--model ${spec}: no such directory (Hub download not available yet)`);
  }
}
