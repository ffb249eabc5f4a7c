// Safetensors reader and streaming writer.
// Format: u64 little-endian header length N, N bytes of JSON header, then the raw data section.
// Every header is validated before any tensor byte is read, so a corrupt file gives a typed
// error instead of an out-of-bounds read.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { type DType, dtypeSize, isDType, toFloat32 } from './dtype.ts';
import { tempSibling } from './atomic.ts';
import { HackError } from './errors.ts';

/** Headers larger than this are refused (the reference implementation uses the same bound). */
export const MAX_HEADER_BYTES = 100_000_000;

export type SafetensorsErrorCode =
  | 'NOT_FOUND'
  | 'TRUNCATED'
  | 'HEADER_TOO_LARGE'
  | 'BAD_HEADER'
  | 'UNKNOWN_DTYPE'
  | 'SIZE_MISMATCH'
  | 'OUT_OF_BOUNDS'
  | 'OVERLAP'
  | 'INCOMPLETE'
  | 'NO_SUCH_TENSOR'
  | 'BAD_ARGUMENT';

export class SafetensorsError extends HackError {
  declare readonly code: SafetensorsErrorCode;
  declare readonly file: string;
  constructor(code: SafetensorsErrorCode, file: string, message: string) {
    super(code, message, { file });
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Offsets relative to the data section, as in the header. */
  dataOffsets: [number, number];
  /** Absolute position of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  path: string;
  fileSize: number;
  headerLength: number;
  dataStart: number;
  metadata: Record<string, string> | null;
  /** Tensors ordered by their position in the file. */
  tensors: TensorInfo[];
  byName: Map<string, TensorInfo>;
}

function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validate a parsed header. `fileSize` is the whole file's size (header included). */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsFile {
  const headerLength = headerBytes.byteLength;
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  if (dataSize < 0) throw new SafetensorsError('TRUNCATED', file, `header claims ${headerLength} bytes but the file has ${fileSize}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError('BAD_HEADER', file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new SafetensorsError('BAD_HEADER', file, 'header does not start with a JSON object');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError('BAD_HEADER', file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError('BAD_HEADER', file, 'header is not a JSON object');
  }
  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        throw new SafetensorsError('BAD_HEADER', file, '__metadata__ must be an object of strings');
      }
      for (const v of Object.values(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError('BAD_HEADER', file, '__metadata__ values must be strings');
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new SafetensorsError('BAD_HEADER', file, `tensor "${name}": entry must be an object`);
    }
    const { dtype, shape, data_offsets } = entry as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new SafetensorsError('UNKNOWN_DTYPE', file, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError('BAD_HEADER', file, `tensor "${name}": shape must be an array of non-negative integers`);
    }
    if (
      !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
      !data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || data_offsets[0] > data_offsets[1]
    ) {
      throw new SafetensorsError('BAD_HEADER', file, `tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const n = numel(shape as number[]);
    const expected = n * dtypeSize(dtype);
    const [begin, end] = data_offsets as [number, number];
    if (!Number.isSafeInteger(expected) || expected !== end - begin) {
      throw new SafetensorsError('SIZE_MISMATCH', file,
        `tensor "${name}": shape [${shape.join(', ')}] x ${dtype} is ${expected} bytes but data_offsets span ${end - begin}`);
    }
    if (end > dataSize) {
      throw new SafetensorsError('OUT_OF_BOUNDS', file, `tensor "${name}": data ends at ${end} but the data section has ${dataSize} bytes`);
    }
    tensors.push({ name, dtype, shape: shape as number[], dataOffsets: [begin, end], byteOffset: dataStart + begin, byteLength: end - begin });
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  // Compare each non-empty tensor with the furthest-reaching non-empty one before it: checking only
  // adjacent pairs would let a zero-length tensor in between hide an overlap.
  let reach: TensorInfo | null = null;
  for (const cur of tensors) {
    if (cur.byteLength === 0) continue;
    if (reach && cur.dataOffsets[0] < reach.dataOffsets[1]) {
      throw new SafetensorsError('OVERLAP', file, `tensors "${reach.name}" and "${cur.name}" overlap`);
    }
    if (!reach || cur.dataOffsets[1] > reach.dataOffsets[1]) reach = cur;
  }
  // The tensors must cover the data section exactly, in order, as the reference (Rust) reader
  // requires: a hole or bytes after the last tensor mean a damaged or hand-edited file.
  let cursor = 0;
  for (const cur of tensors) {
    if (cur.dataOffsets[0] > cursor) {
      throw new SafetensorsError('INCOMPLETE', file, `bytes ${cursor}..${cur.dataOffsets[0]} of the data section belong to no tensor (a hole before "${cur.name}")`);
    }
    if (cur.dataOffsets[0] < cursor) throw new SafetensorsError('OVERLAP', file, `tensor "${cur.name}" starts inside another tensor's data`);
    cursor = cur.dataOffsets[1];
  }
  if (cursor !== dataSize) {
    throw new SafetensorsError('INCOMPLETE', file, `the data section has ${dataSize} bytes but its tensors end at ${cursor} (${dataSize - cursor} trailing bytes)`);
  }
  return { path: file, fileSize, headerLength, dataStart, metadata, tensors, byName: new Map(tensors.map((t) => [t.name, t])) };
}

/** Read and validate a header from the 8-byte prefix onwards. */
async function readHeaderFrom(fh: FileHandle, file: string, fileSize: number): Promise<SafetensorsFile> {
  if (fileSize < 8) throw new SafetensorsError('TRUNCATED', file, `file has ${fileSize} bytes, fewer than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  await fh.read(lenBuf, 0, 8, 0);
  const len = lenBuf.readBigUInt64LE(0);
  if (len > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError('HEADER_TOO_LARGE', file, `header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLength = Number(len);
  if (headerLength < 2) throw new SafetensorsError('BAD_HEADER', file, `header length ${headerLength} is too small for a JSON object`);
  if (8 + headerLength > fileSize) {
    throw new SafetensorsError('TRUNCATED', file, `header claims ${headerLength} bytes but only ${fileSize - 8} follow`);
  }
  const header = Buffer.alloc(headerLength);
  const { bytesRead } = await fh.read(header, 0, headerLength, 8);
  if (bytesRead !== headerLength) throw new SafetensorsError('TRUNCATED', file, 'file ended inside the header');
  return parseSafetensorsHeader(header, fileSize, file);
}

/** Open a safetensors file and validate its header (no tensor data is read). */
export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError('NOT_FOUND', file, code === 'ENOENT' ? 'file not found' : `cannot open (${code})`);
  }
  try {
    const stat = await fh.stat();
    // A directory opens fine on Linux but fails on read with a raw EISDIR: say what is wrong instead.
    if (!stat.isFile()) throw new SafetensorsError('NOT_FOUND', file, 'not a regular file');
    return await readHeaderFrom(fh, file, stat.size);
  } finally {
    await fh.close();
  }
}

