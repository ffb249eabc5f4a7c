// On-disk cache of the frozen model's final hidden states at the positions that predict an
// extended token, with what the output-row objective needs about the OLD rows, computed once:
//   hidden.f16   [P x d] float16 hidden states (the values training reads back)
//   lse.f32      [P] log-sum-exp of the old rows' logits (from the float16-rounded states)
//   max.f32      [P] max old logit (for the seed heuristic)
//   tlogit.f32   [P] the target's logit when the target is an old token
//   target.i32   [P] the extended id to predict
//   distill.f32  [P] (only when built for distillation) at a new-token target: the base model's
//                log-probability of the token's original pieces in the same context, i.e. the sum of
//                the old rows' log-softmax at the positions that read the pieces; NaN where the window
//                ends before the pieces are read, and at old-token targets
//   meta.json    written last: its presence marks a complete cache
import { makeDirs, registerTemp, releaseTemp, tempSibling } from '../io/output.ts';
import { createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import * as path from 'node:path';
import { f16ToF32, f32ToF16 } from '../io/dtype.ts';
import type { DenseKernels } from './ort-kernels.ts';
import type { DecodingWindow } from './windows.ts';
import type { OutputBatch } from './output-rows.ts';
import { fileError } from '../io/errors.ts';

export interface CacheMeta {
  version: 1;
  hidden: number;
  positions: number;
  /** What the cache was built from; a cache is reused only when this matches exactly. */
  key: Record<string, unknown>;
  /** Positions whose target is a new token. */
  newTargets: number;
  seconds: number;
  /** Positions with a distillation target (present when the cache has distill.f32). */
  distillTargets?: number;
}

const FILES = ['hidden.f16', 'lse.f32', 'max.f32', 'tlogit.f32', 'target.i32'] as const;
const DISTILL_FILE = 'distill.f32';

export async function readCacheMeta(dir: string): Promise<CacheMeta | null> {
  try {
    return JSON.parse(await fsp.readFile(path.join(dir, 'meta.json'), 'utf8')) as CacheMeta;
  } catch {
    return null;
  }
}

function sameKey(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A matching complete cache in `dir`, or null. */
export async function findCache(dir: string, key: Record<string, unknown>): Promise<CacheMeta | null> {
  const meta = await readCacheMeta(dir);
  return meta && sameKey(meta.key, key) ? meta : null;
}

export interface BuildCacheOptions {
  dir: string;
  key: Record<string, unknown>;
  windows: DecodingWindow[];
  /** Final hidden states per input sequence (e.g. engine.hiddenStates). */
  hiddenStates: (batch: number[][]) => Promise<Float32Array[]>;
  hidden: number;
  /** [rows x hidden] output matrix of the model (new rows included; they are skipped). */
  head: Float32Array;
  headRows: number;
  newIds: Set<number>;
  kernels: DenseKernels;
  /** Windows per hidden-state call. */
  batch?: number;
  /** New id -> its original ids: also write distillation targets (distill.f32). */
  distillPieces?: Map<number, number[]>;
  onProgress?: (windowsDone: number, positions: number) => void;
}

async function write(ws: WriteStream, data: ArrayBufferView): Promise<void> {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!ws.write(buf)) await new Promise<void>((r) => ws.once('drain', () => r()));
}

/** Build the cache (atomically: a temp directory renamed into place). */
export async function buildHiddenCache(o: BuildCacheOptions): Promise<CacheMeta> {
  const t0 = performance.now();
  const d = o.hidden;
  // a temporary sibling, registered so an interruption removes it (and a resumed run never sees it)
  const tmp = tempSibling(o.dir);
  registerTemp(tmp);
  await makeDirs(path.dirname(path.resolve(o.dir)));
  await fsp.mkdir(tmp);
  // the old rows, packed
  const oldIds: number[] = [];
  for (let r = 0; r < o.headRows; r++) if (!o.newIds.has(r)) oldIds.push(r);
  const wOld = new Float32Array(oldIds.length * d);
  oldIds.forEach((r, i) => wOld.set(o.head.subarray(r * d, (r + 1) * d), i * d));
  const files: string[] = [...FILES, ...(o.distillPieces ? [DISTILL_FILE] : [])];
  const streams = Object.fromEntries(files.map((f) => [f, createWriteStream(path.join(tmp, f))])) as Record<string, WriteStream>;
  let positions = 0;
  let newTargets = 0;
  let distillTargets = 0;
  const B = o.batch ?? 16;
  // windows batched by length (shortest first) so a batch pads to a similar length: the cache is
  // written in that order (training draws its batches in a seeded random order anyway)
  const order = o.windows.map((_, i) => i).sort((a, b) => o.windows[a].input.length - o.windows[b].input.length || a - b);
  try {
    for (let s = 0; s < order.length; s += B) {
      const ws = order.slice(s, s + B).map((i) => o.windows[i]);
      const hs = await o.hiddenStates(ws.map((w) => w.input));
      const count = ws.reduce((a, w) => a + w.positions.length, 0);
      const h16 = new Uint16Array(count * d);
      const h = new Float32Array(count * d);
      const target = new Int32Array(count);
      let p = 0;
      ws.forEach((w, wi) => {
        w.positions.forEach((pos, j) => {
          for (let c = 0; c < d; c++) {
            const v = hs[wi][pos * d + c];
            if (!Number.isFinite(v) || Math.abs(v) > 65000) throw new Error(`hidden state ${v} does not fit float16`);
            const bits = f32ToF16(v);
            h16[p * d + c] = bits;
            h[p * d + c] = f16ToF32(bits);
          }
          target[p] = w.targets[j];
          if (o.newIds.has(w.targets[j])) newTargets++;
          p++;
        });
      });
      const { lse, max } = await o.kernels.lseMaxNT({ data: h, rows: count, cols: d }, { data: wOld, rows: oldIds.length, cols: d });
      const tlogit = new Float32Array(count);
      for (let q = 0; q < count; q++) {
        const t = target[q];
        if (o.newIds.has(t)) continue;
        let z = 0;
        for (let c = 0; c < d; c++) z += h[q * d + c] * o.head[t * d + c];
        tlogit[q] = z;
      }
      await write(streams['hidden.f16'], h16);
      await write(streams['lse.f32'], lse);
      await write(streams['max.f32'], max);
      await write(streams['tlogit.f32'], tlogit);
      await write(streams['target.i32'], target);
      if (o.distillPieces) {
        const dt = await distillTargetsOf(o, ws, hs, wOld, oldIds, count);
        distillTargets += dt.filter(Number.isFinite).length;
        await write(streams[DISTILL_FILE], dt);
      }
      positions += count;
      o.onProgress?.(Math.min(s + B, o.windows.length), positions);
    }
    await Promise.all(Object.values(streams).map((ws) => new Promise<void>((res, rej) => ws.end((e?: Error | null) => (e ? rej(e) : res())))));
    const meta: CacheMeta = {
      version: 1, hidden: d, positions, key: o.key, newTargets, seconds: (performance.now() - t0) / 1000,
      ...(o.distillPieces ? { distillTargets } : {}),
    };
    await fsp.writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2));
    await fsp.rm(o.dir, { recursive: true, force: true });
    await fsp.rename(tmp, o.dir);
    return meta;
  } catch (e) {
    for (const ws of Object.values(streams)) ws.destroy();
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    releaseTemp(tmp);
  }
}

