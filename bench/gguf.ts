// llama.cpp (node-llama-cpp, CPU) against our ORT engine on the demo model, side by side in one run:
// the same 128-token prompt, 64 greedy decode steps, the same threads, batch 1. Ours in float32 and
// int8; llama.cpp on our GGUF exports in f32, f16 and q8_0. Runs are interleaved and the best of
// --reps is kept; rates per wall-clock second and per CPU-second of this process (both engines run
// in-process, so CPU time counts only their work on a shared machine). The memory-bandwidth bound
// of decoding: copy bandwidth / bytes of weights read per token (each matrix once; the embedding
// row gather is negligible, but the tied head reads the whole embedding).
//
//   node --import tsx bench/gguf.ts [--threads 1] [--prompt-tokens 128] [--new-tokens 64] [--reps 3]
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, type LlamaContext } from 'node-llama-cpp';
import { loadEngine, type Engine } from '../src/runtime/engine.ts';
import { argmax } from '../src/runtime/sampling.ts';
import { encode, loadTokenizer } from '../src/tokenizer/load.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { exportGguf, type GgufExportType } from '../src/export/gguf.ts';
import { openGguf } from '../src/io/gguf.ts';
import { parameterCount } from '../src/io/weights.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demo = path.join(root, 'assets', 'models', 'tiny-en-llama');
const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: '1' },
    'prompt-tokens': { type: 'string', default: '128' },
    'new-tokens': { type: 'string', default: '64' },
    reps: { type: 'string', default: '3' },
  },
});
const threads = Number(args.threads);
const promptTokens = Number(args['prompt-tokens']);
const newTokens = Number(args['new-tokens']);
const reps = Number(args.reps);
const log = (s: string) => process.stderr.write(s + '\n');
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

function copyBandwidth(): number {
  const n = 256 << 20;
  const src = new Uint8Array(n).fill(1);
  const dst = new Uint8Array(n);
  dst.set(src);
  let best = Infinity;
  for (let r = 0; r < 5; r++) { const t = performance.now(); dst.set(src); best = Math.min(best, performance.now() - t); }
  return (2 * n) / (best / 1000);
}

interface Run { prefill: number; prefillCpu: number; decode: number; decodeCpu: number; ids: number[] }
const NONE: Run = { prefill: Infinity, prefillCpu: Infinity, decode: Infinity, decodeCpu: Infinity, ids: [] };
const best = (a: Run, b: Run): Run => ({
  prefill: Math.min(a.prefill, b.prefill), prefillCpu: Math.min(a.prefillCpu, b.prefillCpu),
  decode: Math.min(a.decode, b.decode), decodeCpu: Math.min(a.decodeCpu, b.decodeCpu), ids: b.ids,
});

async function oursOnce(engine: Engine, prompt: number[]): Promise<Run> {
  const dec = engine.decoder(1);
  let t = performance.now();
  let c = cpu();
  let logits = await dec.feed([prompt]);
  const prefill = (performance.now() - t) / 1000;
  const prefillCpu = cpu() - c;
  const ids: number[] = [];
  t = performance.now();
  c = cpu();
  for (let i = 0; i <= newTokens; i++) {
    const next = argmax(logits[0]);
    ids.push(next);
    if (i === newTokens) break;
    logits = await dec.feed([[next]]);
  }
  return { prefill, prefillCpu, decode: (performance.now() - t) / 1000, decodeCpu: cpu() - c, ids };
}

async function llamaOnce(ctx: LlamaContext, prompt: number[]): Promise<Run> {
  const seq = ctx.getSequence();
  try {
    const ids: number[] = [];
    let t = performance.now();
    let c = cpu();
    let prefill = 0;
    let prefillCpu = 0;
    for await (const id of seq.evaluate(prompt as never, { temperature: 0, yieldEogToken: true })) {
      ids.push(Number(id));
      if (ids.length === 1) { prefill = (performance.now() - t) / 1000; prefillCpu = cpu() - c; t = performance.now(); c = cpu(); }
      if (ids.length === newTokens + 1) break;
    }
    return { prefill, prefillCpu, decode: (performance.now() - t) / 1000, decodeCpu: cpu() - c, ids };
  } finally { seq.dispose(); }
}

