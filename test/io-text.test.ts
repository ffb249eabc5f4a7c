import test from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { emptyStats, readTextFile, scanUtf8, textLines } from '../src/io/text.ts';
import { HackError } from '../src/io/errors.ts';

async function tmpdir(): Promise<string> { return fsp.mkdtemp(path.join(os.tmpdir(), 'ht-text-')); }
async function all(files: string[], o = {}, stats = emptyStats()): Promise<string[]> {
  const out: string[] = [];
  for await (const l of textLines(files, o, stats)) out.push(l);
  return out;
}

test('scanUtf8: valid text, overlongs, surrogates, NUL and truncated tails', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.deepEqual(scanUtf8(enc('água ção 😀')), { ok: enc('água ção 😀').length, bad: -1 });
  assert.equal(scanUtf8(Uint8Array.of(0x61, 0xe1, 0x62)).bad, 1); // latin-1 á followed by ASCII
  assert.equal(scanUtf8(Uint8Array.of(0xc0, 0xaf)).bad, 0); // overlong '/'
  assert.equal(scanUtf8(Uint8Array.of(0xe0, 0x80, 0xaf)).bad, 0); // overlong 3-byte
  assert.equal(scanUtf8(Uint8Array.of(0xed, 0xa0, 0x80)).bad, 0); // surrogate U+D800
  assert.equal(scanUtf8(Uint8Array.of(0xf4, 0x90, 0x80, 0x80)).bad, 0); // > U+10FFFF
  assert.equal(scanUtf8(Uint8Array.of(0x61, 0x00)).bad, 1);
  assert.deepEqual(scanUtf8(Uint8Array.of(0x61, 0xe2, 0x82)), { ok: 1, bad: -1 }); // incomplete € at the end
  assert.deepEqual(scanUtf8(Uint8Array.of(0x61, 0xe2, 0x41)), { ok: 1, bad: 1 });
});

test('textLines: plain and gzip, CRLF, a multi-byte character across the 1 MiB chunk boundary', async () => {
  const d = await tmpdir();
  try {
    // 'ç' (2 bytes) straddles byte 1 MiB
    const first = 'a'.repeat((1 << 20) - 1) + 'ç';
    const text = `${first}\r\nsegunda linha\nterceira`;
    await fsp.writeFile(path.join(d, 'a.txt'), text);
    await fsp.writeFile(path.join(d, 'a.gz'), gzipSync(Buffer.from(text)));
    for (const f of ['a.txt', 'a.gz']) {
      const stats = emptyStats();
      const lines = await all([path.join(d, f)], {}, stats);
      assert.deepEqual(lines, [first, 'segunda linha', 'terceira']);
      assert.equal(stats.lines, 3);
      assert.equal(stats.bytes, Buffer.byteLength(text));
    }
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});

test('latin-1 and binary files are refused with file, byte offset and line; allowInvalidUtf8 counts', async () => {
  const d = await tmpdir();
  try {
    const latin = path.join(d, 'latin1.txt');
    await fsp.writeFile(latin, Buffer.concat([Buffer.from('linha um\nduas '), Buffer.from([0x61, 0xe7, 0xe3, 0x6f]), Buffer.from('\n')]));
    await assert.rejects(all([latin], { option: 'corpus' }), (e: unknown) => {
      assert.ok(e instanceof HackError);
      assert.equal(e.code, 'INVALID_UTF8');
      assert.equal(e.file, latin);
      assert.match(e.message, /invalid UTF-8 at byte 15 \(line 2\)/);
      assert.match(e.message, /allowInvalidUtf8/);
      return true;
    });
    const bin = path.join(d, 'bin');
    await fsp.writeFile(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00]));
    await assert.rejects(all([bin]), /a NUL byte at byte 7 \(line 1\)/);
    await assert.rejects(readTextFile(latin), /invalid UTF-8 at byte 15 \(line 2\)/);
    const stats = emptyStats();
    const lines = await all([latin, bin], { allowInvalidUtf8: true }, stats);
    assert.equal(lines[1], 'duas a\uFFFD\uFFFDo');
    assert.equal(stats.invalidSequences, 2 + 0);
    assert.equal(stats.nulBytes, 2);
    assert.ok(!lines.join('').includes('\u0000'));
    // a real U+FFFD in valid text is not counted as a replacement
    const real = path.join(d, 'real.txt');
    await fsp.writeFile(real, 'x\uFFFDy\n');
    const s2 = emptyStats();
    assert.deepEqual(await all([real], { allowInvalidUtf8: true }, s2), ['x\uFFFDy']);
    assert.equal(s2.invalidSequences, 0);
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});

test('readTextFile keeps the text exactly (line breaks and final newline); missing, directory and empty files are named', async () => {
  const d = await tmpdir();
  try {
    const f = path.join(d, 'h.txt');
    await fsp.writeFile(f, 'um\r\ndois\n');
    assert.equal(await readTextFile(f), 'um\r\ndois\n');
    await assert.rejects(readTextFile(path.join(d, 'nope.txt'), { option: 'pt' }), (e: unknown) => e instanceof HackError && e.code === 'NO_SUCH_FILE' && e.option === 'pt');
    await assert.rejects(readTextFile(d), /not a regular file/);
    await fsp.writeFile(path.join(d, 'empty.txt'), '  \n');
    await assert.rejects(readTextFile(path.join(d, 'empty.txt')), /the file is empty/);
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});
