// `hack-tokenizer generate`: reserved; implemented by issue #5.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('generate')
    .description('Generate text with a model (not implemented yet: issue #5)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "generate" command is not implemented yet (issue #5)');
    });
}
