// The PyTorch engine's launcher: find the interpreter, check the pinned packages before any work,
// run `python -m hack_tokenizer_train <job.json>` as a child, turn its JSON lines into progress
// callbacks, forward SIGINT (the child checkpoints and exits 130), and map failures to HackError
// with the child's last stderr lines. The model directory is written through the output policy
// (the child fills the temporary directory; it is renamed into place here). `replay: 'self'` is sampled
// here, from the original model by our own generation loop, into the work directory: the child reads a file.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { HackError, opt } from '../io/errors.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { checkNotInput, checkOutput, makeDirs, writeOutputDir } from '../io/output.ts';
import { checkTextFiles, readTextFile, textPrefix } from '../io/text.ts';
import { encode, tokenizerFromJson } from '../tokenizer/load.ts';
import { selfReplayFile } from './replay.ts';
import type { TorchStage } from './stages.ts';

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
  /** Several stages, one after the other on the same model; instead of the one stage of recipe, lr... below. */
  stages?: TorchStage[];
  /** The one stage's settings (ignored when `stages` is given; recipe is then required). */
  recipe?: Recipe;
  lr?: number;
  batchSize?: number;
  seqLen?: number;
  gradAccum?: number;
  /** A text file mixed into the training windows, or 'self': sampled from `original` (else `model`) first. */
  replay?: string;
  /** Replay windows per corpus window (the default of stages that set none; 0.25 when replay is given). */
  replayRatio?: number;
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
  /** An accelerate config file: the engine runs under `accelerate launch --config_file <it>` (several processes). */
  accelerateConfig?: string;
  /** Held-out texts measured in bits/byte along the run (name: pt, en...): before training, every evalEvery tokens, after each stage. */
  heldout?: Array<{ name: string; file: string }>;
  /** Training tokens (replay included) between held-out measurements (none: only before training and after each stage). */
  evalEvery?: number;
  /** Only the first N bytes of each held-out file (cut at a line end, as eval's maxBytes). */
  evalMaxBytes?: number;
}

/** One point of the held-out curve (tune.json `evals`). */
export interface TorchEval {
  stage: number;
  step: number;
  /** Training tokens so far, every stage and replay included. */
  tokens: number;
  /** Corpus (not replay) tokens so far, and their bytes (at the corpus's bytes per token). */
  corpusTokens: number;
  corpusBytes: number;
  /** Training seconds so far (evaluation excluded). */
  trainSeconds: number;
  bpb: Record<string, number>;
  seconds: number;
}

export interface TorchStep { step: number; total: number; loss: number; lr: number; tokensPerS: number; stage?: number; stages?: number }

export interface TorchCallbacks {
  onPhase?: (phase: string, total: number, unit: string) => void;
  onTick?: (done: number, info: TorchStep) => void;
  onPhaseEnd?: () => void;
  onInfo?: (msg: string) => void;
  onEval?: (e: TorchEval) => void;
}

export interface TorchSummary {
  out: string;
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  tokensPerS: number;
  seconds: number;
  python: string;
  evals: TorchEval[];
}

/** A stage's keys as the engine spells them (snake_case). */
const STAGE_KEYS: Record<string, string> = {
  recipe: 'recipe', lr: 'lr', batchSize: 'batch_size', seqLen: 'seq_len', gradAccum: 'grad_accum', epochs: 'epochs',
  maxTokens: 'max_tokens', maxSteps: 'max_steps', warmupSteps: 'warmup_steps', schedule: 'schedule', weightDecay: 'weight_decay',
  replayRatio: 'replay_ratio', loraR: 'lora_r', loraAlpha: 'lora_alpha', loraTargets: 'lora_targets',
  objective: 'objective',
};

function snake(src: object, keys: Record<string, string>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (v !== undefined && keys[k]) o[keys[k]] = v;
  return o;
}

