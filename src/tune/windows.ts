// Training text -> model inputs. Two views of the same extended tokenization:
//  - "extended decoding" (output rows): the model reads ORIGINAL ids (a new token is fed back as its
//    original sub-ids, as generateExtended does) and, after each extended token, predicts the next
//    extended token. Positions = the last original id of each extended token.
//  - "extended input" (input rows): the model reads the extended ids themselves.
import { HackError } from '../io/errors.ts';
import { textLines } from '../io/text.ts';

/**
 * The first `maxBytes` (UTF-8, whole non-blank lines) of one or more plain or gzip text files (read
 * strictly, io/text.ts), packed into chunks of about `chunkChars`.
 */
export async function readCorpusChunks(files: string | string[], maxBytes: number, chunkChars = 1500, option = 'corpus', allowInvalidUtf8 = false): Promise<{ chunks: string[]; bytes: number }> {
  const list = Array.isArray(files) ? files : [files];
  const chunks: string[] = [];
  let cur = '';
  let bytes = 0;
  const lines = textLines(list, { option, allowInvalidUtf8 });
  for await (const line of lines) {
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
  await lines.return(undefined);
  if (cur) chunks.push(cur);
  if (chunks.length === 0) throw new HackError('EMPTY_CORPUS', `${list.join(' ')}: no text (the file is empty)`, { option });
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
