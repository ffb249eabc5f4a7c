// tokens / extend / inspect as users run them (child processes of src/cli/run.ts; the error sweep in-process), on a small
// gzip slice of the PT corpus: outputs, and errors that name the flag or file with exit code != 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readTokensFile } from '../src/tokenizer/tokens-file.ts';
import { encodeBatch, loadTokenizer } from '../src/tokenizer/load.ts';
import { runCli } from './support/cli.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join('assets', 'models', 'tiny-en-llama');
const execFileP = promisify(execFile);

interface Result { code: number; stdout: string; stderr: string }
async function cli(args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: repoRoot, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

let dir = '';
let corpus = '';
let lines: string[] = [];
test.before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ht-tok-cli-'));
  lines = gunzipSync(readFileSync(path.join(repoRoot, 'assets/corpora/pt-pt-parliament-train.txt.gz'))).toString('utf8').split('\n').filter(Boolean).slice(0, 800);
  corpus = path.join(dir, 'pt.txt.gz');
  await fsp.writeFile(corpus, gzipSync(lines.join('\n') + '\n'));
});
test.after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test('tokens --method continue writes tokens.json; extend --mode merges uses it; every new token appears on the corpus', async () => {
  const out = path.join(dir, 'cont.json');
  const r = await cli(['tokens', '--model', DEMO, '--corpus', corpus, '--num-tokens', '120', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reading corpus/);
  const list = await readTokensFile(out);
  assert.equal(list.method, 'continue');
  assert.equal(list.tokens.length, 120);
  assert.equal(JSON.parse(r.stdout).num_tokens, 120);
  for (const t of list.tokens) {
    assert.ok(t.merge && t.merge[0] + t.merge[1] === t.token);
    assert.ok(t.frequency >= 1 && t.originalIds.length >= 2);
  }
  const ext = path.join(dir, 'ext-merges');
  const e = await cli(['extend', '--model', DEMO, '--tokens', out, '--mode', 'merges', '--out', ext]);
  assert.equal(e.code, 0, e.stderr);
  const report = JSON.parse(e.stdout);
  assert.equal(report.added, 120);
  assert.equal(report.first_id, 8192);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'tokens.json', 'extend.json']) await fsp.access(path.join(ext, f));
  const tok = await loadTokenizer(path.join(ext, 'tokenizer.json'));
  assert.equal(tok.size, 8192 + 120);
  const used = new Set((await encodeBatch(tok, lines)).flat());
  for (let id = 8192; id < 8312; id++) assert.ok(used.has(id), `new id ${id} never produced`);
});

test('extend --corpus --method fresh --mode added learns and extends in one go; inspect shows both tokenizers', async () => {
  const ext = path.join(dir, 'ext-added');
  const e = await cli(['extend', '--tokenizer', path.join(DEMO, 'tokenizer.json'), '--corpus', corpus, '--num-tokens', '80', '--method', 'fresh', '--mode', 'added', '--out', ext]);
  assert.equal(e.code, 0, e.stderr);
  const report = JSON.parse(e.stdout);
  assert.equal(report.requested, 80);
  // exactly the requested count: candidates the byte-level decoder cannot take are replaced by the next ones
  assert.equal(report.added, 80);
  const json = JSON.parse(await fsp.readFile(path.join(ext, 'tokenizer.json'), 'utf8'));
  assert.equal(json.added_tokens.length, 3 + report.added);
  const config = JSON.parse(await fsp.readFile(path.join(ext, 'tokenizer_config.json'), 'utf8'));
  assert.equal(config.eos_token, '<|endoftext|>');

  const text = 'Os Srs. Deputados votaram a proposta de lei.';
  const i = await cli(['inspect', '--model', DEMO, '--compare', ext, '--ids', text]);
  assert.equal(i.code, 0, i.stderr);
  const blocks = i.stdout.split('\n');
  const views = blocks.filter((l) => l.includes('|') && !l.startsWith('new: '));
  assert.equal(views.length, 2);
  for (const v of views) assert.equal(v.split('|').join(''), text); // the pieces rebuild the text
  assert.ok(views[1].split('|').length < views[0].split('|').length, 'the extended tokenizer uses fewer tokens');
  // the added tokens are new (absent from the demo's vocabulary), listed under the extended tokenizer only
  const fresh = blocks.filter((l) => l.startsWith('new: '));
  assert.equal(fresh.length, 1);
  for (const p of fresh[0].slice(5).split('|')) assert.ok(views[1].split('|').includes(p), p);
  assert.match(i.stdout, new RegExp(`${ext.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ tokens, [1-9]\\d* new\\)`));
  assert.match(i.stdout, /ids: \d+/);
  assert.match(i.stdout, /tokens\s+new\s+words\s+tokens\/word\s+bytes\/token\s+chars\/token\s+vs first/);
});

test('errors name the flag or file and exit non-zero, leaving no output behind', async () => {
  const out = path.join(dir, 'never.json');
  const cases: Array<[string[], RegExp]> = [
    [['tokens', '--model', DEMO, '--corpus', corpus, '--out', out], /--num-tokens/],
    [['tokens', '--model', DEMO, '--corpus', path.join(dir, 'missing.txt'), '--num-tokens', '5', '--out', out], /missing\.txt: file not found/],
    [['tokens', '--model', DEMO, '--corpus', corpus, '--num-tokens', '5', '--method', 'magic', '--out', out], /--method magic: expected one of continue, fresh/],
    [['tokens', '--corpus', corpus, '--num-tokens', '5', '--out', out], /--model .* or --tokenizer/],
    [['extend', '--model', DEMO, '--tokens', path.join(dir, 'nope.json'), '--out', path.join(dir, 'x')], /missing --mode/],
    [['extend', '--model', DEMO, '--tokens', path.join(dir, 'nope.json'), '--mode', 'merges', '--out', path.join(dir, 'x')], /nope\.json: tokens file not found/],
    [['inspect', 'hello'], /--model/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args, { cwd: repoRoot });
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
  }
  await assert.rejects(fsp.access(out));
  await assert.rejects(fsp.access(path.join(dir, 'x')));
});
