// The identity of input files, for resumable work (experiment cells, caches): a result is reused only
// when every input is the same file as before. Cheap and strong enough: size, modification time and
// a hash of the first and last MiB (a full hash for files up to 4 MiB).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

const MIB = 1 << 20;

export interface FileIdentity { path: string; size: number; mtime: number; hash: string }

/** Identity of one file. */
export async function fileIdentity(file: string): Promise<FileIdentity> {
  const abs = path.resolve(file);
  const st = await fsp.stat(abs);
  const h = createHash('sha256');
  const fh = await fsp.open(abs, 'r');
  try {
    if (st.size <= 4 * MIB) {
      h.update(await fh.readFile());
    } else {
      const buf = Buffer.alloc(MIB);
      await fh.read(buf, 0, MIB, 0);
      h.update(buf);
      await fh.read(buf, 0, MIB, st.size - MIB);
      h.update(buf);
    }
  } finally {
    await fh.close();
  }
  return { path: abs, size: st.size, mtime: Math.floor(st.mtimeMs), hash: h.digest('hex').slice(0, 16) };
}

/** Identity of a file or a directory (every regular file in it, recursively, hidden ones excepted). */
export async function pathIdentity(p: string): Promise<unknown> {
  const st = await fsp.stat(p);
  if (!st.isDirectory()) return fileIdentity(p);
  const out: Record<string, Omit<FileIdentity, 'path'>> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of (await fsp.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const f = path.join(dir, e.name);
      if (e.isDirectory()) await walk(f);
      else if (e.isFile()) { const { path: _p, ...rest } = await fileIdentity(f); out[path.relative(p, f)] = rest; }
    }
  };
  await walk(p);
  return { dir: path.resolve(p), files: out };
}

/** A short stable hash of any JSON value (keys sorted). */
export function hashOf(v: unknown): string {
  const canon = (x: unknown): unknown => Array.isArray(x) ? x.map(canon)
    : x && typeof x === 'object' ? Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, canon((x as Record<string, unknown>)[k])])) : x;
  return createHash('sha256').update(JSON.stringify(canon(v))).digest('hex').slice(0, 12);
}
