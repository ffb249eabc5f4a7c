// The output policy of every command that writes: outputs never destroy data.
// - A result appears only when complete: it is written to a temporary path beside the target and
//   renamed into place; temporary paths are removed on any error and on SIGINT/SIGTERM.
// - An existing non-empty output is refused unless it is this tool's own earlier output of the same
//   command (a marker file in a directory, `written_by` in a JSON file) and `force` is given
//   (resumable commands reuse their own output without `force`: that is how they resume).
// - The output may not be, contain, or lie inside any input (model, tokenizer, corpus).
// - Writability is checked before any work, with a plain reason ("permission denied"), never errno
//   jargon or temporary names; directories are created one level at a time (a recursive mkdir under
//   /proc never returns).
import { existsSync, mkdirSync, promises as fsp, realpathSync, rmSync, statSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { HackError } from './errors.ts';

/** Marker file of a directory written by this tool: which command wrote it, and when. */
export const OUTPUT_MARKER = '.hack-tokenizer-output.json';

export interface OutputRequest {
  /** Where the output goes (the user's --out). */
  path: string;
  kind: 'dir' | 'file';
  /** The command that writes it (`extend`, `tune`, ...): recorded in the marker, checked on reuse. */
  command: string;
  /** Every input path (models, tokenizers, corpora, held-out files); undefined entries are ignored. */
  inputs?: Array<string | undefined | null>;
  /** Replace this command's own earlier output. */
  force?: boolean;
  /** A resumable directory: this command's own earlier output is reused in place (no temp + rename). */
  resume?: boolean;
  /** The library option that named the path, for messages (default `out`). */
  option?: string;
}

// ---------------------------------------------------------------- temporary paths and signals

const pending = new Set<string>();

/** A temporary path beside `target` (same file system, so the final rename is atomic). */
export function tempSibling(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

/** Remember a temporary path so it is removed if the process is interrupted. */
export function registerTemp(p: string): void { pending.add(p); }
export function releaseTemp(p: string): void { pending.delete(p); }

/** Remove every registered temporary path now (signal handlers; synchronous on purpose). */
export function removeTempsSync(): void {
  for (const p of pending) {
    // retries: a write still in flight may add an entry while the directory is emptied (ENOTEMPTY)
    try { rmSync(p, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 }); } catch { /* best effort while exiting */ }
  }
  pending.clear();
}

/**
 * Remove temporary siblings in `dir` left by a process that no longer runs (a run killed before it
 * could clean up), so a resumed run never sees them.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try { names = await fsp.readdir(dir); } catch { return []; }
  const removed: string[] = [];
  for (const n of names) {
    const m = /^\..+\.tmp-(\d+)-[a-z0-9]+(\.old)?$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = pid === process.pid;
    if (!alive) { try { process.kill(pid, 0); alive = true; } catch (e) { alive = (e as NodeJS.ErrnoException).code === 'EPERM'; } }
    if (alive) continue;
    await fsp.rm(path.join(dir, n), { recursive: true, force: true }).catch(() => undefined);
    removed.push(n);
  }
  return removed;
}

let handlersInstalled = false;
/**
 * Remove temporary paths on SIGINT / SIGTERM, then exit with 130 / 143. Installed by the CLI;
 * `onSignal` runs first (e.g. to forward the signal to a child process).
 */
/**
 * A command whose normal stop is Ctrl-C (a server) takes SIGINT over while `stop` runs: no
 * "interrupted" exit; the returned function gives it back.
 */
export function onInterruptStop(stop: () => void): () => void {
  if (!handlersInstalled) {
    process.once('SIGINT', stop);
    return () => { process.off('SIGINT', stop); };
  }
  interruptStop = stop;
  return () => { if (interruptStop === stop) interruptStop = null; };
}
let interruptStop: (() => void) | null = null;

export function installSignalCleanup(onSignal?: (sig: NodeJS.Signals) => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(sig, () => {
      if (sig === 'SIGINT' && interruptStop) {
        const stop = interruptStop;
        interruptStop = null;
        stop();
        return;
      }
      try { onSignal?.(sig); } finally {
        removeTempsSync();
        process.stderr.write(`\nhack-tokenizer: interrupted (${sig}); temporary files removed\n`);
        process.exit(code);
      }
    });
  }
}

// ---------------------------------------------------------------- checks

const REASONS: Record<string, string> = {
  EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'read-only file system',
  ENOSPC: 'no space left on device', EDQUOT: 'disk quota exceeded', ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory', ENOENT: 'directories cannot be created there', EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long', ELOOP: 'too many symbolic links', EINVAL: 'not a valid place for files',
  EBUSY: 'the path is busy', EXDEV: 'it is on another file system',
};

