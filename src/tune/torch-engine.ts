// The PyTorch engine's launcher: find the interpreter, check the pinned packages before any work,
// run `python -m hack_tokenizer_train <job.json>` as a child, turn its JSON lines into progress
// callbacks, forward SIGINT (the child checkpoints and exits 130), and map failures to HackError
// with the child's last stderr lines. The model directory is written through the output policy
// (the child fills the temporary directory; it is renamed into place here).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HackError, opt } from '../io/errors.ts';
import { checkNotInput, checkOutput, makeDirs, writeOutputDir } from '../io/output.ts';

export const RECIPES = ['rows', 'embeddings', 'lora', 'full'] as const;
export type Recipe = (typeof RECIPES)[number];
export const DEVICES = ['auto', 'cpu', 'cuda', 'mps'] as const;
export type Device = (typeof DEVICES)[number];

/** The packages the engine needs, at the versions python/requirements.txt pins. */
export const PINNED: Record<string, string> = {
  torch: '2.13.0', transformers: '5.17.0', accelerate: '1.15.0', peft: '0.21.0', safetensors: '0.8.0',
};

const SETUP_HINT = 'run `npm run setup:python` (add `-- --find-links <wheel folder>` offline), or point HACK_TOKENIZER_PYTHON at an interpreter that has python/requirements.txt installed';

/** Exit codes of the engine (python/hack_tokenizer_train/__init__.py). */
const EXIT_JOB = 2;
const EXIT_INTERRUPTED = 130;

