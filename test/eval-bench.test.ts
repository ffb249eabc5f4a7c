import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCsv } from '../src/io/csv.ts';
import { readCalame, readExtraGlue, readMmlu, readQueryChoices, mmluPrompt, BenchmarkFileError } from '../src/eval/bench/readers.ts';
import { runCalame } from '../src/eval/bench/calamept.ts';
import { runChoices, runMmlu } from '../src/eval/bench/choice.ts';
import type { EvalEngine, TextCodec } from '../src/eval/engine-api.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const tmpRoot = fsp.mkdtemp(path.join(os.tmpdir(), 'eval-bench-'));
after(async () => fsp.rm(await tmpRoot, { recursive: true, force: true }));
const tmp = async () => fsp.mkdtemp(path.join(await tmpRoot, 'case-'));

// A character-level codec: id = char code (so fake engines can "read" the text).
const codec: TextCodec = {
  async encode(t) { return [...t].map((c) => c.codePointAt(0)!); },
  async encodeBatch(ts) { return Promise.all(ts.map((t) => this.encode(t))); },
  async decode(ids) { return String.fromCodePoint(...ids); },
};

test('CSV: quotes, doubled quotes, newlines inside quotes, CRLF', () => {
  assert.deepEqual(parseCsv('a,b\r\n"x, ""y""","multi\nline"\n'), [['a', 'b'], ['x, "y"', 'multi\nline']]);
  assert.deepEqual(parseCsv('1,,3'), [['1', '', '3']]);
  assert.throws(() => parseCsv('"open'), /unterminated/);
});

test('shipped benchmark files parse with the documented sizes', async () => {
  const cal = await readCalame(path.join(repoRoot, 'assets/bench/calamept.jsonl'));
  assert.equal(cal.length, 2076);
  assert.equal(cal.filter((r) => r.source === 'handwritten').length, 406);
  assert.ok(cal.slice(0, 406).every((r) => r.source === 'handwritten'));
  const mm = await readMmlu(path.join(repoRoot, 'assets/bench/mmlu'));
  assert.equal(mm.length, 14042);
  assert.equal(new Set(mm.map((q) => q.subject)).size, 57);
  assert.ok(mm.every((q) => q.choices.length === 4 && q.answer >= 0 && q.answer <= 3));
  const sub = await readMmlu(path.join(repoRoot, 'assets/bench/mmlu'), 'test', ['anatomy']);
  assert.equal(sub.length, 135);
  await assert.rejects(readMmlu(path.join(repoRoot, 'assets/bench/mmlu'), 'test', ['astrology']), /mmluSubjects: unknown subject\(s\) astrology/);
  assert.equal((await readQueryChoices(path.join(repoRoot, 'assets/bench/en-boolq.jsonl'), 'boolq-en')).length, 3270);
  const copa = await readQueryChoices(path.join(repoRoot, 'assets/bench/en-copa.jsonl'), 'copa-en');
  assert.equal(copa.length, 100);
  assert.ok(copa[0].choices[0].startsWith(' '));
  assert.match(mmluPrompt(sub[0]), /about anatomy\.\n\n.*\nA\. .*\nB\. .*\nC\. .*\nD\. .*\nAnswer:$/s);
});

