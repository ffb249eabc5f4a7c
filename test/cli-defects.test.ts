// Issue 14's defects 5, 6 and 9, each as the command a user ran: a corpus too small to train on, the
// original and extended models swapped in generate, and the input label of an unmodified model.
import test from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from './support/cli.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');

test('tiny corpus, swapped --original/--model, and the label of an unmodified model', { timeout: 10 * 60_000 }, async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'defects-'));
  try {
    const corpus = path.join(root, 'corpus.txt');
    await fsp.writeFile(corpus, 'O Parlamento aprovou a proposta de lei.\nAs deputadas votaram a favor da resolução.\n'.repeat(30));
    const ext = path.join(root, 'ext');
    const e = await runCli(['extend', '--model', DEMO, '--corpus', corpus, '--num-tokens', '8', '--mode', 'merges', '--init', 'mean', '--out', ext]);
    assert.equal(e.code, 0, e.stderr);

    // 5: a 19-byte corpus is refused with the amount of text one step needs, before any training
    const tiny = path.join(root, 'tiny.txt');
    await fsp.writeFile(tiny, 'O Parlamento votou\n');
    const t = await runCli(['tune', '--model', ext, '--original', DEMO, '--corpus', tiny, '--out', path.join(root, 'tuned'), '--threads', '1']);
    assert.notEqual(t.code, 0);
    assert.match(t.stderr, /--corpus: output-row training needs at least 2048 positions for one step, the text gives \d+ \(19 bytes\): give about .* or more, or a smaller --batch-size/);
    await assert.rejects(fsp.stat(path.join(root, 'tuned')));

    // 6: the two models swapped: an error naming both, not ONNX Runtime's index error
    const g = await runCli(['generate', '--model', DEMO, '--original', ext, '--encode-with', 'original', '--prompt', 'Olá', '--max-new-tokens', '2']);
    assert.notEqual(g.code, 0);
    assert.doesNotMatch(g.stderr, /Gather|idx=|\x1b\[/);
    assert.match(g.stderr, /--original|--model/);
    assert.match(g.stderr, new RegExp(path.basename(ext)));

    // 9: an unmodified model without --original is labelled "model", not "extended"
    const res = path.join(root, 'r.json');
    const v = await runCli(['eval', '--model', DEMO, '--metrics', 'fertility', '--pt', corpus, '--out', res]);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(JSON.parse(await fsp.readFile(res, 'utf8')).input, 'model');
    assert.doesNotMatch(v.stdout + v.stderr, /\(extended\)/);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
