// Atomic output: everything is written to a temporary sibling, then renamed into place,
// so a failure never leaves a half-written file or directory behind.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

export function tempSibling(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

/** Write a file atomically (temp file + rename). */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempSibling(target);
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Build a directory atomically: `fill` writes into a temporary directory which then replaces
 * `target` (an existing target is moved aside first and removed only after the swap succeeded).
 */
export async function writeDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const abs = path.resolve(target);
  await fsp.mkdir(path.dirname(abs), { recursive: true });
  const tmp = tempSibling(abs);
  await fsp.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  let old: string | null = null;
  try {
    await fsp.access(abs);
    old = tempSibling(abs) + '.old';
    await fsp.rename(abs, old);
  } catch {
    old = null;
  }
  await fsp.rename(tmp, abs);
  if (old) await fsp.rm(old, { recursive: true, force: true });
}
