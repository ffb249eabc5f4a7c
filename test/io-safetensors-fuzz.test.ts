// Property test: corrupted and truncated safetensors headers and files always give a typed
// SafetensorsError (or, for a random byte flip that happens to stay valid, a header whose every
// tensor lies inside the file). Never another exception, a crash or a hang. Seeded, deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  MAX_HEADER_BYTES, openSafetensors, parseSafetensorsBuffer, readTensorBytes, SafetensorsError,
  serializeHeader, type SafetensorsErrorCode, type SafetensorsFile,
} from '../src/io/safetensors.ts';
import { dtypeSize, type DType } from '../src/io/dtype.ts';
import { rng } from './support/factory.ts';

type Header = Record<string, unknown>;

const BASE_TENSORS: Array<{ name: string; dtype: DType; shape: number[] }> = [
  { name: 'a', dtype: 'F32', shape: [3, 4] },
  { name: 'b.weight', dtype: 'BF16', shape: [5] },
  { name: 'empty', dtype: 'F16', shape: [0, 3] },
  { name: 'c', dtype: 'I64', shape: [2] },
  { name: 'ünï', dtype: 'U8', shape: [7] },
];

function baseFile(): { buf: Uint8Array; header: Header; headerLen: number; pad: number; dataSize: number } {
  const hdr = serializeHeader(BASE_TENSORS, { format: 'pt' });
  const dataSize = BASE_TENSORS.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype), 0);
  const buf = new Uint8Array(hdr.byteLength + dataSize);
  buf.set(hdr, 0);
  // data bytes that are never JSON whitespace, so a header length that runs into the data is invalid JSON
  for (let i = hdr.byteLength; i < buf.byteLength; i++) buf[i] = 0x41 + (i % 26);
  const headerLen = hdr.byteLength - 8;
  const text = Buffer.from(hdr.subarray(8)).toString('utf8');
  const json = text.trimEnd();
  return { buf, header: JSON.parse(json), headerLen, pad: headerLen - Buffer.byteLength(json), dataSize };
}

