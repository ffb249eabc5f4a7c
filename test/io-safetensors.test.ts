// Safetensors reader/writer: byte-identical rewrites of real files, row-range reads, the streaming
// writer's atomicity and size checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bytesSource, copySource, openSafetensors, readTensorBytes, readTensorF32, readTensorRows,
  SafetensorsError, serializeHeader, writeSafetensors, type TensorSource,
} from '../src/io/safetensors.ts';
import { fromFloat32, toFloat32 } from '../src/io/dtype.ts';
import { rng } from './support/factory.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama', 'model.safetensors');
const REFERENCE = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'reference', 'tiny-en-llama.reference.safetensors');

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await fsp.readFile(file)).digest('hex');
}

async function tmpDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'st-test-'));
}

const isCode = (code: string) => (e: unknown) => e instanceof SafetensorsError && e.code === code;

for (const [label, file] of [['demo model', DEMO], ['reference fixture (with __metadata__ info)', REFERENCE]] as const) {
  test(`read -> write -> read of the ${label} is byte-identical`, async () => {
    const dir = await tmpDir();
    try {
      const st = await openSafetensors(file);
      assert.ok(st.tensors.length > 0);
      const out = path.join(dir, 'copy.safetensors');
      // small chunks, so the copy really streams in many pieces
      await writeSafetensors(out, st.tensors.map((t) => copySource(st, t.name, t.name, 1 << 16)), st.metadata);
      assert.equal(await sha256(out), await sha256(file));
      const again = await openSafetensors(out);
      assert.deepEqual(again.metadata, st.metadata);
      assert.deepEqual(again.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets]), st.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets]));
      assert.deepEqual(await fsp.readdir(dir), ['copy.safetensors'], 'no temp file left behind');
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
}

test('demo model header: tensors ordered by offset, contiguous, aligned data section', async () => {
  const st = await openSafetensors(DEMO);
  assert.deepEqual(st.metadata, { format: 'pt' });
  assert.equal(st.dataStart % 8, 0);
  let end = 0;
  for (const t of st.tensors) {
    assert.equal(t.dataOffsets[0], end, `${t.name} starts where the previous one ended`);
    end = t.dataOffsets[1];
    assert.equal(t.byteOffset, st.dataStart + t.dataOffsets[0]);
  }
  assert.equal(st.dataStart + end, st.fileSize);
  const embed = st.byName.get('model.embed_tokens.weight')!;
  assert.deepEqual([embed.dtype, embed.shape], ['BF16', [8192, 384]]);
});

test('readTensorRows equals slicing the full tensor; readTensorF32 decodes the same rows', async () => {
  const st = await openSafetensors(DEMO);
  const name = 'model.embed_tokens.weight';
  const full = await readTensorBytes(st, name);
  const rowBytes = 384 * 2;
  assert.equal(full.byteLength, 8192 * rowBytes);
  const rand = rng(3);
  const ranges: Array<[number, number]> = [[0, 1], [8191, 8192], [0, 8192], [100, 100], [4000, 4100]];
  for (let i = 0; i < 10; i++) {
    const a = Math.floor(rand() * 8192);
    ranges.push([a, a + Math.floor(rand() * (8192 - a + 1))]);
  }
  const fullF32 = toFloat32(full, 'BF16');
  for (const [a, b] of ranges) {
    const rows = await readTensorRows(st, name, a, b);
    assert.ok(Buffer.from(rows).equals(Buffer.from(full.subarray(a * rowBytes, b * rowBytes))), `rows [${a}, ${b})`);
    const f = await readTensorF32(st, name, [a, b]);
    assert.deepEqual(f, fullF32.subarray(a * 384, b * 384));
  }
  // 1-D tensors: rows are elements
  const norm = 'model.norm.weight';
  const nb = await readTensorBytes(st, norm);
  assert.ok(Buffer.from(await readTensorRows(st, norm, 10, 20)).equals(Buffer.from(nb.subarray(20, 40))));
  for (const [a, b] of [[-1, 2], [0, 8193], [5, 4], [0.5, 2], [NaN, 1]]) {
    await assert.rejects(readTensorRows(st, name, a, b), isCode('BAD_ARGUMENT'), `rows [${a}, ${b})`);
  }
  await assert.rejects(readTensorBytes(st, 'lm_head.weight'), isCode('NO_SUCH_TENSOR'));
});