/** The engine's job keys (snake_case) from the library's option names; `replayFile` is the resolved replay text. */
function jobJson(j: TorchJob, out: string, replayFile?: string, heldoutFile?: string): Record<string, unknown> {
  const o: Record<string, unknown> = {
    model: path.resolve(j.model), out, corpus: j.corpus.map((c) => path.resolve(c)), work_dir: path.resolve(j.workDir),
    seed: j.seed, device: j.device, resume: j.resume,
  };
  const opt: Array<[keyof TorchJob, string]> = [
    ['original', 'original'], ['corpusBytes', 'corpus_bytes'], ['threads', 'threads'], ['checkpointSeconds', 'checkpoint_seconds'],
    ['keepAdapter', 'keep_adapter'], ['saveDtype', 'save_dtype'],
  ];
  for (const [k, key] of opt) if (j[k] !== undefined) o[key] = k === 'original' ? path.resolve(j[k] as string) : j[k];
  if (j.stages) {
    // a stage's own replayRatio wins; the job-level one is the default of those that set none
    o.stages = j.stages.map((st) => snake(st, STAGE_KEYS));
    if (replayFile !== undefined && j.replayRatio !== undefined) o.replay_ratio = j.replayRatio;
  } else {
    Object.assign(o, snake({ ...j, replayRatio: replayFile !== undefined ? j.replayRatio : undefined }, STAGE_KEYS));
  }
  if (replayFile !== undefined) o.replay = path.resolve(replayFile);
  if (heldoutFile !== undefined) {
    o.heldout = path.resolve(heldoutFile);
    if (j.evalEvery !== undefined) o.eval_every = j.evalEvery;
  }
  return o;
}

/**
 * How many bytes of `replay: self` text to sample: what the stages will read of it, at ~4 bytes a token
 * (the child cycles a shorter sample), and at least a few windows of the longest replay stage.
 */
export function selfReplayBytes(j: TorchJob, corpusBytes: number): number {
  const stages: TorchStage[] = j.stages ?? [{
    recipe: j.recipe ?? 'rows', lr: j.lr ?? 0, schedule: j.schedule ?? 'cosine', warmupSteps: 0, weightDecay: 0,
    batchSize: j.batchSize ?? 4, gradAccum: j.gradAccum ?? 1, seqLen: j.seqLen ?? 512, epochs: j.epochs ?? 1, maxTokens: j.maxTokens, maxSteps: j.maxSteps,
  }];
  const BYTES_PER_TOKEN = 4;
  let tokens = 0;
  let longest = 0;
  for (const st of stages) {
    const r = st.replayRatio ?? j.replayRatio ?? 0.25;
    if (!(r > 0)) continue;
    const f = r / (1 + r);
    const perStep = st.batchSize * st.gradAccum * st.seqLen;
    let budget = (corpusBytes / BYTES_PER_TOKEN) * st.epochs * (1 + r);
    if (st.maxTokens !== undefined) budget = Math.min(budget, st.maxTokens);
    if (st.maxSteps !== undefined) budget = Math.min(budget, st.maxSteps * perStep);
    tokens += f * budget;
    longest = Math.max(longest, st.seqLen);
  }
  if (longest === 0) return 0;
  return Math.ceil(Math.max(tokens, 4 * longest) * BYTES_PER_TOKEN);
}

/** accelerate's distributed types (accelerate 1.15 `DistributedType`). */
const DISTRIBUTED_TYPES = ['NO', 'MULTI_CPU', 'MULTI_GPU', 'MULTI_NPU', 'MULTI_MLU', 'MULTI_SDAA', 'MULTI_MUSA', 'MULTI_XPU', 'MULTI_HPU', 'MULTI_NEURON',
  'DEEPSPEED', 'FSDP', 'XLA', 'MEGATRON_LM'];
/** Those the engine trains correctly: every process holds the whole model and optimizer state (data parallel). */
const REPLICATED = DISTRIBUTED_TYPES.slice(0, 10);
/** Why the sharded ones are refused (the engine says the same: python/hack_tokenizer_train/dist.py). */
const SHARDED_WHY = 'the engine\'s checkpoints, resume and output read the model and the optimizer state on rank 0, which it shards across processes (and the rows recipe\'s gradient mask would see flattened shards, not rows); use a data-parallel config (distributed_type: MULTI_GPU)';

export interface AccelerateConfig { file: string; distributedType: string; numProcesses?: number; numMachines?: number }

/**
 * Check an accelerate config file before any work: it exists, parses as YAML (or JSON), and is an accelerate
 * config (a mapping with accelerate's `distributed_type`), of a type the engine can train (not DeepSpeed or FSDP).
 * The file itself goes to accelerate unchanged.
 */
