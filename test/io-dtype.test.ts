// bf16/f16 <-> f32 conversions against hand-computed bit patterns, exhaustive 16-bit round trips,
// and a brute-force nearest-value reference for random float32 inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, fromFloat32, toFloat32, toIntArray, dtypeSize, isDType,
} from '../src/io/dtype.ts';
import { rng } from './support/factory.ts';

const f32v = new Float32Array(1);
const u32v = new Uint32Array(f32v.buffer);
/** The float32 whose bits are `bits`. */
function fromBits(bits: number): number {
  u32v[0] = bits >>> 0;
  return f32v[0];
}
function bitsOf(x: number): number {
  f32v[0] = x;
  return u32v[0];
}
const hex = (n: number) => '0x' + n.toString(16).padStart(4, '0');

test('f32 -> bf16: hand-computed bit patterns (round to nearest even, inf, NaN, subnormals)', () => {
  const cases: Array<[number, number, string]> = [
    [0x3f800000, 0x3f80, '1.0'],
    [0xc0000000, 0xc000, '-2.0'],
    [0x00000000, 0x0000, '+0'],
    [0x80000000, 0x8000, '-0'],
    [0x3f807fff, 0x3f80, 'just below the halfway point rounds down'],
    [0x3f808000, 0x3f80, 'tie, even lower neighbour: stays'],
    [0x3f818000, 0x3f82, 'tie, odd lower neighbour: rounds up to even'],
    [0x3f808001, 0x3f81, 'just above the halfway point rounds up'],
    [0x3f80ffff, 0x3f81, 'carry within the mantissa'],
    [0x3fffffff, 0x4000, 'carry into the exponent'],
    [0x7f7f7fff, 0x7f7f, 'large finite stays finite'],
    [0x7f7fffff, 0x7f80, 'FLT_MAX rounds to +inf'],
    [0xff7fffff, 0xff80, '-FLT_MAX rounds to -inf'],
    [0x7f800000, 0x7f80, '+inf'],
    [0xff800000, 0xff80, '-inf'],
    [0x7fc00000, 0x7fc0, 'quiet NaN'],
    [0x7f800001, 0x7fc0, 'NaN with payload only in the dropped bits stays NaN (not inf)'],
    [0xff800001, 0xffc0, 'negative NaN keeps its sign'],
    [0x00000001, 0x0000, 'smallest f32 subnormal rounds to 0'],
    [0x00008000, 0x0000, 'subnormal tie to even (0)'],
    [0x00018000, 0x0002, 'subnormal tie to even (2)'],
    [0x00010000, 0x0001, 'smallest bf16 subnormal is exact'],
    [0x007fffff, 0x0080, 'largest f32 subnormal rounds up to the smallest normal'],
  ];
  for (const [bits, want, why] of cases) {
    assert.equal(hex(f32ToBf16(fromBits(bits))), hex(want), why);
  }
});

test('bf16 -> f32: exact values', () => {
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0xc000), -2);
  assert.equal(bf16ToF32(0x4049), 3.140625);
  assert.equal(bf16ToF32(0x0001), 2 ** -133);
  assert.equal(bf16ToF32(0x0080), 2 ** -126);
  assert.equal(bf16ToF32(0x7f7f), 255 * 2 ** 120);
  assert.equal(bf16ToF32(0x7f80), Infinity);
  assert.equal(bf16ToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
  assert.ok(Object.is(bf16ToF32(0x8000), -0));
});

