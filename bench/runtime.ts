// Runtime benchmark on the demo model (assets/models/tiny-en-llama), side by side in one run:
//   - copy bandwidth of this machine (memcpy of a 256 MB buffer; bytes read + written, STREAM style)
//   - our engine: prefill tok/s and decode tok/s at batch 1 and batch 16
//   - the memory-bandwidth bound of decoding: bandwidth / bytes of weights read per token
//     (float32 weights as the engine computes with them; the embedding Gather reads one row)
//   - transformers.js (@huggingface/transformers) generating from our exported ONNX of the same
//     model, same threads, same prompt, same number of greedy tokens.
//
//   node --import tsx bench/runtime.ts [--threads N] [--prompt-tokens 128] [--new-tokens 64] [--reps 3]
// (what `npm run bench -- runtime` runs). Prints a markdown table to stdout.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadEngine, type Engine } from '../src/runtime/engine.ts';
import { argmax } from '../src/runtime/sampling.ts';
import { exportOnnx } from '../src/runtime/export.ts';
import { encode, loadTokenizer } from '../src/tokenizer/load.ts';
import { parameterCount } from '../src/io/weights.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demo = path.join(root, 'assets', 'models', 'tiny-en-llama');
const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: String(os.availableParallelism()) },
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

function copyBandwidth(): number {
  const n = 256 << 20;
  const src = new Uint8Array(n).fill(1);
  const dst = new Uint8Array(n);
  dst.set(src); // warm up (page faults)
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n) / (best / 1000); // bytes read + written per second
}

async function prompts(batch: number): Promise<number[][]> {
  const tok = await loadTokenizer(path.join(demo, 'tokenizer.json'));
  const text = await fsp.readFile(path.join(root, 'assets', 'corpora', 'en-books-heldout.txt'), 'utf8');
  const ids = await encode(tok, text.slice(0, 200_000));
  return Array.from({ length: batch }, (_, b) => ids.slice(b * promptTokens, (b + 1) * promptTokens));
}

/** Best of `reps`: prefill seconds and decode seconds for `newTokens` greedy steps. */
async function ours(engine: Engine, batch: number[][]): Promise<{ prefill: number; decode: number }> {
  let prefill = Infinity;
  let decode = Infinity;
  for (let r = 0; r < reps; r++) {
    const dec = engine.decoder(batch.length);
    let t = performance.now();
    let logits = await dec.feed(batch);
    prefill = Math.min(prefill, (performance.now() - t) / 1000);
    t = performance.now();
    for (let i = 0; i < newTokens; i++) logits = await dec.feed(logits.map((l) => [argmax(l)]));
    decode = Math.min(decode, (performance.now() - t) / 1000);
  }
  return { prefill, decode };
}

async function transformersJs(dir: string, batch: number[][]): Promise<{ prefill: number; total: number; ids: number[][] }> {
  const { AutoModelForCausalLM, env, Tensor } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = path.dirname(dir);
  const model = await AutoModelForCausalLM.from_pretrained(path.basename(dir), {
    dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  });
  const B = batch.length;
  const L = batch[0].length;
  const input_ids = new Tensor('int64', BigInt64Array.from(batch.flat().map(BigInt)), [B, L]);
  const attention_mask = new Tensor('int64', new BigInt64Array(B * L).fill(1n), [B, L]);
  const gen = (n: number) => model.generate({ input_ids, attention_mask, max_new_tokens: n, min_new_tokens: n, do_sample: false } as never) as Promise<{ tolist(): bigint[][] }>;
  let prefill = Infinity;
  let total = Infinity;
  let ids: number[][] = [];
  for (let r = 0; r < reps; r++) {
    let t = performance.now();
    await gen(1);
    prefill = Math.min(prefill, (performance.now() - t) / 1000);
    t = performance.now();
    const out = await gen(newTokens + 1);
    total = Math.min(total, (performance.now() - t) / 1000);
    ids = out.tolist().map((row) => row.slice(L).map(Number));
  }
  await model.dispose();
  return { prefill, total, ids };
}

const bw = copyBandwidth();
log(`copy bandwidth ${(bw / 1e9).toFixed(2)} GB/s (read + write)`);
const engine = await loadEngine(demo, { threads });
const m = engine.model;
// Bytes read per decoded token: every float32 matrix once, except the embedding (one row gathered);
// a tied head reads the embedding matrix (as float32) once.
const params = parameterCount(m.weights);
const embedParams = m.embeddingRows * m.hiddenSize;
const bytesPerToken = 4 * (params - embedParams + (m.tied ? embedParams : 0) + m.hiddenSize);
const bound = bw / bytesPerToken;

const rows: string[] = [];
const results: Record<string, number> = {};
const exportDir = path.join(os.tmpdir(), `hack-tokenizer-bench-onnx-${process.pid}`);
await exportOnnx(m, exportDir);
try {
  for (const B of [1, 16]) {
    const batch = await prompts(B);
    await ours(engine, batch.map((s) => s.slice(0, 8))); // warm up sessions
    const o = await ours(engine, batch);
    const prefillTps = (B * promptTokens) / o.prefill;
    const decodeTps = (B * newTokens) / o.decode;
    results[`ours.b${B}.prefill`] = prefillTps;
    results[`ours.b${B}.decode`] = decodeTps;
    log(`ours batch ${B}: prefill ${prefillTps.toFixed(0)} tok/s, decode ${decodeTps.toFixed(1)} tok/s`);
    const tj = await transformersJs(exportDir, batch);
    const tjPrefill = (B * promptTokens) / tj.prefill;
    const tjDecode = (B * newTokens) / Math.max(1e-9, tj.total - tj.prefill);
    results[`tjs.b${B}.prefill`] = tjPrefill;
    results[`tjs.b${B}.decode`] = tjDecode;
    log(`transformers.js batch ${B}: prefill ${tjPrefill.toFixed(0)} tok/s, decode ${tjDecode.toFixed(1)} tok/s`);
    // same greedy tokens (checks that both ran the same computation)
    const mine = await engine.generateBatch(batch, { maxNewTokens: newTokens + 1, eosIds: [] });
    const agree = mine.filter((row, b) => row.join() === tj.ids[b].join()).length;
    rows.push(`| ${B} | ${prefillTps.toFixed(0)} | ${tjPrefill.toFixed(0)} | ${decodeTps.toFixed(1)} | ${tjDecode.toFixed(1)} | ${(decodeTps / tjDecode).toFixed(2)}x | ${agree}/${B} |`);
  }
} finally {
  await fsp.rm(exportDir, { recursive: true, force: true });
  await engine.dispose();
}
const frac = results['ours.b1.decode'] / bound;
process.stdout.write([
  `### Runtime (bench/runtime.ts) — ${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.availableParallelism()}, threads ${threads}`,
  '',
  `Demo model tiny-en-llama (${(params / 1e6).toFixed(1)}M params), prompt ${promptTokens} tokens, ${newTokens} greedy decode steps, best of ${reps}.`,
  '',
  '| batch | prefill tok/s (ours) | prefill tok/s (transformers.js) | decode tok/s (ours) | decode tok/s (transformers.js) | decode ours/tjs | same greedy ids |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  '',
  `Copy bandwidth ${(bw / 1e9).toFixed(2)} GB/s (read + write); weights read per decoded token ${(bytesPerToken / 1e6).toFixed(1)} MB (float32) ` +
    `-> bandwidth bound ${bound.toFixed(0)} tok/s at batch 1; ours reaches ${(100 * frac).toFixed(0)}% of it.`,
  '',
].join('\n'));