/** A file with `headerText` (padded to 8 bytes) followed by `data`. */
function withHeaderText(headerText: string | Uint8Array, data: Uint8Array): Uint8Array {
  const h = typeof headerText === 'string' ? Buffer.from(headerText, 'utf8') : Buffer.from(headerText);
  const padded = Math.ceil(h.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded + data.byteLength).fill(0x20, 8, 8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(h, 8);
  out.set(data, 8 + padded);
  return out;
}

function setLength(buf: Uint8Array, len: bigint): Uint8Array {
  const out = buf.slice();
  new DataView(out.buffer).setBigUint64(0, len, true);
  return out;
}

interface Case {
  kind: string;
  bytes: Uint8Array;
  /** Codes that are acceptable; null: the mutation may also leave a valid file. */
  codes: SafetensorsErrorCode[] | null;
}

function makeCases(seed: number): Case[] {
  const rand = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(xs: T[]): T => xs[int(0, xs.length - 1)];
  const base = baseFile();
  const data = base.buf.subarray(8 + base.headerLen);
  const names = BASE_TENSORS.map((t) => t.name);
  const nonEmpty = names.filter((n) => n !== 'empty');
  const clone = (): Header => JSON.parse(JSON.stringify(base.header));
  const entry = (h: Header, n: string) => h[n] as { dtype: unknown; shape: unknown; data_offsets: unknown };
  const cases: Case[] = [];
  const semantic = (kind: string, codes: SafetensorsErrorCode[], mutate: (h: Header) => void) => {
    const h = clone();
    mutate(h);
    cases.push({ kind, bytes: withHeaderText(JSON.stringify(h), data), codes });
  };
  // raw text edits for numbers JSON.stringify cannot produce
  const rawOffset = (kind: string, text: string) => {
    const h = clone();
    const n = pick(nonEmpty);
    entry(h, n).data_offsets = ['@@B', '@@E'];
    const [b, e] = (base.header[n] as { data_offsets: number[] }).data_offsets;
    const which = rand() < 0.5;
    const s = JSON.stringify(h).replace('"@@B"', which ? text : String(b)).replace('"@@E"', which ? String(e) : text);
    cases.push({ kind, bytes: withHeaderText(s, data), codes: ['BAD_HEADER'] });
  };

  for (let round = 0; round < 60; round++) {
    // 1. truncation anywhere: the last tensor ends at EOF, so every cut is an error
    for (let i = 0; i < 6; i++) {
      const cut = int(0, base.buf.byteLength - 1);
      cases.push({ kind: 'truncate', bytes: base.buf.slice(0, cut), codes: ['TRUNCATED', 'OUT_OF_BOUNDS', 'BAD_HEADER', 'HEADER_TOO_LARGE'] });
    }
    // 2. bad header lengths
    const bad: Array<[bigint, SafetensorsErrorCode[]]> = [
      [0n, ['BAD_HEADER']],
      [1n, ['BAD_HEADER']],
      [1n << 63n, ['HEADER_TOO_LARGE']],
      [(1n << 64n) - 1n, ['HEADER_TOO_LARGE']],
      [BigInt(MAX_HEADER_BYTES) + BigInt(int(1, 1 << 30)), ['HEADER_TOO_LARGE']],
      [BigInt(base.buf.byteLength - 8 + int(1, 5000)), ['TRUNCATED']],
      [BigInt(base.headerLen + int(1, base.dataSize)), ['BAD_HEADER']], // header runs into the data
      [BigInt(base.headerLen - int(base.pad + 1, base.headerLen - 2)), ['BAD_HEADER']], // JSON cut short
    ];
    const [len, codes] = pick(bad);
    cases.push({ kind: `length ${len}`, bytes: setLength(base.buf, len), codes });
    // 3. semantic corruptions of one tensor entry
    const n = pick(names);
    const nn = pick(nonEmpty);
    semantic('unknown dtype', ['UNKNOWN_DTYPE'], (h) => { entry(h, n).dtype = pick(['F8', 'f32', 'FLOAT', 5, null, '', [], 'BF16 ', 'toString', '__proto__', 'F4']); });
    semantic('bad shape', ['BAD_HEADER'], (h) => { entry(h, n).shape = pick(['x', -1, [1.5], [-1], null, {}, [2 ** 53], [1, 'a'], 7]); });
    semantic('shape x dtype mismatch', ['SIZE_MISMATCH'], (h) => {
      const t = BASE_TENSORS.find((x) => x.name === nn)!;
      const numel = t.shape.reduce((a, b) => a * b, 1);
      entry(h, nn).shape = pick([[numel + int(1, 9)], [numel, 2], [int(0, numel - 1)]]);
    });
    semantic('overflowing shape', ['SIZE_MISMATCH'], (h) => { entry(h, n).shape = [2 ** 40, 2 ** 40, int(1, 9)]; });
    semantic('dtype size mismatch', ['SIZE_MISMATCH'], (h) => {
      const t = BASE_TENSORS.find((x) => x.name === nn)!;
      entry(h, nn).dtype = pick((['F64', 'F32', 'F16', 'U8', 'I64'] as DType[]).filter((d) => dtypeSize(d) !== dtypeSize(t.dtype)));
    });
    semantic('bad offsets', ['BAD_HEADER'], (h) => {
      const [b, e] = (base.header[nn] as { data_offsets: number[] }).data_offsets;
      entry(h, nn).data_offsets = pick([[e, b], [b], [b, e, e], [-1, e - b - 1], [b + 0.5, e + 0.5], ['0', String(e - b)], null, { 0: b, 1: e }, [b, null]]);
    });
    semantic('offsets beyond EOF', ['OUT_OF_BOUNDS'], (h) => {
      const [b, e] = (base.header[nn] as { data_offsets: number[] }).data_offsets;
      const k = int(1, 1 << 20);
      entry(h, nn).data_offsets = [base.dataSize - (e - b) + k, base.dataSize + k];
    });
    semantic('overlapping offsets', ['OVERLAP', 'OUT_OF_BOUNDS'], (h) => {
      const others = nonEmpty.filter((x) => x !== nn);
      const u = base.header[pick(others)] as { data_offsets: number[] };
      const [b, e] = (base.header[nn] as { data_offsets: number[] }).data_offsets;
      const start = int(u.data_offsets[0], u.data_offsets[1] - 1);
      entry(h, nn).data_offsets = [start, start + (e - b)];
    });
    semantic('entry not an object', ['BAD_HEADER'], (h) => { h[n] = pick([5, 'x', null, [], true]); });
    semantic('bad __metadata__', ['BAD_HEADER'], (h) => { h.__metadata__ = pick([null, [], { k: 5 }, 'str', { k: null }, { k: { x: 'y' } }]); });
    rawOffset('offset 2^63', '9223372036854775808');
    rawOffset('offset 1e400', '1e400');
    rawOffset('offset -3', '-3');
    rawOffset('float offset', '2.5');
    // 4. headers that are not JSON objects, not JSON, or not UTF-8
    const text = JSON.stringify(clone());
    const rootCodes: SafetensorsErrorCode[] = ['BAD_HEADER'];
    cases.push({ kind: 'root not an object', bytes: withHeaderText(pick(['[]', 'null', '1', '"s"', 'true', '[{"a":1}]']), data), codes: rootCodes });
    cases.push({ kind: 'leading space', bytes: withHeaderText(' ' + text, data), codes: rootCodes });
    cases.push({ kind: 'trailing garbage', bytes: withHeaderText(text + pick(['x', '}', ',', '{}', '\u0000']), data), codes: rootCodes });
    cases.push({ kind: 'cut JSON', bytes: withHeaderText(text.slice(0, int(1, text.length - 1)), data), codes: rootCodes });
    const utf8 = Buffer.from(text, 'utf8');
    const at = int(2, utf8.byteLength - 3);
    const junk = pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]]);
    const nonUtf8 = Buffer.concat([utf8.subarray(0, at), Buffer.from(junk), utf8.subarray(at)]);
    cases.push({ kind: 'not UTF-8', bytes: withHeaderText(nonUtf8, data), codes: rootCodes });
    // 5. tiny and random garbage files
    cases.push({ kind: 'short file', bytes: base.buf.slice(0, int(0, 7)), codes: ['TRUNCATED'] });
    const g = new Uint8Array(int(8, 300));
    for (let i = 0; i < g.length; i++) g[i] = int(0, 255);
    cases.push({ kind: 'random bytes', bytes: g, codes: ['HEADER_TOO_LARGE', 'TRUNCATED', 'BAD_HEADER'] });
    // 6. random byte flips in the length prefix or header (may stay valid: then it must still be safe)
    for (let i = 0; i < 4; i++) {
      const flipped = base.buf.slice();
      for (let k = int(1, 3); k > 0; k--) flipped[int(0, 8 + base.headerLen - 1)] ^= 1 << int(0, 7);
      cases.push({ kind: 'byte flip', bytes: flipped, codes: null });
    }
  }
  return cases;
}

