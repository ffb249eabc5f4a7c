// compare-init: hand-checked metrics, deterministic sampling, the orchestration with fake engines,
// and one real run of the CLI (ONNX Runtime) on a tiny test model.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';
import { loadModelDir, EMBED_TENSOR } from '../src/io/model-dir.ts';
import { readWeightF32 } from '../src/io/weights.ts';
import { loadTokenizer } from '../src/tokenizer/load.ts';
import { countWords } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import { writeTokensFile } from '../src/tokenizer/tokens-file.ts';
import { compareInit, chartSpec, resultsCsv, scoreMethods } from '../src/eval/init-analysis.ts';
import { median, sampleOccurrences, scoreTarget, summarize, wins, type LogitsEngine, type TargetScore } from '../src/eval/probes.ts';
import { permutation as shuffle, seededRandom } from '../src/io/seeded-random.ts';
import { renderSvg } from '../src/eval/chart-svg.ts';
import { runCli } from './support/cli.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const execFileP = promisify(execFile);

test('scoreTarget: mid-rank among all logits, log-prob is the log-softmax', () => {
  const logits = Float32Array.from([1, 3, 2, 3]);
  const lse = Math.log(Math.exp(1) + 2 * Math.exp(3) + Math.exp(2));
  const a = scoreTarget(logits, 2);
  assert.equal(a.rank, 3);
  assert.ok(Math.abs(a.logprob - (2 - lse)) < 1e-6);
  assert.equal(scoreTarget(logits, 1).rank, 1.5); // tied with one other logit for the top
  assert.equal(scoreTarget(logits, 0).rank, 4);
  assert.equal(scoreTarget(Float32Array.from([0, 0, 0, 0, -1]), 2).rank, 2.5); // four-way tie
  assert.equal(scoreTarget(Float32Array.from([5, 1]), 0).rank, 1);
  assert.throws(() => scoreTarget(logits, 4), /outside/);
});

test('median, wins (rank, then log-prob, exact ties shared) and summaries by hand', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  const s = (rank: number, logprob: number): TargetScore => ({ rank, logprob });
  // methods A, B, C on three probes
  const scores = [
    [s(1, -0.5), s(5, -3), s(2, -1)],
    [s(2, -0.7), s(5, -2), s(2, -1)],
    [s(3, -1.0), s(9, -4), s(4, -2)],
  ];
  // probe 0: A; probe 1: same rank, B has the higher log-prob; probe 2: A and B tie exactly
  assert.deepEqual(wins(scores), [1.5, 1.5, 0]);
  const sum = summarize(['A', 'B', 'C'], scores);
  assert.deepEqual(sum[0], { method: 'A', samples: 3, medianRank: 2, mrr: (1 + 1 / 5 + 1 / 2) / 3, top1: 1 / 3, top10: 1, meanLogprob: -4.5 / 3, wins: 1.5 });
  assert.equal(sum[2].top1, 0);
  assert.equal(sum[2].medianRank, 4);
  const csv = resultsCsv(sum).split('\n');
  assert.equal(csv[0], 'method,samples,median_rank,mrr,top1,top10,mean_logprob,wins');
  assert.equal(csv[1], 'A,3,2,0.566667,0.333333,1,-1.50000,1.50000');
  assert.throws(() => summarize(['A'], scores), /one score list per method/);
});

