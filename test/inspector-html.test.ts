// The web tokenizer inspector (`inspect --html`, `--serve`) against the terminal `inspect` on the same
// texts: the demo model and an extended demo model (merges mode, made here). The page is opened from
// file:// in headless Chromium with the network off (every request but the file itself blocked and
// recorded); a Portuguese and an English text are typed; counts, ids and new-token marks must equal the CLI's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { launchChromium } from './support/chromium-check.ts';
import { inspectorPage, writeInspectorPage } from '../src/tokenizer/inspector-page.ts';
import { groupTokens, inspectStats, newTokenFlags, pieceSchemeOf, statCells, tokenBytes, vocabOf } from '../src/tokenizer/token-pieces.ts';
import { CHAR_TO_BYTE } from '../src/tokenizer/byte-level.ts';
import { readTokenizerJson } from '../src/io/model-dir.ts';
import { WORD } from '../src/tokenizer/fertility.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join('assets', 'models', 'tiny-en-llama');
const execFileP = promisify(execFile);
const CLI = ['--import', 'tsx', 'src/cli/run.ts'];

interface Result { code: number; stdout: string; stderr: string }
async function cli(args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [...CLI, ...args], { cwd: repoRoot, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

const PT = 'Os Srs. Deputados votaram hoje a proposta de lei do Governo sobre a habitação, que será discutida na especialidade.';
const EN = "The committee's report was approved; it will be debated next week.";

/** The CLI's output per tokenizer: pieces ("|"-separated, piped), ids, new pieces, and its table row's cells. */
function parseInspect(out: string, labels: string[]) {
  const lines = out.split('\n');
  const head = lines.findIndex((l) => /^tokenizer\s+tokens\s+new\s+words\s+tokens\/word\s+bytes\/token\s+chars\/token\s+vs first$/.test(l));
  assert.ok(head >= 0, out);
  return labels.map((label, i) => {
    const at = lines.findIndex((l) => l.startsWith(`${label} (`));
    const next = lines[at + 3]?.startsWith('new: ') ? lines[at + 3].slice(5) : '';
    const row = lines[head + 1 + i];
    assert.ok(row.startsWith(label), row);
    return { pieces: lines[at + 1], ids: lines[at + 2].replace(/^ids: /, ''), newPieces: next, cells: row.slice(label.length).trim().split(/\s+/) };
  });
}

let dir = '';
let ext = '';
test.before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ht-inspector-'));
  const lines = gunzipSync(readFileSync(path.join(repoRoot, 'assets/corpora/pt-pt-parliament-train.txt.gz'))).toString('utf8').split('\n').filter(Boolean).slice(0, 800);
  const corpus = path.join(dir, 'pt.txt.gz');
  await fsp.writeFile(corpus, gzipSync(lines.join('\n') + '\n'));
  ext = path.join(dir, 'ext-merges');
  const e = await cli(['extend', '--model', DEMO, '--corpus', corpus, '--num-tokens', '150', '--mode', 'merges', '--out', ext]);
  assert.equal(e.code, 0, e.stderr);
});
test.after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test('inspect --html: from file:// with the network off, typed PT and EN texts give the CLI\'s counts, ids and new-token marks', async () => {
  const page = path.join(dir, 'inspector.html');
  const [h, ptOut, enOut] = await Promise.all([
    cli(['inspect', '--model', DEMO, '--compare', ext, '--html', page]),
    cli(['inspect', '--model', DEMO, '--compare', ext, '--ids', PT]),
    cli(['inspect', '--model', DEMO, '--compare', ext, '--ids', EN]),
  ]);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /inspector page: .*inspector\.html .*2 tokenizer\(s\)/);
  const html = await fsp.readFile(page, 'utf8');
  assert.ok(!/https?:\/\//.test(html), 'no network addresses in the page');
  assert.ok(!/<script[^>]*\bsrc=|<link\b/i.test(html), 'no external scripts or styles');
  const expected = { pt: parseInspect(ptOut.stdout, [DEMO, ext]), en: parseInspect(enOut.stdout, [DEMO, ext]) };
  // the texts are ones where the extension matters (PT) and hardly (EN)
  assert.ok(Number(expected.pt[1].cells[0]) < Number(expected.pt[0].cells[0]) && Number(expected.pt[1].cells[1]) > 0, ptOut.stdout);
  assert.equal(expected.pt[0].cells[1], '0', 'the first tokenizer has no new tokens');

  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ offline: true, viewport: { width: 1400, height: 900 } });
    const self = pathToFileURL(page).href;
    const attempted: string[] = [];
    const errors: string[] = [];
    await context.route('**/*', (route) => (route.request().url() === self ? route.continue() : (attempted.push(route.request().url()), route.abort())));
    const tab = await context.newPage();
    tab.on('request', (r) => { if (r.url() !== self) attempted.push(r.url()); });
    tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    tab.on('pageerror', (e) => errors.push(e.message));
    await tab.goto(self);
    await tab.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    for (const [lang, text] of [['pt', PT], ['en', EN]] as const) {
      await tab.fill('#text', '');
      await tab.locator('#text').pressSequentially(text);
      await tab.waitForFunction((t) => document.getElementById('summary')?.dataset.text === t, text);
      const got = await tab.evaluate(() => {
        const rows = [...document.querySelectorAll('#summary tbody tr')].map((tr) => [...tr.querySelectorAll('td[data-stat]')].map((td) => td.textContent ?? ''));
        const cols = [...document.querySelectorAll('#columns .col')].map((col) => {
          const toks = [...col.querySelectorAll('.tok')] as HTMLElement[];
          return {
            pieces: toks.map((t) => (t.textContent ?? '').replace(/\u21b5\n/g, '\\n').replace(/\u2192/g, '\t')).join('|'),
            ids: toks.map((t) => t.dataset.ids).join(' '),
            newPieces: toks.filter((t) => t.classList.contains('new')).map((t) => t.textContent).join('|'),
            newIds: toks.filter((t) => t.classList.contains('new')).flatMap((t) => t.dataset.ids!.split(' ').map(Number)),
            allIds: toks.map((t) => t.dataset.ids!.split(' ').map(Number)),
            title: toks.find((t) => t.classList.contains('new'))?.title ?? '',
          };
        });
        return { rows, cols };
      });
      for (let i = 0; i < 2; i++) {
        const want = expected[lang][i];
        assert.deepEqual(got.rows[i], want.cells, `${lang} tokenizer ${i}: summary row`);
        assert.equal(got.cols[i].ids, want.ids, `${lang} tokenizer ${i}: ids`);
        assert.equal(got.cols[i].pieces, want.pieces, `${lang} tokenizer ${i}: pieces`);
        assert.equal(got.cols[i].newPieces, want.newPieces, `${lang} tokenizer ${i}: new pieces`);
      }
      // the extended tokenizer's new tokens are its ids >= the demo's 8192, and only those are marked
      const extCol = got.cols[1];
      for (const ids of extCol.allIds) assert.equal(ids.some((x) => x >= 8192), extCol.newIds.some((x) => ids.includes(x)), `${lang}: ids ${ids}`);
      if (lang === 'pt') {
        assert.ok(extCol.newIds.length > 0 && extCol.newIds.every((x) => x >= 8192), `${lang}: ${extCol.newIds}`);
        assert.match(extCol.title, /^ids? \d+[\s\S]*new: not in /, 'hover shows ids and why it is new');
      }
      assert.equal(got.cols[0].newIds.length, 0);
    }
    if (process.env.INSPECTOR_SCREENSHOT) await tab.screenshot({ path: process.env.INSPECTOR_SCREENSHOT, fullPage: true });
    assert.deepEqual(attempted, [], 'no request but the page itself');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('shared counting: hand-checked stats, byte tokens grouped into one character, new = absent from the first vocabulary', async () => {
  const json = await readTokenizerJson(path.join(DEMO, 'tokenizer.json'));
  const scheme = pieceSchemeOf(json);
  assert.deepEqual(scheme, { byteLevel: true, byteFallback: false, space: null });
  // 'ç' is two bytes: a byte-level token per byte groups into one piece
  const bytesOf = (t: string) => tokenBytes(t, scheme, CHAR_TO_BYTE, new Set());
  const groups = groupTokens([1, 2, 3], ['Ã', '§', 'Ġa'], bytesOf);
  assert.deepEqual(groups.map((g) => [g.text, g.ids]), [['ç', [1, 2]], [' a', [3]]]);
  assert.deepEqual(tokenBytes('<0xC3>', { byteLevel: false, byteFallback: true, space: '\u2581' }, CHAR_TO_BYTE, new Set()), [0xc3]);
  assert.deepEqual(tokenBytes('\u2581de', { byteLevel: false, byteFallback: true, space: '\u2581' }, CHAR_TO_BYTE, new Set()), [0x20, 0x64, 0x65]);
  // stats by hand: 'a água, b' = 3 words, 10 UTF-8 bytes (á is 2), 9 code points
  const s = inspectStats('a água, b', 4, 1, new RegExp(WORD.source, WORD.flags));
  assert.deepEqual([s.words, s.bytes, s.chars, s.tokensPerWord, s.bytesPerToken], [3, 10, 9, 4 / 3, 2.5]);
  assert.deepEqual(statCells(s, { ...s, tokens: 8 }), ['4', '1', '3', '1.333', '2.50', '2.25', '50.0%']);
  const vocab = vocabOf(json);
  assert.equal(vocab.size, 8192);
  assert.deepEqual(newTokenFlags(['Ġthe', 'Ġdeputados'], vocab), [false, !vocab.has('Ġdeputados')]);
  assert.deepEqual([...vocabOf({ model: { type: 'Unigram', vocab: [['▁a', -1], ['b', -2]] }, added_tokens: [{ id: 2, content: '<s>', special: true }] })], ['▁a', 'b', '<s>']);
});