test('f32 -> f16: hand-computed bit patterns (ties, subnormals, overflow, inf, NaN)', () => {
  const cases: Array<[number, number, string]> = [
    [1, 0x3c00, '1.0'],
    [-2, 0xc000, '-2.0'],
    [0, 0x0000, '+0'],
    [-0, 0x8000, '-0'],
    [0.333251953125, 0x3555, 'exact 1/3 approximation'],
    [1 + 2 ** -11, 0x3c00, 'tie, even neighbour: stays'],
    [1 + 3 * 2 ** -11, 0x3c02, 'tie, odd neighbour: rounds up'],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'above the tie rounds up'],
    [2 - 2 ** -12, 0x4000, 'mantissa carry into the exponent'],
    [65504, 0x7bff, 'largest finite half'],
    [65519, 0x7bff, 'below the overflow tie stays finite'],
    [65520, 0x7c00, 'overflow tie rounds to even = +inf'],
    [1e5, 0x7c00, 'overflow to +inf'],
    [-1e5, 0xfc00, 'overflow to -inf'],
    [Infinity, 0x7c00, '+inf'],
    [-Infinity, 0xfc00, '-inf'],
    [2 ** -14, 0x0400, 'smallest normal'],
    [2 ** -24, 0x0001, 'smallest subnormal'],
    [1023 * 2 ** -24, 0x03ff, 'largest subnormal'],
    [1023.5 * 2 ** -24, 0x0400, 'subnormal tie carries into the smallest normal'],
    [2 ** -25, 0x0000, 'half the smallest subnormal: tie to even (0)'],
    [fromBits(bitsOf(2 ** -25) + 1), 0x0001, 'just above half the smallest subnormal'],
    [3 * 2 ** -25, 0x0002, 'subnormal tie, odd neighbour: rounds up'],
    [1.5 * 2 ** -26, 0x0000, 'below half the smallest subnormal'],
    [-1e-10, 0x8000, 'negative underflow keeps the sign'],
    [fromBits(0x00000001), 0x0000, 'f32 subnormal underflows'],
  ];
  for (const [x, want, why] of cases) assert.equal(hex(f32ToF16(x)), hex(want), why);
  const nan = f32ToF16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00, 'NaN has an all-ones exponent');
  assert.notEqual(nan & 0x3ff, 0, 'NaN has a non-zero mantissa');
});

test('f16 -> f32: exact values', () => {
  assert.equal(f16ToF32(0x3c00), 1);
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16ToF32(0x0400), 2 ** -14);
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f16ToF32(0xfbff), -65504);
  assert.equal(f16ToF32(0x3555), 0.333251953125);
  assert.equal(f16ToF32(0x7c00), Infinity);
  assert.equal(f16ToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16ToF32(0x7c01)));
  assert.ok(Number.isNaN(f16ToF32(0xfe00)));
  assert.ok(Object.is(f16ToF32(0x8000), -0));
});

test('exhaustive: every f16 value survives f16 -> f32 -> f16 (NaNs stay NaN)', () => {
  let nans = 0;
  for (let h = 0; h < 65536; h++) {
    const x = f16ToF32(h);
    const back = f32ToF16(x);
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
      nans++;
      assert.ok((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0, `NaN ${hex(h)} came back as ${hex(back)}`);
    } else if (back !== h) {
      assert.fail(`f16 ${hex(h)} -> ${x} -> ${hex(back)}`);
    }
  }
  assert.equal(nans, 2 * 1023);
});

test('exhaustive: every bf16 value survives bf16 -> f32 -> bf16 (NaNs stay NaN)', () => {
  for (let h = 0; h < 65536; h++) {
    const back = f32ToBf16(bf16ToF32(h));
    if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) {
      assert.ok((back & 0x7f80) === 0x7f80 && (back & 0x7f) !== 0, `NaN ${hex(h)} came back as ${hex(back)}`);
    } else if (back !== h) {
      assert.fail(`bf16 ${hex(h)} -> ${hex(back)}`);
    }
  }
});

