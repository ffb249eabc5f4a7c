// `hack-tokenizer export-onnx`: write a model as ONNX (transformers.js layout: onnx/model.onnx +
// onnx/model.onnx_data beside config.json and the tokenizer), loadable by transformers.js and ORT.
import type { Command } from 'commander';
import { loadModelDir } from '../io/model-dir.ts';
import { exportOnnx } from '../export/onnx.ts';
import { info, progressBar } from './progress.ts';
import { resolveModelForCli } from './download.ts';
import { FORCE, MODEL, OUT, command } from './options.ts';

export function register(program: Command): void {
  command(program, 'export-onnx', 'Export a model as ONNX in the transformers.js layout (onnx/model.onnx + external data, KV-cache I/O)', [
    MODEL(), OUT('<dir>', 'output directory (a new or empty directory; written atomically)'), FORCE,
  ], async (o) => {
    const model = await loadModelDir(await resolveModelForCli(o.model as string));
    const bar = progressBar('export-onnx', 0, 'tensors');
    const r = await exportOnnx(model, o.out as string, { force: o.force as boolean, onProgress: (done, total) => { bar.setTotal(total); bar.update(done); } });
    bar.stop();
    info(`wrote ${o.out}/onnx/model.onnx (${r.graphBytes} bytes) and model.onnx_data (${(r.dataBytes / 1e6).toFixed(1)} MB, ${r.tensors} tensors)`);
  });
}
