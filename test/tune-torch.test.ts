// The PyTorch engine's launcher: a missing interpreter fails before any work and names the setup
// command; a bad job is refused with the flag it is about; a tiny end-to-end run streams progress and
// writes a model directory that our ONNX Runtime engine loads, with logits equal to transformers'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { HackError } from '../src/io/errors.ts';
import { OUTPUT_MARKER } from '../src/io/output.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { checkPython, findPython, repoRoot, runTorchTune, type TorchStep } from '../src/tune/torch-engine.ts';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';
import { transformersLogits } from './support/python.ts';
import { runCli } from './support/cli.ts';

async function fixture(): Promise<{ root: string; model: string; corpus: string }> {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-torch-'));
  const model = await writeTestModel(path.join(root, 'model'), { arch: 'llama', hidden: 32, merges: 60, layers: 2, seed: 5 });
  const corpus = path.join(root, 'corpus.txt');
  await fsp.writeFile(corpus, SAMPLE_TEXT.repeat(20).replace(/\. /g, '.\n'));
  return { root, model, corpus };
}

test('a missing interpreter is an error before any work, naming npm run setup:python', async () => {
  const { root, model, corpus } = await fixture();
  try {
    const choice = findPython({ HACK_TOKENIZER_PYTHON: '/nonexistent/python' });
    assert.equal(choice.source, 'HACK_TOKENIZER_PYTHON');
    assert.throws(() => checkPython(choice), (e: unknown) => e instanceof HackError && e.code === 'PYTHON_MISSING' &&
      /HACK_TOKENIZER_PYTHON=\/nonexistent\/python: not found/.test(e.message) && /npm run setup:python/.test(e.message));
    const out = path.join(root, 'out');
    await assert.rejects(runTorchTune({ model, corpus: [corpus], out, workDir: path.join(root, 'work'), recipe: 'full', lr: 1e-3, batchSize: 2, seqLen: 16, seed: 0, device: 'cpu', resume: false },
      {}, { python: choice }), (e: unknown) => e instanceof HackError && e.code === 'PYTHON_MISSING');
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(path.join(root, 'work')), false);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('a bad job is refused by the engine with the option it is about, nothing written', async () => {
  const { root, model, corpus } = await fixture();
  try {
    const out = path.join(root, 'out');
    await assert.rejects(runTorchTune({ model, corpus: [corpus], out, workDir: path.join(root, 'work'), recipe: 'rows', lr: 1e-3, batchSize: 2, seqLen: 16, seed: 0, device: 'cpu', resume: false }),
      (e: unknown) => e instanceof HackError && e.option === 'original' && /rows/.test(e.message));
    assert.equal(existsSync(out), false);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('end to end: full recipe streams progress, writes a model our engine loads with transformers\' logits', async () => {
  const { root, model, corpus } = await fixture();
  try {
    const out = path.join(root, 'out');
    const ticks: TorchStep[] = [];
    const phases: string[] = [];
    const s = await runTorchTune({
      model, corpus: [corpus], out, workDir: path.join(root, 'work'), recipe: 'full', lr: 3e-3, batchSize: 2, seqLen: 32, maxSteps: 6, seed: 0,
      threads: 1, device: 'cpu', resume: false, schedule: 'constant',
    }, { onPhase: (p) => phases.push(p), onTick: (_d, t) => ticks.push(t) });
    assert.deepEqual(ticks.map((t) => t.step), [1, 2, 3, 4, 5, 6]);
    assert.ok(ticks.every((t) => t.total === 6 && Number.isFinite(t.loss) && t.tokensPerS > 0));
    assert.deepEqual(phases, ['training (torch)']);
    assert.ok(s.lastLoss! < s.firstLoss!, `loss ${s.firstLoss} -> ${s.lastLoss}`);
    assert.ok(existsSync(path.join(out, OUTPUT_MARKER)) && existsSync(path.join(out, 'tokenizer.json')) && existsSync(path.join(out, 'tune.json')));
    // our engine and transformers agree on the trained model
    const ids = [3, 17, 40, 8, 25, 11];
    const engine = await loadEngine(out, { threads: 1 });
    let ours: Float32Array;
    try { ours = await engine.logits(ids); } finally { await engine.dispose(); }
    const ref = transformersLogits(findPython().python, out, ids);
    assert.equal(ours.length, ref.length);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ref[i]));
    assert.ok(maxDiff < 1e-4, `max |logit difference| ${maxDiff}`);
    // the output is ours: a second run into it is refused without --force
    await assert.rejects(runTorchTune({ model, corpus: [corpus], out, workDir: path.join(root, 'work'), recipe: 'full', lr: 1e-3, batchSize: 2, seqLen: 32, maxSteps: 1, seed: 0, device: 'cpu', resume: false }),
      (e: unknown) => e instanceof HackError && e.code === 'OUT_EXISTS');
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('the repository root holds the engine and its pinned requirements', async () => {
  const req = await fsp.readFile(path.join(repoRoot(), 'python', 'requirements.txt'), 'utf8');
  for (const [k, v] of Object.entries({ torch: '2.13.0', transformers: '5.17.0', accelerate: '1.15.0', peft: '0.21.0', safetensors: '0.8.0' })) {
    assert.match(req, new RegExp(`^${k}==${v.replace(/\./g, '\\.')}$`, 'm'));
  }
});

function cliChild(args: string[]): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
}

function finished(c: ReturnType<typeof spawn>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (d) => { stdout += String(d); });
  c.stderr!.on('data', (d) => { stderr += String(d); });
  return new Promise((resolve) => c.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('CLI: flags of the other engine are refused by name; SIGINT checkpoints (exit 130) and --resume finishes the run', async () => {
  const { root, model, corpus } = await fixture();
  try {
    const out = path.join(root, 'out');
    const base = ['tune', '--engine', 'torch', '--recipe', 'full', '--model', model, '--corpus', corpus, '--out', out, '--threads', '1'];
    let r = await finished(cliChild([...base, '--rows', 'input']));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--rows: applies to --engine ts only/);
    r = await finished(cliChild(['tune', '--model', model, '--original', model, '--corpus', corpus, '--out', out, '--recipe', 'lora']));
    assert.match(r.stderr, /--recipe: applies to --engine torch only/);
    // a long run, interrupted once its first step is reported
    const long = [...base, '--batch-size', '2', '--seq-len', '32', '--max-steps', '150', '--epochs', '100', '--schedule', 'constant', '--lr', '1e-3'];
    const c = cliChild(long);
    let seen = '';
    c.stderr!.on('data', (d) => { seen += String(d); });
    const done = finished(c);
    const work = `${out}.work`;
    // the first step event opens the progress bar: the engine is stepping
    for (let i = 0; i < 1200 && !seen.includes('training (torch)'); i++) await new Promise((res) => setTimeout(res, 50));
    c.kill('SIGINT');
    r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted at step \d+; the checkpoint is in .*--resume/);
    assert.equal(existsSync(out), false);
    assert.ok(existsSync(path.join(work, 'checkpoint.pt')));
    r = await finished(cliChild([...long, '--resume']));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resumed from .* at step \d+\/150/);
    assert.equal(JSON.parse(await fsp.readFile(path.join(out, 'tune.json'), 'utf8')).steps, 150);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('held-out bits/byte along the run: the points the CLI shows equal `eval` on the models before and after', async () => {
  const { root, model, corpus } = await fixture();
  try {
    const pt = path.join(root, 'pt.txt'), en = path.join(root, 'en.txt');
    await fsp.writeFile(pt, SAMPLE_TEXT.repeat(6).replace(/\. /g, '.\n'));
    await fsp.writeFile(en, 'The committee met on Tuesday and agreed on the budget.\n'.repeat(30));
    const out = path.join(root, 'out');
    // a step is 2 x 32 = 64 tokens: points at 0, 128, 256 and the end (320)
    const r = await runCli(['tune', '--engine', 'torch', '--recipe', 'full', '--model', model, '--corpus', corpus, '--out', out, '--threads', '1',
      '--batch-size', '2', '--seq-len', '32', '--max-steps', '5', '--lr', '3e-3', '--schedule', 'constant', '--save-dtype', 'float32',
      '--eval-pt', pt, '--eval-en', en, '--eval-max-bytes', '1500', '--eval-every', '128']);
    assert.equal(r.code, 0, r.stderr);
    const shown = [...r.stderr.matchAll(/held-out at (\d+) tokens .*: pt (\d\.\d{4}), en (\d\.\d{4}) bits\/byte/g)].map((m) => [Number(m[1]), m[2], m[3]]);
    assert.deepEqual(shown.map((s) => s[0]), [0, 128, 256, 320], r.stderr);
    const evals = JSON.parse(await fsp.readFile(path.join(out, 'tune.json'), 'utf8')).evals as Array<{ tokens: number; bpb: Record<string, number> }>;
    assert.deepEqual(evals.map((e) => e.tokens), [0, 128, 256, 320]);
    // `eval` (ONNX Runtime, float32) on the input model and on the float32 output: the first and last points
    for (const [dir, point] of [[model, evals[0]], [out, evals[3]]] as const) {
      const res = path.join(root, `bpb-${point.tokens}.json`);
      const e = await runCli(['eval', '--model', dir, '--metrics', 'bpb', '--pt', pt, '--en', en, '--max-bytes', '1500', '--threads', '1', '--out', res]);
      assert.equal(e.code, 0, e.stderr);
      const m = JSON.parse(await fsp.readFile(res, 'utf8')).metrics.bpb as Record<string, number>;
      for (const k of ['pt', 'en']) assert.ok(Math.abs(m[k] - point.bpb[k]) < 1e-5, `${dir} ${k}: eval ${m[k]} vs in-training ${point.bpb[k]}`);
    }
    assert.ok(evals[3].bpb.pt < evals[0].bpb.pt, JSON.stringify(evals));
    // asking for points without a text is refused before any work
    const r2 = await runCli(['tune', '--engine', 'torch', '--recipe', 'full', '--model', model, '--corpus', corpus, '--out', path.join(root, 'o2'), '--eval-every', '100']);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /--eval-every: held-out measurements asked for, but no held-out text is given/);
    assert.equal(existsSync(path.join(root, 'o2')), false);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
