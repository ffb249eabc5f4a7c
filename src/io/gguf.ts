// GGUF v3 reader and streaming writer (the llama.cpp file format).
// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata key/values,
// the tensor infos (name, dims innermost first, ggml type, offset into the data section), padding to
// `general.alignment` (default 32), then the tensor data, each tensor starting aligned.
// The writer computes the whole header from shapes and types first, then streams each tensor through
// its encoder, so memory stays bounded by one chunk of rows; the file appears only when complete.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { HackError } from './errors.ts';
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from './dtype.ts';
import { registerTemp, releaseTemp, tempSibling, writeError } from './output.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types, numbered as in the format. */
export const GGUF_VALUE_TYPES = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9,
  uint64: 10, int64: 11, float64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPES, 'array'>;
export type GgufValue =
  | { type: Exclude<GgufScalarType, 'string' | 'bool' | 'uint64' | 'int64'>; value: number }
  | { type: 'uint64' | 'int64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufScalarType; value: Array<number | bigint | boolean | string> };

/** Tensor types this module reads and writes (ggml numbering). */
export const GGML_TYPES = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPES;
export const QK8_0 = 32;
const Q8_0_BLOCK_BYTES = 2 + QK8_0;

const typeName = new Map<number, GgmlType>(Object.entries(GGML_TYPES).map(([k, v]) => [v, k as GgmlType]));
const valueTypeName = new Map<number, keyof typeof GGUF_VALUE_TYPES>(
  Object.entries(GGUF_VALUE_TYPES).map(([k, v]) => [v, k as keyof typeof GGUF_VALUE_TYPES]));

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Bytes of a tensor of `shape` (row-major, last dimension innermost) stored as `type`. */
export function ggmlByteLength(type: GgmlType, shape: number[]): number {
  const n = numel(shape);
  switch (type) {
    case 'F32': return 4 * n;
    case 'F16': case 'BF16': return 2 * n;
    case 'Q8_0': {
      const inner = shape[shape.length - 1] ?? 1;
      if (inner % QK8_0 !== 0) throw new HackError('GGUF_BAD_TENSOR', `q8_0 needs rows whose length is a multiple of ${QK8_0}, got shape [${shape.join(', ')}]`);
      return (n / QK8_0) * Q8_0_BLOCK_BYTES;
    }
  }
}

// ---------------------------------------------------------------- encoders

/** float32 values to q8_0 blocks (f16 scale, 32 int8), bit for bit as ggml's reference quantizer. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK8_0 !== 0) throw new HackError('GGUF_BAD_TENSOR', `q8_0 needs a multiple of ${QK8_0} values, got ${x.length}`);
  const nb = x.length / QK8_0;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const dv = new DataView(out.buffer);
  const fr = Math.fround;
  for (let b = 0; b < nb; b++) {
    const base = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) { const a = Math.abs(x[base + j]); if (a > amax) amax = a; }
    // the reference computes in float32: d = amax / 127, id = 1 / d, q = roundf(x * id)
    const d = fr(amax / 127);
    const id = d === 0 ? 0 : fr(1 / d);
    const o = b * Q8_0_BLOCK_BYTES;
    dv.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < QK8_0; j++) {
      const v = fr(x[base + j] * id);
      const a = Math.abs(v);
      const fl = Math.floor(a);
      // round half away from zero (C's roundf)
      const q = Math.sign(v) * (fl + Math.floor(2 * (a - fl)));
      dv.setInt8(o + 2 + j, q);
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const nb = bytes.length / Q8_0_BLOCK_BYTES;
  const out = new Float32Array(nb * QK8_0);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16ToF32(dv.getUint16(o, true));
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = Math.fround(d * dv.getInt8(o + 2 + j));
  }
  return out;
}

/** Encode float32 values as `type` (whole rows for q8_0). */
export function encodeGgml(values: Float32Array, type: GgmlType): Uint8Array {
  switch (type) {
    case 'F32': return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
    case 'F16': case 'BF16': {
      const out = new Uint8Array(values.length * 2);
      const dv = new DataView(out.buffer);
      const conv = type === 'F16' ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < values.length; i++) dv.setUint16(2 * i, conv(values[i]), true);
      return out;
    }
    case 'Q8_0': return quantizeQ8_0(values);
  }
}

export function decodeGgml(bytes: Uint8Array, type: GgmlType): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 'F32': { const out = new Float32Array(bytes.length / 4); for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true); return out; }
    case 'F16': case 'BF16': {
      const out = new Float32Array(bytes.length / 2);
      const conv = type === 'F16' ? f16ToF32 : bf16ToF32;
      for (let i = 0; i < out.length; i++) out[i] = conv(dv.getUint16(2 * i, true));
      return out;
    }
    case 'Q8_0': return dequantizeQ8_0(bytes);
  }
}

