// Benchmark files: CalamePT, MMLU (CSV per subject), llm-foundry style {query, choices, gold}
// JSONL (BoolQ/COPA EN), and extraGLUE pt-PT (boolq, copa, multirc) in JSONL.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parseCsv } from '../../io/csv.ts';
import { HackError, optionError } from '../../io/errors.ts';

export interface CalameRow { idx: number; source: string; sentence: string; last_word: string }
/** A zero-shot choice item: score each continuation after `context`; `gold` is the right one. */
export interface ChoiceItem { id: string; context: string; choices: string[]; gold: number; group?: string }

export class BenchmarkFileError extends HackError {
  declare readonly file: string;
  constructor(file: string, message: string) { super('BAD_BENCHMARK_FILE', message, { file }); this.name = 'BenchmarkFileError'; }
}

async function readText(file: string): Promise<string> {
  try { return await fsp.readFile(file, 'utf8'); } catch (e) {
    throw new BenchmarkFileError(file, `cannot read benchmark file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export async function readJsonl(file: string): Promise<Record<string, unknown>[]> {
  if (/\.parquet$/i.test(file)) throw new BenchmarkFileError(file, 'parquet not supported, convert to JSONL (one JSON object per line)');
  const text = await readText(file);
  const out: Record<string, unknown>[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trim();
    if (!l) continue;
    try { out.push(JSON.parse(l)); } catch (e) { throw new BenchmarkFileError(file, `line ${i + 1} is not valid JSON (${(e as Error).message})`); }
  }
  return out;
}

function need<T>(file: string, row: Record<string, unknown>, i: number, key: string, type: 'string' | 'number'): T {
  const v = row[key];
  if (typeof v !== type) throw new BenchmarkFileError(file, `row ${i + 1}: expected field "${key}" (${type}), got ${JSON.stringify(v)}`);
  return v as T;
}

export async function readCalame(file: string): Promise<CalameRow[]> {
  const rows = await readJsonl(file);
  return rows.map((r, i) => ({
    idx: typeof r.idx === 'number' ? r.idx : i,
    source: typeof r.source === 'string' ? r.source : (i <= 405 ? 'handwritten' : 'generated'),
    sentence: need<string>(file, r, i, 'sentence', 'string'),
    last_word: need<string>(file, r, i, 'last_word', 'string'),
  }));
}

/** llm-foundry local eval format: {query, choices, gold}. Choices follow the query after a space. */
export async function readQueryChoices(file: string, name: string): Promise<ChoiceItem[]> {
  const rows = await readJsonl(file);
  return rows.map((r, i) => {
    const choices = r.choices;
    if (!Array.isArray(choices) || choices.some((c) => typeof c !== 'string')) throw new BenchmarkFileError(file, `row ${i + 1}: expected "choices" as an array of strings`);
    const gold = need<number>(file, r, i, 'gold', 'number');
    if (gold < 0 || gold >= choices.length) throw new BenchmarkFileError(file, `row ${i + 1}: gold ${gold} out of range`);
    return { id: `${name}-${i}`, context: need<string>(file, r, i, 'query', 'string'), choices: (choices as string[]).map((c) => ' ' + c), gold };
  });
}

export const MMLU_LETTERS = ['A', 'B', 'C', 'D'];

export function mmluSubjectName(subject: string): string {
  return subject.replace(/_/g, ' ');
}

export interface MmluQuestion { subject: string; question: string; choices: string[]; answer: number }

/** MMLU test (or dev) questions: <dir>/<split>/<subject>_<split>.csv with header question,choice0..3,answer. */
export async function readMmlu(dir: string, split: 'test' | 'dev' = 'test', subjects?: string[]): Promise<MmluQuestion[]> {
  const sub = path.join(dir, split);
  let files: string[];
  try { files = (await fsp.readdir(sub)).filter((f) => f.endsWith(`_${split}.csv`)).sort(); } catch {
    throw new BenchmarkFileError(sub, `expected a directory of <subject>_${split}.csv files`);
  }
  const all = files.map((f) => f.slice(0, -`_${split}.csv`.length));
  if (subjects && subjects.length > 0) {
    const unknown = subjects.filter((s) => !all.includes(s));
    if (unknown.length) throw optionError('mmluSubjects', `unknown subject(s) ${unknown.join(', ')} (known: ${all.join(', ')})`);
  }
  const chosen = subjects && subjects.length > 0 ? all.filter((s) => subjects.includes(s)) : all;
  const out: MmluQuestion[] = [];
  for (const s of chosen) {
    const file = path.join(sub, `${s}_${split}.csv`);
    const rows = parseCsv(await readText(file));
    const header = rows[0]?.join(',');
    const body = header === 'question,choice0,choice1,choice2,choice3,answer' ? rows.slice(1) : rows;
    body.forEach((r, i) => {
      if (r.length !== 6) throw new BenchmarkFileError(file, `row ${i + 1}: expected 6 fields, got ${r.length}`);
      const a = /^[0-3]$/.test(r[5]) ? Number(r[5]) : MMLU_LETTERS.indexOf(r[5].trim());
      if (a < 0) throw new BenchmarkFileError(file, `row ${i + 1}: answer must be 0-3 or A-D, got ${JSON.stringify(r[5])}`);
      out.push({ subject: s, question: r[0], choices: r.slice(1, 5), answer: a });
    });
  }
  return out;
}

/** Zero-shot MMLU prompt (the original paper's format without the few-shot examples). */
export function mmluPrompt(q: MmluQuestion): string {
  const lines = [`The following are multiple choice questions (with answers) about ${mmluSubjectName(q.subject)}.`, '', q.question.trim()];
  q.choices.forEach((c, i) => lines.push(`${MMLU_LETTERS[i]}. ${c}`));
  lines.push('Answer:');
  return lines.join('\n');
}

// extraGLUE (pt-PT SuperGLUE) readers: the field layouts of its boolq / copa / multirc splits.
const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);

export async function readExtraGlue(task: 'boolq' | 'copa' | 'multirc', file: string): Promise<ChoiceItem[]> {
  const rows = await readJsonl(file);
  return rows.map((r, i) => {
    const label = typeof r.label === 'boolean' ? Number(r.label) : need<number>(file, r, i, 'label', 'number');
    if (task === 'boolq') {
      const passage = need<string>(file, r, i, 'passage', 'string');
      const question = need<string>(file, r, i, 'question', 'string');
      return { id: `boolq-${i}`, context: `${passage}\nPergunta: ${question.trim()}?\nResposta:`, choices: [' não', ' sim'], gold: label ? 1 : 0 };
    }
    if (task === 'copa') {
      const premise = need<string>(file, r, i, 'premise', 'string').trim().replace(/[.!?]$/, '');
      const q = need<string>(file, r, i, 'question', 'string');
      const connector = q === 'cause' ? 'porque' : q === 'effect' ? 'e por isso' : null;
      if (!connector) throw new BenchmarkFileError(file, `row ${i + 1}: question must be "cause" or "effect", got ${JSON.stringify(q)}`);
      const c1 = need<string>(file, r, i, 'choice1', 'string');
      const c2 = need<string>(file, r, i, 'choice2', 'string');
      return { id: `copa-${i}`, context: `${premise} ${connector}`, choices: [' ' + lowerFirst(c1), ' ' + lowerFirst(c2)], gold: label };
    }
    const paragraph = need<string>(file, r, i, 'paragraph', 'string');
    const question = need<string>(file, r, i, 'question', 'string');
    const answer = need<string>(file, r, i, 'answer', 'string');
    return {
      id: `multirc-${i}`, context: `${paragraph}\nPergunta: ${question}\nResposta: ${answer}\nEsta resposta está correta?`,
      choices: [' não', ' sim'], gold: label ? 1 : 0, group: `${paragraph.length}:${question}`,
    };
  });
}
