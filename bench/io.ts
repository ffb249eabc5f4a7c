// Safetensors I/O benchmark: time and peak RSS (/usr/bin/time -v) to
//   1. write a synthetic ~2 GB bf16 Llama-shaped model with the streaming writer (patterned chunks,
//      never a whole tensor in memory),
//   2. stream-rewrite it with copySource (every tensor, original order, metadata kept) and check the
//      copy is byte-identical,
//   3. read one row range of the embedding matrix (readTensorRows).
// Peak RSS must stay below the largest tensor + 300 MB. The files are deleted at the end.
//
//   node --import tsx bench/io.ts [--dir <tmpdir>] [--layers N]     (what `npm run bench -- io` runs)
// Each phase runs in its own child process (`bench/io.ts phase <name> ...`) so RSS is per phase.
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { copySource, openSafetensors, readTensorRows, writeSafetensors } from '../src/io/safetensors.ts';
import { patternAt, patternSource, syntheticTensors } from './support/synthetic-model.ts';

const HIDDEN = 2048;
const EMBED = 'model.embed_tokens.weight';
/** ~2 GB at 12 layers: Llama-shaped, untied, embeddings 65,536 x 2048. */
const shapeWith = (layers: number) => ({ vocab: 65536, hidden: HIDDEN, layers, heads: 16, kvHeads: 4, intermediate: 5632, untied: true });

async function phase(name: string, args: string[]): Promise<void> {
  if (name === 'write') {
    const [file, layers] = args;
    const tensors = syntheticTensors(shapeWith(Number(layers)));
    await writeSafetensors(file, tensors.map((t, k) => patternSource(k, t.name, t.shape)), { format: 'pt' });
  } else if (name === 'rewrite') {
    const [src, dst] = args;
    const st = await openSafetensors(src);
    await writeSafetensors(dst, st.tensors.map((t) => copySource(st, t.name)), st.metadata);
  } else if (name === 'rows') {
    const [file, start, end] = args;
    const st = await openSafetensors(file);
    const a = Number(start);
    const b = Number(end);
    const rows = await readTensorRows(st, EMBED, a, b);
    const v = new Uint16Array(rows.buffer, rows.byteOffset, rows.byteLength / 2);
    const k = 0; // the embedding is tensor 0 in writing order
    for (let j = 0; j < v.length; j++) {
      if (v[j] !== patternAt(k, a * HIDDEN + j)) throw new Error(`row read mismatch at element ${j}`);
    }
    process.stdout.write(`read ${b - a} rows (${rows.byteLength} bytes), values verified\n`);
  } else {
    throw new Error(`unknown phase ${name}`);
  }
}

interface Measured { wallS: number; peakRssMB: number }

function timed(label: string, args: string[]): Measured {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, '--import', 'tsx', self, 'phase', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stderr}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  if (!rss || !wall) throw new Error(`could not parse /usr/bin/time -v output:\n${r.stderr}`);
  const wallS = Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]);
  if (r.stdout.trim()) process.stderr.write(`  ${r.stdout.trim()}\n`);
  return { wallS, peakRssMB: Number(rss[1]) / 1024 };
}

async function sameFiles(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  if (sa.size !== sb.size) return false;
  const ra = createReadStream(a, { highWaterMark: 8 << 20 })[Symbol.asyncIterator]();
  const rb = createReadStream(b, { highWaterMark: 8 << 20 });
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of rb) {
    let c = chunk as Buffer;
    while (c.length) {
      if (!pending.length) {
        const n = await ra.next();
        if (n.done) return false;
        pending = n.value as Buffer;
      }
      const k = Math.min(pending.length, c.length);
      if (!pending.subarray(0, k).equals(c.subarray(0, k))) return false;
      pending = pending.subarray(k);
      c = c.subarray(k);
    }
  }
  return true;
}

async function driver(argv: string[]): Promise<void> {
  if (!existsSync('/usr/bin/time')) throw new Error('/usr/bin/time is missing (apt-get install -y time)');
  const opt = (name: string, dflt: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const layers = Number(opt('--layers', '18'));
  const dir = await fsp.mkdtemp(path.join(opt('--dir', os.tmpdir()), 'bench-io-'));
  const src = path.join(dir, 'model.safetensors');
  const dst = path.join(dir, 'copy.safetensors');
  try {
    process.stderr.write(`writing the synthetic model (${layers} layers) to ${dir}\n`);
    const w = timed('write', ['write', src, String(layers)]);
    const size = (await fsp.stat(src)).size;
    const st = await openSafetensors(src);
    const largest = Math.max(...st.tensors.map((t) => t.byteLength));
    const r = timed('rewrite', ['rewrite', src, dst]);
    const identical = await sameFiles(src, dst);
    const rows = timed('rows', ['rows', src, '30000', '30256']);
    const limitMB = (largest + 300e6) / 2 ** 20; // largest tensor + 300 MB, in MiB
    const mb = (n: number) => (n / 2 ** 20).toFixed(0);
    const lines = [
      `file: ${(size / 1e9).toFixed(2)} GB (${mb(size)} MiB), ${st.tensors.length} bf16 tensors, largest ${mb(largest)} MiB; RSS limit = largest + 300 MB = ${limitMB.toFixed(0)} MiB`,
      '',
      '| phase | wall time | throughput | peak RSS |',
      '|---|---:|---:|---:|',
      `| write (streaming writer, patterned 4 MiB chunks) | ${w.wallS.toFixed(2)} s | ${(size / 2 ** 20 / w.wallS).toFixed(0)} MiB/s | ${w.peakRssMB.toFixed(0)} MiB |`,
      `| stream-rewrite (copySource, every tensor) | ${r.wallS.toFixed(2)} s | ${(size / 2 ** 20 / r.wallS).toFixed(0)} MiB/s | ${r.peakRssMB.toFixed(0)} MiB |`,
      `| read rows [30000, 30256) of ${EMBED} | ${rows.wallS.toFixed(2)} s | | ${rows.peakRssMB.toFixed(0)} MiB |`,
      '',
      `rewrite byte-identical: ${identical}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    const over = [w, r, rows].filter((m) => m.peakRssMB >= limitMB);
    if (!identical) throw new Error('the rewritten file differs from the source');
    if (over.length) throw new Error(`peak RSS above the limit of ${limitMB.toFixed(0)} MiB`);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

const [mode, ...rest] = process.argv.slice(2);
(mode === 'phase' ? phase(rest[0], rest.slice(1)) : driver(process.argv.slice(2))).catch((e: Error) => {
  process.stderr.write(`bench/io: ${e.message}\n`);
  process.exitCode = 1;
});
