// End to end: the shipped demo model's tokenizer gives exactly the ids Hugging Face transformers gave
// (textN.input_ids in the reference fixture, read with our own safetensors reader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensors, readTensorBytes } from '../src/io/safetensors.ts';
import { toIntArray } from '../src/io/dtype.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { decode, encode, loadTokenizer } from '../src/tokenizer/load.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO_DIR = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const REFERENCE = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'reference', 'tiny-en-llama.reference.safetensors');

test('demo model tokenizer ids match the transformers reference exactly, for all three texts', async () => {
  const ref = await openSafetensors(REFERENCE);
  const info = JSON.parse(ref.metadata!.info) as { model: string; texts: string[] };
  assert.equal(info.model, 'tiny-en-llama');
  assert.equal(info.texts.length, 3);
  const m = await loadModelDir(DEMO_DIR);
  const tok = await loadTokenizer(m.tokenizerPath);
  assert.equal(tok.size, m.embeddingRows);
  for (const [i, text] of info.texts.entries()) {
    const t = ref.byName.get(`text${i}.input_ids`)!;
    assert.equal(t.dtype, 'I64');
    const expected = toIntArray(await readTensorBytes(ref, t.name), 'I64');
    assert.equal(expected.length, t.shape[0]);
    const ids = await encode(tok, text);
    assert.deepEqual(ids, expected, `text${i}`);
    // no BOS is added by this tokenizer, with or without special tokens
    assert.deepEqual(await encode(tok, text, true), expected, `text${i} with special tokens`);
    assert.equal(await decode(tok, ids), text, `text${i} decodes back`);
  }
  assert.equal(ref.byName.get('text2.input_ids')!.shape[0], 165);
});