export async function checkAccelerateConfig(file: string): Promise<AccelerateConfig> {
  const where = { option: 'accelerateConfig', file };
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HackError('NO_SUCH_FILE', code === 'ENOENT' ? 'file not found' : `cannot read (${(e as Error).message})`, where);
  }
  let raw: unknown;
  try { raw = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text); } catch (e) {
    throw new HackError('BAD_OPTION', `not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'} (${(e as Error).message.split('\n')[0]})`, where);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || typeof (raw as Record<string, unknown>).distributed_type !== 'string') {
    throw new HackError('BAD_OPTION', 'not an accelerate config (no `distributed_type`; write one with `accelerate config --config_file <file>`)', where);
  }
  const c = raw as Record<string, unknown>;
  const kind = String(c.distributed_type).toUpperCase();
  if (!DISTRIBUTED_TYPES.includes(kind)) {
    throw new HackError('BAD_OPTION', `distributed_type ${String(c.distributed_type)} is not one of accelerate's (${DISTRIBUTED_TYPES.join(', ')})`, where);
  }
  if (!REPLICATED.includes(kind)) {
    const zero = kind === 'DEEPSPEED' && c.deepspeed_config && typeof c.deepspeed_config === 'object' ? (c.deepspeed_config as Record<string, unknown>).zero_stage : undefined;
    const name = kind === 'DEEPSPEED' ? `DeepSpeed${zero !== undefined ? ` ZeRO-${String(zero)}` : ''}` : kind;
    throw new HackError('UNSUPPORTED_DISTRIBUTED', `distributed_type ${kind} is not supported: ${SHARDED_WHY.replace('which it shards', `which ${name} shards`)}`, where);
  }
  for (const k of ['num_processes', 'num_machines']) {
    const n = c[k];
    if (n !== undefined && !(Number.isInteger(n) && (n as number) >= 1)) throw new HackError('BAD_OPTION', `${k}: expected an integer >= 1, got ${JSON.stringify(n)}`, where);
  }
  return { file: path.resolve(file), distributedType: kind, numProcesses: c.num_processes as number | undefined, numMachines: c.num_machines as number | undefined };
}

/** The job key the engine named in an error, as the library's option name (the CLI spells it as a flag). */
const KEY_TO_OPTION: Record<string, string> = {
  model: 'model', original: 'original', corpus: 'corpus', out: 'out', work_dir: 'workDir', recipe: 'recipe', lr: 'lr',
  batch_size: 'batchSize', seq_len: 'seqLen', epochs: 'epochs', max_tokens: 'maxTokens', max_steps: 'maxSteps',
  corpus_bytes: 'corpusBytes', warmup_steps: 'warmupSteps', weight_decay: 'weightDecay', device: 'device', resume: 'resume',
  lora_r: 'loraR', lora_targets: 'loraTargets', threads: 'threads', seed: 'seed', grad_accum: 'gradAccum', replay: 'replay',
  replay_ratio: 'replayRatio', stages: 'stages', accelerate_config: 'accelerateConfig', objective: 'objective',
  eval_every: 'evalEvery', heldout: 'heldout',
};

/** The option an engine error is about: a stage's key (`stages[1].lr`) is the stages recipe's. */
function optionOfKey(key: string | null): string | undefined {
  if (!key) return undefined;
  return key.startsWith('stages') ? 'stages' : KEY_TO_OPTION[key];
}

/**
 * Train with the PyTorch engine: checks the interpreter and the output first, then runs the child,
 * streaming its progress. Resolves with the engine's summary; rejects with HackError (code
 * INTERRUPTED after SIGINT: a checkpoint is in the work directory, rerun with resume).
 */
