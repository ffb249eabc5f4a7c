// Held-out text cut from a corpus (adapt without --pt/--en): the first whole lines of the corpus, up to
// a byte count, become the held-out file, the remaining lines the training file, so the two never
// overlap. Written once into a directory of the caller's output and reused while the corpus files and
// the size are unchanged (the files keep their mtime, so resumable cells keyed on them stay valid).
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { HackError, opt } from './errors.ts';
import { fileIdentity, hashOf } from './identity.ts';
import { registerTemp, releaseTemp, writeError } from './output.ts';
import { textLines } from './text.ts';

export interface HeldOutSplit {
  /** The held-out text (whole lines, the first of the corpus). */
  heldout: string;
  /** The rest of the corpus, for learning tokens and tuning. */
  train: string;
  heldoutBytes: number;
  trainBytes: number;
  heldoutLines: number;
  trainLines: number;
  /** True when an earlier split with the same inputs was reused. */
  reused: boolean;
}

const SPLIT_FILE = 'split.json';

/**
 * Cut `bytes` (UTF-8, whole lines) of held-out text from the start of `corpus` into `dir`; the rest is
 * the training file. The training part must be at least as large as the held-out part (`minTrainBytes`
 * when larger), else a CORPUS_TOO_SMALL error says what to pass instead.
 */
export async function cutHeldOut(corpus: string[], bytes: number, dir: string, o: { minTrainBytes?: number; option?: string } = {}): Promise<HeldOutSplit> {
  const option = o.option ?? 'corpus';
  const key = hashOf({ corpus: await Promise.all(corpus.map(fileIdentity)), bytes });
  const heldout = path.join(dir, 'heldout.txt');
  const train = path.join(dir, 'train.txt');
  try {
    const prev = JSON.parse(await fsp.readFile(path.join(dir, SPLIT_FILE), 'utf8')) as HeldOutSplit & { key: string };
    const [h, t] = await Promise.all([fsp.stat(heldout), fsp.stat(train)]);
    if (prev.key === key && h.size === prev.heldoutBytes && t.size === prev.trainBytes) return { ...prev, heldout, train, reused: true };
  } catch { /* no earlier split, or an incomplete one: cut again */ }
  try { await fsp.mkdir(dir, { recursive: true }); } catch (e) { throw writeError(dir, e); }
  const tmpH = `${heldout}.tmp-${process.pid}`;
  const tmpT = `${train}.tmp-${process.pid}`;
  registerTemp(tmpH);
  registerTemp(tmpT);
  const counts = { heldoutBytes: 0, trainBytes: 0, heldoutLines: 0, trainLines: 0 };
  try {
    const hs = createWriteStream(tmpH);
    const ts = createWriteStream(tmpT);
    for await (const line of textLines(corpus, { option })) {
      const piece = line + '\n';
      const n = Buffer.byteLength(piece);
      const toHeldOut = counts.heldoutBytes < bytes;
      const s = toHeldOut ? hs : ts;
      if (toHeldOut) { counts.heldoutBytes += n; counts.heldoutLines++; } else { counts.trainBytes += n; counts.trainLines++; }
      if (!s.write(piece)) await once(s, 'drain');
    }
    await Promise.all([new Promise((r, j) => hs.end((e?: Error) => (e ? j(e) : r(0)))), new Promise((r, j) => ts.end((e?: Error) => (e ? j(e) : r(0))))]);
    const need = Math.max(bytes, o.minTrainBytes ?? 0);
    if (counts.heldoutBytes < bytes || counts.trainBytes < need) {
      const total = counts.heldoutBytes + counts.trainBytes;
      throw new HackError('CORPUS_TOO_SMALL',
        `${total} bytes of text: too small to cut ${bytes} bytes of held-out text and keep at least ${need} for training ` +
        `(pass the held-out text with ${opt('pt')}, a larger corpus, or a smaller ${opt('maxBytes')})`, { file: corpus.join(', '), option });
    }
    await fsp.rename(tmpH, heldout);
    await fsp.rename(tmpT, train);
  } catch (e) {
    await Promise.all([fsp.rm(tmpH, { force: true }), fsp.rm(tmpT, { force: true })]);
    throw e instanceof HackError ? e : writeError(dir, e);
  } finally {
    releaseTemp(tmpH);
    releaseTemp(tmpT);
  }
  const split = { heldout, train, ...counts, reused: false };
  await fsp.writeFile(path.join(dir, SPLIT_FILE), JSON.stringify({ ...split, key, corpus }, null, 2) + '\n');
  return split;
}
