// End to end, no fakes: the experiment grid on a tiny random model learns tokens, extends the model,
// tunes it with two variants (runTune), evaluates every cell (bits per byte, FertilityBoost,
// new-token-rank), writes csv/json/html, and resumes without redoing finished work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseGridConfig, runGrid, writeGridOutputs, type GridSteps } from '../src/eval/grid.ts';
import { pipelineSteps } from '../src/eval/pipeline.ts';
import { writeTestModel, SAMPLE_TEXT } from './support/factory.ts';

test('experiment with stage INITIALIZED_WITH_TRAINING and two tune variants: tuned cells, tune column and timing, resume', async () => {
  const root = await fsp.mkdtemp(path.join(tmpdir(), 'grid-tune-e2e-'));
  try {
    await writeTestModel(path.join(root, 'base'), { arch: 'llama', hidden: 32, merges: 40, layers: 2, seed: 3 });
    const sentences = SAMPLE_TEXT.split(/(?<=\.) /).filter(Boolean);
    await fsp.writeFile(path.join(root, 'corpus.txt'), SAMPLE_TEXT.repeat(30).replace(/\. /g, '.\n'));
    // held-out: the sentences in other combinations, one paragraph per line
    await fsp.writeFile(path.join(root, 'pt.txt'), Array.from({ length: 40 }, (_, i) => `${sentences[i % sentences.length]} ${sentences[(3 * i + 1) % sentences.length]}`).join('\n'));
    const fast = { corpusBytes: 20_000, epochs: 2, lr: 0.02, batchSize: 64, seqLen: 48, seed: 1 };
    const cfg = parseGridConfig(JSON.stringify({
      models: ['base'], corpus: ['corpus.txt'], numTokens: [12],
      stages: ['BASELINE', 'INITIALIZED_NO_TRAINING', 'INITIALIZED_WITH_TRAINING'],
      metrics: ['bpb', 'fertility-boost', 'new-token-rank'], pt: 'pt.txt', maxBytes: 3000, boostTexts: 5, boostRuns: 1, rankProbes: 24, threads: 1,
      tune: [
        { name: 'output', rows: 'output', ...fast },
        { name: 'output+input', rows: 'both', ...fast, inputCorpusBytes: 3000, inputEpochs: 1, inputLr: 0.01, inputBatchSize: 4, inputSeqLen: 32 },
      ],
    }), path.join(root, 'grid.json'));
    const real = pipelineSteps(cfg, { benchFiles: {} });
    const tuned: string[] = [];
    const steps: GridSteps = { ...real, tune: async (...a) => { tuned.push(path.basename(a[2])); await real.tune!(...a); } };
    const out = path.join(root, 'out');

    const r = await runGrid(cfg, out, steps);
    assert.deepEqual([r.ran, r.skipped], [4, 0]);
    // directory names carry hashes of what shaped them (extended model; variant options and input files)
    assert.deepEqual(tuned.map((t) => t.replace(/-[0-9a-f]{12}\b/g, '')), ['N12-continue-merges-mean-tuned-output', 'N12-continue-merges-mean-tuned-output+input'], 'one tuned directory per variant');
    const { rows, files } = await writeGridOutputs(out, cfg, r.records, 'tune e2e');
    const by = (stage: string, tune: string) => rows.find((x) => x.stage === stage && x.tune === tune)!;
    const base = by('BASELINE', '-');
    const untuned = by('INITIALIZED_NO_TRAINING', '-');
    const out1 = by('INITIALIZED_WITH_TRAINING', 'output');
    const out2 = by('INITIALIZED_WITH_TRAINING', 'output+input');
    assert.equal(base.new_token_rank_ext, undefined, 'no new-token rank for the original model');
    for (const x of [untuned, out1, out2]) {
      assert.ok(Number.isFinite(x.bpb_pt) && Number.isFinite(x.new_token_rank_ext) && Number.isFinite(x.new_token_rank_orig), x.id);
      assert.ok(x.new_token_rank_base_first_piece! >= 1, `${x.id}: the original model's first-piece rank (reference)`);
    }
    // tuning changed the model, and output rows fitted for extended decoding rank the new tokens higher
    assert.notEqual(out1.bpb_pt, untuned.bpb_pt);
    assert.notEqual(out2.bpb_pt, out1.bpb_pt);
    assert.ok(out1.new_token_rank_orig! < untuned.new_token_rank_orig!, `orig-prefix rank ${untuned.new_token_rank_orig} -> ${out1.new_token_rank_orig}`);
    assert.ok(out1.fertility_boost_greedy! > untuned.fertility_boost_greedy!, `FertilityBoost ${untuned.fertility_boost_greedy} -> ${out1.fertility_boost_greedy}`);
    // tuning time and summary recorded; the second variant reused the first one's hidden-state cache
    for (const x of [out1, out2]) assert.ok(x.tune_seconds! > 0 && x.tune_seconds_with_cache! >= x.tune_seconds!, x.id);
    const rec = (tune: string) => r.records.find((x) => x.meta.tune === tune)!;
    assert.equal(rec('output').tune!.cache!.reused, false);
    assert.equal(rec('output+input').tune!.cache!.reused, true);
    assert.ok(rec('output').tune!.output!.last_loss < rec('output').tune!.output!.first_loss);
    assert.ok(rec('output+input').tune!.input!.steps > 0);
    assert.deepEqual(rec('output').tune!.options, { rows: 'output', ...fast });
    const nr = rec('output').results.metrics.new_token_rank!;
    assert.ok(nr.n > 0 && nr.n <= 24 && nr.max_context === 64);
    const csv = (await fsp.readFile(files[0], 'utf8')).trim().split('\n');
    assert.equal(csv.length, 5);
    for (const col of ['tune', 'tune_seconds', 'new_token_rank_ext', 'new_token_rank_orig']) assert.ok(csv[0].split(',').includes(col), col);
    const html = await fsp.readFile(files[2], 'utf8');
    assert.match(html, /id="chart-tuning"/);
    assert.match(html, /id="tuning-table"/);

    // resume: nothing to do; a lost tuned cell is evaluated again from its tuned directory, not re-tuned
    const again = await runGrid(cfg, out, steps);
    assert.deepEqual([again.ran, again.skipped], [0, 4]);
    await fsp.rm(path.join(out, 'cells', `${rec('output').meta.id}.json`));
    const third = await runGrid(cfg, out, steps);
    assert.deepEqual([third.ran, third.skipped, tuned.length], [1, 3, 2]);
    const redone = third.records.find((x) => x.meta.tune === 'output')!;
    assert.equal(redone.tune!.seconds, rec('output').tune!.seconds, 'tune record read back from tune.json');
    assert.equal(redone.results.metrics.bpb!.pt, rec('output').results.metrics.bpb!.pt);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
