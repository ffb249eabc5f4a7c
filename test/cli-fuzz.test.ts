// The CLI fuzzed: every command × bad flag values, missing flags, missing/corrupt/foreign/unwritable
// inputs and outputs that collide with inputs. Every case must fail cleanly: exit code != 0, one
// message that names the flag or file, no stack trace, no raw errno code, no temp path left, no input
// changed, no hang. Commands run in-process (test/support/cli.ts), one at a time.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../src/cli/main.ts';
import { flagOf, specsOf, type OptionSpec } from '../src/cli/options.ts';
import { runCli } from './support/cli.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const CASE_TIMEOUT_MS = 30_000;

interface Case { name: string; args: string[]; hint: string[] }

/** Every file under a directory with its size and mtime (cheap, per case) or its content hash (at the end). */
async function snapshot(dir: string, hash: boolean): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await fsp.stat(p);
        out.set(p, hash ? createHash('sha256').update(await fsp.readFile(p)).digest('hex') : `${st.size}:${st.mtimeMs}`);
      }
    }
  };
  await walk(dir);
  return out;
}

async function tempLeftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string) => {
    let entries;
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (/\.tmp|tmp-\d/.test(e.name)) found.push(path.join(d, e.name));
      if (e.isDirectory()) await walk(path.join(d, e.name));
    }
  };
  await walk(dir);
  return found;
}

/** A valid-looking invocation per command: each case breaks one thing of it. */
function templates(f: Record<string, string>): Record<string, Array<[string, string]>> {
  return {
    tokens: [['--model', DEMO], ['--corpus', f.corpus], ['--num-tokens', '5'], ['--out', path.join(f.out, 'tokens.json')]],
    extend: [['--model', DEMO], ['--corpus', f.corpus], ['--num-tokens', '5'], ['--mode', 'merges'], ['--out', path.join(f.out, 'ext')]],
    tune: [['--model', f.extended], ['--original', DEMO], ['--corpus', f.corpus], ['--out', path.join(f.out, 'tuned')]],
    generate: [['--model', DEMO], ['--prompt', 'Olá'], ['--max-new-tokens', '2']],
    eval: [['--model', DEMO], ['--metrics', 'fertility'], ['--pt', f.corpus], ['--en', f.corpus], ['--out', path.join(f.out, 'r.json')]],
    'compare-init': [['--model', DEMO], ['--corpus', f.corpus], ['--methods', 'mean'], ['--num-tokens', '5'], ['--out', path.join(f.out, 'ci')]],
    experiment: [['--config', f.config], ['--out', path.join(f.out, 'exp')]],
    demo: [['--model', DEMO], ['--out', path.join(f.out, 'demo')]],
    'export-onnx': [['--model', DEMO], ['--out', path.join(f.out, 'onnx')]],
    info: [['--model', DEMO]],
    inspect: [['--model', DEMO]],
    adapt: [['--model', DEMO], ['--corpus', f.corpus], ['--pt', f.corpus], ['--num-tokens', '5'], ['--out', path.join(f.out, 'adapt')]],
    replace: [['--model', DEMO], ['--tokenizer', path.join(DEMO, 'tokenizer.json')], ['--corpus', f.corpus], ['--out', path.join(f.out, 'replaced')]],
    'export-gguf': [['--model', DEMO], ['--out', path.join(f.out, 'm.gguf')]],
  };
}

function flatten(t: Array<[string, string]>, positional: string[] = []): string[] {
  return [...t.flat(), ...positional];
}

function replaceFlag(t: Array<[string, string]>, flag: string, value: string): Array<[string, string]> {
  return t.some(([k]) => k === flag) ? t.map(([k, v]) => [k, k === flag ? value : v]) : [...t, [flag, value]];
}

function badNumbers(s: OptionSpec): string[] {
  const vals = ['abc', '', '1e999'];
  const lower = s.above ?? s.min;
  if (lower !== undefined && lower >= 0) vals.push('-1');
  if (s.kind === 'int' || s.intList) vals.push('1.5');
  return vals;
}

