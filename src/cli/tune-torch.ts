// `tune --engine torch`: the same command, trained by the PyTorch engine (src/tune/torch-engine.ts).
// Shared flags keep their names; where their TypeScript defaults mean something else (batch size in
// positions vs windows, learning rate) the engine's own defaults apply unless the flag is given.
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { camelOf } from '../io/params.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { TORCH_DEFAULTS, TS_ONLY_OPTIONS } from '../tune/options.ts';
import { checkPython, runTorchTune, type Recipe, type TorchJob } from '../tune/torch-engine.ts';
import { resolveModelForCli } from './download.ts';
import { flagOf, formatError, specsOf } from './options.ts';
import { info, progressBar, type Progress } from './progress.ts';

/** Was the option typed on the command line (under its flag or an old name)? */
function givenOn(cmd: Command, key: string): boolean {
  const spec = specsOf(cmd).find((s) => s.key === key);
  if (!spec) return false;
  return [flagOf(spec), ...(spec.aliases ?? [])].some((f) => cmd.getOptionValue(camelOf(f)) !== undefined);
}

export async function runTorchFromCli(v: Record<string, unknown>, cmd: Command): Promise<void> {
  const given = (k: string) => givenOn(cmd, k);
  for (const k of TS_ONLY_OPTIONS) {
    if (given(k)) throw new HackError('BAD_OPTION', 'applies to {opt:engine} ts only (the PyTorch engine uses {opt:recipe})', { option: k });
  }
  const recipe = v.recipe as Recipe;
  if ((recipe === 'rows' || recipe === 'lora') && v.original === undefined) {
    throw new HackError('MISSING_OPTION', `missing (recipe ${recipe} trains the new tokens' rows: the original model tells which they are)`, { option: 'original' });
  }
  // Python and its pinned packages before anything is loaded or downloaded
  const checked = checkPython();
  const pick = <T>(k: string, dflt: T): T => (given(k) ? (v[k] as T) : dflt);
  const model = (await loadModelDir(await resolveModelForCli(v.model as string))).dir;
  const original = v.original !== undefined ? (await loadModelDir(await resolveModelForCli(v.original as string))).dir : undefined;
  const out = v.out as string;
  const job: TorchJob = {
    model, original, corpus: v.corpus as string[], out, workDir: (v.workDir as string | undefined) ?? `${out.replace(/\/+$/, '')}.work`,
    recipe, lr: pick('lr', TORCH_DEFAULTS.lr[recipe]), batchSize: pick('batchSize', TORCH_DEFAULTS.batchSize), seqLen: pick('seqLen', TORCH_DEFAULTS.seqLen),
    epochs: pick('epochs', TORCH_DEFAULTS.epochs), maxTokens: v.maxTokens as number | undefined, maxSteps: v.maxSteps as number | undefined,
    corpusBytes: given('corpusBytes') ? (v.corpusBytes as number) : undefined, warmupSteps: v.warmupSteps as number, schedule: v.schedule as TorchJob['schedule'],
    weightDecay: v.weightDecay as number, seed: v.seed as number, threads: v.threads as number | undefined, device: v.device as TorchJob['device'],
    resume: v.resume === true, checkpointSeconds: pick('checkpointSeconds', TORCH_DEFAULTS.checkpointSeconds),
    loraR: v.loraR as number, loraAlpha: v.loraAlpha as number, loraTargets: v.loraTargets as string[], saveDtype: v.saveDtype as TorchJob['saveDtype'],
    force: v.force === true,
  };
  let bar: Progress | null = null;
  let last = { loss: NaN, tps: NaN };
  const s = await runTorchTune(job, {
    onInfo: info,
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
  info(`torch ${recipe}: loss ${s.firstLoss?.toFixed(4)} -> ${s.lastLoss?.toFixed(4)} in ${s.steps} steps, ${s.tokensPerS.toFixed(0)} tokens/s; wrote ${out} in ${s.seconds.toFixed(1)} s`);
  process.stdout.write(JSON.stringify({ engine: 'torch', recipe, ...s }, null, 2) + '\n');
}
