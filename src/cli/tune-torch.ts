// `tune --engine torch`: the same command, trained by the PyTorch engine (src/tune/torch-engine.ts).
// Shared flags keep their names; where their TypeScript defaults mean something else (batch size in
// positions vs windows, learning rate) the engine's own defaults apply unless the flag is given.
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { camelOf } from '../io/params.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { TORCH_DEFAULTS, TS_ONLY_OPTIONS } from '../tune/options.ts';
import { readStageRecipe, type StageRecipe } from '../tune/stages.ts';
import { checkAccelerateConfig, checkPython, runTorchTune, type Recipe, type TorchJob } from '../tune/torch-engine.ts';
import { resolveModelForCli } from './download.ts';
import { flagOf, formatError, specsOf } from './options.ts';
import { info, progressBar, type Progress } from './progress.ts';

/** Was the option typed on the command line (under its flag or an old name)? */
function givenOn(cmd: Command, key: string): boolean {
  const spec = specsOf(cmd).find((s) => s.key === key);
  if (!spec) return false;
  return [flagOf(spec), ...(spec.aliases ?? [])].some((f) => cmd.getOptionValue(camelOf(f)) !== undefined);
}

/** The flags a stage sets: with --stages they live in the recipe file, one value per stage. */
const STAGE_FLAGS = ['recipe', 'lr', 'batchSize', 'seqLen', 'epochs', 'maxTokens', 'maxSteps', 'warmupSteps', 'schedule', 'weightDecay',
  'gradAccum', 'loraR', 'loraAlpha', 'loraTargets'];

