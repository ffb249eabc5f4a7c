// The one model writer: every command that writes a model directory (extend, tune, the PyTorch
// engine's output, replace) describes how the new model differs from a source model, and this
// module streams the result. Tensors are copied shard by shard, in bounded chunks, dtype and
// sharding kept; edited matrices are streamed row-chunk by row-chunk with their new rows patched in,
// so memory stays bounded by the chunk size plus the rows the caller supplies.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { dtypeSize, fromFloat32, isFloatDType, toFloat32 } from './dtype.ts';
import { HackError } from './errors.ts';
import {
  copySource, readTensorBytes, readTensorRows, tensorInfo, writeSafetensors, type SafetensorsFile, type TensorSource,
} from './safetensors.ts';
import { INDEX_FILE } from './weights.ts';
import { EMBED_TENSOR, LM_HEAD_TENSOR, copySideFiles, type ModelDir, type TokenizerJson } from './model-dir.ts';

const CHUNK_BYTES = 16 << 20;

/** A row's content: float32 values (converted to the tensor's dtype) or raw bytes in that dtype. */
export type RowValues = Float32Array | Uint8Array;

/** How one 2-D matrix (embeddings, lm_head) changes. */
export interface MatrixEdit {
  /** Row count after the edit (default: unchanged). */
  rows?: number;
  /**
   * Where an output row comes from when `set` has nothing for it: `keep` (default) copies the old
   * row with the same index (rows past the old matrix must then all be in `set`); `gather` copies
   * old row `gather[r]` byte for byte (-1: the row must be in `set`).
   */
  gather?: Int32Array;
  /** Row index -> new content. */
  set?: Map<number, RowValues>;
}

/** A tensor replaced as a whole: float32 values in memory, or the same-named tensor of another file. */
export type TensorReplacement = Float32Array | SafetensorsFile;

