// Embedding surgery benchmark: time and peak RSS (/usr/bin/time -v) to extend
//   1. the demo model (tiny-en-llama, tied, bf16, 8192 rows) by 7500 tokens, for several init methods;
//   2. a synthetic Qwen2.5-1.5B-shaped bf16 model (vocab 151,936 x hidden 1536, 28 layers, untied,
//      ~1.78B parameters, ~3.6 GB), written here with the streaming writer from patterned chunks,
//      by the same 7500 tokens (appended after row 151,935).
// Token discovery is excluded: the 7500 tokens are learned once (continued BPE on the PT-PT
// parliament train corpus) before the timed phases. Each extension runs in its own child process;
// "extend" is the in-process time of extendModel (loading, tokenizer extension, both matrices, every
// other tensor copied, config/tokenizer/side files, atomic rename), "process" adds node + tsx start-up.
//
//   node --import tsx bench/embeddings.ts [--dir <tmpdir>] [--skip-synthetic] [--methods m1,m2]
//   (what `npm run bench -- embeddings` runs)
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { copySource, writeSafetensors, readTensorRows, openSafetensors } from '../src/io/safetensors.ts';
import { patternSource, syntheticTensors } from './support/synthetic-model.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR } from '../src/io/model-dir.ts';
import { loadTokenizer } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import { learnTokens, tokenList } from '../src/tokenizer/learn.ts';
import { readTokensFile, writeTokensFile } from '../src/tokenizer/tokens-file.ts';
import { extendModel } from '../src/embeddings/extend-model.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const CORPUS = path.join(repoRoot, 'assets', 'corpora', 'pt-pt-parliament-train.txt.gz');
const NUM_TOKENS = 7500;

// Qwen2.5-1.5B shapes
const VOCAB = 151_936;
const HIDDEN = 1536;
const LAYERS = 28;
const HEADS = 12;
const KV_HEADS = 2;
const INTER = 8960;

async function writeSynthetic(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const tensors = syntheticTensors({ vocab: VOCAB, hidden: HIDDEN, layers: LAYERS, heads: HEADS, kvHeads: KV_HEADS, intermediate: INTER, qkvBias: true, untied: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors.map((t, k) => patternSource(k, t.name, t.shape)), { format: 'pt' });
  const config = {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: HIDDEN, intermediate_size: INTER,
    num_hidden_layers: LAYERS, num_attention_heads: HEADS, num_key_value_heads: KV_HEADS, hidden_act: 'silu',
    max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0, tie_word_embeddings: false,
    torch_dtype: 'bfloat16', vocab_size: VOCAB, bos_token_id: 0, eos_token_id: 0, transformers_version: '4.51.0',
  };
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  // The demo's byte-level BPE tokenizer stands in (8192 ids; the other rows are padding as far as
  // the surgery is concerned, and new tokens are appended after all 151,936 rows).
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) await fsp.copyFile(path.join(DEMO, f), path.join(dir, f));
}

async function phase(name: string, args: string[]): Promise<void> {
  if (name === 'synth') return writeSynthetic(args[0]);
  if (name === 'copy') {
    // The I/O floor: stream-rewrite every tensor unchanged (what any rewrite of the file costs).
    const [src, dst] = args;
    const st = await openSafetensors(src);
    const t0 = performance.now();
    await writeSafetensors(dst, st.tensors.map((t) => copySource(st, t.name)), st.metadata);
    process.stdout.write(JSON.stringify({ extendS: (performance.now() - t0) / 1000 }) + '\n');
    return;
  }
  if (name === 'extend') {
    const [model, tokens, out, init] = args;
    const list = await readTokensFile(tokens);
    const t0 = performance.now();
    const r = await extendModel({ model, tokens: list.tokens, mode: 'merges', init, out });
    const s = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ extendS: s, rows: r.plan.rows, oldRows: r.plan.oldRows, added: r.newIds.filter((i) => i >= 0).length }) + '\n');
    return;
  }
  throw new Error(`unknown phase ${name}`);
}

interface Measured { wallS: number; peakRssMB: number; out: Record<string, number> }

function timed(label: string, args: string[]): Measured {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, '--import', 'tsx', self, 'phase', ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stderr}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  if (!rss || !wall) throw new Error(`could not parse /usr/bin/time -v output:\n${r.stderr}`);
  const wallS = Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return { wallS, peakRssMB: Number(rss[1]) / 1024, out: line.startsWith('{') ? JSON.parse(line) : {} };
}

