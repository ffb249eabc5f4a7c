// GGUF reader/writer: round trip through our own reader, cross-checks with the `gguf` Python package
// (llama.cpp's gguf-py: its reader reads our file, our reader reads its writer's file), q8_0 against
// hand computation and gguf-py's quantizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  decodeGgml, encodeGgml, openGguf, quantizeQ8_0, readGgufTensorBytes, readGgufTensorF32, writeGguf,
  type GgufTensorSource, type GgufValue, type GgmlType,
} from '../src/io/gguf.ts';
import { f16ToF32 } from '../src/io/dtype.ts';
import { HackError } from '../src/io/errors.ts';
import { rng } from './support/factory.ts';
import { PYTHON } from './support/python.ts';


function python(script: string, args: string[]): string {
  assert.ok(existsSync(PYTHON), `the Python venv is needed for the gguf cross-check (${PYTHON}); build it with npm run setup:python`);
  const r = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function randomValues(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

const source = (name: string, shape: number[], type: GgmlType, values: Float32Array, rowsPerChunk = 1): GgufTensorSource => ({
  name, shape, type,
  produce: async (sink) => {
    const inner = shape[shape.length - 1];
    const step = inner * rowsPerChunk;
    for (let i = 0; i < values.length; i += step) await sink(values.subarray(i, Math.min(i + step, values.length)));
  },
});

const META: Array<[string, GgufValue]> = [
  ['general.architecture', { type: 'string', value: 'llama' }],
  ['test.u8', { type: 'uint8', value: 200 }],
  ['test.i8', { type: 'int8', value: -5 }],
  ['test.u16', { type: 'uint16', value: 60000 }],
  ['test.i16', { type: 'int16', value: -30000 }],
  ['test.u32', { type: 'uint32', value: 4000000000 }],
  ['test.i32', { type: 'int32', value: -2000000000 }],
  ['test.f32', { type: 'float32', value: 0.5 }],
  ['test.bool', { type: 'bool', value: true }],
  ['test.str', { type: 'string', value: 'olá, 世界' }],
  ['test.u64', { type: 'uint64', value: 12345678901234n }],
  ['test.i64', { type: 'int64', value: -12345678901234n }],
  ['test.f64', { type: 'float64', value: 1e-300 }],
  ['test.arr_str', { type: 'array', itemType: 'string', value: ['a', 'Ġb', ''] }],
  ['test.arr_i32', { type: 'array', itemType: 'int32', value: [1, -2, 3] }],
  ['test.arr_f32', { type: 'array', itemType: 'float32', value: [0.25, -1] }],
  ['test.arr_empty', { type: 'array', itemType: 'uint32', value: [] }],
];

async function tmp(): Promise<string> { return fsp.mkdtemp(path.join(os.tmpdir(), 'gguf-test-')); }

async function writeSample(file: string): Promise<Record<string, Float32Array>> {
  const vals = {
    'a.f32': randomValues(3 * 64, 1), 'b.f16': randomValues(2 * 64, 2), 'c.bf16': randomValues(5 * 32, 3),
    'd.q8_0': randomValues(4 * 64, 4, 3), 'e.vec': randomValues(7, 5),
  };
  await writeGguf(file, {
    metadata: META,
    tensors: [
      source('a.f32', [3, 64], 'F32', vals['a.f32']),
      source('b.f16', [2, 64], 'F16', vals['b.f16'], 2),
      source('c.bf16', [5, 32], 'BF16', vals['c.bf16']),
      source('d.q8_0', [4, 64], 'Q8_0', vals['d.q8_0']),
      source('e.vec', [7], 'F32', vals['e.vec']), // 28 bytes: the next offset must be padded
    ],
  });
  return vals;
}

test('our writer round-trips through our reader: every metadata type, arrays, shapes, types, data', async () => {
  const dir = await tmp();
  try {
    const file = path.join(dir, 'x.gguf');
    const vals = await writeSample(file);
    const g = await openGguf(file);
    assert.equal(g.version, 3);
    assert.equal(g.alignment, 32);
    assert.deepEqual([...g.metadata.keys()], META.map(([k]) => k));
    for (const [k, v] of META) {
      const got = g.metadata.get(k)!;
      if (v.type === 'float32' || (v.type === 'array' && v.itemType === 'float32')) assert.deepEqual(got, v); // values chosen exact in f32
      else assert.deepEqual(got, v, k);
    }
    assert.deepEqual(g.tensors.map((t) => [t.name, t.shape, t.type]), [
      ['a.f32', [3, 64], 'F32'], ['b.f16', [2, 64], 'F16'], ['c.bf16', [5, 32], 'BF16'], ['d.q8_0', [4, 64], 'Q8_0'], ['e.vec', [7], 'F32'],
    ]);
    for (const t of g.tensors) assert.equal(t.byteOffset % 32, 0, t.name);
    assert.deepEqual(await readGgufTensorF32(g, 'a.f32'), vals['a.f32']);
    assert.deepEqual(await readGgufTensorF32(g, 'e.vec'), vals['e.vec']);
    const f16 = await readGgufTensorF32(g, 'b.f16');
    for (let i = 0; i < f16.length; i++) assert.ok(Math.abs(f16[i] - vals['b.f16'][i]) <= 1e-3, `f16 ${i}`);
    const bf = await readGgufTensorF32(g, 'c.bf16');
    for (let i = 0; i < bf.length; i++) assert.ok(Math.abs(bf[i] - vals['c.bf16'][i]) <= 8e-3, `bf16 ${i}`);
    const q = await readGgufTensorF32(g, 'd.q8_0');
    for (let i = 0; i < q.length; i++) assert.ok(Math.abs(q[i] - vals['d.q8_0'][i]) <= 3 / 127 / 2 + 1e-3, `q8_0 ${i}`);
    assert.equal((await fsp.readdir(dir)).length, 1, 'no temporary file left');
  } finally { await fsp.rm(dir, { recursive: true, force: true }); }
});

test('q8_0 by hand: scale amax/127 in f16, values rounded half away from zero', () => {
  const x = new Float32Array(32);
  x[0] = 127; x[1] = -63.5; x[2] = 0.5; x[3] = -0.49; x[4] = 1.5;
  const b = quantizeQ8_0(x);
  assert.equal(b.length, 34);
  assert.equal(f16ToF32(b[0] | (b[1] << 8)), 1);
  const qs = new Int8Array(b.buffer, 2, 32);
  assert.deepEqual([...qs.slice(0, 6)], [127, -64, 1, 0, 2, 0]);
  assert.deepEqual([...quantizeQ8_0(new Float32Array(32))], new Array(34).fill(0), 'an all-zero block has scale 0');
  assert.throws(() => quantizeQ8_0(new Float32Array(31)), HackError);
});

test('the gguf Python package reads our file: same keys, values, tensors and data', async () => {
  const dir = await tmp();
  try {
    const file = path.join(dir, 'ours.gguf');
    const vals = await writeSample(file);
    const out = JSON.parse(python(`
import sys, json, numpy as np, gguf
r = gguf.GGUFReader(sys.argv[1])
meta = {}
for f in r.fields.values():
    if f.name.startswith('GGUF.'): continue
    v = f.contents()
    meta[f.name] = [int(f.types[0]), v]
tensors = {t.name: [list(int(d) for d in t.shape), int(t.tensor_type), gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).ravel().tolist()] for t in r.tensors}
print(json.dumps({'meta': meta, 'tensors': tensors}))
`, [file]));
    for (const [k, v] of META) {
      const [typeCode, value] = out.meta[k];
      assert.ok(out.meta[k], k);
      const want = v.type === 'array' ? v.value : v.value;
      assert.deepEqual(typeof want === 'bigint' ? BigInt(value) : value, Array.isArray(want) ? want : want, k);
      assert.equal(typeCode, { uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9, uint64: 10, int64: 11, float64: 12 }[v.type], k);
    }
    const g = await openGguf(file);
    for (const t of g.tensors) {
      const [shape, type, data] = out.tensors[t.name];
      // gguf-py reports dims innermost first
      assert.deepEqual(shape, [...t.shape].reverse(), t.name);
      assert.equal(type, { F32: 0, F16: 1, Q8_0: 8, BF16: 30 }[t.type], t.name);
      assert.deepEqual(Float32Array.from(data), await readGgufTensorF32(g, t.name), t.name);
    }
    assert.ok(vals);
  } finally { await fsp.rm(dir, { recursive: true, force: true }); }
});

test('our reader reads a file written by gguf.GGUFWriter; our q8_0 equals gguf.quants.quantize bit for bit', async () => {
  const dir = await tmp();
  try {
    const file = path.join(dir, 'theirs.gguf');
    const x = randomValues(8 * 64, 9, 2);
    x[5] = 0; x[40] = 1e-8; // tiny and zero values, and one all-equal block below
    for (let i = 64; i < 96; i++) x[i] = 0.75;
    const xPath = path.join(dir, 'x.f32');
    await fsp.writeFile(xPath, x);
    python(`
import sys, numpy as np, gguf
x = np.fromfile(sys.argv[2], dtype=np.float32).reshape(8, 64)
w = gguf.GGUFWriter(sys.argv[1], 'llama')
w.add_block_count(3)
w.add_string('t.s', 'héllo')
w.add_array('t.a', ['x', 'y z'])
w.add_array('t.i', [1, 2, 3])
w.add_float32('t.f', 0.125)
w.add_bool('t.b', False)
w.add_tensor('w.f32', x)
w.add_tensor('w.f16', x.astype(np.float16))
w.add_tensor('w.q8', gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.add_tensor('w.bf16', gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16), raw_dtype=gguf.GGMLQuantizationType.BF16)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
`, [file, xPath]);
    const g = await openGguf(file);
    assert.equal(g.metadata.get('general.architecture')?.value, 'llama');
    assert.deepEqual(g.metadata.get('llama.block_count'), { type: 'uint32', value: 3 });
    assert.deepEqual(g.metadata.get('t.s'), { type: 'string', value: 'héllo' });
    assert.deepEqual(g.metadata.get('t.a'), { type: 'array', itemType: 'string', value: ['x', 'y z'] });
    assert.deepEqual(g.metadata.get('t.i')?.value, [1, 2, 3]);
    assert.deepEqual(g.metadata.get('t.f'), { type: 'float32', value: 0.125 });
    assert.deepEqual(g.metadata.get('t.b'), { type: 'bool', value: false });
    assert.deepEqual(g.tensors.map((t) => [t.name, t.shape, t.type]), [
      ['w.f32', [8, 64], 'F32'], ['w.f16', [8, 64], 'F16'], ['w.q8', [8, 64], 'Q8_0'], ['w.bf16', [8, 64], 'BF16'],
    ]);
    assert.deepEqual(await readGgufTensorF32(g, 'w.f32'), x);
    assert.deepEqual(await readGgufTensorBytes(g, 'w.f16'), encodeGgml(x, 'F16'), 'f16 rounding equals numpy');
    assert.deepEqual(await readGgufTensorBytes(g, 'w.q8'), quantizeQ8_0(x), 'q8_0 equals gguf-py (the reference) bit for bit');
    assert.deepEqual(await readGgufTensorBytes(g, 'w.bf16'), encodeGgml(x, 'BF16'), 'bf16 rounding equals gguf-py');
    const dq = decodeGgml(await readGgufTensorBytes(g, 'w.q8'), 'Q8_0');
    assert.equal(dq.length, x.length);
  } finally { await fsp.rm(dir, { recursive: true, force: true }); }
});

test('bad files give typed errors; a failing producer leaves nothing behind', async () => {
  const dir = await tmp();
  try {
    const bad = path.join(dir, 'bad.gguf');
    await fsp.writeFile(bad, Buffer.from('GGML0000'));
    await assert.rejects(openGguf(bad), (e: unknown) => e instanceof HackError && e.code === 'GGUF_BAD_HEADER');
    const file = path.join(dir, 'ok.gguf');
    await writeSample(file);
    const full = await fsp.readFile(file);
    await fsp.writeFile(bad, full.subarray(0, 200));
    await assert.rejects(openGguf(bad), (e: unknown) => e instanceof HackError && e.code === 'GGUF_TRUNCATED');
    const out = path.join(dir, 'fail.gguf');
    await assert.rejects(writeGguf(out, {
      metadata: META,
      tensors: [{ name: 'x', shape: [2, 32], type: 'F32', produce: async (sink) => { await sink(new Float32Array(32)); } }],
    }), (e: unknown) => e instanceof HackError && e.code === 'GGUF_BAD_TENSOR');
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['bad.gguf', 'ok.gguf']);
  } finally { await fsp.rm(dir, { recursive: true, force: true }); }
});
