// A tuned model is its source with some rows of the embedding / lm_head matrices replaced: written
// through the one model writer (every other tensor and row streamed over byte for byte).
import { writeOutputDir, type OutputRequest } from '../io/output.ts';
import type { ModelDir } from '../io/model-dir.ts';
import { HackError } from '../io/errors.ts';
import { writeModel, type MatrixEdit } from '../io/model-writer.ts';

export interface RowReplacement {
  /** Tensor name (model.embed_tokens.weight or lm_head.weight). */
  tensor: string;
  ids: number[];
  /** [ids.length x cols] float32 values, converted to the tensor's dtype. */
  values: Float32Array;
}

/** Write the output (atomically, by the output policy) as a copy of `model` with the given rows replaced, plus extra files. */
export async function writeModelWithRows(model: ModelDir, out: Omit<OutputRequest, 'kind'>, reps: RowReplacement[], extraFiles: Record<string, string> = {}): Promise<void> {
  const edits: Record<string, MatrixEdit> = {};
  for (const r of reps) {
    const cols = model.hiddenSize;
    if (r.values.length !== r.ids.length * cols) throw new HackError('BAD_EDIT', `${r.tensor}: ${r.values.length} values for ${r.ids.length} rows of ${cols}`);
    const set = new Map<number, Float32Array>();
    r.ids.forEach((id, j) => set.set(id, r.values.subarray(j * cols, (j + 1) * cols)));
    edits[r.tensor] = { set };
  }
  await writeOutputDir(out, async (tmp) => { await writeModel(tmp, { source: model, edits, files: extraFiles }); });
}
