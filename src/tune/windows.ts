// Training text -> model inputs. Two views of the same extended tokenization:
//  - "extended decoding" (output rows): the model reads ORIGINAL ids (a new token is fed back as its
//    original sub-ids, as generateExtended does) and, after each extended token, predicts the next
//    extended token. Positions = the last original id of each extended token.
//  - "extended input" (input rows): the model reads the extended ids themselves.
import { createReadStream, promises as fsp } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';

/** The first `maxBytes` (UTF-8, whole lines) of a plain or gzip text file, packed into chunks of about `chunkChars`. */
export async function readCorpusChunks(file: string, maxBytes: number, chunkChars = 1500, flag = '--corpus'): Promise<{ chunks: string[]; bytes: number }> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch {
    throw new Error(`${flag} ${file}: file not found`);
  }
  if (!st.isFile()) throw new Error(`${flag} ${file}: not a file`);
  const fh = await fsp.open(file, 'r');
  const magic = Buffer.alloc(2);
  await fh.read(magic, 0, 2, 0);
  await fh.close();
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  let stream: Readable = raw;
  if (magic[0] === 0x1f && magic[1] === 0x8b) stream = raw.pipe(createGunzip());
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  const chunks: string[] = [];
  let cur = '';
  let bytes = 0;
  try {
    for await (const line of rl) {
      if (line.trim() === '') continue;
      const b = Buffer.byteLength(line, 'utf8') + 1;
      if (bytes + b > maxBytes && bytes > 0) break;
      bytes += b;
      cur = cur ? cur + '\n' + line : line;
      if (cur.length >= chunkChars) {
        chunks.push(cur);
        cur = '';
      }
    }
  } finally {
    rl.close();
    raw.destroy();
  }
  if (cur) chunks.push(cur);
  if (chunks.length === 0) throw new Error(`${flag} ${file}: no text (the file is empty)`);
  return { chunks, bytes };
}

/** One model input for the output-row objective. */
export interface DecodingWindow {
  /** Original ids the model reads. */
  input: number[];
  /** Index in `input` whose hidden state predicts `targets[i]`. */
  positions: number[];
  /** Extended ids to predict. */
  targets: number[];
}

/**
 * Cut one extended tokenization into windows of at most `maxLen` original ids. Every extended
 * token except the first of a chunk is predicted exactly once.
 */
export function decodingWindows(extIds: number[], newToOriginal: Map<number, number[]>, maxLen: number): DecodingWindow[] {
  const subs = extIds.map((id) => newToOriginal.get(id) ?? [id]);
  const out: DecodingWindow[] = [];
  const n = extIds.length;
  let s = 0;
  while (s < n - 1) {
    const w: DecodingWindow = { input: subs[s].slice(-maxLen), positions: [], targets: [] };
    let t = s + 1;
    for (;;) {
      // predict e_t from what was read so far; read it only if another prediction follows and it fits
      w.positions.push(w.input.length - 1);
      w.targets.push(extIds[t]);
      if (t + 1 >= n || w.input.length + subs[t].length > maxLen) break;
      w.input.push(...subs[t]);
      t++;
    }
    out.push(w);
    s = t; // the next window starts by reading e_t
  }
  return out;
}

/** Cut an extended tokenization into input windows of at most `maxLen` ids (overlapping by one id). */
export function inputWindows(extIds: number[], maxLen: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < extIds.length - 1; s += maxLen - 1) out.push(extIds.slice(s, s + maxLen));
  return out;
}
