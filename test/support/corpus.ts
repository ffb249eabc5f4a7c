// The first lines of a gzipped corpus, for tests that need a small real-text corpus file.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';

export async function firstLines(file: string, n: number): Promise<string> {
  const rl = createInterface({ input: createReadStream(file).pipe(createGunzip()) });
  const out: string[] = [];
  for await (const l of rl) { out.push(l); if (out.length >= n) break; }
  rl.close();
  return out.join('\n') + '\n';
}
