// llama.cpp (node-llama-cpp, CPU) against our ORT engine on the demo model, side by side in one run:
// the same 128-token prompt, 64 greedy decode steps, the same threads, batch 1 (or --batch N: N different
// 128-token slices of the text decoded together; ours through one engine.decoder(N), llama.cpp through one
// context with N sequences evaluated concurrently, which node-llama-cpp batches into one llama_decode per
// step; rates are then aggregate over the N sequences). Ours in float32 and
// int8; llama.cpp on our GGUF exports in f32, f16 and q8_0. Runs are interleaved and the best of
// --reps is kept; rates per wall-clock second and per CPU-second of this process (both engines run
// in-process, so CPU time counts only their work on a shared machine). The memory-bandwidth bound
// of decoding: copy bandwidth / bytes of weights read per token (each matrix once; the embedding
// row gather is negligible, but the tied head reads the whole embedding).
//
//   node --import tsx bench/gguf.ts [--threads 1] [--batch 1] [--prompt-tokens 128] [--new-tokens 64] [--reps 3]
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
    batch: { type: 'string', default: '1' },
    'prompt-tokens': { type: 'string', default: '128' },
    'new-tokens': { type: 'string', default: '64' },
    reps: { type: 'string', default: '3' },
  },
});
const threads = Number(args.threads);
const promptTokens = Number(args['prompt-tokens']);
const newTokens = Number(args['new-tokens']);
const reps = Number(args.reps);
const batch = Number(args.batch);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer, got ${args.reps}`);
if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got ${args.batch}`);
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

// ids: the greedy ids of each sequence (one list per prompt)
interface Run { prefill: number; prefillCpu: number; decode: number; decodeCpu: number; ids: number[][] }
const NONE: Run = { prefill: Infinity, prefillCpu: Infinity, decode: Infinity, decodeCpu: Infinity, ids: [] };
const best = (a: Run, b: Run): Run => ({
  prefill: Math.min(a.prefill, b.prefill), prefillCpu: Math.min(a.prefillCpu, b.prefillCpu),
  decode: Math.min(a.decode, b.decode), decodeCpu: Math.min(a.decodeCpu, b.decodeCpu), ids: b.ids,
});

// all prompts have promptTokens tokens, so the batched prefill is one call with no padding
async function oursOnce(engine: Engine, prompts: number[][]): Promise<Run> {
  const dec = engine.decoder(prompts.length);
  let t = performance.now();
  let c = cpu();
  let logits = await dec.feed(prompts);
  const prefill = (performance.now() - t) / 1000;
  const prefillCpu = cpu() - c;
  const ids: number[][] = prompts.map(() => []);
  t = performance.now();
  c = cpu();
  for (let i = 0; i <= newTokens; i++) {
    const next = logits.map((l) => argmax(l));
    next.forEach((x, b) => ids[b].push(x));
    if (i === newTokens) break;
    logits = await dec.feed(next.map((x) => [x]));
  }
  return { prefill, prefillCpu, decode: (performance.now() - t) / 1000, decodeCpu: cpu() - c, ids };
}

// N sequences of one context evaluated concurrently, in lock step as ours: each step queues one
// controlledEvaluate per sequence in the same tick, which node-llama-cpp dispatches as one llama_decode
// (the prefill of all prompts, then N tokens per decode step). Sequence.evaluate()'s generators drifted
// apart by one token (its dispatch loop takes whatever is queued when a decode and its sampling end: at
// batch 4, 3 tokens per llama_decode and 11 calls for 8 steps), so they are not used here.
const greedy = { generateNext: { token: true, options: { temperature: 0 } } } as const;
async function llamaOnce(ctx: LlamaContext, prompts: number[][]): Promise<Run> {
  const seqs = prompts.map(() => ctx.getSequence());
  const step = async (inputs: number[][]): Promise<number[]> => {
    const outs = await Promise.all(seqs.map((seq, b) => {
      const inp = inputs[b];
      return seq.controlledEvaluate([...inp.slice(0, -1), [inp[inp.length - 1], greedy]] as never);
    }));
    return outs.map((o, b) => Number(o[inputs[b].length - 1]?.next.token));
  };
  try {
    let t = performance.now();
    let c = cpu();
    let next = await step(prompts);
    const prefill = (performance.now() - t) / 1000;
    const prefillCpu = cpu() - c;
    const ids: number[][] = prompts.map(() => []);
    t = performance.now();
    c = cpu();
    for (let i = 0; i <= newTokens; i++) {
      next.forEach((x, b) => ids[b].push(x));
      if (i === newTokens) break;
      next = await step(next.map((x) => [x]));
    }
    return { prefill, prefillCpu, decode: (performance.now() - t) / 1000, decodeCpu: cpu() - c, ids };
  } finally { for (const seq of seqs) seq.dispose(); }
}