/** Validate a whole in-memory safetensors buffer and return its header. */
export function parseSafetensorsBuffer(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  if (buf.byteLength < 8) throw new SafetensorsError('TRUNCATED', file, `buffer has ${buf.byteLength} bytes, fewer than 8`);
  const len = new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true);
  if (len > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError('HEADER_TOO_LARGE', file, `header length ${len} exceeds the limit`);
  const n = Number(len);
  if (n < 2) throw new SafetensorsError('BAD_HEADER', file, `header length ${n} is too small for a JSON object`);
  if (8 + n > buf.byteLength) throw new SafetensorsError('TRUNCATED', file, `header claims ${n} bytes but only ${buf.byteLength - 8} follow`);
  return parseSafetensorsHeader(buf.subarray(8, 8 + n), buf.byteLength, file);
}

export function tensorInfo(st: SafetensorsFile, name: string): TensorInfo {
  const t = st.byName.get(name);
  if (!t) throw new SafetensorsError('NO_SUCH_TENSOR', st.path, `no tensor named "${name}"`);
  return t;
}

async function readAt(file: string, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const fh = await fsp.open(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(out, done, Math.min(length - done, 1 << 30), position + done);
      if (bytesRead === 0) throw new SafetensorsError('TRUNCATED', file, `file ended at ${position + done} while reading`);
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return out;
}

/** Raw bytes of one tensor, read at its offset (the rest of the file is not loaded). */
export async function readTensorBytes(st: SafetensorsFile, name: string): Promise<Uint8Array> {
  const t = tensorInfo(st, name);
  return readAt(st.path, t.byteOffset, t.byteLength);
}

/** Raw bytes of rows [start, end) of a tensor of rank >= 1 (rows are along the first dimension). */
export async function readTensorRows(st: SafetensorsFile, name: string, start: number, end: number): Promise<Uint8Array> {
  const t = tensorInfo(st, name);
  const rows = t.shape[0] ?? 0;
  if (t.shape.length < 1 || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > rows || start > end) {
    throw new SafetensorsError('BAD_ARGUMENT', st.path, `rows [${start}, ${end}) out of range for "${name}" with shape [${t.shape.join(', ')}]`);
  }
  const rowBytes = numel(t.shape.slice(1)) * dtypeSize(t.dtype);
  return readAt(st.path, t.byteOffset + start * rowBytes, (end - start) * rowBytes);
}

/** A float tensor (or a row range of it) decoded to float32. */
export async function readTensorF32(st: SafetensorsFile, name: string, rows?: [number, number]): Promise<Float32Array> {
  const t = tensorInfo(st, name);
  const bytes = rows ? await readTensorRows(st, name, rows[0], rows[1]) : await readTensorBytes(st, name);
  return toFloat32(bytes, t.dtype);
}

// ---------------------------------------------------------------- writer

/** One tensor to write: its header fields and a producer that streams exactly its bytes. */
export interface TensorSource {
  name: string;
  dtype: DType;
  shape: number[];
  /** Calls `sink` with consecutive chunks that together hold the tensor's bytes. */
  produce: (sink: (chunk: Uint8Array) => Promise<void>) => Promise<void>;
}

export function bytesSource(name: string, dtype: DType, shape: number[], bytes: Uint8Array): TensorSource {
  return { name, dtype, shape, produce: async (sink) => sink(bytes) };
}

/** Stream a tensor out of an existing file in bounded chunks (dtype and shape kept). */
export function copySource(st: SafetensorsFile, name: string, rename = name, chunkBytes = 16 << 20): TensorSource {
  const t = tensorInfo(st, name);
  return {
    name: rename,
    dtype: t.dtype,
    shape: t.shape,
    produce: async (sink) => {
      const fh = await fsp.open(st.path, 'r');
      try {
        const buf = new Uint8Array(Math.min(chunkBytes, Math.max(t.byteLength, 1)));
        let done = 0;
        while (done < t.byteLength) {
          const want = Math.min(buf.byteLength, t.byteLength - done);
          const { bytesRead } = await fh.read(buf, 0, want, t.byteOffset + done);
          if (bytesRead === 0) throw new SafetensorsError('TRUNCATED', st.path, `file ended while copying "${name}"`);
          await sink(buf.subarray(0, bytesRead));
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
    },
  };
}

/** The header bytes (length prefix included) for tensors laid out in the given order. */
export function serializeHeader(
  tensors: Array<Pick<TensorSource, 'name' | 'dtype' | 'shape'>>,
  metadata: Record<string, string> | null = null,
): Uint8Array {
  // Built entry by entry rather than with one object: JS objects put integer-like keys ("0", "12")
  // first, which would reorder the header away from the data order.
  const entries: string[] = [];
  if (metadata) entries.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw new SafetensorsError('BAD_ARGUMENT', '<writer>', `duplicate or reserved tensor name "${t.name}"`);
    seen.add(t.name);
    const len = numel(t.shape) * dtypeSize(t.dtype);
    entries.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] })}`);
    offset += len;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/**
 * Stream tensors into a new safetensors file: memory stays bounded by the chunks the
 * producers hand over. The file appears at `target` only when complete (temp + rename).
 */
export async function writeSafetensors(
  target: string,
  tensors: TensorSource[],
  metadata: Record<string, string> | null = { format: 'pt' },
): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempSibling(target);
  const fh = await fsp.open(tmp, 'w');
  try {
    const header = serializeHeader(tensors, metadata);
    await fh.write(header, 0, header.byteLength, null);
    for (const t of tensors) {
      const expected = numel(t.shape) * dtypeSize(t.dtype);
      let written = 0;
      await t.produce(async (chunk) => {
        written += chunk.byteLength;
        if (written > expected) throw new SafetensorsError('SIZE_MISMATCH', target, `tensor "${t.name}" produced more than its ${expected} bytes`);
        let off = 0;
        while (off < chunk.byteLength) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off, null);
          off += bytesWritten;
        }
      });
      if (written !== expected) throw new SafetensorsError('SIZE_MISMATCH', target, `tensor "${t.name}" produced ${written} bytes, expected ${expected}`);
    }
    await fh.close();
    await fsp.rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
