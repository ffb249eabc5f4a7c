// Fertility: word counting as Python's re `\b\w+\b` on str, and the three ratios by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { countWordsInLine, FertilityAccumulator, fertility, fertilityOfFiles } from '../src/tokenizer/fertility.ts';
import { encode, loadTokenizer } from '../src/tokenizer/load.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TINY = path.join(repoRoot, 'assets/models/tiny-en-llama/tokenizer.json');

test('words are runs of Unicode letters, digits and "_" (accented letters are letters)', () => {
  // re.findall(r'\b\w+\b', ...) in Python 3 on these strings:
  assert.equal(countWordsInLine('Olá, mundo!'), 2);
  assert.equal(countWordsInLine('A educação é um direito — não um privilégio.'), 8);
  assert.equal(countWordsInLine('snake_case x2 3.14 d\'água'), 6); // snake_case, x2, 3, 14, d, água
  assert.equal(countWordsInLine('... — !!'), 0);
  assert.equal(countWordsInLine('Ελληνικά и русский'), 3);
});

test('FertilityInput is the mean of per-line ratios; totals give tokens/word and bytes/token', () => {
  const acc = new FertilityAccumulator();
  acc.add('um dois', 3); // 3/2
  acc.add('três', 1); // 1/1
  acc.add('— …', 2); // no word: left out of the mean, kept in totals
  const r = acc.result();
  assert.equal(r.fertilityInput, (1.5 + 1) / 2);
  assert.equal(r.words, 3);
  assert.equal(r.tokens, 6);
  assert.equal(r.tokensPerWord, 2);
  assert.equal(r.bytes, Buffer.byteLength('um dois') + Buffer.byteLength('três') + Buffer.byteLength('— …'));
  assert.equal(r.bytesPerToken, r.bytes / 6);
  assert.equal(r.lines, 2);
  assert.equal(r.linesWithoutWords, 1);
});

test('fertility of a tokenizer on lines and on files (plain and gzip) agree with per-line encoding', async () => {
  const tok = await loadTokenizer(TINY);
  const lines = ['Os deputados votaram a proposta.', '', '  The quick brown fox.  ', 'Sr. Presidente, Srs. Deputados: está aberta a sessão.'];
  let sum = 0;
  let n = 0;
  for (const l of lines.map((x) => x.trim()).filter(Boolean)) {
    sum += (await encode(tok, l)).length / countWordsInLine(l);
    n++;
  }
  const r = await fertility(tok, lines);
  assert.ok(Math.abs(r.fertilityInput - sum / n) < 1e-12);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ht-fert-'));
  try {
    await fsp.writeFile(path.join(dir, 'a.txt'), lines.join('\n'));
    await fsp.writeFile(path.join(dir, 'a.txt.gz'), gzipSync(lines.join('\r\n')));
    assert.deepEqual(await fertilityOfFiles(tok, [path.join(dir, 'a.txt')]), r);
    assert.deepEqual(await fertilityOfFiles(tok, [path.join(dir, 'a.txt.gz')]), r);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