export async function runTorchTune(job: TorchJob, cb: TorchCallbacks = {}, opts: { python?: PythonChoice; checked?: PythonCheck } = {}): Promise<TorchSummary> {
  const root = repoRoot();
  if (!job.stages && job.recipe === undefined) throw new HackError('MISSING_OPTION', 'missing (what to train: a recipe, or stages)', { option: 'recipe' });
  if (job.stages && job.stages.length === 0) throw new HackError('BAD_OPTION', 'an empty list of stages', { option: 'stages' });
  // the accelerate config before Python (and anything else) is touched
  const accel = job.accelerateConfig !== undefined ? await checkAccelerateConfig(job.accelerateConfig) : undefined;
  const py = opts.checked ?? checkPython(opts.python ?? findPython(process.env, root), root);
  const replayGiven = job.replay !== undefined && job.replay !== 'self' ? job.replay : undefined;
  const req = { path: job.out, command: 'tune', inputs: [job.model, job.original, ...job.corpus, replayGiven, ...(job.heldout ?? []).map((h) => h.file)], force: job.force };
  await checkOutput({ ...req, kind: 'dir' });
  checkNotInput(job.workDir, req.inputs, 'workDir');
  // the text files before any sampling or training (the engine would find a missing one only after the sample)
  const corpusBytes = await checkTextFiles(job.corpus, 'corpus');
  if (replayGiven) {
    await checkTextFiles([replayGiven], 'replay').catch((e) => { throw new HackError(e.code, `${e.detail} (give a text file or "self")`, { option: 'replay', file: replayGiven }); });
  }
  if (job.evalEvery !== undefined && !job.heldout?.length) throw new HackError('BAD_OPTION', 'held-out measurements asked for, but no held-out text is given', { option: 'evalEvery' });
  // held-out texts: read (strict UTF-8) and tokenized here, once, exactly as `eval` reads them
  const heldout: Array<{ name: string; file: string; bytes: number; ids: number[] }> = [];
  if (job.heldout?.length) {
    const m = await loadModelDir(job.model);
    const tok = tokenizerFromJson(m.tokenizerJson, m.tokenizerPath);
    for (const h of job.heldout) {
      const option = h.name === 'pt' ? 'evalPt' : h.name === 'en' ? 'evalEn' : 'heldout';
      const text = textPrefix(await readTextFile(h.file, { option }), job.evalMaxBytes);
      const ids = await encode(tok, text, false);
      if (ids.length < 2) throw new HackError('EMPTY_TEXT', 'fewer than two tokens: nothing to measure', { option, file: h.file });
      heldout.push({ name: h.name, file: path.resolve(h.file), bytes: Buffer.byteLength(text, 'utf8'), ids });
    }
  }
  await makeDirs(job.workDir, 'workDir');
  const heldoutFile = heldout.length ? path.join(path.resolve(job.workDir), 'heldout.json') : undefined;
  if (heldoutFile) await fsp.writeFile(heldoutFile, JSON.stringify(heldout) + '\n');
  let replayFile = replayGiven;
  if (job.replay === 'self') {
    const bytes = selfReplayBytes(job, job.corpusBytes !== undefined ? Math.min(job.corpusBytes, corpusBytes) : corpusBytes);
    if (bytes > 0) {
      // sampled from the model whose English is to be kept: the original (before extension or replacement)
      const from = await loadModelDir(job.original ?? job.model);
      cb.onPhase?.('replay sample', bytes, 'bytes');
      try {
        const r = await selfReplayFile(job.workDir, from, {
          bytes, seed: job.seed, threads: job.threads, batch: Math.max(1, Math.min(32, Math.ceil(bytes / 800))),
          onProgress: (b) => cb.onTick?.(b, { step: b, total: bytes, loss: NaN, lr: NaN, tokensPerS: NaN }),
        });
        if (r.reused) cb.onTick?.(bytes, { step: bytes, total: bytes, loss: NaN, lr: NaN, tokensPerS: NaN }); // nothing to sample: the bar ends full
        cb.onPhaseEnd?.();
        cb.onInfo?.(r.reused ? `reusing the replay sample ${r.file}` : `sampled ${(bytes / 1e6).toFixed(2)} MB of replay text from ${from.dir} in ${r.seconds.toFixed(1)} s -> ${r.file}`);
        replayFile = r.file;
      } catch (e) {
        cb.onPhaseEnd?.();
        throw e;
      }
    }
  }
  return writeOutputDir(req, async (tmp) => {
    const jobFile = path.join(path.resolve(job.workDir), 'job.json');
    await fsp.writeFile(jobFile, JSON.stringify(jobJson(job, tmp, replayFile, heldoutFile), null, 2) + '\n');
    const s = await runChild(py, jobFile, root, cb, accel);
    return { ...s, out: job.out };
  }, true);
}

/**
 * The child's command line: the engine itself, or accelerate's launcher starting it in every process with the same
 * job file (`-m`: the engine is a module). On SIGINT the launcher (torchrun's agent) passes it on to every process
 * and waits for them (TORCHELASTIC_SHUTDOWN_TIMEOUT, default 30 s): they stop at the same step, rank 0 checkpoints.
 */
