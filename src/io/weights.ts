// The weights of a model directory: one `model.safetensors` or shards listed in
// `model.safetensors.index.json`. Tensors are located by name across shards.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  openSafetensors, readTensorBytes, readTensorF32, readTensorRows,
  SafetensorsError, type SafetensorsFile, type TensorInfo,
} from './safetensors.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface WeightSet {
  dir: string;
  /** Shard files in index order (one entry for an unsharded model). */
  files: SafetensorsFile[];
  /** Tensor name -> the file that holds it. */
  location: Map<string, SafetensorsFile>;
  /** `metadata` of the index file, if sharded. */
  indexMetadata: Record<string, unknown> | null;
  sharded: boolean;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

export async function openWeights(dir: string): Promise<WeightSet> {
  const indexPath = path.join(dir, INDEX_FILE);
  if (await exists(indexPath)) {
    let index: { metadata?: Record<string, unknown>; weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await fsp.readFile(indexPath, 'utf8'));
    } catch (e) {
      throw new SafetensorsError('BAD_HEADER', indexPath, `not valid JSON (${(e as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new SafetensorsError('BAD_HEADER', indexPath, 'expected a "weight_map" object mapping tensor names to shard files');
    }
    const shardNames = [...new Set(Object.values(index.weight_map))];
    const files: SafetensorsFile[] = [];
    const byShard = new Map<string, SafetensorsFile>();
    for (const s of shardNames) {
      if (typeof s !== 'string' || s.includes('/') || s.includes('\\')) {
        throw new SafetensorsError('BAD_HEADER', indexPath, `shard name ${JSON.stringify(s)} must be a plain file name`);
      }
      const st = await openSafetensors(path.join(dir, s));
      files.push(st);
      byShard.set(s, st);
    }
    const location = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(index.weight_map)) {
      const st = byShard.get(shard)!;
      if (!st.byName.has(name)) {
        throw new SafetensorsError('NO_SUCH_TENSOR', st.path, `the index maps "${name}" here but the shard has no such tensor`);
      }
      location.set(name, st);
    }
    return { dir, files, location, indexMetadata: index.metadata ?? null, sharded: true };
  }
  const single = path.join(dir, SINGLE_FILE);
  if (!(await exists(single))) {
    throw new SafetensorsError('NOT_FOUND', dir, `no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors weights are supported)`);
  }
  const st = await openSafetensors(single);
  return { dir, files: [st], location: new Map(st.tensors.map((t) => [t.name, st])), indexMetadata: null, sharded: false };
}

export function hasTensor(w: WeightSet, name: string): boolean {
  return w.location.has(name);
}

export function weightFile(w: WeightSet, name: string): SafetensorsFile {
  const st = w.location.get(name);
  if (!st) throw new SafetensorsError('NO_SUCH_TENSOR', w.dir, `no tensor named "${name}" in the model weights`);
  return st;
}

export function weightInfo(w: WeightSet, name: string): TensorInfo {
  return weightFile(w, name).byName.get(name)!;
}

// async, so an unknown name rejects the promise instead of throwing synchronously
export const readWeightBytes = async (w: WeightSet, name: string) => readTensorBytes(weightFile(w, name), name);
export const readWeightRows = async (w: WeightSet, name: string, start: number, end: number) =>
  readTensorRows(weightFile(w, name), name, start, end);
export const readWeightF32 = async (w: WeightSet, name: string, rows?: [number, number]) =>
  readTensorF32(weightFile(w, name), name, rows);

/** Total parameter count over all tensors. */
export function parameterCount(w: WeightSet): number {
  let n = 0;
  for (const f of w.files) for (const t of f.tensors) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}