test('writer: tensors of every dtype round-trip; header padded to 8 bytes; empty tensors allowed', async () => {
  const dir = await tmpDir();
  try {
    const rand = rng(11);
    const vals = Array.from({ length: 24 }, () => rand() * 4 - 2);
    const ints = new Uint8Array(8 * 3);
    new DataView(ints.buffer).setBigInt64(8, -7n, true);
    const sources: TensorSource[] = [
      bytesSource('f32', 'F32', [4, 6], fromFloat32(vals, 'F32')),
      bytesSource('f16', 'F16', [24], fromFloat32(vals, 'F16')),
      bytesSource('bf16', 'BF16', [2, 3, 4], fromFloat32(vals, 'BF16')),
      bytesSource('i64', 'I64', [3], ints),
      bytesSource('i32', 'I32', [1], new Uint8Array([1, 2, 3, 4])),
      bytesSource('u8', 'U8', [5], new Uint8Array([9, 8, 7, 6, 5])),
      bytesSource('empty', 'F32', [0, 7], new Uint8Array(0)),
      bytesSource('scalar', 'F32', [], fromFloat32([3.5], 'F32')),
    ];
    const out = path.join(dir, 'sub', 'all.safetensors');
    await writeSafetensors(out, sources, { format: 'pt', note: 'ünï' });
    const st = await openSafetensors(out);
    assert.equal(st.dataStart % 8, 0);
    assert.deepEqual(st.metadata, { format: 'pt', note: 'ünï' });
    assert.deepEqual(st.tensors.map((t) => t.name), sources.map((s) => s.name));
    assert.deepEqual([...(await readTensorF32(st, 'f32'))], vals.map(Math.fround));
    assert.deepEqual(await readTensorF32(st, 'bf16'), toFloat32(fromFloat32(vals, 'BF16'), 'BF16'));
    assert.deepEqual([...(await readTensorBytes(st, 'u8'))], [9, 8, 7, 6, 5]);
    assert.equal((await readTensorBytes(st, 'empty')).byteLength, 0);
    assert.deepEqual([...(await readTensorF32(st, 'scalar'))], [3.5]);
    const header = serializeHeader(sources, { format: 'pt', note: 'ünï' });
    assert.ok(Buffer.from((await fsp.readFile(out)).subarray(0, header.byteLength)).equals(Buffer.from(header)));
    assert.throws(() => serializeHeader([sources[0], sources[0]]), isCode('BAD_ARGUMENT'));
    assert.throws(() => serializeHeader([{ name: '__metadata__', dtype: 'U8', shape: [1] }]), isCode('BAD_ARGUMENT'));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('writer keeps the given tensor order in the header, integer-like names included', async () => {
  const dir = await tmpDir();
  try {
    const names = ['10', 'b', '2', '__proto__', 'a.0', '0'];
    const out = path.join(dir, 'order.safetensors');
    await writeSafetensors(out, names.map((n, i) => bytesSource(n, 'U8', [i + 1], new Uint8Array(i + 1).fill(i))), null);
    const st = await openSafetensors(out);
    assert.deepEqual(st.tensors.map((t) => t.name), names);
    for (const [i, n] of names.entries()) assert.deepEqual([...(await readTensorBytes(st, n))], new Array(i + 1).fill(i));
    // header text lists the names in data order
    const text = (await fsp.readFile(out)).subarray(8, st.dataStart).toString('utf8');
    const positions = names.map((n) => text.indexOf(JSON.stringify(n) + ':'));
    assert.deepEqual([...positions].sort((x, y) => x - y), positions);
    // and a rewrite with copySource is byte-identical
    const copy = path.join(dir, 'copy.safetensors');
    await writeSafetensors(copy, st.tensors.map((t) => copySource(st, t.name)), st.metadata);
    assert.equal(await sha256(copy), await sha256(out));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('writer is atomic: a failing producer leaves no file, no temp file, and an existing target untouched', async () => {
  const dir = await tmpDir();
  try {
    const out = path.join(dir, 'model.safetensors');
    const good = bytesSource('a', 'U8', [4], new Uint8Array([1, 2, 3, 4]));
    const failing: TensorSource = {
      name: 'b', dtype: 'F32', shape: [1000],
      produce: async (sink) => { await sink(new Uint8Array(400)); throw new Error('producer broke'); },
    };
    await assert.rejects(writeSafetensors(out, [good, failing]), /producer broke/);
    assert.deepEqual(await fsp.readdir(dir), []);
    // with an existing target: the old file stays as it was
    await writeSafetensors(out, [good]);
    const before = await sha256(out);
    await assert.rejects(writeSafetensors(out, [good, failing]), /producer broke/);
    assert.equal(await sha256(out), before);
    assert.deepEqual(await fsp.readdir(dir), ['model.safetensors']);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('writer: a producer that writes too few or too many bytes gets SIZE_MISMATCH and leaves nothing', async () => {
  const dir = await tmpDir();
  try {
    const out = path.join(dir, 'x.safetensors');
    const chunked = (sizes: number[]): TensorSource => ({
      name: 'w', dtype: 'BF16', shape: [10, 10],
      produce: async (sink) => { for (const n of sizes) await sink(new Uint8Array(n)); },
    });
    await assert.rejects(writeSafetensors(out, [chunked([100, 99])]), isCode('SIZE_MISMATCH'));
    await assert.rejects(writeSafetensors(out, [chunked([150, 51])]), isCode('SIZE_MISMATCH'));
    await assert.rejects(writeSafetensors(out, [chunked([])]), isCode('SIZE_MISMATCH'));
    await assert.rejects(writeSafetensors(out, [bytesSource('w', 'F32', [3], new Uint8Array(8))]), isCode('SIZE_MISMATCH'));
    assert.deepEqual(await fsp.readdir(dir), []);
    await writeSafetensors(out, [chunked([1, 199])]);
    assert.equal((await openSafetensors(out)).tensors[0].byteLength, 200);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('copySource renames and fails cleanly when the source file shrank', async () => {
  const dir = await tmpDir();
  try {
    const src = path.join(dir, 'src.safetensors');
    await writeSafetensors(src, [bytesSource('a', 'U8', [10], new Uint8Array(10).fill(7)), bytesSource('b', 'U8', [6], new Uint8Array(6).fill(3))]);
    const st = await openSafetensors(src);
    const out = path.join(dir, 'out.safetensors');
    await writeSafetensors(out, [copySource(st, 'b', 'renamed', 4), copySource(st, 'a')], null);
    const o = await openSafetensors(out);
    assert.equal(o.metadata, null);
    assert.deepEqual([...(await readTensorBytes(o, 'renamed'))], [3, 3, 3, 3, 3, 3]);
    assert.throws(() => copySource(st, 'nope'), isCode('NO_SUCH_TENSOR'));
    await fsp.truncate(src, st.fileSize - 3);
    await assert.rejects(writeSafetensors(out + '2', [copySource(st, 'b')]), isCode('TRUNCATED'));
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['out.safetensors', 'src.safetensors']);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('openSafetensors on a missing file or a directory gives NOT_FOUND / a typed error', async () => {
  await assert.rejects(openSafetensors(path.join(os.tmpdir(), 'no-such-file.safetensors')), isCode('NOT_FOUND'));
  await assert.rejects(openSafetensors(os.tmpdir()), isCode('NOT_FOUND'));
});
