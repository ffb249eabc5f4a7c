// `tune --engine torch --accelerate-config <file>`: the config is checked before any work (a missing, broken or
// sharded one is refused naming --accelerate-config), and a run in two CPU processes under `accelerate launch`
// reports progress once, checkpoints on SIGINT (exit 130) and resumes to the end.
// Equivalence with one process (final weights, old rows under `rows`) is python/tests/test_accelerate.py's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { HackError } from '../src/io/errors.ts';
import { checkAccelerateConfig, childArgs, repoRoot } from '../src/tune/torch-engine.ts';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';

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

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

test('--accelerate-config is checked before any work: missing, not YAML, not accelerate\'s, sharded', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-accel-'));
  try {
    const f = (name: string, text: string) => { const p = path.join(root, name); return fsp.writeFile(p, text).then(() => p); };
    const bad: Array<[string, RegExp, string]> = [
      [path.join(root, 'none.yaml'), /file not found/, 'NO_SUCH_FILE'],
      [await f('broken.yaml', 'a: [1, 2\n'), /not valid YAML/, 'BAD_OPTION'],
      [await f('other.yaml', 'stages:\n  - recipe: rows\n'), /not an accelerate config \(no `distributed_type`/, 'BAD_OPTION'],
      [await f('typo.yaml', 'distributed_type: MULTI_GPUS\n'), /distributed_type MULTI_GPUS is not one of accelerate's/, 'BAD_OPTION'],
      [await f('ds.yaml', 'distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\n'), /DEEPSPEED is not supported: .*DeepSpeed ZeRO-3 shards/, 'UNSUPPORTED_DISTRIBUTED'],
      [await f('fsdp.yaml', 'distributed_type: FSDP\nfsdp_config: {}\n'), /FSDP is not supported: .*rows recipe's gradient mask/, 'UNSUPPORTED_DISTRIBUTED'],
    ];
    for (const [file, msg, code] of bad) {
      await assert.rejects(checkAccelerateConfig(file), (e: unknown) => e instanceof HackError && e.code === code && e.option === 'accelerateConfig' && msg.test(e.message), file);
    }
    const ok = await checkAccelerateConfig(await f('ddp.yaml', 'compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: 4\n'));
    assert.deepEqual([ok.distributedType, ok.numProcesses], ['MULTI_GPU', 4]);
    assert.deepEqual(childArgs('/w/job.json', ok), ['-m', 'accelerate.commands.launch', '--config_file', ok.file, '-m', 'hack_tokenizer_train', '/w/job.json']);
    assert.deepEqual(childArgs('/w/job.json'), ['-m', 'hack_tokenizer_train', '/w/job.json']);
    // the CLI names the flag, and writes nothing
    const out = path.join(root, 'out');
    const r = await finished(cliChild(['tune', '--engine', 'torch', '--recipe', 'full', '--model', root, '--corpus', path.join(root, 'ds.yaml'), '--out', out, '--accelerate-config', path.join(root, 'fsdp.yaml')]));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--accelerate-config.*fsdp\.yaml.*FSDP is not supported/);
    assert.equal(existsSync(out), false);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('CLI: two CPU processes under accelerate launch: progress once, SIGINT checkpoints (exit 130), --resume finishes', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-accel-'));
  try {
    const model = await writeTestModel(path.join(root, 'model'), { arch: 'llama', hidden: 32, merges: 60, layers: 2, seed: 5 });
    const corpus = path.join(root, 'corpus.txt');
    await fsp.writeFile(corpus, SAMPLE_TEXT.repeat(20).replace(/\. /g, '.\n'));
    // accelerate 1.15 starts several local processes through torchrun (MULTI_GPU); --device cpu makes them gloo CPU processes
    const cfg = path.join(root, 'acc.yaml');
    await fsp.writeFile(cfg, `compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: 2\nnum_machines: 1\nmachine_rank: 0\nmain_process_port: ${await freePort()}\nmixed_precision: 'no'\n`);
    const out = path.join(root, 'out');
    const long = ['tune', '--engine', 'torch', '--recipe', 'full', '--model', model, '--corpus', corpus, '--out', out, '--threads', '1', '--device', 'cpu',
      '--accelerate-config', cfg, '--batch-size', '1', '--seq-len', '32', '--max-steps', '120', '--epochs', '100', '--schedule', 'constant', '--lr', '1e-3'];
    const c = cliChild(long);
    let seen = '';
    c.stderr!.on('data', (d) => { seen += String(d); });
    const done = finished(c);
    for (let i = 0; i < 2400 && !seen.includes('training (torch)'); i++) await new Promise((res) => setTimeout(res, 50));
    c.kill('SIGINT');
    let r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted at step \d+; the checkpoint is in .*--resume/);
    assert.equal(existsSync(out), false);
    assert.ok(existsSync(path.join(`${out}.work`, 'checkpoint.pt')));
    r = await finished(cliChild([...long, '--resume']));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resumed from .* at step \d+\/120/);
    assert.match(r.stderr, /2 processes \(MULTI_CPU\)/);
    // rank 0 alone reports: one "resumed" line, not one per process
    assert.equal(r.stderr.match(/resumed from/g)?.length, 1);
    const tune = JSON.parse(await fsp.readFile(path.join(out, 'tune.json'), 'utf8'));
    assert.deepEqual([tune.steps, tune.processes, tune.tokens], [120, 2, 120 * 2 * 32]);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