function cases(f: Record<string, string>): Case[] {
  const out: Case[] = [];
  const program = buildProgram();
  for (const [cmd, t] of Object.entries(templates(f))) {
    const positional = cmd === 'inspect' ? ['Olá mundo'] : [];
    const specs = specsOf(program.commands.find((c) => c.name() === cmd)!);
    const add = (name: string, tt: Array<[string, string]>, hint: string[]) => out.push({ name: `${cmd}: ${name}`, args: [cmd, ...flatten(tt, positional)], hint });
    // bad values of every numeric and choice flag
    for (const s of specs) {
      const flag = flagOf(s);
      if (s.kind === 'int' || s.kind === 'number' || s.kind === 'size') for (const v of badNumbers(s)) add(`${flag} ${JSON.stringify(v)}`, replaceFlag(t, flag, v), [flag]);
      if (s.kind === 'choice') add(`${flag} bogus`, replaceFlag(t, flag, 'bogus-choice'), [flag]);
      if (s.kind === 'list' && s.intList) add(`${flag} 1,x`, replaceFlag(t, flag, '1,x'), [flag]);
    }
    // each required flag left out
    for (const [k] of t) {
      const spec = specs.find((s) => flagOf(s) === k);
      if (spec && !spec.required) continue;
      if (cmd === 'demo' || (cmd === 'inspect' && k === '--model')) continue; // demo's flags have defaults; inspect takes --tokenizer instead
      if (!spec && specs.length > 0) continue;
      add(`without ${k}`, t.filter(([kk]) => kk !== k), [k]);
    }
    add('unknown flag', [...t, ['--bogus-flag', '1']], ['--bogus-flag']);
    // bad models
    // (tokens, inspect and extend without --init read only the model's tokenizer.json: broken weights or config do not concern them)
    const tokenizerOnly = cmd === 'tokens' || cmd === 'inspect' || cmd === 'extend';
    const models: Array<[string, string]> = [['missing model', f.missing], ['empty model dir', f.emptyDir], ['model is a file', f.corpus]];
    if (!tokenizerOnly) models.push(['corrupt config', f.badConfig], ['truncated weights', f.badWeights]);
    for (const [label, m] of models) {
      if (!t.some(([k]) => k === '--model')) continue;
      add(label, replaceFlag(t, '--model', m), ['--model', m]);
      if (cmd === 'tune') add(`--original ${label}`, replaceFlag(t, '--original', m), ['--original', m]);
    }
    if (cmd === 'extend') {
      for (const [label, m] of [['corrupt config', f.badConfig], ['truncated weights', f.badWeights]] as const) {
        add(`--init mean, ${label}`, replaceFlag(replaceFlag(t, '--model', m), '--init', 'mean'), ['--model', m]);
      }
      add('--init bogus', replaceFlag(t, '--init', 'bogus(1)'), ['--init']);
    }
    // bad text inputs
    for (const flag of ['--corpus', '--pt']) {
      if (!t.some(([k]) => k === flag)) continue;
      for (const [label, file] of [['missing', f.missing], ['binary (NUL bytes)', f.binary], ['latin-1', f.latin1], ['a directory', f.emptyDir]] as const) {
        add(`${flag} ${label}`, replaceFlag(t, flag, file), [flag, file]);
      }
    }
    // outputs that collide with inputs or cannot be written
    if (t.some(([k]) => k === '--out')) {
      const outs: Array<[string, string]> = [
        ['--out = the model', DEMO], ['--out inside the model', path.join(DEMO, 'sub')], ['--out a foreign non-empty dir', f.foreign],
        ['--out under /proc', '/proc/hack-tokenizer-fuzz/x'], ['--out under a regular file', path.join(f.corpus, 'x')],
        ['--out = the corpus', f.corpus],
      ];
      for (const [label, o] of outs) add(label, replaceFlag(t, '--out', o), ['--out', o]);
    }
  }
  // inputs specific to one command
  const ext = templates(f).extend.filter(([k]) => k !== '--corpus' && k !== '--num-tokens');
  for (const [label, file] of [['missing', f.missing], ['corrupt JSON', f.badJson], ['foreign tokens.json', f.foreignTokens]] as const) {
    out.push({ name: `extend: --tokens ${label}`, args: ['extend', ...flatten([...ext, ['--tokens', file]])], hint: ['--tokens', file] });
  }
  for (const [label, file] of [['missing', f.missing], ['invalid YAML', f.badYaml], ['unknown key', f.unknownKeyConfig]] as const) {
    out.push({ name: `experiment: --config ${label}`, args: ['experiment', '--config', file, '--out', path.join(f.out, 'exp')], hint: ['--config', file] });
  }
  return out;
}