// ---------------------------------------------------------------- header serialization

class ByteSink {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { this.parts.push(b); this.length += b.length; }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  u64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  scalar(type: GgufScalarType, v: unknown, key: string): void {
    const bad = () => new HackError('GGUF_BAD_VALUE', `metadata "${key}": ${JSON.stringify(String(v))} is not a valid ${type}`);
    if (type === 'string') { if (typeof v !== 'string') throw bad(); this.str(v); return; }
    if (type === 'bool') { if (typeof v !== 'boolean') throw bad(); this.push(Buffer.from([v ? 1 : 0])); return; }
    if (type === 'uint64' || type === 'int64') {
      if (typeof v !== 'bigint') throw bad();
      const b = Buffer.alloc(8);
      if (type === 'uint64') b.writeBigUInt64LE(v); else b.writeBigInt64LE(v);
      this.push(b);
      return;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) && type !== 'float32' && type !== 'float64') throw bad();
    const size = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, float64: 8 }[type];
    const b = Buffer.alloc(size);
    try {
      switch (type) {
        case 'uint8': b.writeUInt8(v); break;
        case 'int8': b.writeInt8(v); break;
        case 'uint16': b.writeUInt16LE(v); break;
        case 'int16': b.writeInt16LE(v); break;
        case 'uint32': b.writeUInt32LE(v); break;
        case 'int32': b.writeInt32LE(v); break;
        case 'float32': b.writeFloatLE(v); break;
        case 'float64': b.writeDoubleLE(v); break;
      }
    } catch { throw bad(); }
    this.push(b);
  }
  bytes(): Buffer { return Buffer.concat(this.parts, this.length); }
}

/** One tensor to write: its name, row-major shape (as in safetensors), type, and a float32 row producer. */
export interface GgufTensorSource {
  name: string;
  /** Row-major shape, outermost first (the file stores it reversed, innermost first). */
  shape: number[];
  type: GgmlType;
  /** Calls `sink` with consecutive chunks of float32 values (whole rows) that together make the tensor. */
  produce: (sink: (values: Float32Array) => Promise<void>) => Promise<void>;
}

export interface GgufWriteSpec {
  /** Metadata in file order; `general.alignment` is written when the alignment is not the default. */
  metadata: Array<[string, GgufValue]>;
  tensors: GgufTensorSource[];
  alignment?: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** The header bytes (up to the padded start of the data section) and each tensor's data offset. */
export function serializeGgufHeader(spec: Pick<GgufWriteSpec, 'metadata' | 'alignment'> & { tensors: Array<Pick<GgufTensorSource, 'name' | 'shape' | 'type'>> }):
  { header: Buffer; offsets: number[]; dataBytes: number } {
  const alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment < 1 || alignment % 8 !== 0) throw new HackError('GGUF_BAD_VALUE', `alignment must be a positive multiple of 8, got ${alignment}`);
  const meta = spec.metadata.filter(([k]) => k !== 'general.alignment');
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) meta.splice(1, 0, ['general.alignment', { type: 'uint32', value: alignment }]);
  const keys = new Set<string>();
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(spec.tensors.length);
  s.u64(meta.length);
  for (const [key, v] of meta) {
    if (keys.has(key)) throw new HackError('GGUF_BAD_VALUE', `metadata key "${key}" appears twice`);
    keys.add(key);
    s.str(key);
    s.u32(GGUF_VALUE_TYPES[v.type]);
    if (v.type === 'array') {
      s.u32(GGUF_VALUE_TYPES[v.itemType]);
      s.u64(v.value.length);
      for (const item of v.value) s.scalar(v.itemType, item, key);
    } else {
      s.scalar(v.type, v.value, key);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const t of spec.tensors) {
    if (names.has(t.name)) throw new HackError('GGUF_BAD_TENSOR', `tensor "${t.name}" appears twice`);
    names.add(t.name);
    s.str(t.name);
    s.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) s.u64(d);
    s.u32(GGML_TYPES[t.type]);
    s.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + ggmlByteLength(t.type, t.shape), alignment);
  }
  const headerLen = alignUp(s.length, alignment);
  if (headerLen > s.length) s.push(Buffer.alloc(headerLen - s.length));
  return { header: s.bytes(), offsets, dataBytes: offset };
}

/**
 * Stream a GGUF file to `target` through a temporary sibling renamed into place when complete (the
 * caller has checked the output with checkOutput). Returns the file's size in bytes.
 */
