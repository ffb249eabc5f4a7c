// Hub download against a local server on 127.0.0.1 that answers like the Hugging Face Hub
// (test/support/hub-server.ts): download, cache reuse with the server gone, fast failure offline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  defaultCacheDir, downloadModel, findCachedSnapshot, HubError, isRepoId, repoCacheDir, resolveModel,
  type HubErrorCode, type HubProgress,
} from '../src/io/hub.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { writeTestModel } from './support/factory.ts';
import { repoFromDir, startHubServer } from './support/hub-server.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

const isHub = (code: HubErrorCode, pattern?: RegExp) => (e: unknown) =>
  e instanceof HubError && e.code === code && (!pattern || pattern.test(e.message));

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hub-test-'));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** A port on 127.0.0.1 with nothing listening. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const EXTRA = { 'README.md': '# card', 'pytorch_model.bin': 'pickle!', 'consolidated.safetensors': 'not wanted', 'onnx/model.onnx': 'graph' };

test('repo ids: owner/name accepted, paths and malformed ids refused', () => {
  for (const ok of ['HuggingFaceTB/SmolLM2-135M', 'Qwen/Qwen2.5-1.5B', 'a/b', 'user_1/model.v2']) assert.ok(isRepoId(ok), ok);
  for (const bad of ['gpt2', './x/y', '/abs/path', 'a/b/c', 'a//b', 'a/b/', 'own--er/x', 'a/b..c', 'a/x.git', '-a/b', 'a/b c', '', 'a/' + 'x'.repeat(97), '~/models']) {
    assert.ok(!isRepoId(bad), bad);
  }
});