test('CLI fuzz: >= 300 bad invocations fail cleanly (message names the flag or file, no stack, no errno, nothing changed or left behind)', { timeout: 15 * 60_000 }, async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'cli-fuzz-'));
  const prevOffline = process.env.HF_HUB_OFFLINE;
  process.env.HF_HUB_OFFLINE = '1';
  try {
    const inputs = path.join(root, 'inputs');
    await fsp.mkdir(inputs);
    const f: Record<string, string> = {
      corpus: path.join(inputs, 'corpus.txt'), binary: path.join(inputs, 'binary.bin'), latin1: path.join(inputs, 'latin1.txt'),
      missing: path.join(inputs, 'does-not-exist'), emptyDir: path.join(inputs, 'empty'), badConfig: path.join(inputs, 'bad-config'),
      badWeights: path.join(inputs, 'bad-weights'), foreign: path.join(inputs, 'foreign'), badJson: path.join(inputs, 'bad.json'),
      foreignTokens: path.join(inputs, 'foreign-tokens.json'), config: path.join(inputs, 'grid.yaml'), badYaml: path.join(inputs, 'bad.yaml'),
      unknownKeyConfig: path.join(inputs, 'unknown.yaml'), out: path.join(root, 'out'), extended: path.join(inputs, 'extended'),
    };
    await fsp.writeFile(f.corpus, 'O Parlamento aprovou a proposta de lei.\nAs deputadas votaram a favor da resolução.\n'.repeat(20));
    await fsp.writeFile(f.binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 1, 2, 3, 0, 0]));
    await fsp.writeFile(f.latin1, Buffer.from('resolu\xe7\xe3o da Assembleia\n', 'latin1'));
    await fsp.mkdir(f.emptyDir);
    await fsp.mkdir(f.badConfig);
    await fsp.writeFile(path.join(f.badConfig, 'config.json'), '{"model_type": "llama", ');
    await fsp.copyFile(path.join(DEMO, 'tokenizer.json'), path.join(f.badConfig, 'tokenizer.json'));
    await fsp.mkdir(f.badWeights);
    await fsp.copyFile(path.join(DEMO, 'config.json'), path.join(f.badWeights, 'config.json'));
    await fsp.copyFile(path.join(DEMO, 'tokenizer.json'), path.join(f.badWeights, 'tokenizer.json'));
    await fsp.writeFile(path.join(f.badWeights, 'model.safetensors'), Buffer.concat([Buffer.from([200, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"model.embed_tokens.weight": {"dtype": "BF16", "shape": [8192, 384], "data_offsets": [0, 6291456]}}'.padEnd(200))]));
    await fsp.mkdir(f.foreign);
    await fsp.writeFile(path.join(f.foreign, 'notes.txt'), 'my notes\n');
    await fsp.writeFile(f.badJson, '{"tokens": [');
    await fsp.writeFile(f.foreignTokens, JSON.stringify({ version: 1, tokenizer_fingerprint: 'sha256:' + '0'.repeat(64), tokens: [{ token: 'abc', text: 'abc', count: 3 }] }));
    await fsp.writeFile(f.config, `models: [${JSON.stringify(DEMO)}]\ncorpus: [${JSON.stringify(f.corpus)}]\nnumTokens: [5]\npt: ${JSON.stringify(f.corpus)}\nen: ${JSON.stringify(f.corpus)}\nmetrics: [fertility]\n`);
    await fsp.writeFile(f.badYaml, 'models: [a, b\n  : :');
    await fsp.writeFile(f.unknownKeyConfig, `models: [${JSON.stringify(DEMO)}]\nbogusKey: 1\n`);
    // an extended model (a valid tune input, so tune's cases fail on what they break)
    const ext = await runCli(['extend', '--model', DEMO, '--corpus', f.corpus, '--num-tokens', '5', '--mode', 'merges', '--init', 'mean', '--out', f.extended]);
    assert.equal(ext.code, 0, ext.stderr);
    const all = cases(f);
    assert.ok(all.length >= 300, `${all.length} cases`);
    const demoBefore = await snapshot(DEMO, true);
    const inputsBefore = await snapshot(inputs, true);
    const failures: string[] = [];
    const t0 = performance.now();
    for (const c of all) {
      const before = new Map([...await snapshot(inputs, false), ...await snapshot(DEMO, false)]);
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        runCli(c.args),
        new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), CASE_TIMEOUT_MS); }),
      ]);
      clearTimeout(timer);
      if (r === null) {
        failures.push(`${c.name}: no answer in ${CASE_TIMEOUT_MS / 1000} s`);
        break; // a hung command keeps running in this process: stop here
      }
      const msg = r.stderr.trim().split('\n').filter((l) => l.startsWith('hack-tokenizer:') || l.startsWith('error:')).join('\n');
      const problems: string[] = [];
      if (r.code === 0) problems.push('exit code 0');
      if (msg === '') problems.push('no error message');
      if (!c.hint.some((h) => r.stderr.includes(h))) problems.push(`message names none of ${c.hint.join(', ')}`);
      if (/\n\s+at .+:\d+:\d+/.test(r.stderr) || r.stderr.includes('UNCAUGHT')) problems.push('stack trace');
      if (/\bE(NOENT|ACCES|PERM|ISDIR|NOTDIR|ROFS|EXIST|NOTEMPTY)\b/.test(r.stderr)) problems.push('raw errno code');
      if (/\x1b\[/.test(r.stderr.replace(/\x1b\[[0-9;]*[A-Za-z]/g, (m) => (m === '\x1b[0m' ? '' : m))) && /Gather|onnxruntime/i.test(r.stderr)) problems.push('engine error');
      const after = new Map([...await snapshot(inputs, false), ...await snapshot(DEMO, false)]);
      const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
      if (changed.length) problems.push(`inputs changed: ${changed.join(', ')}`);
      await fsp.rm(path.join(DEMO, 'sub'), { recursive: true, force: true });
      const left = [...await tempLeftovers(root), ...await tempLeftovers(DEMO)];
      if (left.length) problems.push(`temp paths left: ${left.join(', ')}`);
      if (problems.length) failures.push(`${c.name} [${c.args.join(' ')}]: ${problems.join('; ')}\n    stderr: ${r.stderr.trim().slice(0, 300)}`);
      await fsp.rm(f.out, { recursive: true, force: true });
    }
    const seconds = (performance.now() - t0) / 1000;
    process.stderr.write(`cli fuzz: ${all.length} cases in ${seconds.toFixed(1)} s\n`);
    assert.deepEqual(failures, [], `${failures.length} of ${all.length} cases failed:\n${failures.join('\n')}`);
    assert.deepEqual(await snapshot(DEMO, true), demoBefore, 'the demo model is unchanged');
    assert.deepEqual(await snapshot(inputs, true), inputsBefore, 'the inputs are unchanged');
  } finally {
    if (prevOffline === undefined) delete process.env.HF_HUB_OFFLINE;
    else process.env.HF_HUB_OFFLINE = prevOffline;
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('SIGINT at several points of extend --init and tune: exit 130 (or done), no temp path left, the output complete or absent', { timeout: 10 * 60_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'cli-sigint-'));
  try {
    const corpus = path.join(root, 'corpus.txt');
    await fsp.writeFile(corpus, 'O Parlamento aprovou a proposta de lei.\nAs deputadas votaram a favor da resolução.\nA Assembleia da República reuniu-se em sessão plenária.\n'.repeat(400));
    // SIGINT `afterMs` after the child's first line on stderr (its handlers are installed before it prints)
    const runTo = (args: string[], afterMs: number) => new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src', 'cli', 'run.ts'), ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let timer: NodeJS.Timeout | undefined;
      child.stderr.on('data', (d) => {
        stderr += d;
        timer ??= setTimeout(() => child.kill('SIGINT'), afterMs);
      });
      child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stderr }); });
    });
    const ext = path.join(root, 'ext');
    const first = await runTo(['extend', '--model', DEMO, '--corpus', corpus, '--num-tokens', '20', '--mode', 'merges', '--init', 'mean', '--out', ext], 600_000);
    assert.equal(first.code, 0, first.stderr);
    const runs: Array<[string, string[]]> = [
      ['extend', ['extend', '--model', DEMO, '--corpus', corpus, '--num-tokens', '20', '--mode', 'merges', '--init', 'mean', '--out', path.join(root, 'ext2')]],
      ['tune', ['tune', '--model', ext, '--original', DEMO, '--corpus', corpus, '--rows', 'both', '--seq-len', '32', '--input-seq-len', '32', '--batch-size', '64', '--threads', '1', '--out', path.join(root, 'tuned')]],
    ];
    for (const [name, args] of runs) {
      for (const ms of [0, 1500, 4000]) {
        const out = args[args.length - 1];
        const r = await runTo(args, ms);
        assert.ok(r.code === 130 || r.code === 0, `${name} after ${ms} ms: exit ${r.code} ${r.signal ?? ''}\n${r.stderr.slice(-500)}`);
        if (r.code === 130) assert.match(r.stderr, /interrupted \(SIGINT\); temporary files removed/);
        const left = (await tempLeftovers(root)).filter((p) => !p.includes(`${path.sep}tuned.work${path.sep}`) || /\.tmp/.test(path.basename(p)));
        assert.deepEqual(left, [], `${name} after ${ms} ms: temp paths left`);
        const present = await fsp.stat(out).then(() => true, () => false);
        if (present) await fsp.access(path.join(out, '.hack-tokenizer-output.json')); // complete, or absent
        assert.equal(present, r.code === 0, `${name} after ${ms} ms: output ${present ? 'present' : 'absent'} with exit ${r.code}`);
        await fsp.rm(out, { recursive: true, force: true });
      }
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