export async function writeGguf(target: string, spec: GgufWriteSpec, opts: { onTensor?: (done: number, total: number) => void; option?: string } = {}): Promise<number> {
  const { header, offsets } = serializeGgufHeader(spec);
  const abs = path.resolve(target);
  const tmp = tempSibling(abs);
  registerTemp(tmp);
  let fh: FileHandle | null = null;
  try {
    try { fh = await fsp.open(tmp, 'wx'); } catch (e) { throw writeError(target, e, opts.option); }
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh!.write(b, done, b.length - done, pos + done);
        done += bytesWritten;
      }
      pos += b.length;
    };
    await write(header);
    const dataStart = header.length;
    for (let i = 0; i < spec.tensors.length; i++) {
      const t = spec.tensors[i];
      const want = ggmlByteLength(t.type, t.shape);
      const start = dataStart + offsets[i];
      if (pos < start) await write(new Uint8Array(start - pos));
      let got = 0;
      const inner = t.shape[t.shape.length - 1] ?? 1;
      await t.produce(async (values) => {
        if (t.type === 'Q8_0' && values.length % inner !== 0) throw new HackError('GGUF_BAD_TENSOR', `tensor "${t.name}": chunks must hold whole rows`);
        const enc = encodeGgml(values, t.type);
        got += enc.length;
        if (got > want) throw new HackError('GGUF_BAD_TENSOR', `tensor "${t.name}": the producer gave more values than shape [${t.shape.join(', ')}] holds`);
        await write(enc);
      });
      if (got !== want) throw new HackError('GGUF_BAD_TENSOR', `tensor "${t.name}": the producer gave ${got} bytes, shape [${t.shape.join(', ')}] as ${t.type} needs ${want}`);
      opts.onTensor?.(i + 1, spec.tensors.length);
    }
    // the data section of the last tensor is padded too, as gguf-py and llama.cpp's writer do
    const end = alignUp(pos, spec.alignment ?? GGUF_DEFAULT_ALIGNMENT);
    if (end > pos) await write(new Uint8Array(end - pos));
    await fh.close();
    fh = null;
    try { await fsp.rename(tmp, abs); } catch (e) { throw writeError(target, e, opts.option); }
    return pos;
  } catch (err) {
    if (fh) await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err instanceof HackError ? err : writeError(target, err, opts.option);
  } finally {
    releaseTemp(tmp);
  }
}