test('default cache directory follows the Hugging Face variables, ours first', () => {
  assert.equal(defaultCacheDir({ HACK_TOKENIZER_CACHE: '/c', HF_HUB_CACHE: '/h', HF_HOME: '/home' }), '/c');
  assert.equal(defaultCacheDir({ HF_HUB_CACHE: '/h', HF_HOME: '/home' }), '/h');
  assert.equal(defaultCacheDir({ HF_HOME: '/home' }), path.join('/home', 'hub'));
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/xdg' }), path.join('/xdg', 'huggingface', 'hub'));
  assert.equal(defaultCacheDir({}), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
  assert.equal(repoCacheDir('/c', 'Org/Model-1'), path.join('/c', 'models--Org--Model-1'));
});

test('local paths: a directory is used as is; a file or a missing path is a clear error', async () => {
  await withTmp(async (tmp) => {
    assert.equal(await resolveModel(tmp), tmp);
    const file = path.join(tmp, 'f.txt');
    await fsp.writeFile(file, 'x');
    await assert.rejects(resolveModel(file), isHub('NO_SUCH_DIRECTORY', /f\.txt: not a directory/));
    for (const missing of [path.join(tmp, 'nope'), './models/a/b', 'gpt2']) {
      await assert.rejects(resolveModel(missing, { cacheDir: tmp, hubUrl: 'http://127.0.0.1:9' }), isHub('NO_SUCH_DIRECTORY', /no such directory/), missing);
    }
  });
});

test('download a model from the (local) Hub, load it, then resolve it again from the cache with the server gone', async () => {
  await withTmp(async (tmp) => {
    const src = await writeTestModel(path.join(tmp, 'src'), { arch: 'qwen2', merges: 20, padRows: 3 });
    const repo = await repoFromDir('test-org/tiny-qwen', src, EXTRA);
    const server = await startHubServer([repo]);
    const cacheDir = path.join(tmp, 'cache');
    const events: HubProgress[] = [];
    const debugBefore = console.debug;
    let dir: string;
    try {
      dir = await resolveModel('test-org/tiny-qwen', { cacheDir, hubUrl: server.url, onProgress: (p) => events.push(p) });
    } finally {
      await server.close();
    }
    assert.equal(console.debug, debugBefore, 'console.debug restored');
    assert.equal(dir, path.join(cacheDir, 'models--test-org--tiny-qwen', 'snapshots', repo.commit));
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    for (const f of await fsp.readdir(dir)) {
      assert.ok((await fsp.readFile(path.join(dir, f))).equals(await fsp.readFile(path.join(src, f))), f);
    }
    assert.equal(events.length, 5);
    assert.ok(events.every((e) => e.total === 5 && !e.cached));
    assert.equal(events.find((e) => e.file === 'model.safetensors')!.bytes, (await fsp.stat(path.join(src, 'model.safetensors'))).size);
    // the Hugging Face cache layout: refs/main -> commit, snapshot files are symlinks into blobs/
    assert.equal(await fsp.readFile(path.join(cacheDir, 'models--test-org--tiny-qwen', 'refs', 'main'), 'utf8'), repo.commit);
    assert.ok((await fsp.lstat(path.join(dir, 'model.safetensors'))).isSymbolicLink());
    const blobs = await fsp.readdir(path.join(cacheDir, 'models--test-org--tiny-qwen', 'blobs'));
    assert.ok(blobs.includes(repo.files.get('model.safetensors')!.lfsOid!));
    assert.ok(blobs.includes(repo.files.get('config.json')!.gitOid));
    const m = await loadModelDir(dir);
    assert.deepEqual([m.tied, m.embeddingRows - m.tokenizerSize], [false, 3]);
    // the server's log: only the endpoints we implement, no unwanted files fetched
    assert.ok(!server.requests.some((r) => /README|pytorch_model|consolidated|onnx/.test(r)), server.requests.join('\n'));

    // second call: the server is closed, the snapshot is complete in the cache
    const n = server.requests.length;
    const t0 = Date.now();
    assert.equal(await resolveModel('test-org/tiny-qwen', { cacheDir, hubUrl: server.url }), dir);
    assert.equal(await findCachedSnapshot('test-org/tiny-qwen', { cacheDir }), dir);
    assert.equal(await findCachedSnapshot('test-org/tiny-qwen', { cacheDir, revision: repo.commit }), dir);
    assert.equal(await findCachedSnapshot('test-org/other', { cacheDir }), null);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(server.requests.length, n);
    // HF_HUB_OFFLINE-style use of the cache works too
    assert.equal(await resolveModel('test-org/tiny-qwen', { cacheDir, offline: true }), dir);
  });
});

test('sharded model: index and every shard are downloaded; a missing shard in the cache is fetched again', async () => {
  await withTmp(async (tmp) => {
    const src = await writeTestModel(path.join(tmp, 'src'), { arch: 'llama', merges: 10, shards: 3 });
    const repo = await repoFromDir('org/sharded', src, EXTRA);
    const server = await startHubServer([repo]);
    const cacheDir = path.join(tmp, 'cache');
    try {
      const dir = await resolveModel('org/sharded', { cacheDir, hubUrl: server.url });
      const files = (await fsp.readdir(dir)).sort();
      assert.deepEqual(files.filter((f) => f.endsWith('.safetensors')), [
        'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors',
      ]);
      assert.ok(files.includes('model.safetensors.index.json'));
      const m = await loadModelDir(dir);
      assert.equal(m.weights.files.length, 3);
      // lose one shard's link: the snapshot is incomplete; the blob is still there, so no file is fetched again
      const shard2 = path.join(dir, 'model-00002-of-00003.safetensors');
      const blob2 = await fsp.realpath(shard2);
      await fsp.rm(shard2);
      assert.equal(await findCachedSnapshot('org/sharded', { cacheDir }), null);
      let before = server.requests.length;
      assert.equal(await resolveModel('org/sharded', { cacheDir, hubUrl: server.url }), dir);
      assert.deepEqual(server.requests.slice(before).filter((r) => r.includes('/resolve/')), []);
      // lose the link and the blob: exactly that file is downloaded again
      await fsp.rm(shard2);
      await fsp.rm(blob2);
      before = server.requests.length;
      const events: HubProgress[] = [];
      assert.equal(await resolveModel('org/sharded', { cacheDir, hubUrl: server.url, onProgress: (p) => events.push(p) }), dir);
      const resolves = server.requests.slice(before).filter((r) => r.includes('/resolve/'));
      assert.ok(resolves.length > 0 && resolves.every((r) => r.endsWith('model-00002-of-00003.safetensors')), resolves.join('\n'));
      assert.equal(events.filter((e) => !e.cached).map((e) => e.file).join(), 'model-00002-of-00003.safetensors');
      assert.equal((await loadModelDir(dir)).weights.files.length, 3);
    } finally {
      await server.close();
    }
  });
});

test('a transfer cut off midway leaves no complete-looking file; the next run fetches what is missing', async () => {
  await withTmp(async (tmp) => {
    const src = await writeTestModel(path.join(tmp, 'src'), { arch: 'llama', merges: 10 });
    const repo = await repoFromDir('org/flaky', src);
    const cacheDir = path.join(tmp, 'cache');
    const flaky = await startHubServer([repo], { cutOff: ['model.safetensors'] });
    try {
      await assert.rejects(resolveModel('org/flaky', { cacheDir, hubUrl: flaky.url }),
        isHub('INCOMPLETE', /downloading model\.safetensors of "org\/flaky".*run the command again/));
    } finally {
      await flaky.close();
    }
    assert.equal(await findCachedSnapshot('org/flaky', { cacheDir }), null);
    const snap = path.join(repoCacheDir(cacheDir, 'org/flaky'), 'snapshots', repo.commit);
    assert.ok(!(await fsp.readdir(snap)).includes('model.safetensors'));
    const healthy = await startHubServer([repo]);
    try {
      const dir = await resolveModel('org/flaky', { cacheDir, hubUrl: healthy.url });
      assert.ok((await fsp.readFile(path.join(dir, 'model.safetensors'))).equals(await fsp.readFile(path.join(src, 'model.safetensors'))));
      // the side files from the first attempt were kept: only the weights were fetched again
      assert.deepEqual(healthy.requests.filter((r) => r.startsWith('GET /org/flaky/resolve/')).map((r) => path.basename(r)), ['model.safetensors', 'model.safetensors']);
    } finally {
      await healthy.close();
    }
  });
});

test('offline with nothing cached fails fast with a clear message (refused connection, silent server, HF_HUB_OFFLINE)', async () => {
  await withTmp(async (tmp) => {
    const cacheDir = path.join(tmp, 'cache');
    const port = await closedPort();
    let t0 = Date.now();
    await assert.rejects(resolveModel('org/model', { cacheDir, hubUrl: `http://127.0.0.1:${port}` }),
      isHub('UNREACHABLE', /could not reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:\d+ to download "org\/model" \(ECONNREFUSED\).*local model directory/));
    assert.ok(Date.now() - t0 < 3000);
    // a server that accepts connections and never answers: the timeout applies
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    try {
      t0 = Date.now();
      await assert.rejects(resolveModel('org/model', { cacheDir, hubUrl: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, timeoutMs: 300 }),
        isHub('UNREACHABLE', /no answer within 300 ms/));
      assert.ok(Date.now() - t0 < 3000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
    await assert.rejects(resolveModel('org/model', { cacheDir, offline: true }), isHub('OFFLINE', /not in the cache.*HF_HUB_OFFLINE/));
    // nothing half-written in the cache
    assert.equal(await findCachedSnapshot('org/model', { cacheDir }), null);
  });
});

test('Hub answers: unknown repo, gated repo without/with token, bad token, repo without weights', async () => {
  await withTmp(async (tmp) => {
    const src = await writeTestModel(path.join(tmp, 'src'), { arch: 'llama', merges: 5 });
    const gated = await startHubServer([await repoFromDir('org/gated', src)], { token: 'hf_secret' });
    const noWeightsDir = path.join(tmp, 'nw');
    await fsp.mkdir(noWeightsDir);
    for (const f of ['config.json', 'tokenizer.json']) await fsp.copyFile(path.join(src, f), path.join(noWeightsDir, f));
    const plain = await startHubServer([await repoFromDir('org/noweights', noWeightsDir, { 'pytorch_model.bin': 'x' })]);
    const cacheDir = path.join(tmp, 'cache');
    try {
      await assert.rejects(resolveModel('org/absent', { cacheDir, hubUrl: plain.url }), isHub('NOT_ON_HUB', /"org\/absent".*not found.*HF_TOKEN/));
      await assert.rejects(resolveModel('org/gated', { cacheDir, hubUrl: gated.url }), isHub('NOT_ON_HUB', /private\/gated/));
      const dir = await resolveModel('org/gated', { cacheDir, hubUrl: gated.url, token: 'hf_secret' });
      assert.equal((await loadModelDir(dir)).tied, true);
      await assert.rejects(downloadModel('org/gated', { cacheDir, hubUrl: gated.url, token: 'secret' }), isHub('BAD_TOKEN', /must start with "hf_"/));
      await assert.rejects(resolveModel('org/noweights', { cacheDir, hubUrl: plain.url }), isHub('NOT_A_MODEL', /no model\.safetensors/));
      await assert.rejects(downloadModel('not a repo', { cacheDir }), isHub('BAD_REPO_ID'));
    } finally {
      await gated.close();
      await plain.close();
    }
  });
});

test('CLI download: prints the snapshot directory on stdout, progress on stderr; second run served from the cache', async () => {
  await withTmp(async (tmp) => {
    const src = await writeTestModel(path.join(tmp, 'src'), { arch: 'llama', merges: 5 });
    const repo = await repoFromDir('org/cli-model', src);
    const server = await startHubServer([repo]);
    const cacheDir = path.join(tmp, 'cache');
    const env = { ...process.env, HF_ENDPOINT: server.url, HACK_TOKENIZER_CACHE: cacheDir, HF_TOKEN: '', HF_HUB_OFFLINE: '' };
    const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: repoRoot, env });
    let first;
    try {
      first = await cli(['download', 'org/cli-model']);
    } finally {
      await server.close();
    }
    const dir = path.join(cacheDir, 'models--org--cli-model', 'snapshots', repo.commit);
    assert.equal(first.stdout, dir + '\n');
    assert.match(first.stderr, /\[5\/5\]/);
    const second = await cli(['download', 'org/cli-model']);
    assert.equal(second.stdout, dir + '\n');
    assert.match(second.stderr, /complete in the cache/);
    const infoOut = await cli(['info', '--model', 'org/cli-model', '--json']);
    assert.equal(JSON.parse(infoOut.stdout).dir, dir);
    await assert.rejects(cli(['download', './not/a-repo']), (e: { code?: number; stderr?: string }) =>
      e.code === 1 && /<repo-id> "\.\/not\/a-repo": expected a Hugging Face repo id/.test(e.stderr ?? ''));
  });
});
