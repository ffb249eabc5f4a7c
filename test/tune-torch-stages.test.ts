// `tune --engine torch --stages <file>`: a recipe of stages checked key by key before any work (a typo in
// stage 2 is an error naming the file and the key, nothing written), run end to end on the demo model
// (stage 1 embeddings, stage 2 full with replay and gradient accumulation) with tune.json recording each
// stage; `replay: self` sampled by our own generation loop and handed to the engine as a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { HackError } from '../src/io/errors.ts';
import { parseStageRecipe } from '../src/tune/stages.ts';
import { repoRoot, runTorchTune } from '../src/tune/torch-engine.ts';
import { SAMPLE_TEXT, writeTestModel } from './support/factory.ts';

const DEMO = path.join(repoRoot(), 'assets', 'models', 'tiny-en-llama');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  c.stdout.on('data', (d) => { stdout += String(d); });
  c.stderr.on('data', (d) => { stderr += String(d); });
  return new Promise((resolve) => c.on('close', (code) => resolve({ code, stdout, stderr })));
}

async function texts(root: string): Promise<{ corpus: string; replay: string }> {
  const corpus = path.join(root, 'pt.txt');
  await fsp.writeFile(corpus, SAMPLE_TEXT.repeat(30).replace(/\. /g, '.\n'));
  const replay = path.join(root, 'en.txt');
  await fsp.writeFile(replay, 'The quick brown fox jumps over the lazy dog, and the dog sleeps on in the sun.\n'.repeat(40));
  return { corpus, replay };
}

test('recipe errors name the stage and key; defaults by recipe; budgets below one batch refused', () => {
  const f = '/r/recipe.yaml';
  const err = (raw: unknown, re: RegExp) => assert.throws(() => parseStageRecipe(raw, f),
    (e: unknown) => e instanceof HackError && e.option === 'stages' && e.file === f && re.test(e.detail), String(re));
  err({ stages: [{ recipe: 'rows' }, { recipe: 'full', lrr: 1 }] }, /^stages\[1\]\.lrr: unknown key/);
  err({ stages: [{ recipe: 'everything' }] }, /^stages\[0\]\.recipe: everything: expected one of rows, embeddings, lora, full/);
  err({ stages: [{ lr: 1e-3 }] }, /^stages\[0\]\.recipe: missing/);
  err({ stage: [] }, /unknown key stage/);
  err({ stages: [] }, /non-empty list/);
  err({ stages: [{ recipe: 'rows', weightDecay: 0.1 }] }, /^stages\[0\]\.weightDecay: .*weight decay/);
  err({ stages: [{ recipe: 'full', maxTokens: 1000, batchSize: 2, gradAccum: 2, seqLen: 512 }] }, /^stages\[0\]\.maxTokens: the budget of 1000 tokens is smaller than one batch .* = 2048 tokens/);
  err({ stages: [{ recipe: 'full', loraR: 4 }] }, /lora keys in a full stage/);
  const r = parseStageRecipe({ replay: 'en.txt', stages: [{ recipe: 'rows' }, { recipe: 'full', gradAccum: 4, replayRatio: 0.5 }] }, f);
  assert.equal(r.replay, '/r/en.txt');
  assert.deepEqual(r.stages.map((s) => [s.recipe, s.lr, s.batchSize, s.seqLen, s.gradAccum, s.schedule, s.replayRatio]),
    [['rows', 1e-3, 4, 512, 1, 'cosine', undefined], ['full', 5e-5, 4, 512, 4, 'cosine', 0.5]]);
});

test('a stage objective is one of ce, distill, alm and absent unless set (the engine default ce)', () => {
  const f = '/r/recipe.yaml';
  assert.throws(() => parseStageRecipe({ stages: [{ recipe: 'rows', objective: 'kl' }] }, f),
    (e: unknown) => e instanceof HackError && /^stages\[0\]\.objective: kl: expected one of ce, distill, alm/.test(e.detail));
  const r = parseStageRecipe({ stages: [{ recipe: 'rows', objective: 'distill' }, { recipe: 'full' }] }, f);
  assert.deepEqual(r.stages.map((s) => s.objective), ['distill', undefined]);
});

