// `hack-tokenizer tune`: train the new tokens' embedding rows (output rows on cached hidden states,
// input rows through the frozen network), with progress, checkpoints and --resume.
import type { Command } from 'commander';
import { resolveModel } from '../io/hub.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { runTune, type RowsChoice } from '../tune/run-tune.ts';
import { info, progressBar, type Progress } from './progress.ts';
import { numberFlag } from './flags.ts';

function bytes(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(k|kb|m|mb|g|gb)?$/i.exec(v.trim());
  if (!m) throw new Error(`${flag}: expected a size such as 5MB or 300k, got "${v}"`);
  const mult = { k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

export function register(program: Command): void {
  program
    .command('tune')
    .description('Train the embedding rows of the new tokens (everything else stays bit-identical)')
    .requiredOption('--model <extended-dir>', 'the extended model (output of `extend`)')
    .requiredOption('--base <original-dir>', 'the original model (tells which tokens are new and how they are spelled in original ids)')
    .requiredOption('--corpus <file>', 'training text (plain or .gz), one paragraph per line')
    .requiredOption('--out <dir>', 'where to write the tuned model')
    .option('--rows <which>', 'output: lm_head rows (tied: the shared rows) by extended decoding; input: embedding rows through the frozen network; both: output then both jointly', 'output')
    .option('--method <m>', 'adam (exact gradients) or seed-heuristic (the research\'s update, for comparison)', 'adam')
    .option('--corpus-bytes <size>', 'text used by the output-row phase', '1MB')
    .option('--max-tokens <n>', 'output rows: stop after this many training positions (instead of --epochs)')
    .option('--epochs <e>', 'output rows: passes over the cached positions', '2')
    .option('--lr <lr>', 'output rows learning rate (Adam; default 1e-2; seed-heuristic: 1e-6)')
    .option('--batch <n>', 'output rows: positions per step', '2048')
    .option('--distill <weight>', 'output rows: add weight x (log p(new token) - the base model\'s log p of its original pieces in the same context)^2 at each new-token target (0 = off)', '0')
    .option('--seq-len <n>', 'output rows: most original ids per window', '256')
    .option('--input-corpus-bytes <size>', 'text used by the input-row phase', '300k')
    .option('--input-max-tokens <n>', 'input rows: stop after about this many tokens (instead of --input-epochs)')
    .option('--input-epochs <e>', 'input rows: passes over the windows', '1')
    .option('--input-lr <lr>', 'input rows learning rate (Adam)', '3e-3')
    .option('--input-batch <n>', 'input rows: windows per step', '8')
    .option('--input-seq-len <n>', 'input rows: most ids per window', '128')
    .option('--replay <file|self>', 'mix this text into both phases so the new rows also learn where they do not belong (e.g. English for a PT adaptation); "self" samples it from --base at temperature 1 (cached in the work directory)')
    .option('--replay-ratio <r>', 'replay bytes per corpus byte in each phase', '0.25')
    .option('--threads <n>', 'ONNX Runtime threads (0 = its default)', '2')
    .option('--work-dir <dir>', 'hidden-state cache and checkpoints (default: <out>.work)')
    .option('--checkpoint-every <s>', 'seconds between checkpoints', '60')
    .option('--resume', 'continue from the checkpoints (and reuse the cache) in the work directory')
    .option('--seed <n>', 'data order seed', '0')
    .action(async (o) => {
      const rows = o.rows as RowsChoice;
      if (!['output', 'input', 'both'].includes(rows)) throw new Error(`--rows: expected output, input or both, got "${o.rows}"`);
      if (!['adam', 'seed-heuristic'].includes(o.method)) throw new Error(`--method: expected adam or seed-heuristic, got "${o.method}"`);
      if (o.method === 'seed-heuristic' && rows !== 'output') throw new Error('--method seed-heuristic only applies to --rows output');
      if (o.method === 'seed-heuristic' && Number(o.distill) > 0) throw new Error('--distill applies to --method adam only');
      // every flag is checked before any model is loaded or downloaded
      const settings = {
        corpusBytes: bytes('--corpus-bytes', o.corpusBytes),
        inputCorpusBytes: bytes('--input-corpus-bytes', o.inputCorpusBytes),
        maxTokens: numberFlag('--max-tokens', o.maxTokens, { int: true, min: 1 }),
        epochs: o.maxTokens !== undefined ? undefined : numberFlag('--epochs', o.epochs, { min: 0.001 }),
        inputMaxTokens: numberFlag('--input-max-tokens', o.inputMaxTokens, { int: true, min: 1 }),
        inputEpochs: o.inputMaxTokens !== undefined ? undefined : numberFlag('--input-epochs', o.inputEpochs, { min: 0.001 }),
        lr: numberFlag('--lr', o.lr, { min: 0 }) ?? (o.method === 'seed-heuristic' ? 1e-6 : 1e-2),
        inputLr: numberFlag('--input-lr', o.inputLr, { min: 0 })!,
        batch: numberFlag('--batch', o.batch, { int: true, min: 1 })!,
        inputBatch: numberFlag('--input-batch', o.inputBatch, { int: true, min: 1 })!,
        seqLen: numberFlag('--seq-len', o.seqLen, { int: true, min: 2 })!,
        inputSeqLen: numberFlag('--input-seq-len', o.inputSeqLen, { int: true, min: 2 })!,
        threads: numberFlag('--threads', o.threads, { int: true, min: 0 })!,
        resume: o.resume === true,
        checkpointSeconds: numberFlag('--checkpoint-every', o.checkpointEvery, { min: 1 })!,
        seed: numberFlag('--seed', o.seed, { int: true })!,
        replay: o.replay as string | undefined,
        distill: numberFlag('--distill', o.distill, { min: 0 })!,
        replayRatio: numberFlag('--replay-ratio', o.replayRatio, { above: 0 })!,
      };
      const model = await loadModelDir(await resolveModel(o.model));
      const base = await loadModelDir(await resolveModel(o.base));
      let bar: Progress | null = null;
      const t0 = performance.now();
      const summary = await runTune({
        model, base, corpus: o.corpus, out: o.out, workDir: o.workDir ?? `${o.out.replace(/\/+$/, '')}.work`,
        rows, method: o.method,
        ...settings,
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