test('extraGLUE readers: boolq, copa, multirc field layouts; parquet and bad rows give clear errors', async () => {
  const d = await tmp();
  const f = (n: string, rows: unknown[]) => { const p = path.join(d, n); return fsp.writeFile(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n').then(() => p); };
  const b = await readExtraGlue('boolq', await f('b.jsonl', [{ passage: 'O céu é azul.', question: 'o céu é azul', label: 1 }, { passage: 'P', question: 'q', label: false }]));
  assert.equal(b.length, 2);
  assert.equal(b[0].gold, 1);
  assert.equal(b[1].gold, 0);
  assert.deepEqual(b[0].choices, [' não', ' sim']);
  assert.match(b[0].context, /O céu é azul\.\nPergunta: o céu é azul\?\nResposta:$/);
  const c = await readExtraGlue('copa', await f('c.jsonl', [{ premise: 'O homem abriu a torneira.', choice1: 'A sanita encheu.', choice2: 'A água correu.', question: 'effect', label: 1 }]));
  assert.equal(c[0].context, 'O homem abriu a torneira e por isso');
  assert.deepEqual(c[0].choices, [' a sanita encheu.', ' a água correu.']);
  const m = await readExtraGlue('multirc', await f('m.jsonl', [{ paragraph: 'Texto.', question: 'Q?', answer: 'R', label: 0 }]));
  assert.equal(m[0].gold, 0);
  await assert.rejects(readExtraGlue('copa', await f('bad.jsonl', [{ premise: 'x', choice1: 'a', choice2: 'b', question: 'why', label: 0 }])), /question must be "cause" or "effect"/);
  await assert.rejects(readExtraGlue('boolq', await f('bad2.jsonl', [{ passage: 'x', label: 0 }])), /expected field "question"/);
  await assert.rejects(readExtraGlue('boolq', path.join(d, 'x.parquet')), /parquet not supported, convert to JSONL/);
  await assert.rejects(readCalame(path.join(d, 'missing.jsonl')), BenchmarkFileError);
  await fsp.writeFile(path.join(d, 'broken.jsonl'), '{"sentence": "a", "last_word": "b"}\n{oops\n');
  await assert.rejects(readCalame(path.join(d, 'broken.jsonl')), /line 2 is not valid JSON/);
});

test('CalamePT: first Unicode word of the generation, lower-cased, vs last_word; parts; prompt stripped', async () => {
  const prompts: string[] = [];
  const answers: Record<string, string> = { 'Ela viu o': ' Público, ontem', 'O rio': '... água! Sim', 'Nada': '!!' };
  const generated: number[] = [];
  const eng: EvalEngine = {
    vocabRows: 0x3000,
    async tokenLogprobs() { throw new Error('unused'); },
    async scoreContinuations() { throw new Error('unused'); },
    async lastLogits() { throw new Error('unused'); },
    async logits() { throw new Error('unused'); },
    async generate(p, o) {
      const s = String.fromCodePoint(...p);
      prompts.push(s);
      assert.equal(o.temperature, 0);
      // one code point per step, asking stopWhen after each as the engine does
      const all = [...answers[s]].map((c) => c.codePointAt(0)!);
      const out: number[] = [];
      for (const id of all.slice(0, o.maxNewTokens)) {
        out.push(id);
        if (await o.stopWhen?.(out)) break;
      }
      generated.push(out.length);
      return out;
    },
  };
  const rows = [
    { idx: 0, source: 'handwritten', sentence: ' Ela viu o ', last_word: 'público ' },
    { idx: 1, source: 'generated', sentence: 'O rio', last_word: 'Água' },
    { idx: 2, source: 'generated', sentence: 'Nada', last_word: 'x' },
  ];
  const r = await runCalame(eng, codec, rows, { maxNewTokens: 12 });
  assert.deepEqual(prompts, ['Ela viu o', 'O rio', 'Nada']);
  // each generation stops once its first word is followed by a non-word character
  assert.deepEqual(generated, [' Público,'.length, '... água!'.length, 2]);
  assert.equal(r.correct, 2);
  assert.equal(r.n, 3);
  assert.deepEqual(r.handwritten, { accuracy: 1, correct: 1, n: 1 });
  assert.deepEqual(r.generated, { accuracy: 0.5, correct: 1, n: 2 });
  assert.equal(r.samples[2].predicted, null);
});

test('choices and MMLU: the highest log-likelihood wins; letters read at the last position', async () => {
  // fake model: log p of a continuation = -(number of chars) except 'good' choices score 0
  const eng: EvalEngine = {
    vocabRows: 128,
    async tokenLogprobs() { throw new Error('unused'); },
    async scoreContinuations(items) {
      return items.map((it) => { const s = String.fromCodePoint(...it.continuation); const v = s.includes('good') ? -0.5 : -s.length; return { logprobs: Float32Array.of(v), sum: v }; });
    },
    async lastLogits(batch) {
      // prefer the letter whose choice line contains "right"
      return batch.map((ids) => {
        const text = String.fromCodePoint(...ids);
        const r = new Float32Array(128);
        const m = text.match(/\n([A-D])\. [^\n]*right/);
        if (m) r[(' ' + m[1]).codePointAt(1)!] = 5;
        return r;
      });
    },
    async logits() { throw new Error('unused'); },
    async generate() { throw new Error('unused'); },
  };
  const items = [
    { id: 'a', context: 'q1', choices: [' bad', ' good'], gold: 1 },
    { id: 'b', context: 'q2', choices: [' x', ' good but long'], gold: 0 },
  ];
  const c = await runChoices(eng, codec, items, { batch: 3 });
  assert.equal(c.correct, 1);
  assert.equal(c.n, 2);
  // letters " A" are two chars under the char codec: the fallback path scores each letter as a
  // continuation; this fake prefers the letter whose choice line is "good", so no letter ties and an
  // implementation that ignored the scores (always A, or always the last) could not pass
  const fallbackEng: EvalEngine = {
    ...eng,
    async scoreContinuations(items) {
      return items.map((it) => {
        const letter = String.fromCodePoint(...it.continuation).trim();
        const v = String.fromCodePoint(...it.context).includes(`\n${letter}. good`) ? -0.5 : -2;
        return { logprobs: Float32Array.of(v), sum: v };
      });
    },
  };
  const qs = [
    { subject: 's', question: 'Q', choices: ['no', 'good', 'no', 'no'], answer: 1 },
    { subject: 't', question: 'Q', choices: ['good', 'no', 'no', 'no'], answer: 3 },
    { subject: 't', question: 'Q', choices: ['no', 'no', 'good', 'no'], answer: 2 },
  ];
  const mm = await runMmlu(fallbackEng, codec, qs, { batch: 2 });
  assert.equal(mm.n, 3);
  assert.equal(mm.correct, 2); // B and C picked by score; the second question's gold D is not its best letter
  assert.equal(mm.subjects.s.accuracy, 1);
  assert.equal(mm.subjects.t.accuracy, 0.5);
  // single-token letters: a codec mapping " A" .. " D" to one id each
  const letterCodec: TextCodec = { ...codec, async encodeBatch(ts) { return Promise.all(ts.map(async (t) => (/^ [A-D]$/.test(t) ? [t.codePointAt(1)!] : codec.encode(t)))); } };
  const qs2 = [
    { subject: 's', question: 'Q', choices: ['no', 'right', 'no', 'no'], answer: 1 },
    { subject: 's', question: 'Q', choices: ['no', 'no', 'no', 'right'], answer: 3 },
    { subject: 't', question: 'Q', choices: ['right', 'no', 'no', 'no'], answer: 2 },
  ];
  const mm2 = await runMmlu(eng, letterCodec, qs2, { batch: 2 });
  assert.equal(mm2.correct, 2);
  assert.equal(mm2.subjects.s.accuracy, 1);
  assert.equal(mm2.subjects.t.accuracy, 0);
  assert.equal(mm2.macro_accuracy, 0.5);
});