export function childArgs(jobFile: string, accel?: AccelerateConfig): string[] {
  const engine = ['-m', 'hack_tokenizer_train', jobFile];
  return accel ? ['-m', 'accelerate.commands.launch', '--config_file', accel.file, ...engine] : engine;
}

function runChild(py: PythonCheck, jobFile: string, root: string, cb: TorchCallbacks, accel?: AccelerateConfig): Promise<TorchSummary> {
  return new Promise((resolve, reject) => {
    // own process group: a terminal's Ctrl-C reaches only us, and we forward it once, so the child can checkpoint
    const child = spawn(py.python, childArgs(jobFile, accel), {
      env: { ...process.env, PYTHONPATH: pythonPath(root), PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let stderr = '';
    let done: TorchSummary | null = null;
    const evals: TorchEval[] = [];
    let error: { code: string; key: string | null; message: string } | null = null;
    let interruptedAt: number | null = null;
    let phase = false;
    let stage = 0;
    let buf = '';
    const endPhase = () => { if (phase) { cb.onPhaseEnd?.(); phase = false; } };
    const handle = (line: string) => {
      let ev: Record<string, unknown>;
      try { ev = JSON.parse(line); } catch { cb.onInfo?.(line); return; }
      switch (ev.event) {
        case 'info': cb.onInfo?.(String(ev.message)); break;
        case 'step': {
          const s: TorchStep = { step: Number(ev.step), total: Number(ev.total), loss: Number(ev.loss), lr: Number(ev.lr), tokensPerS: Number(ev.tokens_per_s),
            stage: Number(ev.stage ?? 0), stages: Number(ev.stages ?? 1) };
          // one progress bar per stage
          if (phase && s.stage !== stage) endPhase();
          if (!phase) {
            cb.onPhase?.(s.stages! > 1 ? `stage ${s.stage! + 1}/${s.stages} (torch)` : 'training (torch)', s.total, 'steps');
            phase = true;
            stage = s.stage!;
          }
          cb.onTick?.(s.step, s);
          // a stage's last step closes its bar before the next stage's messages
          if (s.step >= s.total) endPhase();
          break;
        }
        case 'checkpoint': break;
        case 'eval': {
          const e: TorchEval = { stage: Number(ev.stage), step: Number(ev.step), tokens: Number(ev.tokens), corpusTokens: Number(ev.corpus_tokens),
            corpusBytes: Number(ev.corpus_bytes), trainSeconds: Number(ev.train_seconds), bpb: ev.bpb as Record<string, number>, seconds: Number(ev.seconds) };
          evals.push(e);
          // between steps: the bar is redrawn by the next tick
          cb.onEval?.(e);
          break;
        }
        case 'phase': endPhase(); cb.onInfo?.(`${String(ev.phase)} ${String(ev.out ?? '')}`.trim()); break;
        case 'done':
          done = { out: String(ev.out), steps: Number(ev.steps), firstLoss: ev.first_loss as number | null, lastLoss: ev.last_loss as number | null,
            tokensPerS: Number(ev.tokens_per_s), seconds: Number(ev.seconds), python: py.python, evals };
          break;
        // several processes: the first error reported is the cause (the others' come after it, if at all)
        case 'error': error ??= { code: String(ev.code), key: (ev.key as string | null) ?? null, message: String(ev.message) }; break;
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
        // the whole group: under accelerate launch the training processes are the launcher's children
        try { process.kill(-child.pid!, 'SIGKILL'); } catch { try { child.kill('SIGKILL'); } catch { /* gone already */ } }
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
      // accelerate's launcher exits 1 whatever its processes' codes: the error line tells a bad job from a crash
      if (e && (code === EXIT_JOB || (accel !== undefined && code !== 0 && e.code !== 'CRASH'))) {
        const option = optionOfKey(e.key);
        return reject(new HackError(e.code === 'BAD_JOB' ? 'BAD_OPTION' : e.code, e.message, option ? { option } : {}));
      }
      const tail = lastLines(stderr, 5);
      reject(new HackError('TRAIN_FAILED', `the PyTorch engine${accel ? ' (under accelerate launch)' : ''} failed (${sig ? `signal ${sig}` : `exit ${code}`})${e ? `: ${e.message}` : ''}${tail ? `; its last messages: ${tail}` : ''}`));
    });
  });
}
