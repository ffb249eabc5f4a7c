// End to end on a small random-weight model: an `experiment` grid (learn, extend with two inits, evaluate, report)
// and `eval` on one of its extended models with every metric, checking the documented
// results.json shape, then the demo's report.html in headless Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTestModel } from './support/factory.ts';
import { checkReport } from './support/chromium-check.ts';

const execFileP = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = (args: string[]) => execFileP(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: repoRoot, maxBuffer: 1 << 24 });

test('experiment + eval end to end on a small model: results shape, resumable grid, report renders in Chromium', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'eval-e2e-'));
  const model = await writeTestModel(path.join(dir, 'model'), { arch: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, merges: 64, seed: 3 });
  const pt = (await fsp.readFile(path.join(repoRoot, 'assets/corpora/pt-pt-parliament-heldout.txt'), 'utf8')).slice(0, 30000);
  const en = (await fsp.readFile(path.join(repoRoot, 'assets/corpora/en-books-heldout.txt'), 'utf8')).slice(0, 6000);
  await fsp.writeFile(path.join(dir, 'pt.txt'), pt);
  await fsp.writeFile(path.join(dir, 'en.txt'), en);
  const out = path.join(dir, 'demo');
  const config = path.join(dir, 'grid.json');
  await fsp.writeFile(config, JSON.stringify({
    models: [model], corpus: [path.join(dir, 'pt.txt')], numTokens: [20, 40], methods: ['continue'], modes: ['merges'], inits: ['mean', 'zero'],
    stages: ['BASELINE', 'INITIALIZED_NO_TRAINING'], inputs: ['extended'], metrics: ['fertility', 'compression', 'bpb', 'fertility-boost', 'efficiency'],
    bench: ['calamept'], calameptRows: 'handwritten', pt: path.join(dir, 'pt.txt'), en: path.join(dir, 'en.txt'), maxBytes: 3000, boostTexts: 4, boostRuns: 10,
  }));
  const args = ['experiment', '--config', config, '--out', out];
  const r = await cli(args);
  assert.match(r.stdout, /BASELINE/);
  assert.match(r.stdout, /INITIALIZED_NO_TRAINING\s+40\s+zero/);
  const json = JSON.parse(await fsp.readFile(path.join(out, 'results.json'), 'utf8'));
  assert.equal(json.rows.length, 5);
  for (const cell of json.cells) {
    const res = cell.results;
    assert.equal(typeof res.model, 'string');
    assert.equal(typeof res.tokenizer, 'string');
    assert.ok(res.metrics.fertility_input.pt > 0 && res.metrics.fertility_input.en > 0);
    assert.ok(res.metrics.bpb.pt > 0 && res.metrics.bpb.en > 0);
    assert.equal(res.benchmarks.calamept.n, 406);
    assert.equal(res.benchmarks.calamept.handwritten.n, 406);
    if (cell.meta.stage === 'BASELINE') assert.equal(res.metrics.fertility_boost, undefined);
    else {
      assert.equal(res.metrics.fertility_boost.runs, 10);
      assert.ok(res.metrics.fertility_boost.mean >= 0 && res.metrics.fertility_boost.std >= 0);
      assert.ok(res.metrics.fertility_input.pt < json.cells[0].results.metrics.fertility_input.pt, 'new tokens lower PT fertility');
      assert.match(res.metrics.efficiency_gain.label, /F_orig \/ F_new - 1/);
    }
  }
  const rerun = await cli(args);
  assert.match(rerun.stderr, /0 cell\(s\) run, 5 reused/);

  // eval with every metric on an extended model, the research's input setup
  // the extended model's directory name ends in a hash of what shaped it
  const extName = (await fsp.readdir(path.join(out, 'artifacts', 'model'))).find((d) => /^N40-continue-merges-mean-[0-9a-f]{12}$/.test(d));
  assert.ok(extName, 'the extended model of N = 40');
  const ext = path.join(out, 'artifacts', 'model', extName);
  const resFile = path.join(dir, 'results.json');
  const e = await cli(['eval', '--model', ext, '--encode-with', model, '--metrics', 'all', '--bench', 'calamept,copa-en', '--calamept-rows', 'handwritten', '--calamept-ll',
    '--pt', path.join(dir, 'pt.txt'), '--en', path.join(dir, 'en.txt'), '--max-bytes', '2000', '--boost-texts', '3', '--rank-probes', '10', '--out', resFile]);
  assert.match(e.stdout, /FertilityBoost: greedy/);
  const res = JSON.parse(await fsp.readFile(resFile, 'utf8'));
  assert.equal(res.input, 'original');
  assert.equal(res.tokenizer, path.join(model, 'tokenizer.json'));
  for (const k of ['fertility_input', 'bpb', 'compression', 'fertility_output', 'fertility_boost', 'decode_speed', 'repetition', 'efficiency_gain', 'new_token_rank']) assert.ok(res.metrics[k], k);
  assert.ok(res.metrics.new_token_rank.n > 0 && res.metrics.new_token_rank.n <= 10 && res.metrics.new_token_rank.median_orig_prefix >= 1);
  // the original model's rank of the first piece, at the same probes, as a reference
  assert.ok(res.metrics.new_token_rank.base_first_piece_median >= 1 && res.metrics.new_token_rank.base_first_piece_top10 >= 0);
  assert.match(e.stdout, /new tokens at their first use, median rank/);
  assert.deepEqual(Object.keys(res.metrics.fertility_input).sort(), ['en', 'original', 'pt']);
  assert.ok(res.metrics.decode_speed.extended.chars_per_step > 0 && res.metrics.decode_speed.original.chars_per_step > 0);
  assert.equal(typeof res.benchmarks.calamept.ll_accuracy, 'number');
  assert.equal(res.benchmarks['copa-en'].n, 100);
  assert.equal(res.subsets.texts, 'first 2000 bytes of each held-out file');

  // clear errors
  await assert.rejects(cli(['eval', '--model', ext, '--metrics', 'fertility-boost', '--pt', path.join(dir, 'pt.txt'), '--out', resFile]), /metric fertility-boost needs the original model: pass --original/);
  await assert.rejects(cli(['eval', '--model', ext, '--metrics', 'new-token-rank', '--pt', path.join(dir, 'pt.txt'), '--out', resFile]), /metric new-token-rank needs the original model: pass --original/);
  await assert.rejects(cli(['eval', '--model', ext, '--metrics', 'bleu', '--out', resFile]), /--metrics bleu: expected a comma-separated list of: fertility/);

  const check = await checkReport(path.join(out, 'report.html'));
  assert.deepEqual(check.consoleErrors, []);
  assert.ok(check.charts.length >= 5, `charts: ${check.charts.map((c) => c.id).join(', ')}`);
  for (const c of check.charts) assert.ok(c.svg && c.marks > 5, `${c.id} rendered`);
});
