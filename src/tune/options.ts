// The tuning options, defined once: the library's defaults, the `tune` command's flags and the
// experiment grid's `tune:` keys all derive from this table (io/params.ts specs). Names are the
// library's (camelCase); old names stay accepted for one release as aliases.
import type { ParamSpec } from '../io/params.ts';

/** Options of the TypeScript new-row engine (`tune --engine ts`). Inputs (model, original, corpus, out) are not here. */
export const TS_TUNE_OPTIONS: readonly ParamSpec[] = [
  { key: 'rows', kind: 'choice', choices: ['output', 'input', 'both'], default: 'output', doc: 'output: lm_head rows (tied: the shared rows) by extended decoding; input: embedding rows through the frozen network; both: output, then both jointly' },
  { key: 'optimizer', kind: 'choice', choices: ['adam', 'seed-heuristic'], default: 'adam', aliases: ['--method'], doc: 'adam (exact gradients) or seed-heuristic (the research\'s update, for comparison)' },
  { key: 'corpusBytes', kind: 'size', min: 1, default: 1_000_000, defaultText: '1MB', doc: 'text used by the output-row phase (the first bytes of the corpus)' },
  { key: 'maxTokens', kind: 'int', min: 1, doc: 'output rows: stop after this many training positions (instead of --epochs)' },
  { key: 'epochs', kind: 'number', above: 0, default: 2, doc: 'output rows: passes over the cached positions' },
  { key: 'lr', kind: 'number', min: 0, doc: 'output rows learning rate', defaultText: '1e-2 with adam, 1e-6 with seed-heuristic' },
  { key: 'batchSize', kind: 'int', min: 1, default: 2048, aliases: ['--batch'], doc: 'output rows: positions per step' },
  { key: 'distill', kind: 'number', min: 0, default: 0, doc: 'output rows: add weight x (log p(new token) - the original model\'s log p of its pieces in the same context)^2 at each new-token target (0 = off)' },
  { key: 'seqLen', kind: 'int', min: 2, default: 256, doc: 'output rows: most original ids per window' },
  { key: 'inputCorpusBytes', kind: 'size', min: 1, default: 300_000, defaultText: '300k', doc: 'text used by the input-row phase' },
  { key: 'inputMaxTokens', kind: 'int', min: 1, doc: 'input rows: stop after about this many tokens (instead of --input-epochs)' },
  { key: 'inputEpochs', kind: 'number', above: 0, default: 1, doc: 'input rows: passes over the windows' },
  { key: 'inputLr', kind: 'number', min: 0, default: 3e-3, doc: 'input rows learning rate (Adam)' },
  { key: 'inputBatchSize', kind: 'int', min: 1, default: 8, aliases: ['--input-batch'], doc: 'input rows: windows per step' },
  { key: 'inputSeqLen', kind: 'int', min: 2, default: 128, doc: 'input rows: most ids per window' },
  { key: 'replay', kind: 'string', arg: '<file|self>', doc: 'mix this text into training so the model also learns where the new tokens do not belong and keeps its English (e.g. English for a PT adaptation); "self" samples it from --original at temperature 1 (cached in the work directory). --engine ts: both phases; --engine torch: replay windows among the corpus windows' },
  { key: 'replayRatio', kind: 'number', above: 0, default: 0.25, doc: 'replay per corpus: bytes per corpus byte in each phase (--engine ts), windows per corpus window (--engine torch; 0.25: every fifth window is replay)' },
  { key: 'threads', kind: 'int', min: 1, doc: 'threads for inference and training', defaultText: 'one per core' },
  { key: 'checkpointSeconds', kind: 'number', above: 0, default: 60, flag: '--checkpoint-every', arg: '<s>', doc: 'seconds between checkpoints' },
  { key: 'seed', kind: 'int', min: 0, default: 0, doc: 'data order seed' },
];

/** The library defaults of the options above (what a call without them gets). */
export function tuneDefaults(specs: readonly ParamSpec[] = TS_TUNE_OPTIONS): Record<string, unknown> {
  return Object.fromEntries(specs.filter((s) => s.default !== undefined).map((s) => [s.key, s.default]));
}

/** Which trainer runs `tune`: our TypeScript new-row engine, or PyTorch (python/, launched as a child). */
export const ENGINE_OPTION: ParamSpec = {
  key: 'engine', kind: 'choice', choices: ['ts', 'torch'], default: 'ts',
  doc: 'ts: our new-row engine (no Python); torch: the PyTorch engine (needs `npm run setup:python`), with --recipe',
};

