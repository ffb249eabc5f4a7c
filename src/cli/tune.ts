// `hack-tokenizer tune`: reserved; implemented by issue #7.
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('tune')
    .description('Train the embeddings of the new tokens (not implemented yet: issue #7)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error('the "tune" command is not implemented yet (issue #7)');
    });
}
