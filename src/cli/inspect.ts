// `hack-tokenizer inspect`: how one or more tokenizers split a text, side by side.
// In a terminal tokens get alternating background colours and new tokens a highlight; when piped,
// tokens are separated by '|'. Tokens are grouped on character boundaries from their bytes (a character
// split into byte tokens is one piece), as in the web page. A table gives the counts (token-pieces.ts: the same cells as the web page).
// --html <file> writes the web inspector (a self-contained page); --serve serves it on 127.0.0.1.
import { onInterruptStop } from '../io/output.ts';
import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { HackError } from '../io/errors.ts';
import { readTokenizerJson, type TokenizerJson } from '../io/model-dir.ts';
import { CHAR_TO_BYTE } from '../tokenizer/byte-level.ts';
import { WORD } from '../tokenizer/fertility.ts';
import { inspectorPage, writeInspectorPage, type InspectorTokenizer } from '../tokenizer/inspector-page.ts';
import { encodeWithTokens, loadTokenizer } from '../tokenizer/load.ts';
import { tokenizerSourceOf, type TokenizerSource } from '../tokenizer/source.ts';
import { groupTokens, inspectStats, newTokenFlags, pieceSchemeOf, STAT_COLUMNS, statCells, tokenBytes, vocabOf } from '../tokenizer/token-pieces.ts';
import { numberFlag } from './flags.ts';
import { info } from './progress.ts';

interface InspectFlags {
  model?: string[];
  tokenizer?: string[];
  compare?: string[];
  ids?: boolean;
  color?: boolean;
  html?: string;
  serve?: boolean;
  port?: string;
}

export interface TokenView {
  /** The characters a group of tokens covers (a character split into byte tokens is one group). */
  text: string;
  ids: number[];
  /** Whether one of its tokens is new (absent from the first tokenizer's vocabulary). */
  isNew: boolean;
}

/** The encoding as views: token groups on character boundaries (token-pieces.ts, as the web page shows them). */
export function tokenViews(json: TokenizerJson, ids: number[], tokens: string[], isNew: boolean[]): TokenView[] {
  const scheme = pieceSchemeOf(json);
  const added = new Set((json.added_tokens ?? []).map((t) => t.content));
  return groupTokens(ids, tokens, (t) => tokenBytes(t, scheme, CHAR_TO_BYTE, added))
    .map((g) => ({ text: g.text, ids: g.ids, isNew: g.tokens.some((_, j) => isNew[g.first + j]) }));
}

const COLOURS = ['\x1b[30;48;5;153m', '\x1b[30;48;5;223m', '\x1b[30;48;5;194m', '\x1b[30;48;5;225m'];
/** New tokens: bold, underlined, on yellow. */
const NEW_COLOUR = '\x1b[1;4;30;48;5;220m';
const RESET = '\x1b[0m';