const bw = copyBandwidth();
log(`copy bandwidth ${(bw / 1e9).toFixed(2)} GB/s (read + write)`);
const tok = await loadTokenizer(path.join(demo, 'tokenizer.json'));
const text = await fsp.readFile(path.join(root, 'assets', 'corpora', 'en-books-heldout.txt'), 'utf8');
const prompt = (await encode(tok, text.slice(0, 20_000))).slice(0, promptTokens);
const model = await loadModelDir(demo);
const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bench-gguf-'));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });

interface Contender { label: string; bytes: number; run: () => Promise<Run>; best: Run; dispose: () => Promise<void> }
const contenders: Contender[] = [];
const params = parameterCount(model.weights);
const embed = model.embeddingRows * model.hiddenSize;
// float32 bytes read per token by our engine (int8: the decoder layers' matrices at 1 byte, head and norms float32)
const f32Bytes = 4 * (params - embed + (model.tied ? embed : 0));
const layerParams = params - embed - model.hiddenSize * (1 + 2 * model.config.numLayers);
const int8Bytes = layerParams + 4 * (params - layerParams - embed + (model.tied ? embed : 0));
for (const precision of ['float32', 'int8'] as const) {
  const engine = await loadEngine(demo, { threads, precision });
  contenders.push({ label: `ours ORT ${precision}`, bytes: precision === 'float32' ? f32Bytes : int8Bytes, run: () => oursOnce(engine, prompt), best: NONE, dispose: () => engine.dispose() });
}
for (const type of ['f32', 'f16', 'q8_0'] as GgufExportType[]) {
  const file = path.join(dir, `demo-${type}.gguf`);
  await exportGguf(model, file, { type });
  const g = await openGguf(file);
  // every tensor is read once per token except the gathered embedding, which the tied head reads in full
  const bytes = g.tensors.reduce((s, t) => s + t.byteLength, 0);
  const m = await llama.loadModel({ modelPath: file });
  const ctx = await m.createContext({ contextSize: 512, threads, sequences: 1 });
  contenders.push({ label: `llama.cpp ${type}`, bytes, run: () => llamaOnce(ctx, prompt), best: NONE, dispose: async () => { await ctx.dispose(); await m.dispose(); } });
}
for (const c of contenders) await c.run(); // warm-up
for (let r = 0; r < reps; r++) for (const c of contenders) c.best = best(c.best, await c.run());

const ref = contenders[0].best.ids;
const lines = [
  `Demo model tiny-en-llama (${(params / 1e6).toFixed(1)}M params), prompt ${promptTokens} tokens, ${newTokens} greedy decode steps, batch 1, ${threads} thread(s), best of ${reps}; ${new Date().toISOString().slice(0, 16)} UTC, load average ${os.loadavg()[0].toFixed(1)}.`,
  `Copy bandwidth ${(bw / 1e9).toFixed(2)} GB/s (bytes read + written).`,
  '',
  '| engine | weights read per token | bandwidth bound, tok/s | prefill tok/s | decode tok/s (wall) | decode tok/s per CPU-s | % of bound (wall) | greedy ids = ours float32 |',
  '|---|---|---|---|---|---|---|---|',
];
for (const c of contenders) {
  const b = c.best;
  const bound = bw / c.bytes;
  const same = b.ids.length === ref.length && b.ids.every((x, i) => x === ref[i]);
  let agree = 0;
  while (agree < ref.length && b.ids[agree] === ref[agree]) agree++;
  lines.push(`| ${c.label} | ${(c.bytes / 1e6).toFixed(1)} MB | ${bound.toFixed(0)} | ${(promptTokens / b.prefill).toFixed(0)} | ${(newTokens / b.decode).toFixed(0)} | ${(newTokens / b.decodeCpu).toFixed(0)} | ${(100 * (newTokens / b.decode) / bound).toFixed(0)}% | ${same ? 'yes' : `first ${agree} of ${ref.length}`} |`);
}
const ours = contenders[0].best;
const lf32 = contenders[2].best;
lines.push('', `Decode ratio llama.cpp f32 / ours float32: ${(ours.decode / lf32.decode).toFixed(2)}x (wall), ${(ours.decodeCpu / lf32.decodeCpu).toFixed(2)}x (CPU).`);
process.stdout.write(lines.join('\n') + '\n');
for (const c of contenders) await c.dispose();
await llama.dispose();
await fsp.rm(dir, { recursive: true, force: true });