/**
 * The distillation targets of one batch of windows, in cache order: for a new-token target whose
 * pieces s_1..s_k the window goes on to read at input indices pos+1..pos+k, the sum over i of
 * log softmax_old(h[pos+i-1])[s_i], from the float32 hidden states.
 */
async function distillTargetsOf(
  o: BuildCacheOptions, ws: DecodingWindow[], hs: Float32Array[], wOld: Float32Array, oldIds: number[], count: number,
): Promise<Float32Array> {
  const d = o.hidden;
  const out = new Float32Array(count).fill(NaN);
  // every (output slot, hidden row, piece id) term, gathered for one batched log-sum-exp
  const slot: number[] = [];
  const piece: number[] = [];
  const rows: Float32Array[] = [];
  let p = 0;
  ws.forEach((w, wi) => {
    w.positions.forEach((pos, j) => {
      const pieces = o.distillPieces!.get(w.targets[j]);
      // the pieces are read only when another prediction follows in this window
      if (pieces && j + 1 < w.positions.length) {
        for (let i = 0; i < pieces.length; i++) {
          if (w.input[pos + 1 + i] !== pieces[i]) throw new Error(`distillation: window input does not spell new token ${w.targets[j]} at ${pos + 1 + i}`);
          slot.push(p);
          piece.push(pieces[i]);
          rows.push(hs[wi].subarray((pos + i) * d, (pos + i + 1) * d));
        }
      }
      p++;
    });
  });
  if (slot.length === 0) return out;
  const H = new Float32Array(slot.length * d);
  rows.forEach((r, i) => H.set(r, i * d));
  const { lse } = await o.kernels.lseMaxNT({ data: H, rows: slot.length, cols: d }, { data: wOld, rows: oldIds.length, cols: d });
  for (let i = 0; i < slot.length; i++) {
    let z = 0;
    const wRow = o.head.subarray(piece[i] * d, (piece[i] + 1) * d);
    for (let c = 0; c < d; c++) z += H[i * d + c] * wRow[c];
    out[slot[i]] = (Number.isNaN(out[slot[i]]) ? 0 : out[slot[i]]) + z - lse[i];
  }
  return out;
}

