// bench/glove-c.ts: our GloVe (src/embeddings/glove.ts) beside the reference C implementation (stanfordnlp/GloVe),
// on the same token stream, same settings, one thread each, in one run (the machine is noisy: read the ratios).
// The C tools are not part of this project: build them yourself (`git clone https://github.com/stanfordnlp/GloVe &&
// make -C GloVe`) and pass the build folder.
//   node --import tsx bench/glove-c.ts --glove-bin <GloVe/build> [--max-bytes 4MB] [--tokenizer <tokenizer.json>]
//        [--window 15] [--dim 300] [--iterations 15] [--min-count 5] [--out runs/bench-glove]
// Input: the first --max-bytes of the PT train corpus (whole lines), tokenized by --tokenizer (default: the demo
// model's); C GloVe reads the same ids written as words ("t123"), one corpus line per line.
// Per side: counting seconds (ours: tokenize + count; C: vocab_count + cooccur + shuffle, tokenization excluded),
// training seconds, records, loss per iteration; and training nanoseconds per record-iteration.
import { spawnSync } from 'node:child_process';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gloveOnCorpus, TOKALIGN_GLOVE, type GloveSettings } from '../src/embeddings/glove.ts';
import { encodeBatch, loadTokenizer } from '../src/tokenizer/load.ts';
import { textLines } from '../src/io/text.ts';
import { parseSize } from '../src/io/size.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name: string, def: string | undefined) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : def);
const bin = flag('--glove-bin', undefined);
if (!bin) { console.error('missing --glove-bin <GloVe/build> (the folder with vocab_count, cooccur, shuffle, glove)'); process.exit(2); }
const maxBytes = parseSize(flag('--max-bytes', '4MB')!) ?? 4e6;
const tokFile = path.resolve(flag('--tokenizer', path.join(root, 'assets', 'models', 'tiny-en-llama', 'tokenizer.json'))!);
const out = path.resolve(flag('--out', path.join(root, 'runs', 'bench-glove'))!);
const s: GloveSettings = {
  ...TOKALIGN_GLOVE,
  window: Number(flag('--window', String(TOKALIGN_GLOVE.window))), dim: Number(flag('--dim', String(TOKALIGN_GLOVE.dim))),
  iterations: Number(flag('--iterations', String(TOKALIGN_GLOVE.iterations))), minCount: Number(flag('--min-count', String(TOKALIGN_GLOVE.minCount))),
};
const corpus = path.join(root, 'assets', 'corpora', 'pt-pt-parliament-train.txt.gz');

await fsp.mkdir(out, { recursive: true });
// the slice as plain text (our side reads it) and as id words (the C side reads it)
const textFile = path.join(out, 'slice.txt');
const idsFile = path.join(out, 'slice.ids.txt');
const tok = await loadTokenizer(tokFile);
const lines: string[] = [];
let bytes = 0;
for await (const line of textLines([corpus], { option: 'corpus' })) {
  if (line.length === 0) continue;
  const b = Buffer.byteLength(line) + 1;
  if (bytes + b > maxBytes) break;
  lines.push(line); bytes += b;
}
await fsp.writeFile(textFile, lines.join('\n') + '\n');
const ids = createWriteStream(idsFile);
for (let i = 0; i < lines.length; i += 1000) {
  for (const e of await encodeBatch(tok, lines.slice(i, i + 1000))) ids.write(e.map((id) => `t${id}`).join(' ') + '\n');
}
await new Promise<void>((res, rej) => ids.end((err?: Error | null) => (err ? rej(err) : res())));
console.error(`slice: ${lines.length} lines, ${bytes} bytes; settings ${JSON.stringify(s)}`);

// ours
const ourStart = performance.now();
const ours = await gloveOnCorpus(tok, [textFile], { settings: s });
const ourWall = (performance.now() - ourStart) / 1000;

// C: vocab_count < ids > vocab; cooccur < ids > cooc.bin; shuffle < cooc.bin > shuf.bin; glove -input-file shuf.bin
function c(name: string, argv: string[], stdin: string, stdout: string): { seconds: number; stderr: string } {
  const t = performance.now();
  const sh = `"${path.join(bin!, name)}" ${argv.join(' ')} < "${stdin}" > "${stdout}"`;
  const r = spawnSync('/bin/sh', ['-c', sh], { cwd: out, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status}): ${r.stderr}`);
  return { seconds: (performance.now() - t) / 1000, stderr: r.stderr };
}
const vocab = c('vocab_count', ['-min-count', String(s.minCount), '-verbose', '0'], idsFile, path.join(out, 'vocab.txt'));
const cooc = c('cooccur', ['-vocab-file', 'vocab.txt', '-window-size', String(s.window), '-symmetric', '1', '-memory', '4.0', '-verbose', '0'], idsFile, path.join(out, 'cooc.bin'));
const shuf = c('shuffle', ['-memory', '4.0', '-seed', '1', '-verbose', '0'], path.join(out, 'cooc.bin'), path.join(out, 'shuf.bin'));
const train = c('glove', ['-input-file', 'shuf.bin', '-vocab-file', 'vocab.txt', '-save-file', 'vectors', '-threads', '1', '-vector-size', String(s.dim),
  '-iter', String(s.iterations), '-x-max', String(s.xMax), '-alpha', String(s.alpha), '-eta', String(s.eta), '-binary', '0', '-write-header', '0', '-seed', '1', '-verbose', '2'], '/dev/null', '/dev/null');
const cRecords = (await fsp.stat(path.join(out, 'shuf.bin'))).size / 16; // CREC: int, int, double
const cLosses = [...train.stderr.matchAll(/iter: (\d+), cost: ([\d.]+)/g)].map((m) => Number(m[2]));
const cVocab = (await fsp.readFile(path.join(out, 'vocab.txt'), 'utf8')).split('\n').filter(Boolean).length;

const perRecord = (sec: number, records: number) => (1e9 * sec) / (records * s.iterations);
const result = {
  date: new Date().toISOString(), slice: { lines: lines.length, bytes, tokens: ours.stats.corpusTokens }, settings: s,
  ours: { vocab: ours.stats.vocabSize, records: ours.stats.records, countSeconds: ours.stats.countSeconds, trainSeconds: ours.stats.trainSeconds, wall: ourWall,
    nsPerRecordIteration: perRecord(ours.stats.trainSeconds, ours.stats.records), losses: ours.stats.losses },
  c: { vocab: cVocab, records: cRecords, countSeconds: vocab.seconds + cooc.seconds + shuf.seconds, trainSeconds: train.seconds,
    nsPerRecordIteration: perRecord(train.seconds, cRecords), losses: cLosses },
};
await fsp.writeFile(path.join(out, 'result.json'), JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result, null, 2));
console.log(`train time per record-iteration: ours ${result.ours.nsPerRecordIteration.toFixed(1)} ns, C ${result.c.nsPerRecordIteration.toFixed(1)} ns (ours / C = ${(result.ours.nsPerRecordIteration / result.c.nsPerRecordIteration).toFixed(2)}x)`);