/** Old rows of both matrices are unchanged (spot check of the first, a middle and the last old row chunk). */
async function spotCheck(src: string, out: string): Promise<void> {
  const a = await loadModelDir(src);
  const b = await loadModelDir(out);
  for (const t of a.tied ? [EMBED_TENSOR] : [EMBED_TENSOR, LM_HEAD_TENSOR]) {
    const sa = await openSafetensors(a.weights.location.get(t)!.path);
    const sb = await openSafetensors(b.weights.location.get(t)!.path);
    const n = a.embeddingRows;
    for (const [s, e] of [[0, 256], [n >> 1, (n >> 1) + 256], [n - 256, n]]) {
      const x = await readTensorRows(sa, t, s, e);
      const y = await readTensorRows(sb, t, s, e);
      if (Buffer.compare(Buffer.from(x), Buffer.from(y)) !== 0) throw new Error(`${t} rows [${s}, ${e}) changed`);
    }
  }
}

async function driver(argv: string[]): Promise<void> {
  const dirIdx = argv.indexOf('--dir');
  const base = await fsp.mkdtemp(path.join(dirIdx >= 0 ? argv[dirIdx + 1] : os.tmpdir(), 'bench-emb-'));
  const mIdx = argv.indexOf('--methods');
  const methods = mIdx >= 0 ? argv[mIdx + 1].split(',') : ['mean', 'weighted_drop(2)', 'quantile(0.5)', 'random', 'hf-mean-resizing'];
  try {
    const tokensFile = path.join(base, 'tokens.json');
    let t0 = performance.now();
    const tok = await loadTokenizer(path.join(DEMO, 'tokenizer.json'));
    const freq = await countWords(tok, bpeModelOf(tok.json).kind, [CORPUS]);
    const opts = { method: 'continue' as const, numTokens: NUM_TOKENS };
    const res = learnTokens(tok, freq, opts);
    await writeTokensFile(tokensFile, tokenList(tok, path.join(DEMO, 'tokenizer.json'), [CORPUS], opts, res, freq, 0));
    process.stderr.write(`token discovery (excluded): ${res.tokens.length} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

    const rows: string[] = [];
    for (const m of methods) {
      const out = path.join(base, 'demo-out');
      const r = timed(`demo ${m}`, ['extend', DEMO, tokensFile, out, m]);
      await spotCheck(DEMO, out);
      rows.push(`| demo (8192 x 384, tied) | ${m} | ${r.out.extendS.toFixed(2)} s | ${r.wallS.toFixed(2)} s | ${r.peakRssMB.toFixed(0)} MiB |`);
      process.stderr.write(rows[rows.length - 1] + '\n');
      await fsp.rm(out, { recursive: true, force: true });
    }
    if (!argv.includes('--skip-synthetic')) {
      const synth = path.join(base, 'synth');
      t0 = performance.now();
      const w = timed('write synthetic', ['synth', synth]);
      const size = (await fsp.stat(path.join(synth, 'model.safetensors'))).size;
      process.stderr.write(`synthetic model written: ${(size / 2 ** 30).toFixed(2)} GiB in ${w.wallS.toFixed(1)} s\n`);
      const floor = timed('copy floor', ['copy', path.join(synth, 'model.safetensors'), path.join(base, 'copy.safetensors')]);
      await fsp.rm(path.join(base, 'copy.safetensors'), { force: true });
      rows.push(`| same synthetic file, plain stream-rewrite of every tensor (copySource; the I/O floor) | - | ${floor.out.extendS.toFixed(2)} s | ${floor.wallS.toFixed(2)} s | ${floor.peakRssMB.toFixed(0)} MiB |`);
      process.stderr.write(rows[rows.length - 1] + '\n');
      for (const m of ['weighted_drop(2)', 'mean']) {
        const out = path.join(base, 'synth-out');
        const r = timed(`synthetic ${m}`, ['extend', synth, tokensFile, out, m]);
        await spotCheck(synth, out);
        rows.push(`| synthetic Qwen2.5-1.5B shape (151936 x 1536, 28 layers, untied, ${(size / 2 ** 30).toFixed(2)} GiB) | ${m} | ${r.out.extendS.toFixed(2)} s | ${r.wallS.toFixed(2)} s | ${r.peakRssMB.toFixed(0)} MiB |`);
        process.stderr.write(rows[rows.length - 1] + '\n');
        await fsp.rm(out, { recursive: true, force: true });
      }
    }
    process.stdout.write(`\n| model | --init | extend (in process) | process wall | peak RSS |\n|---|---|---:|---:|---:|\n${rows.join('\n')}\n`);
  } finally {
    await fsp.rm(base, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === 'phase') await phase(argv[1], argv.slice(2));
else await driver(argv);
