// The one reader of text files (corpora, held-out text): plain or gzip (detected by content),
// streamed line by line, decoded as strict UTF-8. Invalid sequences or NUL bytes are an error naming
// the file, the byte offset and the line — a binary or latin-1 file would otherwise train tokens such
// as "\u0000\u0000" or U+FFFD fragments — unless the caller allows them (then they are replaced,
// counted and reported in the stats).
import { createReadStream, promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { HackError, opt, plainReason } from './errors.ts';

export interface TextReadOptions {
  /** Replace invalid UTF-8 and drop NUL bytes instead of failing (counted in the stats). */
  allowInvalidUtf8?: boolean;
  /** The library option that named the files, for messages (e.g. `corpus`, `pt`). */
  option?: string;
  /** Bytes of every file read so far (compressed size for .gz), and their total. */
  onProgress?: (p: { bytesRead: number; totalBytes: number }) => void;
}

export interface TextStats {
  files: number;
  /** Decoded UTF-8 bytes (after decompression). */
  bytes: number;
  lines: number;
  /** Invalid UTF-8 sequences replaced by U+FFFD, and NUL bytes dropped (only with allowInvalidUtf8). */
  invalidSequences: number;
  nulBytes: number;
}

export const emptyStats = (): TextStats => ({ files: 0, bytes: 0, lines: 0, invalidSequences: 0, nulBytes: 0 });

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

/** Check that every file exists and is a regular file; their total size. */
export async function checkTextFiles(files: string[], option?: string): Promise<number> {
  if (files.length === 0) throw new HackError('MISSING_OPTION', 'missing (no text files given)', { option });
  let total = 0;
  for (const f of files) {
    let st;
    try { st = await fsp.stat(f); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new HackError('NO_SUCH_FILE', code === 'ENOENT' ? 'file not found' : `cannot read (${plainReason(e)})`, { file: f, option });
    }
    if (!st.isFile()) throw new HackError('NOT_A_FILE', 'not a regular file (expected a text or .gz file)', { file: f, option });
    total += st.size;
  }
  return total;
}

/**
 * Length of a valid UTF-8 prefix of `b` from `start`, stopping at the first invalid sequence or NUL:
 * `{ ok, bad }` where `bad` is the index of the offending byte (-1 if none) and `ok` the end of the
 * checked part (an incomplete sequence at the very end is left for the next chunk).
 */
export function scanUtf8(b: Uint8Array, start = 0): { ok: number; bad: number } {
  let i = start;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      if (c === 0) return { ok: i, bad: i };
      i++;
      continue;
    }
    let need: number, min: number;
    if (c >= 0xc2 && c <= 0xdf) { need = 1; min = 0x80; } else if (c >= 0xe0 && c <= 0xef) { need = 2; min = 0x800; } else if (c >= 0xf0 && c <= 0xf4) { need = 3; min = 0x10000; } else return { ok: i, bad: i };
    if (i + need >= n) {
      // the sequence runs past the end of the chunk: valid so far means "wait for the next chunk"
      for (let k = 1; i + k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) return { ok: i, bad: i };
      return { ok: i, bad: -1 };
    }
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const x = b[i + k];
      if ((x & 0xc0) !== 0x80) return { ok: i, bad: i };
      cp = (cp << 6) | (x & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return { ok: i, bad: i };
    i += need + 1;
  }
  return { ok: n, bad: -1 };
}

/** The 1-based line of byte `at` of `chunk`, given the lines before the chunk. */
function lineOf(at: number, chunk: Uint8Array, linesBefore: number): number {
  let line = linesBefore + 1;
  for (let k = 0; k < at; k++) if (chunk[k] === 0x0a) line++;
  return line;
}

function invalidError(file: string, buf: Uint8Array, bad: number, offset: number, linesBefore: number, gz: boolean, option?: string): HackError {
  const what = buf[bad] === 0 ? 'a NUL byte' : 'invalid UTF-8';
  return new HackError('INVALID_UTF8',
    `${what} at ${gz ? 'decompressed ' : ''}byte ${offset + bad} (line ${lineOf(bad, buf, linesBefore)}): text files must be UTF-8 without NUL bytes ` +
    `(convert the file, e.g. \`iconv -f latin1 -t utf-8\`, or pass ${opt('allowInvalidUtf8')} to replace and count them)`,
    { file, option });
}

/**
 * Lines of one or more text files (without the line break; `\r\n` handled), streamed. `stats` is
 * filled as the files are read.
 */
