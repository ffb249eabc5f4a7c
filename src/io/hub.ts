// Resolve a --model argument: a local model directory, or a Hugging Face Hub repo id ("owner/name")
// downloaded through @huggingface/hub into the standard Hugging Face cache layout
// (<cache>/models--owner--name/{blobs,snapshots/<commit>,refs/<revision>}), which the Python tools share.
// Only what a causal LM needs is fetched: config, generation config, tokenizer files, safetensors weights.
// A complete snapshot already in the cache is used without touching the network.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { downloadFileToCacheDir, listFiles, modelInfo } from '@huggingface/hub';
import { INDEX_FILE, SINGLE_FILE } from './weights.ts';
import { HackError } from './errors.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';
/** How long to wait for the Hub to answer a request (connection + response headers, not the body). */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** The non-weight files fetched when present; weights are chosen from the index or model.safetensors. */
export const HUB_SIDE_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
];

export type HubErrorCode = 'NO_SUCH_DIRECTORY' | 'BAD_REPO_ID' | 'UNREACHABLE' | 'NOT_ON_HUB' | 'OFFLINE' | 'NOT_A_MODEL' | 'BAD_TOKEN' | 'INCOMPLETE';

export class HubError extends HackError {
  declare readonly code: HubErrorCode;
  constructor(code: HubErrorCode, message: string) {
    super(code, message);
    this.name = 'HubError';
  }
}

export interface HubProgress {
  /** 'file' once per file before it is fetched (or found in the cache). */
  kind: 'file';
  file: string;
  index: number;
  total: number;
  bytes: number;
  cached: boolean;
}

export interface ResolveOptions {
  /** Hub cache directory (default: $HACK_TOKENIZER_CACHE, $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co). */
  hubUrl?: string;
  /** Access token for gated/private repos (default: $HF_TOKEN). */
  token?: string;
  /** Branch, tag or commit (default: main). */
  revision?: string;
  /** Per-request wait for the Hub's answer (default 10 s, or $HACK_TOKENIZER_HUB_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Never use the network (default: $HF_HUB_OFFLINE=1). */
  offline?: boolean;
  fetch?: typeof fetch;
  onProgress?: (p: HubProgress) => void;
}

type Env = Record<string, string | undefined>;

export function defaultCacheDir(env: Env = process.env): string {
  if (env.HACK_TOKENIZER_CACHE) return env.HACK_TOKENIZER_CACHE;
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return path.join(home, 'hub');
}

/** "owner/name" as the Hub accepts it (letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters each). */
export function isRepoId(spec: string): boolean {
  const m = /^([A-Za-z0-9][\w.-]{0,95})\/([A-Za-z0-9_.][\w.-]{0,95})$/.exec(spec);
  if (!m) return false;
  return !spec.includes('--') && !spec.includes('..') && !spec.endsWith('.git') && !m[2].endsWith('.') && !m[2].endsWith('-');
}

/** Where a repo lives in the cache: <cache>/models--owner--name. */
export function repoCacheDir(cacheDir: string, repo: string): string {
  return path.join(cacheDir, 'models--' + repo.split('/').join('--'));
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile(); // follows the snapshot symlinks into blobs/
  } catch {
    return false;
  }
}

/** The weight files a snapshot directory needs, or null if it has no (readable) weight index or file. */
async function neededWeights(dir: string): Promise<string[] | null> {
  const indexPath = path.join(dir, INDEX_FILE);
  if (await isFile(indexPath)) {
    try {
      const index = JSON.parse(await fsp.readFile(indexPath, 'utf8')) as { weight_map?: Record<string, string> };
      const shards = [...new Set(Object.values(index.weight_map ?? {}))];
      return shards.length > 0 && shards.every((s) => typeof s === 'string' && !s.includes('/')) ? [INDEX_FILE, ...shards] : null;
    } catch {
      return null;
    }
  }
  return (await isFile(path.join(dir, SINGLE_FILE))) ? [SINGLE_FILE] : null;
}

async function isCompleteSnapshot(dir: string): Promise<boolean> {
  if (!(await isFile(path.join(dir, 'config.json'))) || !(await isFile(path.join(dir, 'tokenizer.json')))) return false;
  const weights = await neededWeights(dir);
  if (!weights) return false;
  for (const w of weights) if (!(await isFile(path.join(dir, w)))) return false;
  return true;
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

/** A complete cached snapshot of `repo` at `revision`, or null. Never touches the network. */
export async function findCachedSnapshot(repo: string, opts: { cacheDir?: string; revision?: string } = {}): Promise<string | null> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const revision = opts.revision ?? 'main';
  const repoDir = repoCacheDir(cacheDir, repo);
  let commit = revision;
  if (!COMMIT_RE.test(revision)) {
    try {
      commit = (await fsp.readFile(path.join(repoDir, 'refs', revision), 'utf8')).trim();
    } catch {
      return null;
    }
    if (!COMMIT_RE.test(commit)) return null;
  }
  const snap = path.join(repoDir, 'snapshots', commit);
  return (await isCompleteSnapshot(snap)) ? snap : null;
}

