// Graph variants on the demo model: the fused graph (opset-23 Attention + RotaryEmbedding, fused
// QKV / gate-up projections, FusedMatMul), the hybrid one (the same with MatMul/Softmax attention)
// and the all-elementary-operator opset-17 graph; `fused-wt` = fused with MatMul on [in, out] weight
// copies (GraphVariant.matmul 'transposed', which ORT prepacks), the engine's default for small models.
// The sessions live in one process with 1 intra-op thread and are stepped alternately; each decode
// step is timed in CPU time (user + system), so other jobs on a shared machine do not count.
//
//   node --import tsx bench/runtime-graphs.ts [--steps 48] [--reps 3]     (`npm run bench -- runtime-graphs`)
import * as ort from 'onnxruntime-node';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModelDir } from '../src/io/model-dir.ts';
import { buildGraph, safetensorsLocator } from '../src/runtime/graph.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '48' }, reps: { type: 'string', default: '3' } } });
const steps = Number(args.steps);
const reps = Number(args.reps);
const model = await loadModelDir(path.join(root, 'assets', 'models', 'tiny-en-llama'));
const dir = path.resolve(model.dir);
const c = model.config;
const P = 128;
const cpuMs = (f: () => Promise<void>) => async () => { const u0 = process.cpuUsage(); await f(); const u = process.cpuUsage(u0); return (u.user + u.system) / 1000; };

interface Arm { name: string; B: number; s: ort.InferenceSession; past: Record<string, ort.Tensor>; total: number; decode: number[]; prefill: number[] }

async function arm(ops: 'fused' | 'plain' | 'hybrid', B: number, matmul: 'stored' | 'transposed' = 'stored'): Promise<Arm> {
  const built = buildGraph(model, { logits: 'last', hidden: false, cache: true, targets: false, ops, matmul }, safetensorsLocator(model, dir));
  const s = await ort.InferenceSession.create(built.bytes, {
    intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    extra: { session: { model_external_initializers_file_folder_path: dir } },
  });
  return { name: `${ops}${matmul === 'transposed' ? '-wt' : ''} B=${B}`, B, s, past: {}, total: 0, decode: [], prefill: [] };
}

async function step(a: Arm, S: number): Promise<void> {
  const B = a.B;
  a.total += S;
  const out = await a.s.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: B * S }, (_, i) => BigInt(10 + ((i * 7) % 1000))), [B, S]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(B * a.total).fill(1n), [B, a.total]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: B * S }, (_, i) => BigInt(a.total - S + (i % S))), [B, S]),
    ...a.past,
  });
  a.past = {};
  for (let l = 0; l < c.numLayers; l++) for (const kv of ['key', 'value']) a.past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`] as ort.Tensor;
}

const lines: string[] = [];
for (const B of [1, 16]) {
  const arms = [await arm('plain', B), await arm('fused', B), await arm('fused', B, 'transposed'), await arm('hybrid', B)];
  for (let r = 0; r < reps; r++) {
    for (const a of arms) {
      a.total = 0;
      a.past = {};
      for (let l = 0; l < c.numLayers; l++) for (const kv of ['key', 'value']) {
        a.past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [B, c.numKvHeads, 0, c.headDim]);
      }
      a.prefill.push(await cpuMs(() => step(a, P))());
    }
    for (let i = 0; i < steps; i++) for (const a of arms) a.decode.push(await cpuMs(() => step(a, 1))());
  }
  const med = (x: number[]) => x.slice().sort((p, q) => p - q)[x.length >> 1];
  for (const a of arms) {
    lines.push(`| ${a.name} | ${med(a.decode).toFixed(2)} ms (${((1000 * B) / med(a.decode)).toFixed(0)} tok/s) | ${Math.min(...a.prefill).toFixed(1)} ms (${((1000 * B * P) / Math.min(...a.prefill)).toFixed(0)} tok/s) |`);
    await a.s.release();
  }
}
process.stdout.write([
  `### Runtime graph variants (bench/runtime-graphs.ts) — ${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? 'cpu'}, 1 thread, CPU time`,
  '',
  `Demo model, prompt ${P} tokens, ${steps} decode steps x ${reps}, arms stepped alternately.`,
  '',
  '| graph | decode step, median CPU | prefill, best CPU |',
  '|---|---|---|',
  ...lines,
  '',
].join('\n'));
