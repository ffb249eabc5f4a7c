// `hack-tokenizer extend`: reserved; implemented by issue #3.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('extend')
    .description('Extend a tokenizer (and model) with new tokens (not implemented yet: issue #3)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "extend" command is not implemented yet (issue #3)');
    });
}
