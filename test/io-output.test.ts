import test from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkOutput, openResumableDir, OUTPUT_MARKER, writeOutputDir, writeOutputFile, writtenBy } from '../src/io/output.ts';
import { HackError } from '../src/io/errors.ts';

async function tmpdir(): Promise<string> { return fsp.mkdtemp(path.join(os.tmpdir(), 'ht-out-')); }
const code = (c: string) => (e: unknown) => { assert.ok(e instanceof HackError, String(e)); assert.equal(e.code, c, e.message); return true; };
const leftovers = async (d: string) => (await fsp.readdir(d)).filter((n) => n.includes('.tmp-'));

test('a non-empty directory that is not ours is refused, nothing in it touched', async () => {
  const d = await tmpdir();
  try {
    const out = path.join(d, 'd');
    await fsp.mkdir(out);
    await fsp.writeFile(path.join(out, 'notes.txt'), 'notes');
    await assert.rejects(writeOutputDir({ path: out, command: 'extend' }, async (t) => { await fsp.writeFile(path.join(t, 'x'), 'y'); }), code('OUT_FOREIGN'));
    await assert.rejects(writeOutputDir({ path: out, command: 'extend', force: true }, async () => undefined), code('OUT_FOREIGN'));
    assert.equal(await fsp.readFile(path.join(out, 'notes.txt'), 'utf8'), 'notes');
    assert.deepEqual(await leftovers(d), []);
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});

test('our own earlier output needs --force; another command\'s output is refused; a file is not a directory', async () => {
  const d = await tmpdir();
  try {
    const out = path.join(d, 'm');
    await writeOutputDir({ path: out, command: 'extend' }, async (t) => { await fsp.writeFile(path.join(t, 'a'), '1'); });
    assert.ok(existsSync(path.join(out, OUTPUT_MARKER)));
    await assert.rejects(writeOutputDir({ path: out, command: 'extend' }, async () => undefined), code('OUT_EXISTS'));
    await assert.rejects(writeOutputDir({ path: out, command: 'tune', force: true }, async () => undefined), /output of `hack-tokenizer extend`/);
    await writeOutputDir({ path: out, command: 'extend', force: true }, async (t) => { await fsp.writeFile(path.join(t, 'b'), '2'); });
    assert.deepEqual((await fsp.readdir(out)).sort(), [OUTPUT_MARKER, 'b'].sort());
    const file = path.join(d, 'f.txt');
    await fsp.writeFile(file, 'keep');
    await assert.rejects(writeOutputDir({ path: file, command: 'extend' }, async () => undefined), code('OUT_EXISTS'));
    assert.equal(await fsp.readFile(file, 'utf8'), 'keep');
    assert.deepEqual(await leftovers(d), []);
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});

test('an output that is, contains or lies inside an input is refused', async () => {
  const d = await tmpdir();
  try {
    const model = path.join(d, 'model');
    await fsp.mkdir(model);
    await fsp.writeFile(path.join(model, 'model.safetensors'), 'w');
    const corpus = path.join(d, 'c.txt');
    await fsp.writeFile(corpus, 'x');
    await assert.rejects(checkOutput({ path: model, kind: 'dir', command: 'extend', inputs: [model], force: true }), code('OUT_IS_INPUT'));
    await assert.rejects(checkOutput({ path: path.join(model, 'sub'), kind: 'dir', command: 'extend', inputs: [model] }), /lies inside an input/);
    await assert.rejects(checkOutput({ path: d, kind: 'dir', command: 'extend', inputs: [corpus] }), /contains an input/);
    await assert.rejects(checkOutput({ path: corpus, kind: 'file', command: 'tokens', inputs: [corpus], force: true }), code('OUT_IS_INPUT'));
    // through a symbolic link too
    await fsp.symlink(model, path.join(d, 'link'));
    await assert.rejects(checkOutput({ path: path.join(d, 'link'), kind: 'dir', command: 'x', inputs: [model] }), code('OUT_IS_INPUT'));
    assert.ok(existsSync(path.join(model, 'model.safetensors')));
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});

test('unwritable places fail fast with a plain reason, no errno or temp names (/proc, /sys, /dev/null/x)', async () => {
  for (const [p, re] of [['/proc/x', /cannot write \/proc\/x: directories cannot be created there/], ['/proc/x/y/z', /cannot write \/proc\/x\/y\/z/],
    ['/sys/x', /cannot write \/sys\/x: (permission denied|read-only file system|directories cannot)/], ['/dev/null/x', /cannot write \/dev\/null\/x: \/dev\/null is not a directory/]] as const) {
    const t0 = Date.now();
    for (const kind of ['dir', 'file'] as const) {
      await assert.rejects(checkOutput({ path: p, kind, command: 'extend' }), (e: unknown) => {
        assert.ok(e instanceof HackError && e.code === 'OUT_UNWRITABLE', String(e));
        assert.match(e.message, re);
        assert.doesNotMatch(e.message, /E[A-Z]{3,}|tmp-|errno/);
        return true;
      });
    }
    assert.ok(Date.now() - t0 < 5000, `${p} took ${Date.now() - t0} ms`);
  }
});

test('files: a directory is refused, an existing file needs to be ours and --force', async () => {
  const d = await tmpdir();
  try {
    await assert.rejects(writeOutputFile({ path: d, command: 'tokens' }, 'x'), /is a directory/);
    const f = path.join(d, 'tokens.json');
    await fsp.writeFile(f, '{"mine": false}');
    await assert.rejects(writeOutputFile({ path: f, command: 'tokens', force: true }, 'x'), code('OUT_FOREIGN'));
    await fsp.writeFile(f, JSON.stringify({ written_by: writtenBy('tokens') }));
    await assert.rejects(writeOutputFile({ path: f, command: 'tokens' }, 'x'), code('OUT_EXISTS'));
    await writeOutputFile({ path: f, command: 'tokens', force: true }, 'new');
    assert.equal(await fsp.readFile(f, 'utf8'), 'new');
    assert.deepEqual(await leftovers(d), []);
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});

test('a failing fill leaves nothing behind; resumable directories are reused only by their command', async () => {
  const d = await tmpdir();
  try {
    const out = path.join(d, 'o');
    await assert.rejects(writeOutputDir({ path: out, command: 'extend' }, async (t) => { await fsp.writeFile(path.join(t, 'half'), 'x'); throw new Error('boom'); }), /boom/);
    assert.deepEqual(await fsp.readdir(d), []);
    const r1 = await openResumableDir({ path: out, command: 'demo' });
    assert.equal(r1.reused, false);
    await fsp.writeFile(path.join(out, 'cell.json'), '{}');
    assert.equal((await openResumableDir({ path: out, command: 'demo' })).reused, true);
    await assert.rejects(openResumableDir({ path: out, command: 'experiment' }), code('OUT_FOREIGN'));
  } finally { await fsp.rm(d, { recursive: true, force: true }); }
});
