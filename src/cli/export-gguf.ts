// `hack-tokenizer export-gguf`: write a model as one GGUF file for llama.cpp (and Ollama, LM Studio,
// node-llama-cpp), its tokenizer included (extended vocabularies too).
import type { Command } from 'commander';
import { loadModelDir } from '../io/model-dir.ts';
import { exportGguf, GGUF_TYPES, type GgufExportType } from '../export/gguf.ts';
import { info, progressBar } from './progress.ts';
import { resolveModelForCli } from './download.ts';
import { FORCE, MODEL, OUT, command } from './options.ts';

export function register(program: Command): void {
  command(program, 'export-gguf', 'Export a model as GGUF for llama.cpp / Ollama (llama, SmolLM2/3, Qwen2; byte-level BPE tokenizers, extended ones too)', [
    MODEL(), OUT('<file.gguf>', 'output file (written atomically)'),
    { key: 'type', kind: 'choice', choices: GGUF_TYPES, default: 'f16', doc: 'weight type of the matrices (norms and biases stay f32; q8_0: 32-value blocks with an f16 scale)' },
    FORCE,
  ], async (o) => {
    const model = await loadModelDir(await resolveModelForCli(o.model as string));
    const bar = progressBar('export-gguf', 0, 'tensors');
    const r = await exportGguf(model, o.out as string, {
      type: o.type as GgufExportType, force: o.force as boolean,
      onProgress: (done, total) => { bar.setTotal(total); bar.update(done); },
    });
    bar.stop();
    for (const w of r.warnings) info(`warning: ${w}`);
    info(`wrote ${o.out} (${(r.bytes / 1e6).toFixed(1)} MB, ${r.arch}, ${r.type}, ${r.tensors} tensors, ${r.vocab} tokens, ${r.merges} merges, pre-tokenizer "${r.pre}")`);
  });
}