/** A file-system failure as "cannot write <path>: <plain reason>". */
export function writeError(p: string, e: unknown, option = 'out'): HackError {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  const reason = REASONS[code] ?? ((e as Error)?.message ?? String(e)).replace(/^[A-Z]+: /, '').replace(/, \w+ '.*$/, '');
  return new HackError('OUT_UNWRITABLE', `cannot write ${p}: ${reason}`, { option, cause: e });
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest. */
function realish(p: string): string {
  const abs = path.resolve(p);
  let cur = abs;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = realpathSync(cur);
      return rest.length ? path.join(real, ...rest.reverse()) : real;
    } catch {
      const up = path.dirname(cur);
      if (up === cur) return abs;
      rest.push(path.basename(cur));
      cur = up;
    }
  }
}

const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);

/** Refuse an output that is, contains or lies inside an input. */
export function checkNotInput(out: string, inputs: Array<string | undefined | null>, option = 'out'): void {
  const o = realish(out);
  for (const input of inputs) {
    if (!input || !existsSync(input)) continue;
    const i = realish(input);
    if (o === i) throw new HackError('OUT_IS_INPUT', `${out} is an input of this command (${input}); choose another output path`, { option });
    if (inside(i, o)) throw new HackError('OUT_IS_INPUT', `${out} contains an input of this command (${input}); writing there could destroy it`, { option });
    let isDir = false;
    try { isDir = statSync(i).isDirectory(); } catch { isDir = false; }
    if (isDir && inside(o, i)) throw new HackError('OUT_IS_INPUT', `${out} lies inside an input of this command (${input}); write the output elsewhere`, { option });
  }
}

interface Marker { tool: string; command: string; created: string }

async function readMarker(dir: string): Promise<Marker | null> {
  try {
    const m = JSON.parse(await fsp.readFile(path.join(dir, OUTPUT_MARKER), 'utf8')) as Marker;
    return m && m.tool === 'hack-tokenizer' && typeof m.command === 'string' ? m : null;
  } catch { return null; }
}

export function markerContent(command: string): string {
  return JSON.stringify({ tool: 'hack-tokenizer', command, created: new Date().toISOString() }, null, 1) + '\n';
}

/** The `written_by` value of JSON outputs (tokens.json, results.json): how a file is known as ours. */
export const writtenBy = (command: string) => `hack-tokenizer ${command}`;

async function ownJsonFile(file: string, command: string): Promise<boolean> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const st = await fh.stat();
      if (st.size > 256 << 20) return false;
      const j = JSON.parse(await fh.readFile('utf8')) as { written_by?: unknown };
      return j.written_by === writtenBy(command);
    } finally { await fh.close(); }
  } catch { return false; }
}

/** Create `dir` and its missing parents one level at a time (fails fast where a recursive mkdir would spin). */
export async function makeDirs(dir: string, option = 'out'): Promise<void> {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      const st = await fsp.stat(cur);
      if (!st.isDirectory()) throw new HackError('OUT_UNWRITABLE', `cannot write ${dir}: ${cur} is not a directory`, { option });
      break;
    } catch (e) {
      if (e instanceof HackError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw writeError(dir, e, option);
      missing.push(cur);
      const up = path.dirname(cur);
      if (up === cur) break;
      cur = up;
    }
  }
  for (const d of missing.reverse()) {
    try { await fsp.mkdir(d); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw writeError(dir, e, option);
    }
  }
}

/** Can a file be created in `dir`? (a probe file, removed at once) */
async function probeWritable(dir: string, shown: string, option: string): Promise<void> {
  const probe = path.join(dir, `.hack-tokenizer-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    await fsp.writeFile(probe, '');
  } catch (e) {
    throw writeError(shown, e, option);
  } finally {
    await fsp.rm(probe, { force: true }).catch(() => undefined);
  }
}

export type ExistingOutput = 'none' | 'empty' | 'own';

/**
 * Check an output before any work: not an input, writable, and either absent, empty, or this
 * command's own output (with `force`, or `resume` for resumable directories). Creates no files
 * (missing parent directories are created: they are needed anyway and hold nothing).
 */
export async function checkOutput(req: OutputRequest): Promise<ExistingOutput> {
  const option = req.option ?? 'out';
  const p = req.path;
  if (typeof p !== 'string' || p.trim() === '') throw new HackError('BAD_OPTION', 'expected a path', { option });
  checkNotInput(p, req.inputs ?? [], option);
  const abs = path.resolve(p);
  let st: Stats | null = null;
  try { st = await fsp.stat(abs); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') {
      // name the part of the path that is a file
      let cur = path.dirname(abs);
      while (path.dirname(cur) !== cur && !(await fsp.stat(cur).then((x) => !x.isDirectory(), () => false))) cur = path.dirname(cur);
      throw new HackError('OUT_UNWRITABLE', `cannot write ${p}: ${cur} is not a directory`, { option });
    }
    if (code !== 'ENOENT') throw writeError(p, e, option);
  }
  if (!st) {
    await makeDirs(path.dirname(abs), option).catch((e) => { throw e instanceof HackError ? new HackError(e.code, e.detail.replace(path.dirname(abs), p), { option }) : e; });
    await probeWritable(path.dirname(abs), p, option);
    return 'none';
  }
  if (req.kind === 'dir') {
    if (!st.isDirectory()) throw new HackError('OUT_EXISTS', `${p} is an existing file; the output is a directory: choose a new or empty directory`, { option });
    const entries = await fsp.readdir(abs);
    await probeWritable(path.dirname(abs), p, option);
    if (entries.length === 0) return 'empty';
    const marker = await readMarker(abs);
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? ', ...' : '');
    if (!marker) throw new HackError('OUT_FOREIGN', `${p} is not empty (${shown}) and was not written by hack-tokenizer; choose a new or empty directory`, { option });
    if (marker.command !== req.command) throw new HackError('OUT_FOREIGN', `${p} holds the output of \`hack-tokenizer ${marker.command}\`, not of \`${req.command}\`; choose another directory`, { option });
    if (req.resume || req.force) return 'own';
    throw new HackError('OUT_EXISTS', `${p} already holds the output of an earlier \`hack-tokenizer ${req.command}\`; pass --force to replace it`, { option });
  }
  if (st.isDirectory()) throw new HackError('OUT_EXISTS', `${p} is a directory; the output is a file: give a file path`, { option });
  await probeWritable(path.dirname(abs), p, option);
  if (!(await ownJsonFile(abs, req.command)) && !/\.gguf$/i.test(abs)) {
    throw new HackError('OUT_FOREIGN', `${p} exists and was not written by \`hack-tokenizer ${req.command}\`; choose another file name`, { option });
  }
  if (req.force) return 'own';
  throw new HackError('OUT_EXISTS', `${p} already exists (an earlier \`hack-tokenizer ${req.command}\` output); pass --force to replace it`, { option });
}

