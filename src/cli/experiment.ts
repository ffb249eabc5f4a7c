// `hack-tokenizer experiment`: reserved; implemented by issue #6.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('experiment')
    .description('Run an experiment grid and write a report (not implemented yet: issue #6)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "experiment" command is not implemented yet (issue #6)');
    });
}
