// bench/train-engines.ts: the same training job on both engines, side by side in one run (the machine is noisy:
// read the ratios). The demo model extended by N continued-BPE merges (mean init); every job trains on the same
// 512-token windows, 4 per step, for the same token budget, with the same threads:
//   ts rows     `tune --engine ts --rows input` (tied model: the new rows' one parameter, input and output paths)
//   torch rows  `tune --engine torch --recipe rows` (the same rows, gradient-masked)
//   torch embeddings | lora | full
// Per job: training tokens/s (from tune.json: training steps only), wall seconds and peak RSS of the whole command
// (GNU time's %M: the largest of the CLI and the Python child it waited for).
//   node --import tsx bench/train-engines.ts [--threads 2] [--tokens 61440] [--merges 5000] [--out runs/bench-train]
//                                            [--jobs ts-rows,torch-rows,torch-embeddings,torch-lora,torch-full]
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name: string, def: string) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : def);
const threads = flag('--threads', String(os.availableParallelism()));
const tokens = Number(flag('--tokens', '61440'));
const merges = flag('--merges', '5000');
const out = path.resolve(flag('--out', path.join(root, 'runs', 'bench-train')));
const wanted = flag('--jobs', 'ts-rows,torch-rows,torch-embeddings,torch-lora,torch-full').split(',');
const SEQ = 512;
const BATCH = 4;
const demo = path.join(root, 'assets', 'models', 'tiny-en-llama');
const train = path.join(root, 'assets', 'corpora', 'pt-pt-parliament-train.txt.gz');
const cli = [process.execPath, '--import', 'tsx', path.join(root, 'src', 'cli', 'run.ts')];

function timed(label: string, argv: string[]): { wall: number; rssMB: number } {
  process.stderr.write(`\n--- ${label}: hack-tokenizer ${argv.join(' ')}\n`);
  const r = spawnSync('/usr/bin/time', ['-f', '@@time %e %M', ...cli, ...argv], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  const m = /@@time ([\d.]+) (\d+)/.exec(r.stderr ?? '');
  process.stderr.write((r.stderr ?? '').split('\n').filter((l) => !l.startsWith('@@time')).slice(-4).join('\n') + '\n');
  if (r.status !== 0 || !m) throw new Error(`${label} failed (exit ${r.status})`);
  return { wall: Number(m[1]), rssMB: Number(m[2]) / 1024 };
}

async function main(): Promise<void> {
  await fsp.mkdir(out, { recursive: true });
  // 2 MB of text: more windows than any job reads, so no job sees a window twice
  const text = path.join(out, 'pt2m.txt');
  if (!existsSync(text)) await fsp.writeFile(text, gunzipSync(await fsp.readFile(train)).subarray(0, 2_000_000));
  const ext = path.join(out, `ext${merges}`);
  if (!existsSync(path.join(ext, 'config.json'))) {
    timed('extend', ['extend', '--model', demo, '--corpus', text, '--num-tokens', merges, '--mode', 'merges', '--init', 'mean', '--out', ext]);
  }
  const common = ['--model', ext, '--original', demo, '--corpus', text, '--threads', threads, '--force'];
  const jobs: Record<string, string[]> = {
    'ts-rows': ['--engine', 'ts', '--rows', 'input', '--input-corpus-bytes', '2MB', '--input-seq-len', String(SEQ),
      '--input-batch-size', String(BATCH), '--input-max-tokens', String(tokens)],
  };
  for (const recipe of ['rows', 'embeddings', 'lora', 'full']) {
    jobs[`torch-${recipe}`] = ['--engine', 'torch', '--recipe', recipe, '--corpus-bytes', '2MB', '--seq-len', String(SEQ),
      '--batch-size', String(BATCH), '--max-tokens', String(tokens)];
  }
  const rows: { job: string; tokens: number; tps: number; wall: number; rssMB: number }[] = [];
  for (const name of wanted) {
    if (!jobs[name]) throw new Error(`unknown job ${name}; known: ${Object.keys(jobs).join(', ')}`);
    const dir = path.join(out, name);
    const t = timed(name, ['tune', ...common, ...jobs[name], '--out', dir]);
    const tj = JSON.parse(await fsp.readFile(path.join(dir, 'tune.json'), 'utf8'));
    const trained = name === 'ts-rows' ? tj.input.items : tj.tokens;
    const tps = name === 'ts-rows' ? tj.input.items / tj.input.seconds : tj.tokens_per_s;
    rows.push({ job: name, tokens: trained, tps, wall: t.wall, rssMB: t.rssMB });
  }
  const ts = rows.find((r) => r.job === 'ts-rows')?.tps;
  const lines = [
    `${new Date().toISOString()} ${os.cpus()[0]?.model ?? ''} x${os.cpus().length}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, threads ${threads}, ${SEQ}-token windows x ${BATCH}, ${merges} new tokens`,
    '| job | tokens | training tokens/s | vs ts rows | wall s | peak RSS MB |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.job} | ${r.tokens} | ${r.tps.toFixed(0)} | ${ts ? (r.tps / ts).toFixed(2) + 'x' : '-'} | ${r.wall.toFixed(0)} | ${r.rssMB.toFixed(0)} |`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  await fsp.writeFile(path.join(out, 'results.md'), lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : e}\n`);
  process.exit(1);
});
