// A local stand-in for the Hugging Face Hub on 127.0.0.1: serves model directories under repo ids
// through exactly the endpoints @huggingface/hub calls for a model download:
//   GET  /api/models/{repo}/revision/{rev}        model info (with the commit `sha`)
//   GET  /api/models/{repo}/tree/{rev}[/{path}]   file listing (oid, size, lfs {oid, size})
//   POST /api/models/{repo}/paths-info/{rev}      per-path info with lastCommit
//   GET  /{repo}/resolve/{rev}/{file}             file bytes, honouring Range (206 + Content-Range), ETag
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

interface RepoFile {
  path: string;
  bytes: Buffer;
  gitOid: string;
  /** sha256, for files the Hub keeps in LFS (safetensors here) */
  lfsOid: string | null;
}

interface Repo {
  id: string;
  commit: string;
  files: Map<string, RepoFile>;
}

export interface HubServer {
  url: string;
  /** Every request seen, as "METHOD /path". */
  requests: string[];
  close(): Promise<void>;
}

/** Read a directory (top level) into a repo; `extra` adds files that should not be downloaded. */
export async function repoFromDir(id: string, dir: string, extra: Record<string, string> = {}): Promise<Repo> {
  const files = new Map<string, RepoFile>();
  const add = (p: string, bytes: Buffer) => {
    const gitOid = createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
    const lfsOid = /\.(safetensors|bin)$/.test(p) ? createHash('sha256').update(bytes).digest('hex') : null;
    files.set(p, { path: p, bytes, gitOid, lfsOid });
  };
  for (const name of (await fsp.readdir(dir)).sort()) add(name, await fsp.readFile(path.join(dir, name)));
  for (const [p, text] of Object.entries(extra)) add(p, Buffer.from(text));
  const commit = createHash('sha1').update(id + [...files.values()].map((f) => f.gitOid).join()).digest('hex');
  return { id, commit, files };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function treeEntry(f: RepoFile, commit: string, withCommit: boolean): Record<string, unknown> {
  return {
    type: 'file',
    oid: f.gitOid,
    size: f.lfsOid ? 134 : f.bytes.byteLength, // LFS files: the pointer's size, the real size under lfs
    path: f.path,
    ...(f.lfsOid ? { lfs: { oid: f.lfsOid, size: f.bytes.byteLength, pointerSize: 134 } } : {}),
    ...(withCommit ? { lastCommit: { id: commit, title: 'upload', date: '2026-01-01T00:00:00.000Z' } } : {}),
  };
}

export async function startHubServer(repos: Repo[], opts: { token?: string; cutOff?: string[] } = {}): Promise<HubServer> {
  const byId = new Map(repos.map((r) => [r.id, r]));
  const requests: string[] = [];
  const revOk = (r: Repo, rev: string) => rev === 'main' || rev === r.commit;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}`);
    if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) {
      return json(res, 401, { error: 'Invalid credentials in Authorization header' });
    }
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const notFound = () => json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (parts[0] === 'api' && parts[1] === 'models') {
      const repo = byId.get(`${parts[2]}/${parts[3]}`);
      const [, , , , op, rev, ...rest] = parts;
      if (!repo || !rev || !revOk(repo, rev)) return notFound();
      if (op === 'revision' && req.method === 'GET') {
        return json(res, 200, {
          _id: 'x' + repo.commit.slice(0, 23), id: repo.id, sha: repo.commit, private: false, gated: false,
          downloads: 0, likes: 0, lastModified: '2026-01-01T00:00:00.000Z', pipeline_tag: 'text-generation',
          siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
        });
      }
      if (op === 'tree' && req.method === 'GET') {
        const sub = rest.join('/');
        const recursive = url.searchParams.get('recursive') === 'true';
        const entries = [...repo.files.values()]
          .filter((f) => (sub ? f.path.startsWith(sub + '/') : true))
          .filter((f) => recursive || !f.path.slice(sub ? sub.length + 1 : 0).includes('/'))
          .map((f) => treeEntry(f, repo.commit, false));
        // directories, as the Hub lists them
        const dirs = new Set([...repo.files.keys()].filter((p) => p.includes('/')).map((p) => p.split('/')[0]));
        if (!sub) for (const d of dirs) entries.push({ type: 'directory', oid: '0'.repeat(40), size: 0, path: d });
        return json(res, 200, entries);
      }
      if (op === 'paths-info' && req.method === 'POST') {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          const { paths } = JSON.parse(body) as { paths: string[] };
          json(res, 200, paths.filter((p) => repo.files.has(p)).map((p) => treeEntry(repo.files.get(p)!, repo.commit, true)));
        });
        return;
      }
      return notFound();
    }
    // /{owner}/{name}/resolve/{rev}/{file...}
    if (parts[2] === 'resolve' && (req.method === 'GET' || req.method === 'HEAD')) {
      const repo = byId.get(`${parts[0]}/${parts[1]}`);
      if (!repo || !revOk(repo, parts[3])) return notFound();
      const f = repo.files.get(parts.slice(4).join('/'));
      if (!f) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      const headers: Record<string, string> = {
        'Content-Type': 'application/octet-stream',
        'Accept-Ranges': 'bytes',
        ETag: `"${f.lfsOid ?? f.gitOid}"`,
        'X-Repo-Commit': repo.commit,
      };
      if (f.lfsOid) {
        headers['X-Linked-ETag'] = `"${f.lfsOid}"`;
        headers['X-Linked-Size'] = String(f.bytes.byteLength);
      }
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      let body = f.bytes;
      let status = 200;
      if (range) {
        const start = Number(range[1]);
        const end = range[2] ? Math.min(Number(range[2]), f.bytes.byteLength - 1) : f.bytes.byteLength - 1;
        body = f.bytes.subarray(start, end + 1);
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${f.bytes.byteLength}`;
      }
      headers['Content-Length'] = String(body.byteLength);
      res.writeHead(status, headers);
      if (opts.cutOff?.includes(f.path) && body.byteLength > 1) {
        // a transfer that breaks midway: half the bytes, then the connection drops
        res.write(body.subarray(0, body.byteLength >> 1));
        setTimeout(() => res.destroy(), 20);
        return;
      }
      return res.end(req.method === 'HEAD' ? undefined : body);
    }
    return notFound();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
