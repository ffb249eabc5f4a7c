// export-gguf verified in llama.cpp itself (node-llama-cpp, in-process, CPU, offline): for the demo
// model and two extended versions (merges mode, added mode), llama.cpp's token ids equal the Hugging
// Face tokenizer's on every line of the PT and EN held-out files; its greedy continuation equals our
// ORT engine's; its last-position distribution equals ours (f32 export; looser, stated bounds for
// f16 and q8_0). Bad input is refused before anything is written.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { spawn } from 'node:child_process';
import { encodeBatch, loadTokenizer, type LoadedTokenizer } from '../src/tokenizer/load.ts';
import { loadEngine, type Engine } from '../src/runtime/engine.ts';
import { logSoftmax } from '../src/runtime/sampling.ts';
import { openGguf, readGgufTensorF32 } from '../src/io/gguf.ts';
import { loadModelDir } from '../src/io/model-dir.ts';
import { exportGguf, type GgufExportType } from '../src/export/gguf.ts';
import { HackError } from '../src/io/errors.ts';
import { bytesSource, writeSafetensors } from '../src/io/safetensors.ts';
import { fromFloat32 } from '../src/io/dtype.ts';
import { rng } from './support/factory.ts';
import { PYTHON } from './support/python.ts';
import { spawnSync } from 'node:child_process';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEMO = path.join(repoRoot, 'assets', 'models', 'tiny-en-llama');
const CORPORA = path.join(repoRoot, 'assets', 'corpora');
const HELDOUT = ['pt-pt-parliament-heldout.txt', 'en-books-heldout.txt'].map((f) => path.join(CORPORA, f));

let dir = '';
let llama: Llama;
const variants: Record<string, { modelDir: string; gguf: string; tok?: LoadedTokenizer; model?: LlamaModel }> = {};

/**
 * The CLI in a child process: the in-process runner (support/cli.ts) swaps process.stdout.write,
 * which would also swallow the test reporter's lines for the test that just finished.
 */
async function runCliChild(args: string[]): Promise<{ code: number; stderr: string }> {
  const main = path.join(repoRoot, 'src', 'cli', 'main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(main)}).then((m) => m.main(process.argv))`, 'hack-tokenizer', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return { code, stderr };
}

async function cli(args: string[]): Promise<void> {
  const r = await runCliChild(args);
  assert.equal(r.code, 0, `hack-tokenizer ${args.join(' ')}\n${r.stderr}`);
}

async function exportTo(modelDir: string, file: string, type: GgufExportType): Promise<string[]> {
  return (await exportGguf(await loadModelDir(modelDir), file, { type })).warnings;
}
const warnings: Record<string, string[]> = {};

async function firstLines(gz: string, n: number): Promise<string> {
  const rl = createInterface({ input: createReadStream(gz).pipe(createGunzip()) });
  const lines: string[] = [];
  for await (const line of rl) { lines.push(line); if (lines.length >= n) break; }
  rl.close();
  return lines.join('\n') + '\n';
}

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gguf-export-'));
  const corpus = path.join(dir, 'corpus.txt');
  await fsp.writeFile(corpus, await firstLines(path.join(CORPORA, 'pt-pt-parliament-train.txt.gz'), 3000));
  variants.original = { modelDir: DEMO, gguf: path.join(dir, 'original.gguf') };
  for (const mode of ['merges', 'added']) {
    const out = path.join(dir, `ext-${mode}`);
    await cli(['extend', '--model', DEMO, '--corpus', corpus, '--num-tokens', '300', '--mode', mode, '--init', 'mean', '--out', out]);
    variants[mode] = { modelDir: out, gguf: path.join(dir, `ext-${mode}.gguf`) };
  }
  for (const [name, v] of Object.entries(variants)) {
    // the command once (its flags and output), the library for the rest
    if (name === 'original') await cli(['export-gguf', '--model', v.modelDir, '--out', v.gguf, '--type', 'f32']);
    else warnings[name] = await exportTo(v.modelDir, v.gguf, 'f32');
    v.tok = await loadTokenizer(path.join(v.modelDir, 'tokenizer.json'));
  }
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
  for (const v of Object.values(variants)) v.model = await llama.loadModel({ modelPath: v.gguf });
});

