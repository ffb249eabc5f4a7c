// Evaluation harness on the demo model (2 inference threads): bits per byte of the full held-out
// files vs the training card, CalamePT (all 2,076 rows, greedy) and MMLU (14,042 questions) wall time.
// Usage: node --import tsx bench/eval.ts [bpb] [calamept] [mmlu]   (default: all three)
//        MMLU_SUBJECTS=anatomy,virology to time a subset; PRECISION=int8 for the approximate int8 engine.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEngine } from '../src/runtime/engine.ts';
import { loadTokenizer } from '../src/tokenizer/load.ts';
import { codecOf } from '../src/eval/codec.ts';
import { measureBpb } from '../src/eval/bpb.ts';
import { readCalame, readMmlu } from '../src/eval/bench/readers.ts';
import { runCalame } from '../src/eval/bench/calamept.ts';
import { runMmlu } from '../src/eval/bench/choice.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = path.join(root, 'assets', 'models', 'tiny-en-llama');
const card = JSON.parse(await fsp.readFile(path.join(modelDir, 'training_card.json'), 'utf8'));
const which = process.argv.slice(2);
const want = (k: string) => which.length === 0 || which.includes(k);
const threads = Number(process.env.THREADS ?? 2);
const precision = process.env.PRECISION === 'int8' ? 'int8' : 'float32';

const engine = await loadEngine(modelDir, { threads, precision });
const codec = codecOf(await loadTokenizer(path.join(modelDir, 'tokenizer.json')));
const rows: string[] = [];
// wall-clock seconds, and CPU seconds of this process (what the run costs without the other jobs' share of the cores)
const time = async <T>(f: () => Promise<T>): Promise<[T, string]> => {
  const t = performance.now();
  const c = process.cpuUsage();
  const r = await f();
  const cpu = process.cpuUsage(c);
  return [r, `${((performance.now() - t) / 1000).toFixed(1)} s (CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s)`];
};
process.stderr.write(`machine: ${os.cpus()[0]?.model} x ${os.cpus().length}, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}, ${threads} threads, ${precision}\n`);

if (want('bpb')) {
  for (const [lang, file, ref] of [['pt', 'pt-pt-parliament-heldout.txt', card.bpb_pt_heldout], ['en', 'en-books-heldout.txt', card.bpb_en_heldout]] as const) {
    const text = await fsp.readFile(path.join(root, 'assets', 'corpora', file), 'utf8');
    const [r, s] = await time(() => measureBpb(engine, codec, text, { batch: 4 }));
    rows.push(`| bpb ${lang} held-out (${r.bytes} bytes, ${r.tokens} tokens) | ${r.bpb.toFixed(4)} (card ${ref.toFixed(4)}, Δ ${(r.bpb - ref).toFixed(4)}) | ${s} |`);
    process.stderr.write(rows[rows.length - 1] + '\n');
  }
}
if (want('calamept')) {
  const data = await readCalame(path.join(root, 'assets', 'bench', 'calamept.jsonl'));
  const [r, s] = await time(() => runCalame(engine, codec, data, {}));
  rows.push(`| CalamePT greedy, ${r.n} rows | ${(100 * r.accuracy).toFixed(2)}% (card ${(100 * card.calamept_acc).toFixed(2)}%; handwritten ${(100 * r.handwritten.accuracy).toFixed(2)}%, generated ${(100 * r.generated.accuracy).toFixed(2)}%) | ${s} |`);
  process.stderr.write(rows[rows.length - 1] + '\n');
}
if (want('mmlu')) {
  const subjects = process.env.MMLU_SUBJECTS?.split(',').filter(Boolean);
  const qs = await readMmlu(path.join(root, 'assets', 'bench', 'mmlu'), 'test', subjects);
  const [r, s] = await time(() => runMmlu(engine, codec, qs, { batch: 8 }));
  rows.push(`| MMLU zero-shot, ${r.n} questions${subjects ? ` (${subjects.join(', ')})` : ''} | ${(100 * r.accuracy).toFixed(2)}% (macro ${(100 * r.macro_accuracy).toFixed(2)}%) | ${s} |`);
  process.stderr.write(rows[rows.length - 1] + '\n');
}
await engine.dispose();
process.stdout.write(['| what | result | wall time (process CPU time) |', '|---|---|---|', ...rows].join('\n') + '\n');