// ---------------------------------------------------------------- reader

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape, outermost first (the file's dims reversed). */
  shape: number[];
  type: GgmlType;
  /** Offset within the data section, as stored. */
  offset: number;
  /** Absolute position in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  byName: Map<string, GgufTensorInfo>;
  alignment: number;
  dataStart: number;
}

class NeedMore extends Error {}

class Cursor {
  pos = 0;
  constructor(private buf: Buffer, private complete: boolean, private file: string) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) {
      if (this.complete) throw new HackError('GGUF_TRUNCATED', `file ended inside the header (at byte ${this.pos})`, { file: this.file });
      throw new NeedMore();
    }
  }
  u8(): number { this.need(1); return this.buf.readUInt8(this.pos++); }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  u64(): bigint { this.need(8); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  safeU64(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new HackError('GGUF_BAD_HEADER', `${what} ${v} is too large`, { file: this.file });
    return Number(v);
  }
  str(): string {
    const n = this.safeU64('string length');
    if (n > 1 << 30) throw new HackError('GGUF_BAD_HEADER', `string of ${n} bytes is too long`, { file: this.file });
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  scalar(type: GgufScalarType): number | bigint | boolean | string {
    switch (type) {
      case 'uint8': return this.u8();
      case 'int8': { this.need(1); return this.buf.readInt8(this.pos++); }
      case 'uint16': { this.need(2); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v; }
      case 'int16': { this.need(2); const v = this.buf.readInt16LE(this.pos); this.pos += 2; return v; }
      case 'uint32': return this.u32();
      case 'int32': { this.need(4); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v; }
      case 'float32': { this.need(4); const v = this.buf.readFloatLE(this.pos); this.pos += 4; return v; }
      case 'float64': { this.need(8); const v = this.buf.readDoubleLE(this.pos); this.pos += 8; return v; }
      case 'bool': { const v = this.u8(); if (v > 1) throw new HackError('GGUF_BAD_HEADER', `bool value ${v}`, { file: this.file }); return v === 1; }
      case 'string': return this.str();
      case 'uint64': return this.u64();
      case 'int64': { this.need(8); const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v; }
    }
  }
}

function parseHeader(buf: Buffer, fileSize: number, file: string): GgufFile {
  const c = new Cursor(buf, buf.length >= fileSize, file);
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) throw new HackError('GGUF_BAD_HEADER', 'not a GGUF file (bad magic)', { file });
  const version = c.u32();
  if (version !== 2 && version !== 3) throw new HackError('GGUF_BAD_HEADER', `GGUF version ${version} is not supported (2 or 3 expected)`, { file });
  const nTensors = c.safeU64('tensor count');
  const nKv = c.safeU64('metadata count');
  const metadata = new Map<string, GgufValue>();
  const typeOf = (code: number): keyof typeof GGUF_VALUE_TYPES => {
    const t = valueTypeName.get(code);
    if (!t) throw new HackError('GGUF_BAD_HEADER', `unknown metadata value type ${code}`, { file });
    return t;
  };
  for (let i = 0; i < nKv; i++) {
    const key = c.str();
    const t = typeOf(c.u32());
    if (t === 'array') {
      const it = typeOf(c.u32());
      if (it === 'array') throw new HackError('GGUF_BAD_HEADER', `metadata "${key}": nested arrays are not supported`, { file });
      const n = c.safeU64('array length');
      const value: Array<number | bigint | boolean | string> = [];
      for (let j = 0; j < n; j++) value.push(c.scalar(it));
      metadata.set(key, { type: 'array', itemType: it, value });
    } else {
      metadata.set(key, { type: t, value: c.scalar(t) } as GgufValue);
    }
  }
  const al = metadata.get('general.alignment');
  const alignment = al && al.type === 'uint32' ? al.value : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment < 1) throw new HackError('GGUF_BAD_HEADER', `bad general.alignment ${alignment}`, { file });
  const raw: Array<Omit<GgufTensorInfo, 'byteOffset'>> = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str();
    const nd = c.u32();
    if (nd > 4) throw new HackError('GGUF_BAD_HEADER', `tensor "${name}": ${nd} dimensions (at most 4)`, { file });
    const dims: number[] = [];
    for (let j = 0; j < nd; j++) dims.push(c.safeU64(`tensor "${name}" dimension`));
    const code = c.u32();
    const type = typeName.get(code);
    if (!type) throw new HackError('GGUF_UNSUPPORTED_TYPE', `tensor "${name}": ggml type ${code} is not one of F32, F16, BF16, Q8_0`, { file });
    const offset = c.safeU64(`tensor "${name}" offset`);
    if (offset % alignment !== 0) throw new HackError('GGUF_BAD_HEADER', `tensor "${name}": offset ${offset} is not aligned to ${alignment}`, { file });
    const shape = dims.reverse();
    raw.push({ name, shape, type, offset, byteLength: ggmlByteLength(type, shape) });
  }
  const dataStart = alignUp(c.pos, alignment);
  const tensors: GgufTensorInfo[] = raw.map((t) => ({ ...t, byteOffset: dataStart + t.offset }));
  for (const t of tensors) {
    if (t.byteOffset + t.byteLength > fileSize) throw new HackError('GGUF_TRUNCATED', `tensor "${t.name}" ends at ${t.byteOffset + t.byteLength} but the file has ${fileSize} bytes`, { file });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].byteLength) throw new HackError('GGUF_BAD_HEADER', `tensors "${sorted[i - 1].name}" and "${sorted[i].name}" overlap`, { file });
  }
  return { path: file, version, metadata, tensors, byName: new Map(tensors.map((t) => [t.name, t])), alignment, dataStart };
}

/** Open a GGUF file and parse its header (metadata and tensor infos; no tensor data is read). */
export async function openGguf(file: string): Promise<GgufFile> {
  let fh: FileHandle;
  try { fh = await fsp.open(file, 'r'); } catch (e) {
    throw new HackError('NOT_FOUND', (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot open', { file });
  }
  try {
    const size = (await fh.stat()).size;
    // the header's size is known only by parsing it: read a prefix and grow it until it parses
    for (let want = 1 << 20; ; want *= 4) {
      const n = Math.min(want, size);
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, 0);
      try { return parseHeader(buf, size, file); } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
      }
    }
  } finally {
    await fh.close();
  }
}

/** A metadata value without its type tag (arrays as plain arrays). */
export function ggufValue(g: GgufFile, key: string): unknown {
  return g.metadata.get(key)?.value;
}

export async function readGgufTensorBytes(g: GgufFile, name: string): Promise<Uint8Array> {
  const t = g.byName.get(name);
  if (!t) throw new HackError('NO_SUCH_TENSOR', `no tensor named "${name}"`, { file: g.path });
  const out = new Uint8Array(t.byteLength);
  const fh = await fsp.open(g.path, 'r');
  try { await fh.read(out, 0, t.byteLength, t.byteOffset); } finally { await fh.close(); }
  return out;
}

/** A tensor decoded to float32 (q8_0 dequantized). */
export async function readGgufTensorF32(g: GgufFile, name: string): Promise<Float32Array> {
  return decodeGgml(await readGgufTensorBytes(g, name), g.byName.get(name)!.type);
}
