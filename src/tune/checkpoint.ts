// Training checkpoints: the trainable rows, Adam's moments and where the run stands, in one
// safetensors file written atomically (temp + rename), so an interrupted run resumes exactly.
import { promises as fsp } from 'node:fs';
import { bytesSource, openSafetensors, readTensorF32, writeSafetensors, type TensorSource } from '../io/safetensors.ts';
import { fileError } from '../io/errors.ts';

export interface CheckpointState {
  /** Free-form position of the run (phase, epoch, step, positions seen, options...). */
  progress: Record<string, unknown>;
  /** Named float32 arrays (rows, adam moments). */
  arrays: Record<string, Float32Array>;
}

export async function writeCheckpoint(file: string, s: CheckpointState): Promise<void> {
  const sources: TensorSource[] = Object.entries(s.arrays).map(([name, a]) =>
    bytesSource(name, 'F32', [a.length], new Uint8Array(a.buffer, a.byteOffset, a.byteLength)));
  await writeSafetensors(file, sources, { progress: JSON.stringify(s.progress) });
}

export async function readCheckpoint(file: string): Promise<CheckpointState | null> {
  try {
    await fsp.access(file);
  } catch {
    return null;
  }
  const st = await openSafetensors(file);
  const raw = st.metadata?.progress;
  if (!raw) throw fileError(file, 'not a tune checkpoint (no "progress" metadata)');
  const arrays: Record<string, Float32Array> = {};
  for (const t of st.tensors) arrays[t.name] = await readTensorF32(st, t.name);
  return { progress: JSON.parse(raw), arrays };
}
