// Atomic writes of internal files (caches, checkpoints, cells): a temporary sibling, then a rename,
// so a failure never leaves a half-written file or directory behind. Temporary paths are registered
// with the output policy (output.ts) and removed on SIGINT / SIGTERM. User-facing outputs go
// through output.ts's writeOutputDir / writeOutputFile, which add the checks.
import { mkdirSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { makeDirs, registerTemp, releaseTemp, renameIntoPlace, tempSibling } from './output.ts';

export { tempSibling };

/** Write a file atomically (temp file + rename). */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await makeDirs(path.dirname(path.resolve(target)));
  await renameIntoPlace(target, data);
}

/**
 * Build a directory atomically: `fill` writes into a temporary directory which then replaces
 * `target` (an existing target is moved aside first and removed only after the swap succeeded).
 */
export async function writeDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const abs = path.resolve(target);
  await makeDirs(path.dirname(abs));
  const tmp = tempSibling(abs);
  registerTemp(tmp);
  try {
    mkdirSync(tmp); // synchronous, as in output.ts's writeOutputDir: no mkdir in flight when a signal's cleanup runs
    await fill(tmp);
    let old: string | null = null;
    try {
      await fsp.access(abs);
      old = tempSibling(abs) + '.old';
      registerTemp(old);
      await fsp.rename(abs, old);
    } catch {
      old = null;
    }
    await fsp.rename(tmp, abs);
    if (old) { await fsp.rm(old, { recursive: true, force: true }); releaseTemp(old); }
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    releaseTemp(tmp);
  }
}
