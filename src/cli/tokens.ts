// `hack-tokenizer tokens`: reserved; implemented by issue #3.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('tokens')
    .description('Learn new tokens from a target-language corpus (not implemented yet: issue #3)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "tokens" command is not implemented yet (issue #3)');
    });
}