function render(views: TokenView[], colour: boolean): string {
  if (!colour) return views.map((v) => v.text.replace(/\n/g, '\\n')).join('|');
  return views.map((v, i) => (v.isNew ? NEW_COLOUR : COLOURS[i % COLOURS.length]) + v.text.replace(/\n/g, '\\n') + RESET).join('');
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The sources in flag order: --model, --tokenizer, --compare (the first is the reference for "new"). */
async function sourcesOf(o: InspectFlags): Promise<TokenizerSource[]> {
  const specs = [...(o.model ?? []).map((s) => ({ s, flag: '--model' })), ...(o.tokenizer ?? []).map((s) => ({ s, flag: '--tokenizer' })), ...(o.compare ?? []).map((s) => ({ s, flag: '--compare' }))];
  if (specs.length === 0) throw new HackError('MISSING_OPTION', 'give at least one --model <dir|hub id> or --tokenizer <tokenizer.json>', { option: '--model' });
  return Promise.all(specs.map(({ s, flag }) => tokenizerSourceOf(s, flag)));
}

async function pageTokenizers(sources: TokenizerSource[]): Promise<InspectorTokenizer[]> {
  return Promise.all(sources.map(async (src) => {
    const cfgFile = path.join(path.dirname(src.tokenizerPath), 'tokenizer_config.json');
    const config = await fsp.readFile(cfgFile, 'utf8').then((t) => JSON.parse(t) as Record<string, unknown>, () => null);
    return { label: src.label, json: await readTokenizerJson(src.tokenizerPath), config };
  }));
}

/** Serves one page at / on 127.0.0.1 (0: any free port); resolves once listening. */
export async function serveInspector(html: string, port: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405).end(); return; }
    if (url !== '/' && url !== '/index.html') { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'); return; }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : html);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE'
      ? new HackError('PORT_IN_USE', `port ${port} on 127.0.0.1 is in use (give another --port, or 0 for any free one)`, { option: '--port' })
      : e));
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}/`, close: () => new Promise((r) => server.close(() => r())) };
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('Show how tokenizers split a text: tokens (coloured in a terminal, "|"-separated when piped), new tokens, counts side by side; or a web page for it (--html, --serve)')
    .argument('[text]', 'the text to tokenize (with --html/--serve: the text the page starts with)')
    .option('--model <dir|hub id>', 'a model directory or repo id (repeatable)', collect)
    .option('--tokenizer <tokenizer.json>', 'a tokenizer.json file (repeatable)', collect)
    .option('--compare <dir|file>', 'more tokenizers to compare with (repeatable)', collect)
    .option('--ids', 'also print the token ids')
    .option('--no-color', 'plain "|" separators even in a terminal')
    .option('--html <file>', 'write the web inspector: one self-contained page (tokenizers inlined, works offline from file://)')
    .option('--serve', 'serve the web inspector on http://127.0.0.1 until interrupted')
    .option('--port <n>', 'port for --serve (0: any free port)', '8765')
    .addHelpText('after', '\nNew tokens: tokens absent from the first tokenizer\'s vocabulary (for an extended tokenizer: ids >= the first one\'s size).\n' +
      'tokens/word: tokens / words of the text (words: runs of Unicode letters, digits, "_"); bytes/token: UTF-8 bytes / tokens. No BOS/EOS.')
    .action(async (text: string | undefined, o: InspectFlags) => {
      if (o.html !== undefined && o.serve) throw new HackError('BAD_OPTION', 'give either --html <file> or --serve, not both', { option: '--html' });
      const port = numberFlag('--port', o.port, { int: true, min: 0, max: 65535 })!;
      const sources = await sourcesOf(o);
      if (o.html !== undefined || o.serve) {
        const html = await inspectorPage(await pageTokenizers(sources), { text });
        if (o.html !== undefined) {
          await writeInspectorPage(o.html, html, sources.flatMap((s) => [s.tokenizerPath, ...(s.modelDir ? [s.modelDir] : [])]));
          process.stdout.write(`inspector page: ${o.html} (${(Buffer.byteLength(html) / 1e6).toFixed(1)} MB, ${sources.length} tokenizer(s); open it in a browser, no network needed)\n`);
          return;
        }
        const s = await serveInspector(html, port);
        process.stdout.write(`inspector: ${s.url} (Ctrl-C to stop)\n`);
        await new Promise<void>((resolve) => { onInterruptStop(() => { info('stopping'); void s.close().then(resolve); }); });
        return;
      }
      if (text === undefined) throw new HackError('MISSING_ARGUMENT', 'give the text to tokenize (or --html <file> / --serve for the web inspector)');
      const colour = o.color !== false && process.stdout.isTTY === true && !process.env.NO_COLOR;
      const word = new RegExp(WORD.source, WORD.flags);
      const rows: Array<{ label: string; cells: string[] }> = [];
      let firstVocab: Set<string> | null = null;
      let firstStats: ReturnType<typeof inspectStats> | null = null;
      for (const src of sources) {
        const tok = await loadTokenizer(src.tokenizerPath);
        firstVocab ??= vocabOf(tok.json);
        const enc = await encodeWithTokens(tok, text);
        const isNew = newTokenFlags(enc.tokens, firstVocab);
        const views = tokenViews(tok.json, enc.ids, enc.tokens, isNew);
        const stats = inspectStats(text, enc.ids.length, isNew.filter(Boolean).length, word);
        process.stdout.write(`${src.label} (${stats.tokens} tokens, ${stats.newTokens} new)\n${render(views, colour)}\n`);
        if (o.ids) process.stdout.write(`ids: ${enc.ids.join(' ')}\n`);
        const fresh = views.filter((v) => v.isNew);
        if (fresh.length) process.stdout.write(`new: ${fresh.map((v) => v.text.replace(/\n/g, '\\n')).join('|')}\n`);
        process.stdout.write('\n');
        firstStats ??= stats;
        rows.push({ label: src.label, cells: statCells(stats, firstStats) });
      }
      const w = Math.max(9, ...rows.map((r) => r.label.length));
      const cw = STAT_COLUMNS.map((h, j) => Math.max(h.length, ...rows.map((r) => r.cells[j].length)));
      process.stdout.write(`${'tokenizer'.padEnd(w)}  ${STAT_COLUMNS.map((h, j) => h.padStart(cw[j])).join('  ')}\n`);
      for (const r of rows) process.stdout.write(`${r.label.padEnd(w)}  ${r.cells.map((c, j) => c.padStart(cw[j])).join('  ')}\n`);
    });
}