/** Independent check of a header that was accepted: every tensor inside the file, sizes right, no overlap. */
function assertSafe(st: SafetensorsFile, size: number): void {
  const spans: Array<[number, number]> = [];
  for (const t of st.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    assert.equal(t.byteLength, n * dtypeSize(t.dtype));
    assert.ok(t.byteOffset >= st.dataStart && t.byteOffset + t.byteLength <= size, `${t.name} inside the file`);
    if (t.byteLength > 0) spans.push([t.byteOffset, t.byteOffset + t.byteLength]);
  }
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      assert.ok(spans[i][1] <= spans[j][0] || spans[j][1] <= spans[i][0], 'no overlap');
    }
  }
}

function check(c: Case, run: () => SafetensorsFile, size: number, tally: { errors: number; valid: number }): void {
  let st: SafetensorsFile;
  try {
    st = run();
  } catch (e) {
    if (!(e instanceof SafetensorsError)) assert.fail(`${c.kind}: expected a SafetensorsError, got ${(e as Error)?.stack ?? e}`);
    if (c.codes) assert.ok(c.codes.includes(e.code), `${c.kind}: code ${e.code}, expected one of ${c.codes.join('|')} (${e.message})`);
    tally.errors++;
    return;
  }
  if (c.codes) assert.fail(`${c.kind}: a corrupt file was accepted`);
  assertSafe(st, size);
  tally.valid++;
}

test('>= 1,000 corrupted or truncated safetensors files: typed error every time (in memory)', { timeout: 60_000 }, () => {
  const cases = makeCases(0x5afe);
  const tally = { errors: 0, valid: 0 };
  const mustFail = cases.filter((c) => c.codes !== null).length;
  for (const c of cases) check(c, () => parseSafetensorsBuffer(c.bytes, `case:${c.kind}`), c.bytes.byteLength, tally);
  assert.ok(mustFail >= 1000, `only ${mustFail} must-fail cases`);
  assert.ok(tally.errors >= mustFail);
  // the generator is deterministic: the same seed gives the same files
  const again = makeCases(0x5afe);
  assert.equal(again.length, cases.length);
  assert.ok(again.every((c, i) => Buffer.from(c.bytes).equals(Buffer.from(cases[i].bytes))));
});