/** The repository root: the directory above this module that holds the Python package. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'python', 'hack_tokenizer_train', '__main__.py'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new HackError('PYTHON_PACKAGE', 'the python/ training package is not beside this installation of hack-tokenizer');
    dir = up;
  }
}

export interface PythonChoice { python: string; source: 'HACK_TOKENIZER_PYTHON' | '.venv' | 'PATH' }

/** HACK_TOKENIZER_PYTHON, else <repo>/.venv/bin/python, else python3 on PATH. */
export function findPython(env: NodeJS.ProcessEnv = process.env, root = repoRoot()): PythonChoice {
  const fromEnv = env.HACK_TOKENIZER_PYTHON;
  if (fromEnv) return { python: fromEnv, source: 'HACK_TOKENIZER_PYTHON' };
  const venv = path.join(root, '.venv', process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
  if (existsSync(venv)) return { python: venv, source: '.venv' };
  return { python: 'python3', source: 'PATH' };
}

export interface PythonCheck extends PythonChoice { version: string; found: Record<string, string | null> }

/**
 * Check, before any work, that the interpreter runs and has every pinned package at its pinned
 * version (read from the installed metadata: importing torch would take seconds).
 */
export function checkPython(choice: PythonChoice = findPython(), root = repoRoot()): PythonCheck {
  const shown = choice.source === 'HACK_TOKENIZER_PYTHON' ? `HACK_TOKENIZER_PYTHON=${choice.python}` : choice.python;
  const r = spawnSync(choice.python, ['-m', 'hack_tokenizer_train', '--check-versions'], {
    env: { ...process.env, PYTHONPATH: pythonPath(root) }, encoding: 'utf8', timeout: 60_000,
  });
  if (r.error) {
    const why = (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : r.error.message;
    throw new HackError('PYTHON_MISSING', `the PyTorch engine needs Python: ${shown}: ${why}; ${SETUP_HINT}`);
  }
  let report: { python: string; found: Record<string, string | null>; ok: boolean } | null = null;
  try { report = JSON.parse(r.stdout.trim().split('\n').pop() ?? ''); } catch { report = null; }
  if (!report || typeof report.found !== 'object') {
    throw new HackError('PYTHON_MISSING', `${shown} could not run the training engine (${lastLines(r.stderr, 3) || `exit ${r.status}`}); ${SETUP_HINT}`);
  }
  const wrong = Object.entries(PINNED).filter(([k, v]) => (report!.found[k] ?? '').split('+')[0] !== v)
    .map(([k, v]) => `${k} ${report!.found[k] ?? 'missing'} (needs ${v})`);
  if (wrong.length > 0) throw new HackError('PYTHON_PACKAGE', `${shown}: ${wrong.join(', ')}; ${SETUP_HINT}`);
  return { ...choice, version: report.python, found: report.found };
}

function pythonPath(root: string): string {
  const own = path.join(root, 'python');
  return process.env.PYTHONPATH ? `${own}${path.delimiter}${process.env.PYTHONPATH}` : own;
}

function lastLines(text: string, n: number): string {
  return text.split('\n').map((l) => l.trimEnd()).filter((l) => l.length > 0 && !/^\s*$/.test(l)).slice(-n).join(' | ');
}

export interface TorchJob {
  model: string;
  original?: string;
  corpus: string[];
  out: string;
  workDir: string;
  recipe: Recipe;
  lr: number;
  batchSize: number;
  seqLen: number;
  epochs?: number;
  maxTokens?: number;
  maxSteps?: number;
  corpusBytes?: number;
  warmupSteps?: number;
  schedule?: 'cosine' | 'linear' | 'constant';
  weightDecay?: number;
  seed: number;
  threads?: number;
  device: Device;
  resume: boolean;
  checkpointSeconds?: number;
  loraR?: number;
  loraAlpha?: number;
  loraTargets?: string[];
  keepAdapter?: boolean;
  saveDtype?: 'keep' | 'float32' | 'bfloat16' | 'float16';
  force?: boolean;
}

export interface TorchStep { step: number; total: number; loss: number; lr: number; tokensPerS: number }

export interface TorchCallbacks {
  onPhase?: (phase: string, total: number, unit: string) => void;
  onTick?: (done: number, info: TorchStep) => void;
  onPhaseEnd?: () => void;
  onInfo?: (msg: string) => void;
}

export interface TorchSummary {
  out: string;
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  tokensPerS: number;
  seconds: number;
  python: string;
}

/** The engine's job keys (snake_case) from the library's option names. */
function jobJson(j: TorchJob, out: string): Record<string, unknown> {
  const o: Record<string, unknown> = {
    model: path.resolve(j.model), out, corpus: j.corpus.map((c) => path.resolve(c)), work_dir: path.resolve(j.workDir),
    recipe: j.recipe, lr: j.lr, batch_size: j.batchSize, seq_len: j.seqLen, seed: j.seed, device: j.device, resume: j.resume,
  };
  const opt: Array<[keyof TorchJob, string]> = [
    ['original', 'original'], ['epochs', 'epochs'], ['maxTokens', 'max_tokens'], ['maxSteps', 'max_steps'], ['corpusBytes', 'corpus_bytes'],
    ['warmupSteps', 'warmup_steps'], ['schedule', 'schedule'], ['weightDecay', 'weight_decay'], ['threads', 'threads'],
    ['checkpointSeconds', 'checkpoint_seconds'], ['loraR', 'lora_r'], ['loraAlpha', 'lora_alpha'], ['loraTargets', 'lora_targets'],
    ['keepAdapter', 'keep_adapter'], ['saveDtype', 'save_dtype'],
  ];
  for (const [k, key] of opt) if (j[k] !== undefined) o[key] = k === 'original' ? path.resolve(j[k] as string) : j[k];
  return o;
}

/** The job key the engine named in an error, as the library's option name (the CLI spells it as a flag). */
const KEY_TO_OPTION: Record<string, string> = {
  model: 'model', original: 'original', corpus: 'corpus', out: 'out', work_dir: 'workDir', recipe: 'recipe', lr: 'lr',
  batch_size: 'batchSize', seq_len: 'seqLen', epochs: 'epochs', max_tokens: 'maxTokens', max_steps: 'maxSteps',
  corpus_bytes: 'corpusBytes', warmup_steps: 'warmupSteps', weight_decay: 'weightDecay', device: 'device', resume: 'resume',
  lora_r: 'loraR', lora_targets: 'loraTargets', threads: 'threads', seed: 'seed',
};

/**
 * Train with the PyTorch engine: checks the interpreter and the output first, then runs the child,
 * streaming its progress. Resolves with the engine's summary; rejects with HackError (code
 * INTERRUPTED after SIGINT: a checkpoint is in the work directory, rerun with resume).
 */
export async function runTorchTune(job: TorchJob, cb: TorchCallbacks = {}, opts: { python?: PythonChoice; checked?: PythonCheck } = {}): Promise<TorchSummary> {
  const root = repoRoot();
  const py = opts.checked ?? checkPython(opts.python ?? findPython(process.env, root), root);
  const req = { path: job.out, command: 'tune', inputs: [job.model, job.original, ...job.corpus], force: job.force };
  await checkOutput({ ...req, kind: 'dir' });
  checkNotInput(job.workDir, req.inputs, 'workDir');
  await makeDirs(job.workDir, 'workDir');
  return writeOutputDir(req, async (tmp) => {
    const jobFile = path.join(path.resolve(job.workDir), 'job.json');
    await fsp.writeFile(jobFile, JSON.stringify(jobJson(job, tmp), null, 2) + '\n');
    const s = await runChild(py, jobFile, root, cb);
    return { ...s, out: job.out };
  }, true);
}

function runChild(py: PythonCheck, jobFile: string, root: string, cb: TorchCallbacks): Promise<TorchSummary> {
  return new Promise((resolve, reject) => {
    // own process group: a terminal's Ctrl-C reaches only us, and we forward it once, so the child can checkpoint
    const child = spawn(py.python, ['-m', 'hack_tokenizer_train', jobFile], {
      env: { ...process.env, PYTHONPATH: pythonPath(root), PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let stderr = '';
    let done: TorchSummary | null = null;
    let error: { code: string; key: string | null; message: string } | null = null;
    let interruptedAt: number | null = null;
    let phase = false;
    let buf = '';
    const endPhase = () => { if (phase) { cb.onPhaseEnd?.(); phase = false; } };
    const handle = (line: string) => {
      let ev: Record<string, unknown>;
      try { ev = JSON.parse(line); } catch { cb.onInfo?.(line); return; }
      switch (ev.event) {
        case 'info': cb.onInfo?.(String(ev.message)); break;
        case 'step': {
          const s: TorchStep = { step: Number(ev.step), total: Number(ev.total), loss: Number(ev.loss), lr: Number(ev.lr), tokensPerS: Number(ev.tokens_per_s) };
          if (!phase) { cb.onPhase?.('training (torch)', s.total, 'steps'); phase = true; }
          cb.onTick?.(s.step, s);
          break;
        }
        case 'checkpoint': break;
        case 'phase': endPhase(); cb.onInfo?.(`${String(ev.phase)} ${String(ev.out ?? '')}`.trim()); break;
        case 'done':
          done = { out: String(ev.out), steps: Number(ev.steps), firstLoss: ev.first_loss as number | null, lastLoss: ev.last_loss as number | null,
            tokensPerS: Number(ev.tokens_per_s), seconds: Number(ev.seconds), python: py.python };
          break;
        case 'error': error = { code: String(ev.code), key: (ev.key as string | null) ?? null, message: String(ev.message) }; break;
        case 'interrupted': interruptedAt = ev.step === null ? null : Number(ev.step); break;
        default: break;
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) { const line = buf.slice(0, i).trim(); buf = buf.slice(i + 1); if (line) handle(line); }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { stderr = (stderr + d).slice(-20_000); });
    // take SIGINT over while the child runs (the CLI's handler would exit at once); restored after
    const saved = process.listeners('SIGINT');
    let signals = 0;
    const onSigint = () => {
      signals++;
      if (signals === 1) {
        cb.onInfo?.('\ninterrupted: the engine writes a checkpoint and stops (Ctrl-C again to kill it)');
        try { child.kill('SIGINT'); } catch { /* gone already */ }
      } else {
        try { child.kill('SIGKILL'); } catch { /* gone already */ }
      }
    };
    process.removeAllListeners('SIGINT');
    process.on('SIGINT', onSigint);
    const restore = () => {
      process.removeListener('SIGINT', onSigint);
      for (const l of saved) process.on('SIGINT', l as () => void);
    };
    child.on('error', (e) => { restore(); reject(new HackError('PYTHON_MISSING', `could not start ${py.python}: ${e.message}; ${SETUP_HINT}`)); });
    child.on('close', (code, sig) => {
      restore();
      endPhase();
      if (buf.trim()) handle(buf.trim());
      if (code === 0 && done) return resolve(done);
      if (code === EXIT_INTERRUPTED || signals > 0) {
        return reject(new HackError('INTERRUPTED', `interrupted${interruptedAt !== null ? ` at step ${interruptedAt}` : ''}; the checkpoint is in ${path.dirname(jobFile)}: rerun the same command with ${opt('resume')} to continue`));
      }
      const e = error as { code: string; key: string | null; message: string } | null;
      if (code === EXIT_JOB && e) {
        const option = e.key ? KEY_TO_OPTION[e.key] : undefined;
        return reject(new HackError(e.code === 'BAD_JOB' ? 'BAD_OPTION' : e.code, e.message, option ? { option } : {}));
      }
      const tail = lastLines(stderr, 5);
      reject(new HackError('TRAIN_FAILED', `the PyTorch engine failed (${sig ? `signal ${sig}` : `exit ${code}`})${e ? `: ${e.message}` : ''}${tail ? `; its last messages: ${tail}` : ''}`));
    });
  });
}
