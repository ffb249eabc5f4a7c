// `hack-tokenizer download <repo-id>`: fetch a model from the Hugging Face Hub into the local cache
// (or find it there) and print its directory on stdout.
import type { Command } from 'commander';
import { defaultCacheDir, downloadModel, findCachedSnapshot, HubError, isRepoId, resolveModel, type HubProgress } from '../io/hub.ts';
import { info } from './progress.ts';
import { command } from './options.ts';

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

function reportProgress(p: HubProgress): void {
  info(`[${p.index + 1}/${p.total}] ${p.file} (${formatBytes(p.bytes)})${p.cached ? ' cached' : ''}`);
}

/** resolveModel for a command's --model flag, with the download's progress on stderr. */
export function resolveModelForCli(spec: string): Promise<string> {
  return resolveModel(spec, { onProgress: reportProgress });
}

export function register(program: Command): void {
  command(program, 'download', 'Download a model (config, tokenizer, safetensors) from the Hugging Face Hub into the local cache and print its directory', [
    { key: 'revision', kind: 'string', arg: '<rev>', default: 'main', doc: 'branch, tag or commit' },
    { key: 'cacheDir', kind: 'string', arg: '<dir>', doc: 'cache directory', defaultText: '$HACK_TOKENIZER_CACHE, $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub' },
    { key: 'force', kind: 'bool', doc: 'ask the Hub even if a complete snapshot is cached (files already downloaded are kept)' },
  ], async (o, args) => {
    const repo = args[0];
    if (!isRepoId(repo)) {
      throw new HubError('BAD_REPO_ID', `<repo-id> "${repo}": expected a Hugging Face repo id of the form owner/name (e.g. HuggingFaceTB/SmolLM2-135M)`);
    }
    const cacheDir = (o.cacheDir as string | undefined) ?? defaultCacheDir();
    let dir = o.force ? null : await findCachedSnapshot(repo, { cacheDir, revision: o.revision as string });
    if (dir) {
      info(`${repo}: complete in the cache`);
    } else {
      dir = await downloadModel(repo, { cacheDir, revision: o.revision as string, onProgress: reportProgress });
    }
    process.stdout.write(dir + '\n');
  })
    .argument('<repo-id>', 'Hub repo id, e.g. HuggingFaceTB/SmolLM2-135M')
    .addHelpText('after', '\nEnvironment: HF_ENDPOINT (Hub URL), HF_TOKEN (gated/private repos), HF_HUB_OFFLINE=1 (cache only),\nHACK_TOKENIZER_HUB_TIMEOUT_MS (how long to wait for the Hub, default 10000).');
}
