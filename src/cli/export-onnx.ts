// `hack-tokenizer export-onnx`: write a model as ONNX (transformers.js layout: onnx/model.onnx +
// onnx/model.onnx_data beside config.json and the tokenizer), loadable by transformers.js and ORT.
import type { Command } from 'commander';
import { resolveModel } from '../io/hub.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { exportOnnx } from '../runtime/export.ts';
import { info, progressBar } from './progress.ts';

export function register(program: Command): void {
  program
    .command('export-onnx')
    .description('Export a model as ONNX in the transformers.js layout (onnx/model.onnx + external data, KV-cache I/O)')
    .requiredOption('--model <dir|repo-id>', 'model directory or Hugging Face repo id')
    .requiredOption('--out <dir>', 'output directory (replaced atomically)')
    .action(async (o: { model: string; out: string }) => {
      const model = await loadModelDir(await resolveModel(o.model));
      const bar = progressBar('export-onnx', 0, 'tensors');
      const r = await exportOnnx(model, o.out, { onProgress: (done, total) => { bar.setTotal(total); bar.update(done); } });
      bar.stop();
      info(`wrote ${o.out}/onnx/model.onnx (${r.graphBytes} bytes) and model.onnx_data (${(r.dataBytes / 1e6).toFixed(1)} MB, ${r.tensors} tensors)`);
    });
}