/**
 * Write a directory output: `fill` writes into a temporary directory beside the target (removed on
 * error or interruption), which then replaces the target; the marker is added before the swap.
 */
export async function writeOutputDir<T>(req: Omit<OutputRequest, 'kind'>, fill: (tmpDir: string) => Promise<T>, checked = false): Promise<T> {
  const r = { ...req, kind: 'dir' as const };
  if (!checked) await checkOutput(r);
  const abs = path.resolve(r.path);
  const tmp = tempSibling(abs);
  registerTemp(tmp);
  let result: T;
  try {
    // synchronous: an asynchronous mkdir still in flight when a signal's cleanup runs would create the
    // temp directory after it was removed, and leave it behind
    try { mkdirSync(tmp); } catch (e) { throw writeError(r.path, e, r.option); }
    result = await fill(tmp);
    await fsp.writeFile(path.join(tmp, OUTPUT_MARKER), markerContent(r.command));
    await replaceWith(abs, tmp, r.path, r.option);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  } finally {
    releaseTemp(tmp);
  }
  return result;
}

/**
 * `data` into a temporary sibling of `target`, then renamed over it: the temp is registered for
 * signal cleanup and removed on failure (the error is rethrown as it is). The core of every atomic file write.
 */
export async function renameIntoPlace(target: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempSibling(target);
  registerTemp(tmp);
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  } finally {
    releaseTemp(tmp);
  }
}

/** Write a file output atomically (temp + rename), after the checks. */
export async function writeOutputFile(req: Omit<OutputRequest, 'kind'>, data: string | Uint8Array, checked = false): Promise<void> {
  const r = { ...req, kind: 'file' as const };
  if (!checked) await checkOutput(r);
  try {
    await renameIntoPlace(path.resolve(r.path), data);
  } catch (err) {
    throw err instanceof HackError ? err : writeError(r.path, err, r.option);
  }
}

/**
 * A resumable output directory (demo, experiment): created with its marker when absent, reused when
 * it is this command's own. Files inside are written atomically by their writers.
 */
export async function openResumableDir(req: Omit<OutputRequest, 'kind' | 'resume'>): Promise<{ dir: string; reused: boolean }> {
  const r = { ...req, kind: 'dir' as const, resume: true };
  const existing = await checkOutput(r);
  const abs = path.resolve(r.path);
  if (existing === 'none') {
    await makeDirs(abs, r.option);
  }
  if (existing !== 'own') await fsp.writeFile(path.join(abs, OUTPUT_MARKER), markerContent(r.command)).catch((e) => { throw writeError(r.path, e, r.option); });
  return { dir: abs, reused: existing === 'own' };
}

/** Move `tmp` into place at `abs`; an existing `abs` (checked to be ours) is moved aside and removed after. */
async function replaceWith(abs: string, tmp: string, shown: string, option = 'out'): Promise<void> {
  let old: string | null = null;
  if (existsSync(abs)) {
    old = tempSibling(abs) + '.old';
    registerTemp(old);
    try { await fsp.rename(abs, old); } catch (e) { releaseTemp(old); throw writeError(shown, e, option); }
  }
  try {
    await fsp.rename(tmp, abs);
  } catch (e) {
    if (old) await fsp.rename(old, abs).catch(() => undefined);
    throw writeError(shown, e, option);
  } finally {
    if (old) { await fsp.rm(old, { recursive: true, force: true }).catch(() => undefined); releaseTemp(old); }
  }
}
