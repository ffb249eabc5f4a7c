// The hack-tokenizer command line: one file per command, each exporting `register`.
import { Command, CommanderError } from 'commander';
import { installSignalCleanup } from '../io/output.ts';
import { formatError } from './options.ts';
import { register as registerInspectModel } from './model-info.ts';
import { register as registerDemo } from './demo.ts';
import { register as registerTokens } from './tokens.ts';
import { register as registerExtend } from './extend.ts';
import { register as registerInspect } from './inspect.ts';
import { register as registerGenerate } from './generate.ts';
import { register as registerExportOnnx } from './export-onnx.ts';
import { register as registerEval } from './eval.ts';
import { register as registerCompareInit } from './compare-init.ts';
import { register as registerExperiment } from './experiment.ts';
import { register as registerTune } from './tune.ts';
import { register as registerDownload } from './download.ts';
import { register as registerAdapt } from './adapt.ts';
import { register as registerExportGguf } from './export-gguf.ts';
import { register as registerReplace } from './replace.ts';
import { register as registerCurves } from './curves.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('hack-tokenizer')
    .description('Adapt a pretrained causal LM to a new language by extending its tokenizer, then measure what changed.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  for (const reg of [
    registerTokens, registerExtend, registerTune, registerGenerate, registerEval, registerCompareInit,
    registerExperiment, registerAdapt, registerInspect, registerDemo, registerInspectModel, registerExportOnnx, registerDownload, registerExportGguf,
    registerReplace, registerCurves,
  ]) reg(program);
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  return program;
}

/**
 * Run the CLI: errors are printed as one line (`hack-tokenizer: <message>`, flags named as the user
 * typed them, no stack trace unless HACK_TOKENIZER_DEBUG is set) and set the exit code; temporary
 * outputs are removed on SIGINT / SIGTERM.
 */
export async function main(argv: string[], opts: { signals?: boolean } = {}): Promise<void> {
  if (opts.signals !== false) installSignalCleanup();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`hack-tokenizer: ${formatError(err)}\n`);
    if (process.env.HACK_TOKENIZER_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    process.exitCode = 1;
  }
}