after(async () => {
  for (const v of Object.values(variants)) await v.model?.dispose();
  await llama?.dispose();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

test('the exported file carries the tokenizer as written: gpt2 model, gpt-2 pre-tokenizer, vocabulary and merges in order', async () => {
  for (const [name, v] of Object.entries(variants)) {
    const g = await openGguf(v.gguf);
    assert.equal(g.metadata.get('tokenizer.ggml.model')?.value, 'gpt2', name);
    assert.equal(g.metadata.get('tokenizer.ggml.pre')?.value, 'gpt-2', name);
    const tokens = g.metadata.get('tokenizer.ggml.tokens')!.value as string[];
    const types = g.metadata.get('tokenizer.ggml.token_type')!.value as number[];
    const merges = g.metadata.get('tokenizer.ggml.merges')!.value as string[];
    const tj = v.tok!.json;
    const vocab = tj.model.vocab as Record<string, number>;
    const added = new Map(tj.added_tokens.map((t) => [t.id, t]));
    assert.equal(tokens.length, v.tok!.size, name);
    for (let id = 0; id < tokens.length; id++) {
      const a = added.get(id);
      if (a) { assert.equal(tokens[id], a.content); assert.equal(types[id], a.special ? 3 : 4, `${name} ${id}`); } else { assert.equal(vocab[tokens[id]], id); assert.equal(types[id], 1); }
    }
    const want = (tj.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
    assert.deepEqual(merges, want, `${name}: merges in rank order`);
    assert.equal(g.metadata.get('tokenizer.ggml.add_bos_token')?.value, false);
    assert.equal(g.metadata.get('tokenizer.ggml.bos_token_id')?.value, 0);
  }
  assert.deepEqual(warnings.merges, [], 'no warning for a merges-mode extension');
  assert.match(warnings.added.join('\n'), /added tokens ".+" and ".+" can overlap in a text: llama.cpp matches added tokens longest first/);
  assert.equal((variants.merges.tok!.json.model.merges ?? []).length, 7933 + 300, 'the merges-mode model has 300 extended merges');
  assert.equal(variants.added.tok!.json.added_tokens.filter((t) => !t.special).length, 300, 'the added-mode model has 300 user-defined tokens');
});

test('gguf-py reads our demo export: every tensor name is one llama.cpp defines for llama, data equal to the HF tensors after the converter\'s Q/K permutation', () => {
  const script = `
import sys, json, numpy as np, gguf
from safetensors.torch import load_file
r = gguf.GGUFReader(sys.argv[1])
arch = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}['llama']
allowed = {gguf.TENSOR_NAMES[t] + s for t in gguf.MODEL_TENSORS[arch] for s in ('.weight', '.bias')}
norm = lambda n: n if not n.startswith('blk.') else 'blk.{bid}.' + n.split('.', 2)[2]
tmap = gguf.get_tensor_name_map(arch, int(r.fields['llama.block_count'].contents()))
n_head, n_kv = int(r.fields['llama.attention.head_count'].contents()), int(r.fields['llama.attention.head_count_kv'].contents())
def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv: n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
ours = {t.name: np.asarray(t.data) for t in r.tensors}
maxdiff, seen = 0.0, []
for name, w in load_file(sys.argv[2]).items():
    w = w.float().numpy()
    if name.endswith('q_proj.weight'): w = permute(w, n_head, n_head)
    if name.endswith('k_proj.weight'): w = permute(w, n_head, n_kv)
    new = tmap.get_name(name, try_suffixes=('.weight', '.bias'))
    seen.append(new)
    maxdiff = max(maxdiff, float(np.abs(ours[new].reshape(w.shape) - w).max()))
print(json.dumps({'unknown': [n for n in ours if norm(n) not in allowed], 'missing': sorted(set(ours) - set(seen)), 'maxdiff': maxdiff}))
`;
  const p = spawnSync(PYTHON, ['-c', script, variants.original.gguf, path.join(DEMO, 'model.safetensors')], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(p.status, 0, p.stderr);
  assert.deepEqual(JSON.parse(p.stdout), { unknown: [], missing: [], maxdiff: 0 });
});

test('llama.cpp tokenizes every line of the PT and EN held-out files exactly as the Hugging Face tokenizer (original and both extensions)', async () => {
  const files = await Promise.all(HELDOUT.map((f) => fsp.readFile(f, 'utf8')));
  for (const [name, v] of Object.entries(variants)) {
    for (let f = 0; f < files.length; f++) {
      const lines = files[f].split('\n').filter((l) => l.length > 0);
      const hf = await encodeBatch(v.tok!, lines);
      const addedOverlap = name === 'added' ? overlapFinder(v.tok!) : null;
      let bad = 0;
      let explained = 0;
      let first = '';
      let newIds = 0;
      for (let i = 0; i < lines.length; i++) {
        const ours = hf[i];
        const theirs = Array.from(v.model!.tokenize(lines[i], false), Number);
        if (ours.length !== theirs.length || ours.some((x, j) => x !== theirs[j])) {
          if (addedOverlap && addedOverlap(lines[i])) { explained++; continue; }
          if (!bad) first = `line ${i + 1}: ${JSON.stringify(lines[i].slice(0, 80))}\n hf    ${ours.slice(0, 20)}\n llama ${theirs.slice(0, 20)}`;
          bad++;
        }
        for (const id of theirs) if (id >= 8192) newIds++;
      }
      assert.equal(bad, 0, `${name}, ${path.basename(HELDOUT[f])}: ${bad} of ${lines.length} lines differ; first ${first}`);
      if (name === 'added') {
        // llama.cpp matches added tokens longest first over the whole text, the tokenizers library
        // leftmost-longest: they can differ only where two added-token occurrences overlap
        addedDiffers[path.basename(HELDOUT[f])] = `${explained} of ${lines.length} lines`;
      }
      if (name !== 'original' && f === 0) assert.ok(newIds > 1000, `${name}: the PT file uses the new tokens (${newIds} times)`);
    }
  }
});

const addedDiffers: Record<string, string> = {};

/** A test for "two occurrences of non-special added tokens overlap in this line". */
function overlapFinder(tok: LoadedTokenizer): (line: string) => boolean {
  const texts = tok.json.added_tokens.filter((t) => !t.special).map((t) => t.content);
  return (line) => {
    const spans: Array<[number, number]> = [];
    for (const t of texts) for (let at = line.indexOf(t); at >= 0; at = line.indexOf(t, at + 1)) spans.push([at, at + t.length]);
    spans.sort((a, b) => a[0] - b[0]);
    let reach = -1;
    for (const [s, e] of spans) { if (s < reach) return true; reach = Math.max(reach, e); }
    return false;
  };
}

after(() => { if (Object.keys(addedDiffers).length) process.stderr.write(`added mode: lines split differently by llama.cpp's added-token matching (all with overlapping added tokens): ${JSON.stringify(addedDiffers)}\n`); });

const PROMPTS = [
  'O Sr. Presidente: — Srs. Deputados, está aberta a sessão.',
  'It was a bright cold day in April, and the clocks were striking thirteen.',
];

/** One thread and a float32 KV cache (llama.cpp's default cache is f16, which moves logits by ~1e-3). */
const EXACT = { contextSize: 256, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } as const;

async function llamaGreedy(model: LlamaModel, prompt: number[], n: number): Promise<number[]> {
  const ctx = await model.createContext(EXACT);
  try {
    const seq = ctx.getSequence();
    const out: number[] = [];
    // yieldEogToken: a generated <|endoftext|> is compared too, and generation goes on as ours does
    for await (const id of seq.evaluate(prompt as never, { temperature: 0, yieldEogToken: true })) {
      out.push(Number(id));
      if (out.length >= n) break;
    }
    return out;
  } finally { await ctx.dispose(); }
}

/** llama.cpp's next-token log-probabilities after `prompt` (its full distribution at temperature 1). */
async function llamaLogprobs(model: LlamaModel, prompt: number[]): Promise<Map<number, number>> {
  const ctx = await model.createContext(EXACT);
  try {
    const seq = ctx.getSequence();
    const it = seq.evaluateWithMetadata(prompt as never, { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 });
    const first = await it.next();
    await it.return();
    const probs = (first.value as { probabilities: Map<number, number> }).probabilities;
    return new Map([...probs].map(([id, p]) => [Number(id), Math.log(p)]));
  } finally { await ctx.dispose(); }
}

test('greedy 32 tokens from llama.cpp equal those of our ORT engine, and the last-position log-probabilities agree within 1e-3 (f32)', async (t) => {
  for (const [name, v] of Object.entries(variants)) {
    const engine: Engine = await loadEngine(v.modelDir, { threads: 1 });
    try {
      for (const text of PROMPTS) {
        const prompt = (await encodeBatch(v.tok!, [text]))[0];
        const ours = await engine.generate(prompt, { maxNewTokens: 32, eosIds: [] });
        const theirs = await llamaGreedy(v.model!, prompt, 32);
        assert.deepEqual(theirs, ours, `${name}: greedy continuation of ${JSON.stringify(text)}`);
        const ourLp = logSoftmax((await engine.lastLogits([prompt]))[0]);
        const lp = await llamaLogprobs(v.model!, prompt);
        let max = 0;
        let compared = 0;
        for (const [id, l] of lp) {
          if (l < -60) continue; // float32 probabilities this small carry no precision after the log
          max = Math.max(max, Math.abs(l - ourLp[id]));
          compared++;
        }
        assert.ok(compared > 0.9 * ourLp.length, `${name}: llama.cpp returned ${compared} of ${ourLp.length} probabilities`);
        t.diagnostic(`${name}: max |Δ log p| = ${max.toExponential(2)} over ${compared} tokens`);
        assert.ok(max < 1e-3, `${name}: max |Δ log p| = ${max} over ${compared} tokens`);
      }
    } finally { await engine.dispose(); }
  }
});

test('the random Qwen2 fixture (qkv bias, untied head, theta 1e6, f16 weights): greedy 16 and last log-probabilities equal ours', async (t) => {
  const q = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'models', 'random-qwen2');
  const file = path.join(dir, 'qwen2.gguf');
  await exportTo(q, file, 'f32');
  const g = await openGguf(file);
  assert.equal(g.metadata.get('general.architecture')?.value, 'qwen2');
  assert.ok(g.byName.has('output.weight') && g.byName.has('blk.0.attn_q.bias'), 'untied head and biases written');
  const m = await llama.loadModel({ modelPath: file });
  const engine = await loadEngine(q, { threads: 1 });
  try {
    const tok = await loadTokenizer(path.join(q, 'tokenizer.json'));
    // its tokenizer (Qwen2's split regex -> llama.cpp's qwen2 pre-tokenizer) on every held-out line
    for (const f of HELDOUT) {
      const lines = (await fsp.readFile(f, 'utf8')).split('\n').filter((l) => l.length > 0);
      const hf = await encodeBatch(tok, lines);
      const bad = lines.filter((l, i) => { const th = Array.from(m.tokenize(l, false), Number); return th.length !== hf[i].length || th.some((x, j) => x !== hf[i][j]); });
      assert.equal(bad.length, 0, `qwen2, ${path.basename(f)}: ${bad.length} of ${lines.length} lines differ; first ${JSON.stringify(bad[0]?.slice(0, 80))}`);
    }
    for (const text of PROMPTS) {
      const prompt = (await encodeBatch(tok, [text]))[0];
      assert.deepEqual(Array.from(m.tokenize(text, false), Number), prompt);
      assert.deepEqual(await llamaGreedy(m, prompt, 16), await engine.generate(prompt, { maxNewTokens: 16, eosIds: [] }));
      const ourLp = logSoftmax((await engine.lastLogits([prompt]))[0]);
      let max = 0;
      for (const [id, l] of await llamaLogprobs(m, prompt)) if (l > -60) max = Math.max(max, Math.abs(l - ourLp[id]));
      t.diagnostic(`qwen2: max |Δ log p| = ${max.toExponential(2)}`);
      assert.ok(max < 1e-3, `qwen2: max |Δ log p| = ${max}`);
    }
  } finally { await engine.dispose(); await m.dispose(); }
});

/** A small random SmolLM3 (NoPE on every 4th layer, tied) with the demo tokenizer, written by our own writer. */
async function randomSmolLM3(out: string, noRopeLayers?: number[], llamaVariant?: Record<string, unknown>): Promise<void> {
  await fsp.mkdir(out);
  const H = 64, I = 128, L = 4, NH = 4, KV = 2, HD = 16, V = 8192;
  const r = rng(7);
  const t = (name: string, shape: number[], scale = 0.2, base = 0) =>
    bytesSource(name, 'F32', shape, fromFloat32(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => base + scale * (2 * r() - 1)), 'F32'));
  const tensors = [t('model.embed_tokens.weight', [V, H], 0.5)];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(t(`${p}input_layernorm.weight`, [H], 0.1, 1), t(`${p}self_attn.q_proj.weight`, [NH * HD, H]), t(`${p}self_attn.k_proj.weight`, [KV * HD, H]),
      t(`${p}self_attn.v_proj.weight`, [KV * HD, H]), t(`${p}self_attn.o_proj.weight`, [H, NH * HD]), t(`${p}post_attention_layernorm.weight`, [H], 0.1, 1),
      t(`${p}mlp.gate_proj.weight`, [I, H]), t(`${p}mlp.up_proj.weight`, [I, H]), t(`${p}mlp.down_proj.weight`, [H, I]));
  }
  tensors.push(t('model.norm.weight', [H], 0.1, 1));
  if (llamaVariant?.tie_word_embeddings === false) tensors.push(t('lm_head.weight', [V, H], 0.5));
  await writeSafetensors(path.join(out, 'model.safetensors'), tensors);
  await fsp.writeFile(path.join(out, 'config.json'), JSON.stringify({
    architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', hidden_size: H, intermediate_size: I, num_hidden_layers: L,
    num_attention_heads: NH, num_key_value_heads: KV, head_dim: HD, vocab_size: V, rms_norm_eps: 1e-6, rope_theta: 50000,
    max_position_embeddings: 512, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    use_sliding_window: false, no_rope_layer_interval: 4, ...(noRopeLayers ? { no_rope_layers: noRopeLayers } : {}),
    bos_token_id: 0, eos_token_id: 0, torch_dtype: 'float32',
    ...(llamaVariant ? { architectures: ['LlamaForCausalLM'], model_type: 'llama', no_rope_layer_interval: undefined, ...llamaVariant } : {}),
  }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await fsp.copyFile(path.join(DEMO, f), path.join(out, f));
}

test('SmolLM3 (NoPE every 4th layer): llama.cpp\'s smollm3 graph gives our greedy 16 and log-probabilities; another NoPE pattern is refused', async (t) => {
  const smol = path.join(dir, 'smollm3');
  await randomSmolLM3(smol);
  const file = path.join(dir, 'smollm3.gguf');
  await exportTo(smol, file, 'f32');
  assert.equal((await openGguf(file)).metadata.get('general.architecture')?.value, 'smollm3');
  const m = await llama.loadModel({ modelPath: file });
  const engine = await loadEngine(smol, { threads: 1 });
  try {
    const tok = await loadTokenizer(path.join(smol, 'tokenizer.json'));
    const prompt = (await encodeBatch(tok, [PROMPTS[0]]))[0];
    assert.deepEqual(await llamaGreedy(m, prompt, 16), await engine.generate(prompt, { maxNewTokens: 16, eosIds: [] }));
    const ourLp = logSoftmax((await engine.lastLogits([prompt]))[0]);
    let max = 0;
    for (const [id, l] of await llamaLogprobs(m, prompt)) if (l > -60) max = Math.max(max, Math.abs(l - ourLp[id]));
    t.diagnostic(`smollm3: max |Δ log p| = ${max.toExponential(2)}`);
    assert.ok(max < 1e-3, `smollm3: max |Δ log p| = ${max}`);
  } finally { await engine.dispose(); await m.dispose(); }
  const odd = path.join(dir, 'smollm3-odd');
  await randomSmolLM3(odd, [1, 0, 1, 1]);
  await assert.rejects(exportGguf(await loadModelDir(odd), path.join(dir, 'odd.gguf')), /NoPE layers \[1\] differ from llama.cpp's fixed pattern/);
});

test('llama with llama3 RoPE scaling and an untied head: rope_freqs written, llama.cpp gives our greedy 16 and log-probabilities', async (t) => {
  const m3 = path.join(dir, 'llama3-rope');
  // original_max_position_embeddings 64 with head_dim 16: low, medium and high frequencies all occur
  await randomSmolLM3(m3, undefined, { tie_word_embeddings: false, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } });
  const file = path.join(dir, 'llama3-rope.gguf');
  await exportTo(m3, file, 'f32');
  const g = await openGguf(file);
  assert.ok(g.byName.has('rope_freqs.weight') && g.byName.has('output.weight'));
  const factors = await readGgufTensorF32(g, 'rope_freqs.weight');
  assert.ok(factors[0] === 1 && factors[factors.length - 1] === 8, `factors ${[...factors]}`);
  const m = await llama.loadModel({ modelPath: file });
  const engine = await loadEngine(m3, { threads: 1 });
  try {
    const tok = await loadTokenizer(path.join(m3, 'tokenizer.json'));
    const prompt = (await encodeBatch(tok, [PROMPTS[1]]))[0];
    assert.deepEqual(await llamaGreedy(m, prompt, 16), await engine.generate(prompt, { maxNewTokens: 16, eosIds: [] }));
    const ourLp = logSoftmax((await engine.lastLogits([prompt]))[0]);
    let max = 0;
    for (const [id, l] of await llamaLogprobs(m, prompt)) if (l > -60) max = Math.max(max, Math.abs(l - ourLp[id]));
    t.diagnostic(`llama3 rope: max |Δ log p| = ${max.toExponential(2)}`);
    assert.ok(max < 1e-3, `llama3 rope: max |Δ log p| = ${max}`);
  } finally { await engine.dispose(); await m.dispose(); }
});

test('f16 and q8_0 exports load and track the f32 model (stated tolerance: |Δ log p| of the top tokens < 0.05 f16, < 0.25 q8_0)', async (t) => {
  const engine = await loadEngine(DEMO, { threads: 1 });
  try {
    const prompt = (await encodeBatch(variants.original.tok!, [PROMPTS[0]]))[0];
    const ourLp = logSoftmax((await engine.lastLogits([prompt]))[0]);
    const top = [...ourLp.keys()].sort((a, b) => ourLp[b] - ourLp[a]).slice(0, 20);
    for (const [type, tol] of [['f16', 0.05], ['q8_0', 0.25]] as const) {
      const file = path.join(dir, `original-${type}.gguf`);
      await exportTo(DEMO, file, type);
      const g = await openGguf(file);
      assert.equal(g.byName.get('blk.0.attn_q.weight')?.type, type === 'f16' ? 'F16' : 'Q8_0');
      assert.equal(g.byName.get('blk.0.attn_norm.weight')?.type, 'F32', 'norms stay f32');
      const m = await llama.loadModel({ modelPath: file });
      try {
        const lp = await llamaLogprobs(m, prompt);
        const max = Math.max(...top.map((id) => Math.abs((lp.get(id) ?? -Infinity) - ourLp[id])));
        t.diagnostic(`${type}: max |Δ log p| over the top 20 = ${max.toExponential(2)}`);
        assert.ok(max < tol, `${type}: max |Δ log p| over the top 20 = ${max}`);
        const theirs = await llamaGreedy(m, prompt, 1);
        assert.equal(theirs[0], top[0], `${type}: same next token`);
      } finally { await m.dispose(); }
    }
  } finally { await engine.dispose(); }
});

test('bad input: unknown --type, a Unigram tokenizer, an architecture llama.cpp lacks — clear errors, nothing written', async () => {
  const out = path.join(dir, 'bad', 'x.gguf');
  const r = await runCliChild(['export-gguf', '--model', DEMO, '--out', out, '--type', 'q4_k']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--type/);
  const uni = path.join(dir, 'unigram');
  await fsp.mkdir(uni);
  for (const f of ['config.json', 'model.safetensors']) await fsp.copyFile(path.join(DEMO, f), path.join(uni, f));
  await fsp.writeFile(path.join(uni, 'tokenizer.json'), JSON.stringify({ version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Metaspace' }, post_processor: null, decoder: null, model: { type: 'Unigram', vocab: [['<unk>', 0], ['▁a', -1]], unk_id: 0 } }));
  const refuses = async (dir: string, re: RegExp) => assert.rejects(exportGguf(await loadModelDir(dir), out), (e: unknown) => e instanceof HackError && re.test(e.message));
  await refuses(uni, /tokenizer model "Unigram" has no GGUF mapping/);
  const arch = path.join(dir, 'gpt2arch');
  await fsp.mkdir(arch);
  for (const f of ['tokenizer.json', 'model.safetensors']) await fsp.copyFile(path.join(DEMO, f), path.join(arch, f));
  const cfg = JSON.parse(await fsp.readFile(path.join(DEMO, 'config.json'), 'utf8'));
  await fsp.writeFile(path.join(arch, 'config.json'), JSON.stringify({ ...cfg, architectures: ['PhiForCausalLM'], model_type: 'phi' }));
  await refuses(arch, /architecture "PhiForCausalLM" is not exported to GGUF/);
  const split = path.join(dir, 'split');
  await fsp.mkdir(split);
  for (const f of ['config.json', 'model.safetensors']) await fsp.copyFile(path.join(DEMO, f), path.join(split, f));
  const tj = JSON.parse(await fsp.readFile(path.join(DEMO, 'tokenizer.json'), 'utf8'));
  tj.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{L}+|\\s+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] };
  await fsp.writeFile(path.join(split, 'tokenizer.json'), JSON.stringify(tj));
  await refuses(split, /no pre-tokenizer for this split rule: Split\("\\\\p\{L\}\+\|\\\\s\+"\)/);
  assert.deepEqual(await fsp.readdir(path.join(dir, 'bad')).catch(() => []), [], 'nothing written');
});

test('the extended, tuned demo model in llama.cpp: its greedy Portuguese uses the new tokens, and equals our engine\'s', async (t) => {
  // output rows tuned (they are what makes decoding pick a new token), exported as f32
  const tuned = path.join(dir, 'tuned');
  await cli(['tune', '--model', variants.merges.modelDir, '--original', DEMO, '--corpus', path.join(dir, 'corpus.txt'), '--rows', 'output',
    '--corpus-bytes', '150k', '--epochs', '4', '--threads', '1', '--out', tuned]);
  const gguf = path.join(dir, 'tuned.gguf');
  await exportTo(tuned, gguf, 'f32');
  const tok = await loadTokenizer(path.join(tuned, 'tokenizer.json'));
  const base = (await loadModelDir(DEMO)).tokenizerSize;
  const model = await llama.loadModel({ modelPath: gguf });
  const engine = await loadEngine(tuned, { threads: 1 });
  try {
    let newIds = 0;
    for (const text of ['O Sr. Presidente: — Srs. Deputados, está aberta a sessão.', 'A proposta de lei do Governo sobre a reforma da administração pública']) {
      const prompt = (await encodeBatch(tok, [text]))[0];
      const theirs = await llamaGreedy(model, prompt, 48);
      assert.deepEqual(theirs, await engine.generate(prompt, { maxNewTokens: 48, eosIds: [] }), `greedy continuation of ${JSON.stringify(text)}`);
      newIds += theirs.filter((id) => id >= base).length;
    }
    t.diagnostic(`new-token ids in llama.cpp's 96 greedy tokens: ${newIds}`);
    assert.ok(newIds >= 5, `llama.cpp's greedy output used ${newIds} new tokens`);
  } finally {
    await engine.dispose();
    await model.dispose();
  }
});