export async function* textLines(files: string[], o: TextReadOptions = {}, stats: TextStats = emptyStats()): AsyncGenerator<string> {
  const totalBytes = await checkTextFiles(files, o.option);
  let done = 0;
  const decoder = new TextDecoder('utf-8', { fatal: false });
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
      fileRead += (chunk as Buffer).length;
      o.onProgress?.({ bytesRead: done + fileRead, totalBytes });
    });
    stats.files++;
    let carry: Uint8Array = new Uint8Array(0);
    let rest = '';
    let offset = 0; // decoded bytes of this file before the current chunk (carry included)
    let linesBefore = 0;
    try {
      for await (const piece of stream) {
        let chunk = piece as Uint8Array;
        if (carry.length) { const j = new Uint8Array(carry.length + chunk.length); j.set(carry); j.set(chunk, carry.length); chunk = j; }
        let { ok, bad } = scanUtf8(chunk);
        let text: string;
        if (bad >= 0) {
          if (!o.allowInvalidUtf8) throw invalidError(f, chunk, bad, offset, linesBefore, gz, o.option);
          // replace: decode everything but an incomplete tail, count U+FFFD introduced and NULs dropped
          const tail = scanTail(chunk);
          const body = chunk.subarray(0, chunk.length - tail);
          for (const x of body) if (x === 0) stats.nulBytes++;
          text = decoder.decode(body);
          const before = countReplacement(body, text);
          stats.invalidSequences += before;
          if (stats.nulBytes) text = text.replace(/\u0000/g, '');
          ok = body.length;
          bad = -1;
        } else {
          text = Buffer.from(chunk.buffer, chunk.byteOffset, ok).toString('utf8');
        }
        carry = chunk.slice(ok);
        offset += ok;
        stats.bytes += ok;
        const all = rest + text;
        const lines = all.split('\n');
        rest = lines.pop()!;
        linesBefore += lines.length;
        stats.lines += lines.length;
        for (const l of lines) yield l.endsWith('\r') ? l.slice(0, -1) : l;
      }
    } catch (e) {
      raw.destroy();
      if (e instanceof HackError) throw e;
      throw new HackError('UNREADABLE', `could not read (${(e as Error).message})`, { file: f, option: o.option, cause: e });
    }
    if (carry.length) {
      if (!o.allowInvalidUtf8) {
        throw new HackError('INVALID_UTF8', `the file ends inside a UTF-8 sequence (byte ${offset}): text files must be UTF-8 (or pass ${opt('allowInvalidUtf8')})`, { file: f, option: o.option });
      }
      stats.invalidSequences++;
      rest += '\uFFFD';
    }
    if (rest.length > 0) {
      stats.lines++;
      yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
    }
    done += (await fsp.stat(f)).size;
    o.onProgress?.({ bytesRead: done, totalBytes });
  }
}

/** Bytes at the end of `b` that may start an incomplete (not yet invalid) sequence. */
function scanTail(b: Uint8Array): number {
  for (let k = 1; k <= 3 && k <= b.length; k++) {
    const c = b[b.length - k];
    if ((c & 0xc0) === 0x80) continue;
    const need = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xc2 && c <= 0xdf ? 1 : 0;
    return need >= k ? k : 0;
  }
  return 0;
}

/** U+FFFD characters the decoder introduced (those not present as real EF BF BD bytes). */
function countReplacement(bytes: Uint8Array, text: string): number {
  let inText = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0xfffd) inText++;
  let real = 0;
  for (let i = 0; i + 2 < bytes.length; i++) if (bytes[i] === 0xef && bytes[i + 1] === 0xbf && bytes[i + 2] === 0xbd) real++;
  return inText - real;
}

/**
 * A whole text file (held-out text), exactly as stored (line breaks kept: bits per byte divide by
 * its UTF-8 size), strictly decoded; empty (or whitespace-only) files are an error.
 */
export async function readTextFile(file: string, o: TextReadOptions = {}, stats: TextStats = emptyStats()): Promise<string> {
  await checkTextFiles([file], o.option);
  const gz = await isGzip(file);
  let buf: Uint8Array = await fsp.readFile(file);
  if (gz) buf = await new Promise<Uint8Array>((res, rej) => import('node:zlib').then((z) => z.gunzip(buf, (e, out) => (e ? rej(e) : res(out)))));
  const { ok, bad } = scanUtf8(buf);
  let text: string;
  stats.files++;
  if (bad >= 0 || ok < buf.length) {
    if (!o.allowInvalidUtf8) throw invalidError(file, buf, bad >= 0 ? bad : ok, 0, 0, gz, o.option);
    for (const x of buf) if (x === 0) stats.nulBytes++;
    text = new TextDecoder('utf-8').decode(buf);
    stats.invalidSequences += countReplacement(buf, text);
    if (stats.nulBytes) text = text.replace(/\u0000/g, '');
  } else {
    text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8');
  }
  stats.bytes += buf.byteLength;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) stats.lines++;
  if (text.trim().length === 0) throw new HackError('EMPTY_FILE', 'the file is empty', { file, option: o.option });
  return text;
}

/** The first `maxBytes` of a text, cut at a line end when one is near (documented subsets). */
export function textPrefix(text: string, maxBytes?: number): string {
  if (!maxBytes || Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let cut = Buffer.from(text, 'utf8').subarray(0, maxBytes).toString('utf8');
  if (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
  const nl = cut.lastIndexOf('\n');
  return nl > cut.length * 0.9 ? cut.slice(0, nl + 1) : cut;
}
