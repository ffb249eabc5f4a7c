// The CLI as users run it (a child process of src/cli/run.ts, the source twin of bin/): --help on the
// program and every command, info/demo output, and errors that name the flag or file with exit code != 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildProgram, main } from '../src/cli/main.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO_DIR = path.join('assets', 'models', 'tiny-en-llama');
const execFileP = promisify(execFile);

interface Result { code: number; stdout: string; stderr: string }

async function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
      cwd: repoRoot, env: { ...process.env, ...env }, maxBuffer: 16 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Run main() in this process, capturing stdout/stderr (for the cheap --help sweep over every command). */
async function inProcess(args: string[]): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((s: string | Uint8Array) => { out.push(String(s)); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
  let code: number;
  try {
    await main(['node', 'hack-tokenizer', ...args]);
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    process.exitCode = saved;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const RESERVED = ['tokens', 'extend', 'tune', 'generate', 'eval', 'compare-init', 'experiment', 'inspect', 'demo'];

test('the program registers the reserved commands plus info and download', () => {
  const names = buildProgram().commands.map((c) => c.name());
  for (const n of [...RESERVED, 'info', 'download']) assert.ok(names.includes(n), `command ${n}`);
  assert.equal(new Set(names).size, names.length, 'no duplicate command names');
});

test('--help works (exit 0, usage on stdout) for every registered command', async () => {
  for (const name of buildProgram().commands.map((c) => c.name())) {
    const r = await inProcess([name, '--help']);
    assert.equal(r.code, 0, `${name} --help exit code (stderr: ${r.stderr})`);
    assert.match(r.stdout, new RegExp(`Usage: hack-tokenizer ${name}`), name);
  }
});

test('hack-tokenizer --help and --version in a child process', async () => {
  const help = await cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: hack-tokenizer/);
  for (const n of [...RESERVED, 'info', 'download']) assert.match(help.stdout, new RegExp(`\\n  ${n}\\b`), n);
  const info = await cli(['info', '--help']);
  assert.equal(info.code, 0);
  assert.match(info.stdout, /--model <dir\|hub id>\s+model directory or Hugging Face repo id \(required\)/);
  const v = await cli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('info --model prints architecture, parameters, vocabulary, tied; --json is machine-readable', async () => {
  const r = await cli(['info', '--model', DEMO_DIR]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /architecture\s+LlamaForCausalLM \(llama, config v5\)/);
  assert.match(r.stdout, /parameters\s+15,735,168 \(bfloat16, 1 file\)/);
  assert.match(r.stdout, /vocabulary\s+8,192 tokens, 8,192 embedding rows/);
  assert.match(r.stdout, /embeddings\s+tied/);
  assert.match(r.stdout, /tokenizer\s+BPE, pre-tokenizer ByteLevel/);
  const j = await cli(['info', '--model', DEMO_DIR, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const s = JSON.parse(j.stdout);
  assert.equal(s.architecture, 'LlamaForCausalLM');
  assert.equal(s.parameters, 15735168);
  assert.equal(s.tokenizer_size, 8192);
  assert.equal(s.tied, true);
  assert.equal(s.config_format, 'v5');
});

test('info on the v4 untied random-qwen2 fixture', async () => {
  const r = await cli(['info', '--model', path.resolve(repoRoot, '..', 'shared', 'fixtures', 'models', 'random-qwen2'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.deepEqual([s.architecture, s.config_format, s.tied, s.dtype], ['Qwen2ForCausalLM', 'v4', false, 'float16']);
});

test('demo on a small budget: adapt on the shipped model (summary, before/after table, tuned model, report); a changed setting reruns the cells and says why (no stale numbers under new labels)', async () => {
  // written to a temporary directory (not the checkout's runs/demo, which `npm run demo` would reuse)
  const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'demo-out-'));
  try {
    const small = ['demo', '--out', out, '--num-tokens', '150', '--budget', '0.1', '--max-bytes', '8000', '--boost-texts', '3', '--boost-runs', '1', '--threads', '1'];
    const r = await inProcess(small);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /tiny-en-llama/);
    assert.match(r.stdout, /embeddings\s+tied/);
    assert.match(r.stdout, /BASELINE[^\n]*\n[^\n]*INITIALIZED_NO_TRAINING[^\n]*\n[^\n]*INITIALIZED_WITH_TRAINING/);
    assert.match(r.stdout, /Demo subsets: the first 8000 bytes of each held-out file/);
    const tune = JSON.parse(await fsp.readFile(path.join(out, 'model', 'tune.json'), 'utf8'));
    assert.ok(tune.output.steps > 0 && tune.input.steps > 0);
    await fsp.access(path.join(out, 'report.html'));
    const again = await inProcess(small);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr + again.stdout, /0 cell\(s\) run, \d+ reused/);
    const changed = await inProcess([...small.slice(0, -8), '--max-bytes', '9000', '--boost-texts', '3', '--boost-runs', '1', '--threads', '1']);
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr + changed.stdout, /[1-9]\d* cell\(s\) run \([1-9]\d* rerun because maxBytes changed: [1-9]\d*\), 0 reused/);
  } finally {
    await fsp.rm(out, { recursive: true, force: true });
  }
});

test('bad flags and missing or broken model directories: exit code != 0 and a message naming the flag or file', async () => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cli-test-'));
  try {
    const cases: Array<[string[], RegExp]> = [
      [['info', '--model', DEMO_DIR, '--bogus'], /unknown option '--bogus'/],
      [['info'], /missing --model \(model directory or Hugging Face repo id\)/],
      [['info', '--model'], /option '--model <dir\|hub id>' argument missing/],
      [['info', '--model', path.join(tmp, 'missing-dir')], /--model .*missing-dir: no such directory/],
      [['info', '--model', './no/such/model'], /--model \.\/no\/such\/model: no such directory/],
      [['info', '--model', path.join(DEMO_DIR, 'config.json')], /config\.json: not a directory/],
      [['info', '--model', tmp], /missing config\.json/],
      [['demo', '--model', path.join(tmp, 'nothing')], /--model .*nothing: no such directory/],
      [['no-such-command'], /unknown command 'no-such-command'/],
      [['download'], /missing required argument 'repo-id'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli(args, { HF_HUB_OFFLINE: '1' });
      assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
    }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
});
