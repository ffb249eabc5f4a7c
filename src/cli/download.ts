// `hack-tokenizer download <repo-id>`: fetch a model from the Hugging Face Hub into the local cache.
import type { Command } from 'commander';
import { resolveModel } from '../io/hub.ts';

export function register(program: Command): void {
  program
    .command('download')
    .description('Download a model (config, tokenizer, safetensors) from the Hugging Face Hub into the local cache')
    .argument('<repo-id>', 'e.g. HuggingFaceTB/SmolLM2-135M')
    .action(async (repo: string) => {
      process.stdout.write((await resolveModel(repo)) + '\n');
    });
}