/** fetch that gives up when the Hub has not answered (headers) within `ms`; bodies stream without limit. */
function fetchWithTimeout(base: typeof fetch, ms: number): typeof fetch {
  return async (input, init) => {
    const ctrl = new AbortController();
    const outer = init?.signal;
    if (outer) {
      if (outer.aborted) ctrl.abort(outer.reason);
      else outer.addEventListener('abort', () => ctrl.abort(outer.reason), { once: true });
    }
    const timer = setTimeout(() => ctrl.abort(new Error(`no answer within ${ms} ms`)), ms);
    try {
      return await base(input, { ...init, signal: ctrl.signal });
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Why a request failed, in words: the network cause (ECONNREFUSED, ENOTFOUND, timeout) if there is one. */
function describeCause(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err); // stream aborts carry a plain string
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.cause?.code) return e.cause.code;
  if (e.cause?.message) return e.cause.message;
  return e.message ?? String(err);
}

function isNetworkError(err: unknown): boolean {
  const e = err as { name?: string; statusCode?: number } | null;
  if (e && typeof e.statusCode === 'number') return false; // the Hub answered (HubApiError)
  return e instanceof TypeError || e?.name === 'AbortError' || e?.name === 'TimeoutError' || (e instanceof Error && /no answer within/.test(e.message));
}

/** The library prints "Downloading ..." with console.debug (stdout): route it away while we call it. */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const { debug, info } = console;
  console.debug = () => undefined;
  console.info = () => undefined;
  try {
    return await fn();
  } finally {
    console.debug = debug;
    console.info = info;
  }
}

interface Settings {
  cacheDir: string;
  hubUrl: string;
  token: string | undefined;
  revision: string;
  fetch: typeof fetch;
  offline: boolean;
}

function settings(opts: ResolveOptions): Settings {
  const token = opts.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (token !== undefined && token !== '' && !token.startsWith('hf_')) {
    throw new HubError('BAD_TOKEN', 'HF_TOKEN does not look like a Hugging Face access token (it must start with "hf_")');
  }
  const envTimeout = Number(process.env.HACK_TOKENIZER_HUB_TIMEOUT_MS);
  const timeoutMs = opts.timeoutMs ?? (Number.isFinite(envTimeout) && envTimeout > 0 ? envTimeout : DEFAULT_TIMEOUT_MS);
  return {
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    hubUrl: (opts.hubUrl ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL).replace(/\/+$/, ''),
    token: token || undefined,
    revision: opts.revision ?? 'main',
    fetch: fetchWithTimeout(opts.fetch ?? fetch, timeoutMs),
    offline: opts.offline ?? ['1', 'true', 'yes', 'on'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase()),
  };
}

/**
 * Download the files of `repo` that a causal LM needs into the cache (files already there are reused)
 * and return the snapshot directory.
 */