/**
 * Options of the PyTorch engine only (`tune --engine torch`). It also reads, from the table above,
 * lr, batchSize (windows per step), seqLen, epochs, maxTokens, corpusBytes, replay, replayRatio,
 * threads, seed and checkpointSeconds, with its own defaults where the meaning differs (TORCH_DEFAULTS).
 */
export const TORCH_TUNE_OPTIONS: readonly ParamSpec[] = [
  { key: 'recipe', kind: 'choice', choices: ['rows', 'embeddings', 'lora', 'full'], default: 'rows', doc: '--engine torch: what is trained: rows (only the new tokens\' input/output rows; every old row stays bit-identical), embeddings (all input and output rows), lora (LoRA adapters on attention/MLP + the new rows; writes the merged model and adapter/), full (the whole model)' },
  { key: 'device', kind: 'choice', choices: ['auto', 'cpu', 'cuda', 'mps'], default: 'auto', doc: '--engine torch: where to train (auto: cuda when torch sees one; bf16 autocast on GPU)' },
  { key: 'stages', kind: 'string', arg: '<file>', doc: '--engine torch: a recipe of stages (YAML or JSON: `stages:` a list, each with its recipe, lr, schedule, budget...; see examples/torch-two-stage.yaml), trained one after the other; instead of the per-stage flags' },
  { key: 'maxSteps', kind: 'int', min: 1, doc: '--engine torch: stop after this many steps' },
  { key: 'gradAccum', kind: 'int', min: 1, default: 1, doc: '--engine torch: micro-batches of --batch-size windows per optimizer step (gradient accumulation: the step is that of one batch of batch-size x grad-accum windows)' },
  { key: 'warmupSteps', kind: 'int', min: 0, default: 0, doc: '--engine torch: linear learning-rate warmup steps' },
  { key: 'schedule', kind: 'choice', choices: ['cosine', 'linear', 'constant'], default: 'cosine', doc: '--engine torch: learning-rate schedule after warmup' },
  { key: 'weightDecay', kind: 'number', min: 0, default: 0, doc: '--engine torch: AdamW weight decay (not allowed with --recipe rows: it would change the old rows)' },
  { key: 'loraR', kind: 'int', min: 1, default: 8, doc: '--engine torch --recipe lora: adapter rank' },
  { key: 'loraAlpha', kind: 'number', above: 0, default: 16, doc: '--engine torch --recipe lora: adapter alpha' },
  { key: 'loraTargets', kind: 'list', default: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], doc: '--engine torch --recipe lora: module names that get adapters' },
  { key: 'accelerateConfig', kind: 'string', arg: '<file.yaml>', doc: '--engine torch: train in several processes (GPUs or nodes) with `accelerate launch --config_file <file.yaml>`: data parallel, each process takes --batch-size windows of every step (see README, "Several GPUs or nodes")' },
  { key: 'evalPt', kind: 'string', arg: '<file>', doc: '--engine torch: Portuguese (target-language) held-out text, read with the model\'s tokenizer: bits/byte measured as `eval` does, before training, every --eval-every tokens and after each stage (tune.json `evals`)' },
  { key: 'evalEn', kind: 'string', arg: '<file>', doc: '--engine torch: English held-out text, measured as --eval-pt' },
  { key: 'evalEvery', kind: 'int', min: 1, doc: '--engine torch: training tokens (replay included) between held-out measurements', defaultText: 'only before training and after each stage' },
  { key: 'evalMaxBytes', kind: 'size', min: 1, doc: '--engine torch: measure only the first N bytes of each held-out file (cut at a line end, as eval --max-bytes)' },
  { key: 'saveDtype', kind: 'choice', choices: ['keep', 'float32', 'bfloat16', 'float16'], default: 'keep', doc: '--engine torch: dtype of the written weights (keep: the input model\'s)' },
];

/** The PyTorch engine's defaults for shared options whose TypeScript defaults mean something else. */
export const TORCH_DEFAULTS = {
  lr: { rows: 1e-3, embeddings: 6.4e-4, lora: 2e-4, full: 5e-5 } as Record<string, number>,
  batchSize: 4,
  seqLen: 512,
  epochs: 1,
  checkpointSeconds: 300,
};

/** Options that only the TypeScript engine reads (refused with --engine torch rather than ignored). */
export const TS_ONLY_OPTIONS = ['rows', 'optimizer', 'distill', 'inputCorpusBytes', 'inputMaxTokens', 'inputEpochs', 'inputLr', 'inputBatchSize', 'inputSeqLen'];
