// `hack-tokenizer inspect`: how one or more tokenizers split a text, side by side.
// In a terminal tokens get alternating background colours; when piped, tokens are separated by '|'.
import type { Command } from 'commander';
import { encodeWithTokens, loadTokenizer } from '../tokenizer/load.ts';
import { tokenizerSourceOf } from '../tokenizer/source.ts';

interface InspectFlags {
  model?: string[];
  tokenizer?: string[];
  compare?: string[];
  ids?: boolean;
  color?: boolean;
}

export interface TokenView {
  /** Text shown for a group of tokens covering the same span (a character split into byte tokens is one group). */
  text: string;
  ids: number[];
}

/** Group tokens by their character span (offsets are in code points). */
export function tokenViews(text: string, ids: number[], offsets: Array<[number, number]>): TokenView[] {
  const chars = Array.from(text);
  const out: TokenView[] = [];
  let last: [number, number] | null = null;
  for (let i = 0; i < ids.length; i++) {
    const [s, e] = offsets[i];
    if (last && last[0] === s && last[1] === e) {
      out[out.length - 1].ids.push(ids[i]);
      continue;
    }
    out.push({ text: chars.slice(s, e).join(''), ids: [ids[i]] });
    last = [s, e];
  }
  return out;
}

const COLOURS = ['\x1b[30;48;5;153m', '\x1b[30;48;5;223m', '\x1b[30;48;5;194m', '\x1b[30;48;5;225m'];
const RESET = '\x1b[0m';

function render(views: TokenView[], colour: boolean): string {
  if (!colour) return views.map((v) => v.text.replace(/\n/g, '\\n')).join('|');
  return views.map((v, i) => COLOURS[i % COLOURS.length] + v.text.replace(/\n/g, '\\n') + RESET).join('');
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('Show how tokenizers split a text: tokens (coloured in a terminal, "|"-separated when piped), ids, counts side by side')
    .argument('<text>', 'the text to tokenize')
    .option('--model <dir|hub id>', 'a model directory or repo id (repeatable)', collect)
    .option('--tokenizer <tokenizer.json>', 'a tokenizer.json file (repeatable)', collect)
    .option('--compare <dir|file>', 'more tokenizers to compare with (repeatable)', collect)
    .option('--ids', 'also print the token ids')
    .option('--no-color', 'plain "|" separators even in a terminal')
    .action(async (text: string, o: InspectFlags) => {
      const specs = [...(o.model ?? []).map((s) => ({ s, flag: '--model' })), ...(o.tokenizer ?? []).map((s) => ({ s, flag: '--tokenizer' })), ...(o.compare ?? []).map((s) => ({ s, flag: '--compare' }))];
      if (specs.length === 0) throw new Error('give at least one --model <dir|hub id> or --tokenizer <tokenizer.json>');
      const colour = o.color !== false && process.stdout.isTTY === true && !process.env.NO_COLOR;
      const rows: Array<{ label: string; tokens: number }> = [];
      const chars = Array.from(text).length;
      for (const { s, flag } of specs) {
        const src = await tokenizerSourceOf(s, flag);
        const tok = await loadTokenizer(src.tokenizerPath);
        const enc = await encodeWithTokens(tok, text);
        const views = tokenViews(text, enc.ids, enc.offsets);
        process.stdout.write(`${src.label} (${enc.ids.length} tokens)\n${render(views, colour)}\n`);
        if (o.ids) process.stdout.write(`ids: ${enc.ids.join(' ')}\n`);
        process.stdout.write('\n');
        rows.push({ label: src.label, tokens: enc.ids.length });
      }
      if (rows.length > 1) {
        const w = Math.max(9, ...rows.map((r) => r.label.length));
        process.stdout.write(`${'tokenizer'.padEnd(w)}  tokens  chars/token  vs first\n`);
        for (const r of rows) {
          const rel = rows[0].tokens ? `${((r.tokens / rows[0].tokens) * 100).toFixed(1)}%` : '-';
          process.stdout.write(`${r.label.padEnd(w)}  ${String(r.tokens).padStart(6)}  ${(r.tokens ? chars / r.tokens : 0).toFixed(2).padStart(11)}  ${rel.padStart(8)}\n`);
        }
      }
    });
}