export async function downloadModel(repo: string, opts: ResolveOptions = {}): Promise<string> {
  if (!isRepoId(repo)) throw new HubError('BAD_REPO_ID', `"${repo}" is not a Hugging Face repo id (expected owner/name, e.g. HuggingFaceTB/SmolLM2-135M)`);
  const s = settings(opts);
  const hint = `Pass a local model directory instead (--model path/to/model-dir, with config.json, tokenizer.json and *.safetensors), or check HF_ENDPOINT.`;
  if (s.offline) {
    throw new HubError('OFFLINE', `"${repo}" is not in the cache (${s.cacheDir}) and HF_HUB_OFFLINE is set. ${hint}`);
  }
  const common = { hubUrl: s.hubUrl, accessToken: s.token, fetch: s.fetch };
  const onHub = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof HubError) throw err;
      if (what.startsWith('downloading')) {
        // the Hub answered before: this is a transfer cut off midway; files already complete stay cached
        throw new HubError('INCOMPLETE', `${what} of "${repo}" from ${s.hubUrl} failed (${describeCause(err)}); run the command again to resume`);
      }
      if (isNetworkError(err)) {
        throw new HubError('UNREACHABLE', `could not reach the Hugging Face Hub at ${s.hubUrl} to download "${repo}" (${describeCause(err)}), and it is not in the cache (${s.cacheDir}). ${hint}`);
      }
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 401 || status === 403 || status === 404) {
        throw new HubError('NOT_ON_HUB', `"${repo}" (revision ${s.revision}) was not found on ${s.hubUrl}, or it is private/gated: check the name, or set HF_TOKEN (${(err as Error).message})`);
      }
      throw new HubError('UNREACHABLE', `${what} for "${repo}" on ${s.hubUrl} failed: ${describeCause(err)}`);
    }
  };

  const info = await onHub('reading the repo info', () => modelInfo({ name: repo, additionalFields: ['sha'], revision: s.revision, ...common }));
  const commit = (info as { sha?: string }).sha;
  if (!commit || !COMMIT_RE.test(commit)) throw new HubError('NOT_ON_HUB', `the Hub gave no commit for "${repo}" at revision ${s.revision}`);

  const listed = await onHub('listing the files', async () => {
    const out = new Map<string, number>();
    for await (const f of listFiles({ repo: { type: 'model', name: repo }, revision: commit, ...common })) {
      if (f.type === 'file') out.set(f.path, f.lfs?.size ?? f.size);
    }
    return out;
  });
  const repoDir = repoCacheDir(s.cacheDir, repo);
  const snapshot = path.join(repoDir, 'snapshots', commit);
  let index = 0;
  const fetchOne = async (file: string, total: number): Promise<string> => {
    const size = listed.get(file)!;
    const cached = await isFile(path.join(snapshot, file));
    opts.onProgress?.({ kind: 'file', file, index: index++, total, bytes: size, cached });
    const p = await onHub(`downloading ${file}`, () => quietly(() => downloadFileToCacheDir({
      repo: { type: 'model', name: repo }, path: file, revision: commit, cacheDir: s.cacheDir, ...common,
    })));
    const got = (await fsp.stat(p)).size;
    if (got !== size) {
      // a cut-off transfer must not look like a complete cached file next time
      const blob = await fsp.realpath(p).catch(() => null);
      await fsp.rm(p, { force: true });
      if (blob) await fsp.rm(blob, { force: true });
      throw new HubError('INCOMPLETE', `${file} of "${repo}": received ${got} bytes, expected ${size}; run the command again to retry`);
    }
    return p;
  };

  const side = HUB_SIDE_FILES.filter((f) => listed.has(f));
  if (!listed.has('config.json')) throw new HubError('NOT_A_MODEL', `"${repo}" has no config.json: not a Hugging Face model repo`);
  if (!listed.has('tokenizer.json')) throw new HubError('NOT_A_MODEL', `"${repo}" has no tokenizer.json (only fast tokenizers are supported)`);
  let weights: string[];
  if (listed.has(INDEX_FILE)) weights = [INDEX_FILE];
  else if (listed.has(SINGLE_FILE)) weights = [SINGLE_FILE];
  else throw new HubError('NOT_A_MODEL', `"${repo}" has no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors weights are supported)`);
  let total = side.length + weights.length;
  for (const f of [...side, ...weights]) await fetchOne(f, total);
  if (weights[0] === INDEX_FILE) {
    const shards = await neededWeights(snapshot);
    if (!shards) throw new HubError('NOT_A_MODEL', `${INDEX_FILE} of "${repo}" has no usable weight_map`);
    const missing = shards.slice(1).filter((f) => !listed.has(f));
    if (missing.length) throw new HubError('NOT_A_MODEL', `${INDEX_FILE} of "${repo}" lists shards the repo does not have: ${missing.join(', ')}`);
    total += shards.length - 1;
    for (const f of shards.slice(1)) await fetchOne(f, total);
  }
  if (!COMMIT_RE.test(s.revision)) {
    const ref = path.join(repoDir, 'refs', s.revision);
    await fsp.mkdir(path.dirname(ref), { recursive: true });
    await fsp.writeFile(ref, commit);
  }
  return snapshot;
}

/**
 * A local directory for `spec`: an existing directory as is; otherwise a Hub repo id, from the cache
 * when a complete snapshot is there (no network), else downloaded.
 */
export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<string> {
  let st;
  try {
    st = await fsp.stat(spec);
  } catch {
    st = null;
  }
  if (st) {
    if (!st.isDirectory()) throw new HubError('NO_SUCH_DIRECTORY', `--model ${spec}: not a directory (expected a model directory with config.json, tokenizer.json and *.safetensors)`);
    return spec;
  }
  if (!isRepoId(spec)) {
    throw new HubError('NO_SUCH_DIRECTORY', `--model ${spec}: no such directory (and not a Hugging Face repo id of the form owner/name)`);
  }
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const cached = await findCachedSnapshot(spec, { cacheDir, revision: opts.revision });
  if (cached) return cached;
  return downloadModel(spec, { ...opts, cacheDir });
}
