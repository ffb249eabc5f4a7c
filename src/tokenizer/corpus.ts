// Corpus streaming (plain text or gzip, any size) and the word-frequency table a BPE trainer
// needs: each line is split into words exactly as the model's own normalizer and pre-tokenizer
// do (through the tokenizers binding), so training sees what the model will see.
import { createReadStream, promises as fsp } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { LoadedTokenizer } from './load.ts';
import type { BpeKind } from './bpe-model.ts';

export class CorpusError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'CorpusError';
  }
}

export interface CorpusProgress {
  /** Bytes of the (possibly compressed) files read so far, and their total size. */
  bytesRead: number;
  totalBytes: number;
}

async function isGzip(file: string): Promise<boolean> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Lines of one or more text files (gzip detected by its magic bytes), streamed. */
export async function* corpusLines(files: string[], onProgress?: (p: CorpusProgress) => void): AsyncGenerator<string> {
  let totalBytes = 0;
  for (const f of files) {
    try {
      const st = await fsp.stat(f);
      if (!st.isFile()) throw new CorpusError(f, 'not a file');
      totalBytes += st.size;
    } catch (e) {
      if (e instanceof CorpusError) throw e;
      throw new CorpusError(f, 'corpus file not found');
    }
  }
  let done = 0;
  for (const f of files) {
    const gz = await isGzip(f);
    const raw = createReadStream(f, { highWaterMark: 1 << 20 });
    let stream: Readable = raw;
    if (gz) {
      const gunzip = createGunzip({ chunkSize: 1 << 20 });
      raw.pipe(gunzip);
      raw.on('error', (e) => gunzip.destroy(e));
      stream = gunzip;
    }
    let fileRead = 0;
    raw.on('data', (chunk) => {
      fileRead += chunk.length;
      onProgress?.({ bytesRead: done + fileRead, totalBytes });
    });
    // Split chunks into lines ourselves (much faster than readline on large files).
    const decoder = new StringDecoder('utf8');
    let rest = '';
    try {
      for await (const chunk of stream) {
        const text = rest + decoder.write(chunk as Buffer);
        const lines = text.split('\n');
        rest = lines.pop()!;
        for (const l of lines) yield l.endsWith('\r') ? l.slice(0, -1) : l;
      }
    } catch (e) {
      throw new CorpusError(f, `could not read (${(e as Error).message})`);
    }
    rest += decoder.end();
    if (rest.length > 0) yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
    done += (await fsp.stat(f)).size;
    onProgress?.({ bytesRead: done, totalBytes });
  }
}

export interface WordFrequencies {
  /** Distinct words in vocab form ('Ġdeputados', '▁deputados'), with counts. */
  words: string[];
  counts: Float64Array;
  lines: number;
  /** Total word occurrences. */
  total: number;
}

// Splitting a line before every " X" (space then non-space) never cuts a pre-tokenizer match of
// the GPT-2 / Llama-3 / Qwen regexes (no match contains a space followed by a non-space except
// at its start), so the line can be cut into coarse pieces, the distinct pieces counted in JS,
// and only the distinct pieces sent through the native pre-tokenizer. Exactness is tested
// against the native encoder.
const COARSE = /(?= \S)/;
const SP_WORD = /(?<!\u2581)(?=\u2581)/;

/** Count the model's words over a corpus. */
export async function countWords(
  tok: LoadedTokenizer,
  kind: BpeKind,
  files: string[],
  onProgress?: (p: CorpusProgress) => void,
): Promise<WordFrequencies> {
  const normalizer = tok.native.getNormalizer();
  const pre = tok.native.getPreTokenizer();
  const pieces = new Map<string, number>();
  const words = new Map<string, number>();
  let lines = 0;
  const addWord = (w: string, c: number): void => {
    if (kind === 'sentencepiece' && w.length > 1 && w.indexOf('\u2581', 1) > 0) {
      for (const part of w.split(SP_WORD)) if (part) words.set(part, (words.get(part) ?? 0) + c);
    } else if (w) words.set(w, (words.get(w) ?? 0) + c);
  };
  // SentencePiece tokenizers without a pre-tokenizer (Llama-2) normalize the whole line
  // (Prepend '▁' + Replace ' ' -> '▁'): do that natively per line, then split at '▁'.
  const perLine = pre === null;
  for await (const line of corpusLines(files, onProgress)) {
    if (line.length === 0) continue;
    lines++;
    if (perLine) {
      addWord(normalizer ? normalizer.normalizeString(line) : line, 1);
      continue;
    }
    for (const p of line.split(COARSE)) pieces.set(p, (pieces.get(p) ?? 0) + 1);
  }
  for (const [p, c] of pieces) {
    const s = normalizer ? normalizer.normalizeString(p) : p;
    for (const [w] of pre!.preTokenizeString(s)) addWord(w, c);
  }
  const list = [...words.keys()];
  const counts = new Float64Array(list.length);
  let total = 0;
  for (let i = 0; i < list.length; i++) {
    counts[i] = words.get(list[i])!;
    total += counts[i];
  }
  return { words: list, counts, lines, total };
}