test('CLI: tune --engine torch --stages on the demo model: two stages recorded in tune.json; a bad recipe writes nothing', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-stages-'));
  try {
    const { corpus, replay } = await texts(root);
    const recipe = path.join(root, 'two.yaml');
    await fsp.writeFile(recipe, [
      'replay: en.txt              # relative to this file',
      'stages:',
      '  - {recipe: embeddings, lr: 1.0e-3, batchSize: 2, seqLen: 32, maxSteps: 2, schedule: constant, replayRatio: 0}',
      '  - {recipe: full, lr: 1.0e-4, batchSize: 1, gradAccum: 2, seqLen: 32, maxTokens: 192, warmupSteps: 1, weightDecay: 0.01, replayRatio: 1}',
      '',
    ].join('\n'));
    const out = path.join(root, 'out');
    const r = await cli(['tune', '--engine', 'torch', '--stages', recipe, '--model', DEMO, '--corpus', corpus, '--out', out, '--threads', '1', '--save-dtype', 'float32']);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(await fsp.readFile(path.join(out, 'tune.json'), 'utf8'));
    assert.deepEqual(t.stages.map((s: { recipe: string; lr: number; steps: number; tokens: number; grad_accum: number; replay_windows: number }) =>
      [s.recipe, s.lr, s.steps, s.tokens, s.grad_accum, s.replay_windows]), [['embeddings', 1e-3, 2, 128, 1, 0], ['full', 1e-4, 3, 192, 2, 3]]);
    for (const s of t.stages) assert.ok(Number.isFinite(s.first_loss) && Number.isFinite(s.last_loss) && s.tokens_per_s > 0 && s.seconds > 0, JSON.stringify(s));
    assert.equal(t.steps, 5);
    assert.equal(t.replay.file, replay);
    assert.match(r.stderr, /stage 1\/2 \(torch\)/);
    assert.match(r.stderr, /stage 2\/2 \(torch\)/);
    assert.deepEqual(JSON.parse(r.stdout).stages, ['embeddings', 'full']);

    // an unknown key in stage 2: refused before any work, naming the file and the key
    const bad = path.join(root, 'bad.yaml');
    await fsp.writeFile(bad, 'stages:\n  - {recipe: embeddings, maxSteps: 1}\n  - {recipe: full, lrr: 1.0e-4}\n');
    const out2 = path.join(root, 'out2');
    const b = await cli(['tune', '--engine', 'torch', '--stages', bad, '--model', DEMO, '--corpus', corpus, '--out', out2]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /--stages .*bad\.yaml: stages\[1\]\.lrr: unknown key/);
    assert.equal(existsSync(out2), false);
    assert.equal(existsSync(`${out2}.work`), false);
    // per-stage flags beside --stages, and a single-stage budget below one batch
    const c = await cli(['tune', '--engine', 'torch', '--stages', recipe, '--lr', '1e-3', '--model', DEMO, '--corpus', corpus, '--out', out2]);
    assert.match(c.stderr, /--lr: set per stage in .*two\.yaml when --stages is given/);
    const d = await cli(['tune', '--engine', 'torch', '--recipe', 'full', '--model', DEMO, '--corpus', corpus, '--out', out2, '--max-tokens', '1000', '--grad-accum', '2']);
    assert.match(d.stderr, /--max-tokens: the budget of 1000 tokens is smaller than one batch \(--batch-size 4 x --grad-accum 2 x --seq-len 512 = 4096 tokens\)/);
    assert.equal(existsSync(out2), false);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('replay self: sampled from the original by our generation loop into the work directory, then mixed in', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'tune-stages-self-'));
  try {
    const model = await writeTestModel(path.join(root, 'model'), { arch: 'llama', hidden: 32, merges: 60, layers: 2, seed: 5 });
    const { corpus } = await texts(root);
    const out = path.join(root, 'out');
    const work = path.join(root, 'work');
    const phases: string[] = [];
    await runTorchTune({
      model, corpus: [corpus], out, workDir: work, seed: 0, threads: 1, device: 'cpu', resume: false, replay: 'self', replayRatio: 0.5,
      stages: [
        { recipe: 'embeddings', lr: 1e-3, schedule: 'constant', warmupSteps: 0, weightDecay: 0, batchSize: 2, gradAccum: 1, seqLen: 16, epochs: 1, maxSteps: 1, replayRatio: 0 },
        { recipe: 'full', lr: 1e-3, schedule: 'constant', warmupSteps: 0, weightDecay: 0, batchSize: 3, gradAccum: 1, seqLen: 16, epochs: 1, maxSteps: 2 },
      ],
    }, { onPhase: (p) => phases.push(p) });
    assert.deepEqual(phases, ['replay sample', 'stage 1/2 (torch)', 'stage 2/2 (torch)']);
    assert.ok(existsSync(path.join(work, 'replay-self.txt')));
    const t = JSON.parse(await fsp.readFile(path.join(out, 'tune.json'), 'utf8'));
    assert.equal(t.replay.file, path.join(work, 'replay-self.txt'));
    // stage 2 takes the job's ratio 0.5: one replay window per two corpus windows, 6 windows -> 2 replay
    assert.deepEqual(t.stages.map((s: { replay_ratio: number; replay_windows: number }) => [s.replay_ratio, s.replay_windows]), [[0, 0], [0.5, 2]]);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('the example recipes are valid: rows or embeddings first, then full with replay', async () => {
  const { readStageRecipe } = await import('../src/tune/stages.ts');
  const two = await readStageRecipe(path.join(repoRoot(), 'examples', 'torch-two-stage.yaml'));
  assert.deepEqual(two.stages.map((s) => [s.recipe, s.lr]), [['rows', 1e-3], ['full', 5e-5]]);
  assert.equal(two.replay, 'self');
  assert.equal(two.stages[1].replayRatio, 0.25);
  const tok = await readStageRecipe(path.join(repoRoot(), 'examples', 'tokalign-two-stage.yaml'));
  assert.deepEqual(tok.stages.map((s) => [s.recipe, s.lr]), [['embeddings', 6.4e-4], ['full', 5e-5]]);
  assert.equal(tok.replay, 'self');
});
