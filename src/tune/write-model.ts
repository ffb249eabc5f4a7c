// Write a model directory equal to `src` except for some rows of the embedding / lm_head matrices:
// every other tensor (and every other row) is streamed over byte for byte.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fromFloat32, dtypeSize } from '../io/dtype.ts';
import { copySource, readTensorRows, tensorInfo, writeSafetensors, type SafetensorsFile, type TensorSource } from '../io/safetensors.ts';
import { copySideFiles, type ModelDir } from '../io/model-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { INDEX_FILE, SINGLE_FILE } from '../io/weights.ts';

export interface RowReplacement {
  /** Tensor name (model.embed_tokens.weight or lm_head.weight). */
  tensor: string;
  ids: number[];
  /** [ids.length x cols] float32 values, converted to the tensor's dtype. */
  values: Float32Array;
}

function patchedSource(st: SafetensorsFile, name: string, rep: RowReplacement): TensorSource {
  const t = tensorInfo(st, name);
  const [rows, cols] = t.shape;
  const rowBytes = cols * dtypeSize(t.dtype);
  const where = new Map(rep.ids.map((id, j) => [id, j]));
  for (const id of rep.ids) if (id < 0 || id >= rows) throw new Error(`${name}: row ${id} is outside [0, ${rows})`);
  if (rep.values.length !== rep.ids.length * cols) throw new Error(`${name}: ${rep.values.length} values for ${rep.ids.length} rows of ${cols}`);
  const step = Math.max(1, Math.floor((16 << 20) / rowBytes));
  return {
    name,
    dtype: t.dtype,
    shape: t.shape,
    produce: async (sink) => {
      for (let s = 0; s < rows; s += step) {
        const e = Math.min(rows, s + step);
        const bytes = new Uint8Array(await readTensorRows(st, name, s, e));
        for (let r = s; r < e; r++) {
          const j = where.get(r);
          if (j === undefined) continue;
          bytes.set(fromFloat32(rep.values.subarray(j * cols, (j + 1) * cols), t.dtype), (r - s) * rowBytes);
        }
        await sink(bytes);
      }
    },
  };
}

/** Write `target` (atomically) as a copy of `model` with the given rows replaced, plus extra files. */
export async function writeModelWithRows(model: ModelDir, target: string, reps: RowReplacement[], extraFiles: Record<string, string> = {}): Promise<void> {
  const byTensor = new Map<string, RowReplacement>();
  for (const r of reps) {
    if (!model.weights.location.has(r.tensor)) throw new Error(`${model.dir}: no tensor "${r.tensor}" to replace rows in`);
    byTensor.set(r.tensor, r);
  }
  await writeDirAtomic(target, async (tmp) => {
    for (const st of model.weights.files) {
      const meta = st.metadata ?? { format: 'pt' };
      const sources = st.tensors.map((t) => {
        const rep = byTensor.get(t.name);
        return rep ? patchedSource(st, t.name, rep) : copySource(st, t.name);
      });
      await writeSafetensors(path.join(tmp, model.weights.sharded ? path.basename(st.path) : SINGLE_FILE), sources, meta);
    }
    if (model.weights.sharded) await fsp.copyFile(path.join(model.dir, INDEX_FILE), path.join(tmp, INDEX_FILE));
    await fsp.copyFile(path.join(model.dir, 'config.json'), path.join(tmp, 'config.json'));
    await fsp.copyFile(model.tokenizerPath, path.join(tmp, 'tokenizer.json'));
    await copySideFiles(model.dir, tmp);
    for (const [name, text] of Object.entries(extraFiles)) await fsp.writeFile(path.join(tmp, name), text);
  });
}