test('sampleOccurrences: one probe per line, seeded, prefix cut before the new token and capped', async () => {
  // "tokens" are characters; uppercase letters are the new tokens
  const lines = ['abCdeFg', 'Xbc', 'abc', '', 'aaaaaaaaZ', 'qQ'];
  const encode = async (texts: string[]) => texts.map((t) => [...t].map((c) => c.charCodeAt(0)));
  const isNew = (id: number) => id >= 65 && id <= 90;
  const opts = { samples: 10, seed: 3, maxContext: 4, batchSize: 2 };
  const a = await sampleOccurrences(lines, encode, isNew, opts);
  assert.deepEqual(await sampleOccurrences(lines, encode, isNew, opts), a);
  // 'Xbc' has its only new token at position 0 (nothing to condition on); 'abc' and '' have none
  assert.deepEqual(a.map((p) => p.line).sort(), [0, 4, 5]);
  for (const p of a) {
    const ids = (await encode([lines[p.line]]))[0];
    assert.ok(p.position >= 1 && isNew(p.target) && ids[p.position] === p.target);
    assert.deepEqual(p.prefix, ids.slice(Math.max(0, p.position - 4), p.position));
  }
  assert.deepEqual(a.find((p) => p.line === 4)!.prefix, [97, 97, 97, 97]);
  const one = await sampleOccurrences(lines, encode, isNew, { ...opts, samples: 1 });
  assert.equal(one.length, 1);
  const permutation = (n: number, seed: number) => shuffle(n, seededRandom(seed));
  assert.notDeepEqual(permutation(50, 1), permutation(50, 2));
  assert.deepEqual([...permutation(50, 1)].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
});

test('scoreMethods with a fake engine: every method sees the same probes; engines disposed, models cleaned up', async () => {
  const probes = [{ line: 0, position: 2, prefix: [1, 2], target: 5 }, { line: 1, position: 1, prefix: [3], target: 6 }, { line: 2, position: 3, prefix: [1, 1, 1], target: 5 }];
  const events: string[] = [];
  const scores = await scoreMethods({
    methods: ['m0', 'm1'],
    probes,
    batchSize: 2,
    buildModel: async (m, j) => { events.push(`build ${m}`); return `dir${j}`; },
    cleanup: async (d) => { events.push(`clean ${d}`); },
    loadEngine: async (dir): Promise<LogitsEngine> => ({
      vocabRows: 8,
      // method 1 puts the target first; method 0 puts it last
      lastLogits: async (batch) => batch.map((p) => {
        const probe = probes.find((q) => q.prefix === p)!;
        const l = new Float32Array(8).fill(1);
        l[probe.target] = dir === 'dir1' ? 2 : 0;
        return l;
      }),
      dispose: async () => { events.push(`dispose ${dir}`); },
    }),
  });
  assert.deepEqual(events, ['build m0', 'dispose dir0', 'clean dir0', 'build m1', 'dispose dir1', 'clean dir1']);
  assert.deepEqual(scores[0].map((s) => s.rank), [8, 8, 8]);
  assert.deepEqual(scores[1].map((s) => s.rank), [1, 1, 1]);
});

const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'cmpinit-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));

async function tinySetup() {
  const base = await fsp.mkdtemp(path.join(await tmpRoot, 'run-'));
  const model = await writeTestModel(path.join(base, 'model'), { arch: 'llama', hidden: 32, merges: 40, layers: 1 });
  const corpus = path.join(base, 'corpus.txt');
  await fsp.writeFile(corpus, SAMPLE_TEXT.repeat(12).replace(/\. /g, '.\n'));
  const tok = await loadTokenizer(path.join(model, 'tokenizer.json'));
  const tokens = learnTokens(tok, await countWords(tok, bpeModelOf(tok.json).kind, [corpus]), { method: 'continue', numTokens: 12 }).tokens;
  return { base, model, corpus, tokens };
}

test('compareInit: a bigram fake engine over the extended weights ranks methods deterministically', async () => {
  const { base, model, corpus, tokens } = await tinySetup();
  const lines = (await fsp.readFile(corpus, 'utf8')).split('\n');
  // logits = E · e(last prefix token): reads the method's real embedding matrix from disk (kept, by
  // method index, for the independent ranking below)
  const matrices = new Map<string, { E: Float32Array; rows: number; H: number }>();
  const bigramLogits = (m: { E: Float32Array; rows: number; H: number }, last: number) => {
    const out = new Float32Array(m.rows);
    for (let r = 0; r < m.rows; r++) { let s = 0; for (let d = 0; d < m.H; d++) s += m.E[r * m.H + d] * m.E[last * m.H + d]; out[r] = s; }
    return out;
  };
  const bigram = async (dir: string): Promise<LogitsEngine> => {
    const md = await loadModelDir(dir);
    const m = { E: await readWeightF32(md.weights, EMBED_TENSOR), rows: md.embeddingRows, H: md.hiddenSize };
    matrices.set(`${path.basename(path.dirname(dir))}/${path.basename(dir)}`, m);
    return { vocabRows: m.rows, lastLogits: async (batch) => batch.map((p) => bigramLogits(m, p[p.length - 1])), dispose: async () => undefined };
  };
  const methods = ['mean', 'zero', 'random', 'weighted_drop(2)'];
  const run = (seed: number, work: string) => compareInit({
    model, tokens, lines, methods, samples: 15, seed, mode: 'merges', maxContext: 8,
    workDir: path.join(base, work), loadEngine: bigram,
  });
  const a = await run(1, 'w1');
  const b = await run(1, 'w2');
  assert.equal(a.probes.length, 15);
  assert.deepEqual(a.summaries, b.summaries);
  assert.deepEqual(a.probes, b.probes);

  // the ranking, computed here without compareInit's scorer: each target's rank among the sorted
  // logits (mid-rank over equal values), each method's median, each probe's winner (best rank)
  const ranks = methods.map((_, j) => a.probes.map((p) => {
    const logits = Array.from(bigramLogits(matrices.get(`w1/model-${j}`)!, p.prefix[p.prefix.length - 1]));
    const x = logits[p.target];
    const sorted = [...logits].sort((u, v) => v - u);
    const first = sorted.indexOf(x);
    const last = sorted.lastIndexOf(x);
    return 1 + (first + last) / 2;
  }));
  const medianOf = (v: number[]) => { const s = [...v].sort((x, y) => x - y); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  assert.deepEqual(a.summaries.map((s) => s.method), methods);
  assert.deepEqual(a.summaries.map((s) => s.medianRank), ranks.map(medianOf));
  const byMedian = (r: { summaries: typeof a.summaries }) => [...r.summaries].sort((x, y) => x.medianRank - y.medianRank || x.method.localeCompare(y.method)).map((s) => s.method);
  assert.deepEqual(byMedian(a), methods.map((m, j) => ({ m, r: medianOf(ranks[j]) })).sort((x, y) => x.r - y.r || x.m.localeCompare(y.m)).map((x) => x.m));
  assert.notEqual(new Set(a.summaries.map((s) => s.medianRank)).size, 1, 'the methods do not all rank alike (the check would be empty)');
  // a probe whose best rank one method alone holds is that method's win
  for (let i = 0; i < a.probes.length; i++) {
    const best = Math.min(...ranks.map((r) => r[i]));
    const holders = methods.filter((_, j) => ranks[j][i] === best);
    if (holders.length === 1) assert.ok(a.summaries.find((s) => s.method === holders[0])!.wins >= 1, `probe ${i}: ${holders[0]} wins`);
  }
  // zero rows score 0 in every context: the zero method's target logit is exactly 0
  for (const p of a.probes) assert.equal(bigramLogits(matrices.get('w1/model-1')!, p.prefix[p.prefix.length - 1])[p.target], 0);

  // a different seed draws different probes
  const c = await run(2, 'w3');
  assert.notDeepEqual(c.probes.map((p) => p.line), a.probes.map((p) => p.line));
  assert.deepEqual(await fsp.readdir(path.join(base, 'w1')), [], 'per-method models are removed');
  await assert.rejects(compareInit({ model, tokens, lines, methods: ['mean', 'bogus'], samples: 5, seed: 0, mode: 'merges', maxContext: 8, workDir: base }), /Valid forms/);
});

test('compare-init CLI: real ONNX Runtime engine on a tiny model; results.csv and chart.svg', async () => {
  const { base, model, corpus, tokens } = await tinySetup();
  const tokensFile = path.join(base, 'tokens.json');
  await writeTokensFile(tokensFile, { version: 1, tokenizer: 'x', method: 'continue', corpus: [corpus], numTokens: tokens.length, rank: 'merge', filters: {}, tokens });
  const out = path.join(base, 'out');
  const { stdout } = await execFileP(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'compare-init', '--model', model, '--corpus', corpus,
    '--tokens', tokensFile, '--methods', 'mean,first', '--samples', '6', '--seed', '2', '--max-context', '6', '--threads', '1', '--out', out], { cwd: repoRoot });
  assert.match(stdout, /\| mean \|/);
  const csv = (await fsp.readFile(path.join(out, 'results.csv'), 'utf8')).trim().split('\n');
  assert.equal(csv.length, 3);
  assert.match(csv[1], /^mean,6,/);
  assert.match(csv[2], /^first,6,/);
  const svg = await fsp.readFile(path.join(out, 'chart.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.ok(svg.includes('first') && svg.includes('MRR'));
  const samples = (await fsp.readFile(path.join(out, 'samples.csv'), 'utf8')).trim().split('\n');
  assert.equal(samples.length, 1 + 6 * 2);
  assert.ok(!(await fsp.readdir(out)).includes('.models'));
  const bad = await runCli(['compare-init', '--model', model, '--corpus', corpus, '--tokens', tokensFile, '--methods', 'mean,quantile(3)', '--out', path.join(base, 'bad')], { cwd: repoRoot });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /quantile\(3\).*Valid forms/s);
  await assert.rejects(fsp.access(path.join(base, 'bad')));
});

test('chart spec renders to SVG in Node', async () => {
  const svg = await renderSvg(chartSpec(summarize(['mean', 'zero'], [[{ rank: 1, logprob: -1 }], [{ rank: 3, logprob: -2 }]])));
  assert.match(svg, /^<svg/);
  assert.ok(svg.includes('zero') && svg.includes('wins'));
});