const bw = copyBandwidth();
log(`copy bandwidth ${(bw / 1e9).toFixed(2)} GB/s (read + write)`);
const tok = await loadTokenizer(path.join(demo, 'tokenizer.json'));
const text = await fsp.readFile(path.join(root, 'assets', 'corpora', 'en-books-heldout.txt'), 'utf8');
// batch 1: the first promptTokens tokens of the text (as before --batch); batch N: N consecutive slices
const textIds = await encode(tok, text.slice(0, Math.max(20_000, 8 * batch * promptTokens)));
if (textIds.length < batch * promptTokens) throw new Error(`the held-out text has ${textIds.length} tokens, --batch ${batch} needs ${batch * promptTokens}`);
const prompts = Array.from({ length: batch }, (_, b) => textIds.slice(b * promptTokens, (b + 1) * promptTokens));
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
  contenders.push({ label: `ours ORT ${precision}`, bytes: precision === 'float32' ? f32Bytes : int8Bytes, run: () => oursOnce(engine, prompts), best: NONE, dispose: () => engine.dispose() });
}
for (const type of ['f32', 'f16', 'q8_0'] as GgufExportType[]) {
  const file = path.join(dir, `demo-${type}.gguf`);
  await exportGguf(model, file, { type });
  const g = await openGguf(file);
  // every tensor is read once per token except the gathered embedding, which the tied head reads in full
  const bytes = g.tensors.reduce((s, t) => s + t.byteLength, 0);
  const m = await llama.loadModel({ modelPath: file });
  // batchSize: all N prompts fit one llama_decode, as they fit one call of ours
  const ctx = await m.createContext({ contextSize: 512, threads, sequences: batch, batchSize: Math.max(512, batch * promptTokens) });
  // count llama_decode calls (an internal of node-llama-cpp, for this check only): with batching,
  // a run is 1 prefill decode + newTokens decode steps whatever N is
  // (the addon's methods are read-only, so the context's handle is replaced by a counting proxy)
  const holder = ctx as unknown as { _ctx: Record<string, unknown> };
  const native = holder._ctx;
  let decodes = 0;
  const sizes: number[] = [];
  holder._ctx = new Proxy(native, {
    get: (target, key) => {
      const v = Reflect.get(target, key, target);
      if (typeof v !== 'function') return v;
      if (key === 'decodeBatch') return (...a: unknown[]) => { decodes++; return v.apply(target, a); };
      if (key === 'initBatch') return (...a: unknown[]) => { sizes.push(Number(a[0])); return v.apply(target, a); };
      return v.bind(target);
    },
  });
  contenders.push({ label: `llama.cpp ${type}`, bytes, run: async () => {
    decodes = 0;
    sizes.length = 0;
    const r = await llamaOnce(ctx, prompts);
    log(`llama.cpp ${type} batch ${batch}: ${decodes} llama_decode calls (1 prefill + ${newTokens} steps if batched), tokens per call ${[...new Set(sizes)].join(', ')}`);
    return r;
  }, best: NONE, dispose: async () => { await ctx.dispose(); await m.dispose(); } });
}
for (const c of contenders) await c.run(); // warm-up
for (let r = 0; r < reps; r++) for (const c of contenders) c.best = best(c.best, await c.run());

const ref = contenders[0].best.ids;
// per sequence: equal to ours float32's ids for the same prompt, else how many leading ids agree
function agreement(ids: number[][]): string {
  const prefixes = ref.map((r, b) => { let k = 0; while (k < r.length && ids[b]?.[k] === r[k]) k++; return k; });
  const equal = prefixes.filter((k, b) => k === ref[b].length && ids[b].length === k).length;
  if (equal === ref.length) return ref.length === 1 ? 'yes' : `yes (${equal}/${ref.length} sequences)`;
  if (ref.length === 1) return `first ${prefixes[0]} of ${ref[0].length}`;
  return `${equal}/${ref.length} sequences; shortest agreeing prefix ${Math.min(...prefixes)} of ${ref[0].length}`;
}
const prefillN = batch * promptTokens;
const decodeN = batch * newTokens;
const lines = [
  `Demo model tiny-en-llama (${(params / 1e6).toFixed(1)}M params), prompt ${promptTokens} tokens, ${newTokens} greedy decode steps, batch ${batch}, ${threads} thread(s), best of ${reps}; ${new Date().toISOString().slice(0, 16)} UTC, load average ${os.loadavg()[0].toFixed(1)}.`,
  `Copy bandwidth ${(bw / 1e9).toFixed(2)} GB/s (bytes read + written).${batch > 1 ? ` Rates are aggregate over the ${batch} sequences; the bound is ${batch} tokens per read of the weights.` : ''}`,
  '',
  '| engine | weights read per step | bandwidth bound, tok/s | prefill tok/s (wall) | prefill tok/s per CPU-s | decode tok/s (wall) | decode tok/s per CPU-s | % of bound (wall) | greedy ids = ours float32 |',
  '|---|---|---|---|---|---|---|---|---|',
];
for (const c of contenders) {
  const b = c.best;
  const bound = batch * bw / c.bytes;
  lines.push(`| ${c.label} | ${(c.bytes / 1e6).toFixed(1)} MB | ${bound.toFixed(0)} | ${(prefillN / b.prefill).toFixed(0)} | ${(prefillN / b.prefillCpu).toFixed(0)} | ${(decodeN / b.decode).toFixed(0)} | ${(decodeN / b.decodeCpu).toFixed(0)} | ${(100 * (decodeN / b.decode) / bound).toFixed(0)}% | ${agreement(b.ids)} |`);
}
const ours = contenders[0].best;
const lf32 = contenders[2].best;
lines.push('', `Decode ratio llama.cpp f32 / ours float32 at batch ${batch}: ${(ours.decode / lf32.decode).toFixed(2)}x (wall), ${(ours.decodeCpu / lf32.decodeCpu).toFixed(2)}x (CPU); prefill ${(ours.prefill / lf32.prefill).toFixed(2)}x (wall), ${(ours.prefillCpu / lf32.prefillCpu).toFixed(2)}x (CPU).`);
process.stdout.write(lines.join('\n') + '\n');
for (const c of contenders) await c.dispose();
await llama.dispose();
await fsp.rm(dir, { recursive: true, force: true });
