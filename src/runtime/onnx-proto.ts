// A minimal protobuf encoder for the subset of onnx.proto the graph builder writes
// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto with external data,
// ValueInfoProto). Field numbers follow onnx/onnx.proto (IR version 10).

export const DataType = {
  FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(256);
  private pos = 0;
  length = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(256, n, this.cur.length * 2));
    this.pos = 0;
  }

  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.cur[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
      this.length++;
    }
    this.cur[this.pos++] = Number(x);
    this.length++;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
    this.length += b.length;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    out.set(this.cur.subarray(0, this.pos), o);
    return out;
  }
}

const enc = new TextEncoder();

/** One message under construction: append fields in any order. */
export class Msg {
  private w = new Writer();
  private key(field: number, wire: number): void { this.w.varint((field << 3) | wire); }
  int(field: number, v: number | bigint): this { this.key(field, 0); this.w.varint(v); return this; }
  ints(field: number, vs: Array<number | bigint>): this {
    // packed repeated varints
    const inner = new Writer();
    for (const v of vs) inner.varint(v);
    this.key(field, 2); this.w.varint(inner.length); this.w.bytes(inner.finish());
    return this;
  }
  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true);
    this.w.bytes(b);
    return this;
  }
  floats(field: number, vs: number[]): this {
    const b = new Uint8Array(4 * vs.length); const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(4 * i, v, true));
    return this.raw(field, b);
  }
  raw(field: number, b: Uint8Array): this { this.key(field, 2); this.w.varint(b.length); this.w.bytes(b); return this; }
  str(field: number, s: string): this { return this.raw(field, enc.encode(s)); }
  msg(field: number, m: Msg): this { return this.raw(field, m.finish()); }
  finish(): Uint8Array { return this.w.finish(); }
}

export type AttrValue =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: number[] }
  | { kind: 'floats'; v: number[] }
  | { kind: 'string'; v: string }
  | { kind: 'tensor'; v: TensorDef };

export interface NodeDef {
  op: string;
  inputs: string[];
  outputs: string[];
  name: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export interface ExternalRef { location: string; offset: number; length: number }

export interface TensorDef {
  name: string;
  dataType: DataTypeCode;
  dims: number[];
  raw?: Uint8Array;
  external?: ExternalRef;
}

export interface ValueInfo { name: string; elemType: DataTypeCode; shape: Array<number | string> }

export function encodeTensor(t: TensorDef): Msg {
  const m = new Msg();
  if (t.dims.length) m.ints(1, t.dims);
  m.int(2, t.dataType);
  m.str(8, t.name);
  if (t.external) {
    const entry = (k: string, v: string) => new Msg().str(1, k).str(2, v);
    m.msg(13, entry('location', t.external.location));
    m.msg(13, entry('offset', String(t.external.offset)));
    m.msg(13, entry('length', String(t.external.length)));
    m.int(14, 1);
  } else {
    m.raw(9, t.raw ?? new Uint8Array(0));
  }
  return m;
}

function encodeAttr(name: string, a: AttrValue): Msg {
  const m = new Msg().str(1, name);
  switch (a.kind) {
    case 'float': return m.float(2, a.v).int(20, 1);
    case 'int': return m.int(3, a.v).int(20, 2);
    case 'string': return m.str(4, a.v).int(20, 3);
    case 'tensor': return m.msg(5, encodeTensor(a.v)).int(20, 4);
    case 'floats': { for (const f of a.v) m.float(7, f); return m.int(20, 6); }
    case 'ints': { for (const i of a.v) m.int(8, i); return m.int(20, 7); }
  }
}

function encodeNode(n: NodeDef): Msg {
  const m = new Msg();
  for (const i of n.inputs) m.str(1, i);
  for (const o of n.outputs) m.str(2, o);
  m.str(3, n.name).str(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) m.msg(5, encodeAttr(k, v));
  if (n.domain) m.str(7, n.domain);
  return m;
}

function encodeValueInfo(v: ValueInfo): Msg {
  const shape = new Msg();
  for (const d of v.shape) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().str(2, d));
  const tensorType = new Msg().int(1, v.elemType).msg(2, shape);
  return new Msg().str(1, v.name).msg(2, new Msg().msg(1, tensorType));
}

export interface ModelDef {
  graphName: string;
  nodes: NodeDef[];
  initializers: TensorDef[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  opsets: Array<{ domain: string; version: number }>;
  irVersion?: number;
  producer?: string;
  metadata?: Record<string, string>;
}

export function encodeModel(def: ModelDef): Uint8Array {
  const g = new Msg();
  for (const n of def.nodes) g.msg(1, encodeNode(n));
  g.str(2, def.graphName);
  for (const t of def.initializers) g.msg(5, encodeTensor(t));
  for (const i of def.inputs) g.msg(11, encodeValueInfo(i));
  for (const o of def.outputs) g.msg(12, encodeValueInfo(o));
  const m = new Msg().int(1, def.irVersion ?? 10).str(2, def.producer ?? 'hack-tokenizer').str(3, '0.1.0');
  m.msg(7, g);
  for (const o of def.opsets) m.msg(8, new Msg().str(1, o.domain).int(2, o.version));
  for (const [k, v] of Object.entries(def.metadata ?? {})) m.msg(14, new Msg().str(1, k).str(2, v));
  return m.finish();
}