export interface ModelWriteSpec {
  /** The model the output is derived from: tensors, shards, side files and config come from here. */
  source: ModelDir;
  /** Matrix edits by tensor name (EMBED_TENSOR, LM_HEAD_TENSOR). */
  edits?: Record<string, MatrixEdit>;
  /** Whole tensors replaced (same shape; values converted to the stored dtype). */
  replace?: Record<string, TensorReplacement>;
  /** tokenizer.json to write (default: the source's, copied byte for byte). */
  tokenizerJson?: TokenizerJson;
  /**
   * config.json to write (default: the source's; `vocab_size` follows the embedding matrix when its
   * row count changes).
   */
  config?: Record<string, unknown>;
  /** Extra files (name -> content); they also replace side files of the same name. */
  files?: Record<string, string | Uint8Array>;
  /** Side files not to carry over. */
  dropSideFiles?: string[];
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ModelWriteResult {
  files: string[];
  /** Embedding rows of the written model. */
  rows: number;
  tied: boolean;
}

function rowCount(st: SafetensorsFile, name: string): { rows: number; cols: number; rowBytes: number } {
  const t = tensorInfo(st, name);
  if (t.shape.length !== 2) throw new HackError('BAD_EDIT', `"${name}" has shape [${t.shape.join(', ')}]; only 2-D matrices can be edited by rows`, { file: st.path });
  return { rows: t.shape[0], cols: t.shape[1], rowBytes: t.shape[1] * dtypeSize(t.dtype) };
}

function rowBytesOf(v: RowValues, dtype: TensorSource['dtype'], cols: number, rowBytes: number, name: string, r: number): Uint8Array {
  if (v instanceof Float32Array) {
    if (v.length !== cols) throw new HackError('BAD_EDIT', `row ${r} of "${name}" has ${v.length} values, expected ${cols}`);
    return fromFloat32(v, dtype);
  }
  if (v.byteLength !== rowBytes) throw new HackError('BAD_EDIT', `row ${r} of "${name}" has ${v.byteLength} bytes, expected ${rowBytes}`);
  return v;
}

/** A matrix streamed with its edit applied. */
function editedSource(st: SafetensorsFile, name: string, edit: MatrixEdit): TensorSource {
  const t = tensorInfo(st, name);
  if (!isFloatDType(t.dtype)) throw new HackError('BAD_EDIT', `"${name}" has dtype ${t.dtype}; only float matrices can be edited`, { file: st.path });
  const { rows: oldRows, cols, rowBytes } = rowCount(st, name);
  const rows = edit.rows ?? oldRows;
  const set = edit.set ?? new Map<number, RowValues>();
  const gather = edit.gather;
  if (!Number.isSafeInteger(rows) || rows < 1) throw new HackError('BAD_EDIT', `"${name}": row count ${rows} must be a positive integer`);
  if (gather && gather.length !== rows) throw new HackError('BAD_EDIT', `"${name}": gather has ${gather.length} entries for ${rows} rows`);
  for (const r of set.keys()) if (!Number.isSafeInteger(r) || r < 0 || r >= rows) throw new HackError('BAD_EDIT', `"${name}": row ${r} is outside [0, ${rows})`);
  for (let r = 0; r < rows; r++) {
    if (set.has(r)) continue;
    const from = gather ? gather[r] : r < oldRows ? r : -1;
    if (from < 0 || from >= oldRows) throw new HackError('BAD_EDIT', `"${name}": no content for row ${r}`);
  }
  return {
    name,
    dtype: t.dtype,
    shape: [rows, cols],
    produce: async (sink) => {
      const step = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
      for (let a = 0; a < rows; a += step) {
        const b = Math.min(rows, a + step);
        let bytes: Uint8Array;
        if (!gather) {
          // old rows in place: one read for the part of the chunk inside the old matrix
          bytes = new Uint8Array((b - a) * rowBytes);
          if (a < oldRows) bytes.set(await readTensorRows(st, name, a, Math.min(b, oldRows)), 0);
        } else {
          bytes = new Uint8Array((b - a) * rowBytes);
          // gathered rows, read in runs of consecutive source ids
          let r = a;
          while (r < b) {
            const from = gather[r];
            if (from < 0 || set.has(r)) { r++; continue; }
            let e = r + 1;
            while (e < b && !set.has(e) && gather[e] === from + (e - r)) e++;
            bytes.set(await readTensorRows(st, name, from, from + (e - r)), (r - a) * rowBytes);
            r = e;
          }
        }
        for (let r = a; r < b; r++) {
          const v = set.get(r);
          if (v !== undefined) bytes.set(rowBytesOf(v, t.dtype, cols, rowBytes, name, r), (r - a) * rowBytes);
        }
        await sink(bytes);
      }
    },
  };
}

/** A tensor replaced as a whole, converted to the stored dtype in chunks. */
function replacedSource(st: SafetensorsFile, name: string, rep: TensorReplacement): TensorSource {
  const t = tensorInfo(st, name);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (rep instanceof Float32Array) {
    if (rep.length !== numel) throw new HackError('BAD_EDIT', `replacement of "${name}" has ${rep.length} values, expected ${numel} (shape [${t.shape.join(', ')}])`);
    return {
      name, dtype: t.dtype, shape: t.shape,
      produce: async (sink) => {
        const step = Math.max(1, Math.floor(CHUNK_BYTES / 4));
        for (let a = 0; a < numel; a += step) await sink(fromFloat32(rep.subarray(a, Math.min(numel, a + step)), t.dtype));
      },
    };
  }
  const r = tensorInfo(rep, name);
  if (r.shape.length !== t.shape.length || r.shape.some((d, i) => d !== t.shape[i])) {
    throw new HackError('BAD_EDIT', `replacement of "${name}" has shape [${r.shape.join(', ')}], expected [${t.shape.join(', ')}]`, { file: rep.path });
  }
  if (r.dtype === t.dtype) return { ...copySource(rep, name), name };
  if (!isFloatDType(r.dtype) || !isFloatDType(t.dtype)) throw new HackError('BAD_EDIT', `replacement of "${name}" has dtype ${r.dtype}, the model stores ${t.dtype}`, { file: rep.path });
  return {
    name, dtype: t.dtype, shape: t.shape,
    produce: async (sink) => {
      if (r.shape.length < 2) { await sink(fromFloat32(toFloat32(await readTensorBytes(rep, name), r.dtype), t.dtype)); return; }
      const lead = r.shape[0];
      const step = Math.max(1, Math.floor(CHUNK_BYTES / ((numel / lead) * dtypeSize(r.dtype))));
      for (let a = 0; a < lead; a += step) {
        const b = Math.min(lead, a + step);
        await sink(fromFloat32(toFloat32(await readTensorRows(rep, name, a, b), r.dtype), t.dtype));
      }
    },
  };
}

/** Write the model described by `spec` into `dir` (an empty directory, normally a temporary one). */
export async function writeModel(dir: string, spec: ModelWriteSpec): Promise<ModelWriteResult> {
  const { source } = spec;
  const edits = spec.edits ?? {};
  const replace = spec.replace ?? {};
  for (const name of [...Object.keys(edits), ...Object.keys(replace)]) {
    if (!source.weights.location.has(name)) throw new HackError('BAD_EDIT', `the model has no tensor "${name}"`, { file: source.dir });
    if (name in edits && name in replace) throw new HackError('BAD_EDIT', `"${name}" is both edited and replaced`);
  }
  if (source.tied && edits[LM_HEAD_TENSOR]) throw new HackError('BAD_EDIT', `the model is tied: it has no "${LM_HEAD_TENSOR}" to edit`, { file: source.dir });
  if (!source.tied) {
    const er = edits[EMBED_TENSOR]?.rows ?? source.embeddingRows;
    const hr = edits[LM_HEAD_TENSOR]?.rows ?? source.embeddingRows;
    if (er !== hr) throw new HackError('BAD_EDIT', `an untied model needs as many ${LM_HEAD_TENSOR} rows (${hr}) as ${EMBED_TENSOR} rows (${er})`);
  }
  const rows = edits[EMBED_TENSOR]?.rows ?? source.embeddingRows;

  const plan = source.weights.files.map((st) => ({
    st,
    sources: st.tensors.map((t): TensorSource => {
      if (edits[t.name]) return editedSource(st, t.name, edits[t.name]);
      if (replace[t.name]) return replacedSource(st, t.name, replace[t.name]);
      return copySource(st, t.name);
    }),
  }));
  let totalBytes = 0;
  for (const p of plan) for (const s of p.sources) totalBytes += s.shape.reduce((a, b) => a * b, 1) * dtypeSize(s.dtype);
  let done = 0;
  const tally = (src: TensorSource): TensorSource => ({
    ...src,
    produce: (sink) => src.produce(async (chunk) => {
      await sink(chunk);
      done += chunk.byteLength;
      spec.onProgress?.(done, totalBytes);
    }),
  });

  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  for (const { st, sources } of plan) {
    const name = path.basename(st.path);
    for (const s of sources) weightMap[s.name] = name;
    await writeSafetensors(path.join(dir, name), sources.map(tally), st.metadata ?? { format: 'pt' });
    files.push(name);
  }
  if (source.weights.sharded) {
    // The index's own metadata kept, total_size recomputed, weight_map in the original order.
    const index = JSON.parse(await fsp.readFile(path.join(source.dir, INDEX_FILE), 'utf8')) as { metadata?: Record<string, unknown>; weight_map: Record<string, string> };
    const ordered: Record<string, string> = {};
    for (const k of Object.keys(index.weight_map)) ordered[k] = weightMap[k];
    await fsp.writeFile(path.join(dir, INDEX_FILE), JSON.stringify({ metadata: { ...(index.metadata ?? {}), total_size: totalBytes }, weight_map: ordered }, null, 2) + '\n');
    files.push(INDEX_FILE);
  }

  const extra = spec.files ?? {};
  if (!('config.json' in extra)) {
    if (spec.config) await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(spec.config, null, 2) + '\n');
    else if (rows !== source.embeddingRows) await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...source.config.raw, vocab_size: rows }, null, 2) + '\n');
    else await fsp.copyFile(path.join(source.dir, 'config.json'), path.join(dir, 'config.json'));
    files.push('config.json');
  }
  if (!('tokenizer.json' in extra)) {
    if (spec.tokenizerJson) await fsp.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(spec.tokenizerJson, null, 2) + '\n');
    else await fsp.copyFile(source.tokenizerPath, path.join(dir, 'tokenizer.json'));
    files.push('tokenizer.json');
  }
  for (const [name, content] of Object.entries(extra)) {
    if (name.includes('/') || name.includes('\\') || name === '..' || name === '.') throw new HackError('BAD_EDIT', `extra file name ${JSON.stringify(name)} must be a plain file name`);
    await fsp.writeFile(path.join(dir, name), content);
    files.push(name);
  }
  files.push(...(await copySideFiles(source.dir, dir, [...(spec.dropSideFiles ?? []), ...Object.keys(extra)])));
  return { files, rows, tied: source.tied };
}