export async function runTorchFromCli(v: Record<string, unknown>, cmd: Command): Promise<void> {
  const given = (k: string) => givenOn(cmd, k);
  for (const k of TS_ONLY_OPTIONS) {
    if (given(k)) throw new HackError('BAD_OPTION', 'applies to {opt:engine} ts only (the PyTorch engine uses {opt:recipe})', { option: k });
  }
  // the whole recipe is checked before Python, models or text are touched
  let staged: StageRecipe | null = null;
  if (v.stages !== undefined) {
    for (const k of STAGE_FLAGS) {
      if (given(k)) throw new HackError('BAD_OPTION', `set per stage in ${String(v.stages)} when {opt:stages} is given`, { option: k });
    }
    staged = await readStageRecipe(v.stages as string);
    if (staged.replay !== undefined && given('replay')) throw new HackError('BAD_OPTION', `given twice (${staged.file} sets replay too)`, { option: 'replay' });
    if (staged.replayRatio !== undefined && given('replayRatio')) throw new HackError('BAD_OPTION', `given twice (${staged.file} sets replayRatio too)`, { option: 'replayRatio' });
  }
  const recipes: Recipe[] = staged ? staged.stages.map((s) => s.recipe) : [v.recipe as Recipe];
  const needsOriginal = recipes.find((r) => r === 'rows' || r === 'lora');
  if (needsOriginal && v.original === undefined) {
    throw new HackError('MISSING_OPTION', `missing (recipe ${needsOriginal} trains the new tokens' rows: the original model tells which they are)`, { option: 'original' });
  }
  const replay = staged?.replay ?? (v.replay as string | undefined);
  const replayRatio = staged?.replayRatio ?? (given('replayRatio') || replay !== undefined ? (v.replayRatio as number) : undefined);
  if (staged && replay === undefined && staged.stages.some((s) => (s.replayRatio ?? 0) > 0)) {
    throw new HackError('BAD_RECIPE', 'a stage sets replayRatio, but there is no replay text (add `replay: <file>|self` to the file, or --replay)', { option: 'stages', file: staged.file });
  }
  const recipe = recipes[0];
  if (!staged) {
    const bs = given('batchSize') ? (v.batchSize as number) : TORCH_DEFAULTS.batchSize;
    const sl = given('seqLen') ? (v.seqLen as number) : TORCH_DEFAULTS.seqLen;
    const ga = v.gradAccum as number;
    if (v.maxTokens !== undefined && (v.maxTokens as number) < bs * ga * sl) {
      throw new HackError('BUDGET', `the budget of ${String(v.maxTokens)} tokens is smaller than one batch ({opt:batchSize} ${bs} x {opt:gradAccum} ${ga} x {opt:seqLen} ${sl} = ${bs * ga * sl} tokens)`, { option: 'maxTokens' });
    }
  }
  // the accelerate config, then Python and its pinned packages, before anything is loaded or downloaded
  if (v.accelerateConfig !== undefined) await checkAccelerateConfig(v.accelerateConfig as string);
  const checked = checkPython();
  const pick = <T>(k: string, dflt: T): T => (given(k) ? (v[k] as T) : dflt);
  const model = (await loadModelDir(await resolveModelForCli(v.model as string))).dir;
  const original = v.original !== undefined ? (await loadModelDir(await resolveModelForCli(v.original as string))).dir : undefined;
  const out = v.out as string;
  const common = {
    model, original, corpus: v.corpus as string[], out, workDir: (v.workDir as string | undefined) ?? `${out.replace(/\/+$/, '')}.work`,
    corpusBytes: given('corpusBytes') ? (v.corpusBytes as number) : undefined, replay, replayRatio,
    seed: v.seed as number, threads: v.threads as number | undefined, device: v.device as TorchJob['device'],
    resume: v.resume === true, checkpointSeconds: pick('checkpointSeconds', TORCH_DEFAULTS.checkpointSeconds),
    saveDtype: v.saveDtype as TorchJob['saveDtype'], force: v.force === true,
    accelerateConfig: v.accelerateConfig as string | undefined,
    heldout: [['pt', v.evalPt], ['en', v.evalEn]].filter(([, f]) => f !== undefined).map(([name, file]) => ({ name: name as string, file: file as string })),
    evalEvery: v.evalEvery as number | undefined, evalMaxBytes: v.evalMaxBytes as number | undefined,
  };
  const job: TorchJob = staged ? { ...common, stages: staged.stages } : {
    ...common,
    recipe, lr: pick('lr', TORCH_DEFAULTS.lr[recipe]), batchSize: pick('batchSize', TORCH_DEFAULTS.batchSize), seqLen: pick('seqLen', TORCH_DEFAULTS.seqLen),
    gradAccum: v.gradAccum as number, epochs: pick('epochs', TORCH_DEFAULTS.epochs), maxTokens: v.maxTokens as number | undefined, maxSteps: v.maxSteps as number | undefined,
    warmupSteps: v.warmupSteps as number, schedule: v.schedule as TorchJob['schedule'], weightDecay: v.weightDecay as number,
    loraR: v.loraR as number, loraAlpha: v.loraAlpha as number, loraTargets: v.loraTargets as string[],
  };
  let bar: Progress | null = null;
  let last = { loss: NaN, tps: NaN };
  const s = await runTorchTune(job, {
    onInfo: info,
    onEval: (e) => info(`held-out at ${e.tokens} tokens (${(e.corpusBytes / 1e6).toFixed(2)} MB of corpus): ${Object.entries(e.bpb).map(([k, b]) => `${k} ${b.toFixed(4)}`).join(', ')} bits/byte (${e.seconds.toFixed(0)} s)`),
    onPhase: (label, total, unit) => { bar = progressBar(label, total, unit); },
    onTick: (done, st) => { last = { loss: st.loss, tps: st.tokensPerS }; bar?.setTotal(st.total); bar?.update(done); },
    onPhaseEnd: () => { bar?.stop(); bar = null; if (Number.isFinite(last.loss)) info(`last step: loss ${last.loss.toFixed(4)}, ${last.tps.toFixed(0)} tokens/s`); },
  }, { checked }).catch((e: unknown) => {
    if (!(e instanceof HackError && e.code === 'INTERRUPTED')) throw e;
    // an interruption is not a failure: the checkpoint is written; exit 130 as for any Ctrl-C
    process.stderr.write(`hack-tokenizer: ${formatError(e)}\n`);
    process.exitCode = 130;
    return null;
  });
  if (!s) return;
  info(`torch ${recipes.join(' -> ')}: loss ${s.firstLoss?.toFixed(4)} -> ${s.lastLoss?.toFixed(4)} in ${s.steps} steps, ${s.tokensPerS.toFixed(0)} tokens/s; wrote ${out} in ${s.seconds.toFixed(1)} s`);
  process.stdout.write(JSON.stringify({ engine: 'torch', ...(staged ? { stages: recipes } : { recipe }), ...s }, null, 2) + '\n');
}