/** Random access to a complete cache. */
export class HiddenCache {
  private constructor(readonly dir: string, readonly meta: CacheMeta, private fhs: Record<string, fsp.FileHandle>) {}

  static async open(dir: string): Promise<HiddenCache> {
    const meta = await readCacheMeta(dir);
    if (!meta) throw fileError(dir, 'not a complete hidden-state cache (no meta.json)');
    const fhs: Record<string, fsp.FileHandle> = {};
    for (const f of FILES) fhs[f] = await fsp.open(path.join(dir, f), 'r');
    if (meta.distillTargets !== undefined) fhs[DISTILL_FILE] = await fsp.open(path.join(dir, DISTILL_FILE), 'r');
    return new HiddenCache(dir, meta, fhs);
  }

  private async read(file: string, start: number, count: number, width: number, bytesPer: number): Promise<Buffer> {
    const len = count * width * bytesPer;
    const buf = Buffer.alloc(len);
    const { bytesRead } = await this.fhs[file].read(buf, 0, len, start * width * bytesPer);
    if (bytesRead !== len) throw fileError(path.join(this.dir, file), 'truncated cache file');
    return buf;
  }

  /** Positions [start, start+count) as an output-row batch; `newIndex` maps extended ids to new-row indices. */
  async batch(start: number, count: number, newIndex: Map<number, number>): Promise<OutputBatch & { maxOld: Float32Array; targets: Int32Array }> {
    const d = this.meta.hidden;
    const f32 = (b: Buffer) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    const hb = await this.read('hidden.f16', start, count, d, 2);
    const h16 = new Uint16Array(hb.buffer, hb.byteOffset, count * d);
    const h = new Float32Array(count * d);
    for (let i = 0; i < h.length; i++) h[i] = f16ToF32(h16[i]);
    const tb = await this.read('target.i32', start, count, 1, 4);
    const targets = new Int32Array(tb.buffer, tb.byteOffset, count);
    const targetNew = new Int32Array(count);
    for (let i = 0; i < count; i++) targetNew[i] = newIndex.get(targets[i]) ?? -1;
    return {
      count,
      hidden: d,
      h,
      lseOld: f32(await this.read('lse.f32', start, count, 1, 4)),
      maxOld: f32(await this.read('max.f32', start, count, 1, 4)),
      targetLogitOld: f32(await this.read('tlogit.f32', start, count, 1, 4)),
      targetNew,
      targets,
      ...(this.fhs[DISTILL_FILE] ? { distillTarget: f32(await this.read(DISTILL_FILE, start, count, 1, 4)) } : {}),
    };
  }

  async close(): Promise<void> {
    for (const fh of Object.values(this.fhs)) await fh.close();
  }
}
