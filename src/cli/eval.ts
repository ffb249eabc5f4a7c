// `hack-tokenizer eval`: reserved; implemented by issue #6.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('eval')
    .description('Evaluate a model: fertility, bits per byte, benchmarks (not implemented yet: issue #6)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "eval" command is not implemented yet (issue #6)');
    });
}
