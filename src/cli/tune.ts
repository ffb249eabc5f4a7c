// `hack-tokenizer tune`: train the new tokens' embedding rows (output rows on cached hidden states,
// input rows through the frozen network), with progress, checkpoints and --resume. The flags are the
// library's option table (tune/options.ts) plus the run's inputs.
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { ENGINE_OPTION, TORCH_TUNE_OPTIONS, TS_TUNE_OPTIONS } from '../tune/options.ts';
import { runTorchFromCli } from './tune-torch.ts';
import { runTune, tuneSettings, type TuneSettings } from '../tune/run-tune.ts';
import { resolveModelForCli } from './download.ts';
import { info, progressBar, type Progress } from './progress.ts';
import { ALLOW_INVALID_UTF8, CORPUS, FORCE, MODEL, ORIGINAL, OUT, command, type OptionSpec } from './options.ts';

export const TUNE_OPTIONS: OptionSpec[] = [
  MODEL('the extended model (output of `extend`): directory or Hugging Face repo id'),
  ORIGINAL({ aliases: ['--base'], doc: 'the original model (tells which tokens are new and how they are spelled in original ids; required except for --engine torch --recipe embeddings|full)' }),
  CORPUS('training text files: plain or .gz, one paragraph per line'),
  OUT('<dir>', 'where to write the tuned model (new or empty; --force replaces an earlier tune output)'),
  FORCE,
  ENGINE_OPTION,
  ...TS_TUNE_OPTIONS,
  ...TORCH_TUNE_OPTIONS,
  { key: 'workDir', kind: 'string', arg: '<dir>', doc: 'hidden-state cache and checkpoints', defaultText: '<out>.work' },
  { key: 'resume', kind: 'bool', doc: 'continue from the checkpoints (and reuse the cache) in the work directory' },
  ALLOW_INVALID_UTF8,
];

interface TuneFlags extends Partial<TuneSettings> {
  model: string; original: string; corpus: string[]; out: string; force?: boolean; workDir?: string; resume?: boolean; allowInvalidUtf8?: boolean;
}

export function register(program: Command): void {
  command(program, 'tune', 'Train the new tokens\' rows (--engine ts), or rows, embeddings, LoRA or the whole model with PyTorch (--engine torch --recipe)', TUNE_OPTIONS, async (values, _args, cmd) => {
    if (values.engine === 'torch') return runTorchFromCli(values, cmd);
    for (const s of TORCH_TUNE_OPTIONS) {
      if (cmd.getOptionValue(s.key) !== undefined) throw new HackError('BAD_OPTION', 'applies to {opt:engine} torch only', { option: s.key });
    }
    const o = values as unknown as TuneFlags;
    if (o.original === undefined) throw new HackError('MISSING_OPTION', 'missing (the original model: it tells which tokens are new)', { option: 'original' });
    // every setting is checked (and completed with its default) before any model is loaded or downloaded
    const settings = tuneSettings(o);
    const model = await loadModelDir(await resolveModelForCli(o.model));
    const original = await loadModelDir(await resolveModelForCli(o.original));
    let bar: Progress | null = null;
    const t0 = performance.now();
    const summary = await runTune({
      ...settings,
      model, original, corpus: o.corpus, out: o.out, force: o.force, workDir: o.workDir, resume: o.resume, allowInvalidUtf8: o.allowInvalidUtf8,
      onInfo: info,
      onPhase: (label, total, unit) => { bar = progressBar(label, total, unit); },
      onTick: (done, s) => {
        if (!bar) return;
        if (s) bar.setTotal(s.totalSteps);
        bar.update(done);
      },
      onPhaseEnd: () => { bar?.stop(); bar = null; },
    });
    const fmt = (r?: { firstLoss: number; lastLoss: number; steps: number; seconds: number }) =>
      r ? `loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)} in ${r.steps} steps, ${r.seconds.toFixed(1)} s` : '';
    if (summary.output) info(`output rows: ${fmt(summary.output)}`);
    if (summary.input) info(`input rows: ${fmt(summary.input)}`);
    info(`wrote ${o.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  });
}
