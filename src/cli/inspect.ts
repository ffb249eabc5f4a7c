// `hack-tokenizer inspect`: reserved; implemented by issue #3.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('inspect')
    .description('Show how tokenizers split a text (not implemented yet: issue #3)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "inspect" command is not implemented yet (issue #3)');
    });
}