test('corrupted files on disk: openSafetensors gives a typed error, accepted ones read safely', { timeout: 60_000 }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'st-fuzz-'));
  try {
    const cases = makeCases(77).filter((_, i) => i % 4 === 0);
    assert.ok(cases.length >= 250);
    const tally = { errors: 0, valid: 0 };
    for (const [i, c] of cases.entries()) {
      const file = path.join(dir, `${i}.safetensors`);
      await fsp.writeFile(file, c.bytes);
      let st: SafetensorsFile | null = null;
      try {
        st = await openSafetensors(file);
      } catch (e) {
        check(c, () => { throw e; }, c.bytes.byteLength, tally);
        continue;
      }
      check(c, () => st!, c.bytes.byteLength, tally);
      for (const t of st.tensors) assert.equal((await readTensorBytes(st, t.name)).byteLength, t.byteLength);
    }
    assert.ok(tally.errors > 200);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a deeply nested or huge JSON header is refused cleanly', () => {
  const deep = '{"a":' + '['.repeat(200_000) + ']'.repeat(200_000) + '}';
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(deep, new Uint8Array(0))), SafetensorsError);
  const many: Header = {};
  for (let i = 0; i < 20000; i++) many[`t${i}`] = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
  // 20,000 tensors all at offset 0: every pair overlaps, reported once, fast
  const err = (() => { try { parseSafetensorsBuffer(withHeaderText(JSON.stringify(many), new Uint8Array(4))); } catch (e) { return e; } })();
  assert.ok(err instanceof SafetensorsError && err.code === 'OVERLAP');
});

test('zero-length tensors never hide an overlap between their neighbours', () => {
  const h = {
    a: { dtype: 'U8', shape: [100], data_offsets: [0, 100] },
    z: { dtype: 'U8', shape: [0], data_offsets: [50, 50] },
    b: { dtype: 'U8', shape: [100], data_offsets: [60, 160] },
  };
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(JSON.stringify(h), new Uint8Array(160))),
    (e: unknown) => e instanceof SafetensorsError && e.code === 'OVERLAP');
  const nested = {
    a: { dtype: 'U8', shape: [100], data_offsets: [0, 100] },
    b: { dtype: 'U8', shape: [10], data_offsets: [10, 20] },
    c: { dtype: 'U8', shape: [10], data_offsets: [30, 40] },
  };
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(JSON.stringify(nested), new Uint8Array(100))),
    (e: unknown) => e instanceof SafetensorsError && e.code === 'OVERLAP');
  // zero-length tensors sit between tensors, as the reference reader requires, not inside one
  const inside = {
    a: { dtype: 'U8', shape: [100], data_offsets: [0, 100] },
    z: { dtype: 'U8', shape: [0, 5], data_offsets: [50, 50] },
  };
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(JSON.stringify(inside), new Uint8Array(100))),
    (e: unknown) => e instanceof SafetensorsError && e.code === 'OVERLAP');
  const ok = {
    z0: { dtype: 'U8', shape: [0], data_offsets: [0, 0] },
    a: { dtype: 'U8', shape: [100], data_offsets: [0, 100] },
    z: { dtype: 'U8', shape: [0, 5], data_offsets: [100, 100] },
  };
  assert.equal(parseSafetensorsBuffer(withHeaderText(JSON.stringify(ok), new Uint8Array(100))).tensors.length, 3);
});

test('the tensors must cover the data section exactly: holes and trailing bytes are refused (as the Rust reader does)', () => {
  const hole = {
    a: { dtype: 'U8', shape: [10], data_offsets: [0, 10] },
    b: { dtype: 'U8', shape: [10], data_offsets: [12, 22] },
  };
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(JSON.stringify(hole), new Uint8Array(22))),
    (e: unknown) => e instanceof SafetensorsError && e.code === 'INCOMPLETE' && /bytes 10\.\.12 .*hole before "b"/.test(e.message));
  const late = { a: { dtype: 'U8', shape: [10], data_offsets: [4, 14] } };
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(JSON.stringify(late), new Uint8Array(14))),
    (e: unknown) => e instanceof SafetensorsError && e.code === 'INCOMPLETE');
  const trailing = { a: { dtype: 'U8', shape: [10], data_offsets: [0, 10] } };
  assert.throws(() => parseSafetensorsBuffer(withHeaderText(JSON.stringify(trailing), new Uint8Array(13))),
    (e: unknown) => e instanceof SafetensorsError && e.code === 'INCOMPLETE' && /3 trailing bytes/.test(e.message));
  assert.equal(parseSafetensorsBuffer(withHeaderText(JSON.stringify(trailing), new Uint8Array(10))).tensors.length, 1);
});