/** Brute-force reference: the nearest representable value (ties to the even encoding), by search. */
function nearest(x: number, sortedBits: number[], decode: (b: number) => number, maxFinite: number, infBits: number): number {
  const a = Math.abs(x);
  const sign = x < 0 || Object.is(x, -0) ? 1 : 0;
  let lo = 0;
  let hi = sortedBits.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (decode(sortedBits[mid]) <= a) lo = mid; else hi = mid - 1;
  }
  const below = sortedBits[lo];
  const above = lo + 1 < sortedBits.length ? sortedBits[lo + 1] : infBits;
  const vb = decode(below);
  // infinity sits one ulp above the largest finite value for rounding purposes (IEEE overflow rule)
  const va = above === infBits ? maxFinite + (maxFinite - decode(sortedBits[lo - 1])) : decode(above);
  let pick: number;
  if (a - vb < va - a) pick = below;
  else if (a - vb > va - a) pick = above;
  else pick = (below & 1) === 0 ? below : above;
  return pick | (sign ? 0x8000 : 0); // both formats keep the sign in bit 15
}

test('random float32 values round to the nearest f16 / bf16 (brute-force reference)', () => {
  const halfBits: number[] = [];
  for (let h = 0; h < 0x7c00; h++) halfBits.push(h);
  const bfBits: number[] = [];
  for (let h = 0; h < 0x7f80; h++) bfBits.push(h);
  const rand = rng(20261123);
  for (let i = 0; i < 20000; i++) {
    // mix of uniform bit patterns and values concentrated in the half range
    let bits: number;
    if (i % 2 === 0) bits = Math.floor(rand() * 2 ** 32);
    else bits = bitsOf((rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 44 - 28));
    const x = fromBits(bits);
    if (Number.isNaN(x) || !Number.isFinite(x)) continue;
    assert.equal(hex(f32ToF16(x)), hex(nearest(x, halfBits, f16ToF32, 65504, 0x7c00)), `f16 of ${x}`);
    assert.equal(hex(f32ToBf16(x)), hex(nearest(x, bfBits, bf16ToF32, bf16ToF32(0x7f7f), 0x7f80)), `bf16 of ${x}`);
  }
});

test('toFloat32 / fromFloat32 on buffers of every float dtype', () => {
  const values = [0, 1, -2.5, 0.1, 65504, -1e-3, 3.140625];
  for (const dt of ['F32', 'F64', 'F16', 'BF16'] as const) {
    const bytes = fromFloat32(values, dt);
    assert.equal(bytes.byteLength, values.length * dtypeSize(dt));
    const back = toFloat32(bytes, dt);
    for (let i = 0; i < values.length; i++) {
      const expect = dt === 'F16' ? f16ToF32(f32ToF16(values[i])) : dt === 'BF16' ? bf16ToF32(f32ToBf16(values[i])) : Math.fround(values[i]);
      assert.equal(back[i], expect, `${dt}[${i}]`);
    }
  }
  // little-endian layout: bf16 1.0 is 0x3f80 -> bytes 80 3f
  assert.deepEqual([...fromFloat32([1], 'BF16')], [0x80, 0x3f]);
  assert.deepEqual([...fromFloat32([1], 'F16')], [0x00, 0x3c]);
  // a view into a larger buffer at an odd offset decodes correctly
  const big = new Uint8Array(9);
  big.set(fromFloat32([1, -2], 'F32'), 1);
  assert.deepEqual([...toFloat32(big.subarray(1), 'F32')], [1, -2]);
  assert.throws(() => toFloat32(new Uint8Array(4), 'I32'), TypeError);
  assert.throws(() => fromFloat32([1], 'U8'), TypeError);
});

test('toIntArray decodes little-endian integers, I64 included', () => {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setBigInt64(0, -5n, true);
  dv.setBigInt64(8, 151935n, true);
  assert.deepEqual(toIntArray(b, 'I64'), [-5, 151935]);
  assert.deepEqual(toIntArray(new Uint8Array([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), 'I32'), [1, -1]);
  assert.deepEqual(toIntArray(new Uint8Array([7, 255]), 'U8'), [7, 255]);
  assert.throws(() => toIntArray(new Uint8Array(4), 'F32'), TypeError);
  assert.ok(isDType('BF16') && !isDType('F8') && !isDType('toString') && !isDType(3));
});
