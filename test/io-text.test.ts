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

test('cutHeldOut: the first whole lines up to the size are held out, the rest is the training file (no overlap, nothing lost); reused while the corpus is unchanged', async () => {
  const { cutHeldOut } = await import('../src/io/heldout.ts');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'heldout-'));
  try {
    const lines = Array.from({ length: 50 }, (_, i) => `linha ${i} com água e ç`);
    const corpus = path.join(dir, 'c.txt.gz');
    await fsp.writeFile(corpus, gzipSync(Buffer.from(lines.join('\r\n') + '\n')));
    const bytes = 200;
    const split = await cutHeldOut([corpus], bytes, path.join(dir, 'split'));
    const h = (await fsp.readFile(split.heldout, 'utf8')).split('\n').slice(0, -1);
    const t = (await fsp.readFile(split.train, 'utf8')).split('\n').slice(0, -1);
    assert.deepEqual([...h, ...t], lines);
    // whole lines: the held-out part reaches the size with its last line, not one line earlier
    const hBytes = Buffer.byteLength(h.join('\n') + '\n');
    assert.ok(hBytes >= bytes && hBytes - Buffer.byteLength(h[h.length - 1] + '\n') < bytes);
    assert.deepEqual([split.heldoutLines, split.trainLines, split.heldoutBytes, split.reused], [h.length, t.length, hBytes, false]);
    const mtime = (await fsp.stat(split.train)).mtimeMs;
    const again = await cutHeldOut([corpus], bytes, path.join(dir, 'split'));
    assert.equal(again.reused, true);
    assert.equal((await fsp.stat(split.train)).mtimeMs, mtime);
    const other = await cutHeldOut([corpus], 100, path.join(dir, 'split'));
    assert.equal(other.reused, false);
    await assert.rejects(cutHeldOut([corpus], 800, path.join(dir, 'small')), (e: Error & { code?: string }) =>
      e.code === 'CORPUS_TOO_SMALL' && /too small to cut 800 bytes of held-out text/.test(e.message));
    assert.deepEqual(await fsp.readdir(path.join(dir, 'small')), []);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