test('inspect --serve on 127.0.0.1 serves the same page; --html refuses inputs and foreign files, overwrites its own', async () => {
  const json = await readTokenizerJson(path.join(DEMO, 'tokenizer.json'));
  const html = await inspectorPage([{ label: 'demo', json }], { text: 'olá' });
  // --serve: a real CLI process on a free port, stopped with SIGINT
  const child = spawn(process.execPath, [...CLI, 'inspect', '--model', DEMO, '--serve', '--port', '0', 'olá'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => { out += d; const m = /inspector: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out); if (m) resolve(m[1]); });
      child.once('exit', (c) => reject(new Error(`--serve exited (${c}) before listening`)));
    });
    const res = await fetch(url);
    assert.equal(res.status, 200);
    const served = await res.text();
    assert.match(served, /<meta name="generator" content="hack-tokenizer inspect">/);
    assert.ok(served.includes('>olá</textarea>') && served.includes('id="tokenizer-0"'));
    assert.equal((await fetch(url + 'elsewhere')).status, 404);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await new Promise((r) => child.once('exit', (c) => r(c))), 0, 'exits cleanly on Ctrl-C');

  const tokFile = path.join(ext, 'tokenizer.json');
  const before = await fsp.readFile(tokFile, 'utf8');
  await assert.rejects(writeInspectorPage(tokFile, html, [tokFile, ext]), /refusing to write the inspector page onto an input/);
  await assert.rejects(writeInspectorPage(path.join(ext, 'page.html'), html, [tokFile, ext]), /onto an input/);
  const foreign = path.join(dir, 'notes.html');
  await fsp.writeFile(foreign, '<html>my notes</html>');
  await assert.rejects(writeInspectorPage(foreign, html, [tokFile]), /exists and is not an inspector page/);
  assert.equal(await fsp.readFile(foreign, 'utf8'), '<html>my notes</html>');
  const own = path.join(dir, 'own.html');
  await writeInspectorPage(own, html, [tokFile]);
  await writeInspectorPage(own, html.replace('olá', 'adeus'), [tokFile]);
  assert.match(await fsp.readFile(own, 'utf8'), />adeus<\/textarea>/);
  const r = await cli(['inspect', '--model', ext, '--html', tokFile]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /tokenizer\.json: refusing to write the inspector page onto an input/);
  assert.equal(await fsp.readFile(tokFile, 'utf8'), before, 'the input is untouched');
  assert.deepEqual((await fsp.readdir(ext)).filter((f) => f.startsWith('.') && f !== '.hack-tokenizer-output.json'), [], 'no temp file left');
});
