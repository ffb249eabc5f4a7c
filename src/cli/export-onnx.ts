// `hack-tokenizer export-onnx`: reserved; implemented by issue #5.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('export-onnx')
    .description('Export an ONNX graph of a model (transformers.js layout) (not implemented yet: issue #5)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "export-onnx" command is not implemented yet (issue #5)');
    });
}
