// Export a model as a transformers.js-style directory: config + tokenizer files beside
// onnx/model.onnx and onnx/model.onnx_data (the weights in their stored dtype, page-aligned so ORT
// can map them). ORT refuses external data outside the graph's folder, so the weights are copied.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { copySideFiles, type ModelDir } from '../io/model-dir.ts';
import { weightInfo, readWeightBytes } from '../io/weights.ts';
import { checkOutput, writeOutputDir } from '../io/output.ts';
import { buildGraph, FULL_VARIANT, type GraphVariant } from '../runtime/graph.ts';

export const ONNX_FILE = 'model.onnx';
export const ONNX_DATA_FILE = 'model.onnx_data';
const ALIGN = 4096;

export interface ExportResult { graphBytes: number; dataBytes: number; tensors: number }

export async function exportOnnx(
  model: ModelDir,
  outDir: string,
  opts: { variant?: GraphVariant; force?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<ExportResult> {
  const req = { path: outDir, command: 'export-onnx', inputs: [model.dir], force: opts.force };
  await checkOutput({ ...req, kind: 'dir' });
  const layout: Array<{ tensor: string; offset: number; length: number }> = [];
  let end = 0;
  const built = buildGraph(model, opts.variant ?? FULL_VARIANT, (tensor) => {
    const info = weightInfo(model.weights, tensor);
    const offset = Math.ceil(end / ALIGN) * ALIGN;
    end = offset + info.byteLength;
    layout.push({ tensor, offset, length: info.byteLength });
    return { location: ONNX_DATA_FILE, offset, length: info.byteLength };
  });
  // the output policy: never over or inside the model it exports (an in-place export would delete its weights)
  await writeOutputDir(req, async (tmp) => {
    const config = { ...model.config.raw };
    config['transformers.js_config'] = { ...(config['transformers.js_config'] as object ?? {}), dtype: 'fp32', use_external_data_format: true };
    await fsp.writeFile(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    await fsp.copyFile(model.tokenizerPath, path.join(tmp, 'tokenizer.json'));
    await copySideFiles(model.dir, tmp);
    await fsp.mkdir(path.join(tmp, 'onnx'));
    await fsp.writeFile(path.join(tmp, 'onnx', ONNX_FILE), built.bytes);
    const fh = await fsp.open(path.join(tmp, 'onnx', ONNX_DATA_FILE), 'w');
    try {
      let done = 0;
      for (const { tensor, offset } of layout) {
        const bytes = await readWeightBytes(model.weights, tensor);
        await fh.write(bytes, 0, bytes.length, offset);
        opts.onProgress?.(++done, layout.length);
      }
      await fh.truncate(end);
    } finally {
      await fh.close();
    }
  }, true);
  return { graphBytes: built.bytes.length, dataBytes: end, tensors: layout.length };
}
