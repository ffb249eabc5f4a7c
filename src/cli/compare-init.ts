// `hack-tokenizer compare-init`: reserved; implemented by issue #4.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('compare-init')
    .description('Compare embedding initialization methods (not implemented yet: issue #4)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "compare-init" command is not implemented yet (issue #4)');
    });
}
