// The web tokenizer inspector: one self-contained HTML page (no network) where one types a text and sees,
// side by side, how each tokenizer splits it: coloured tokens, new tokens marked, ids on hover, counts,
// tokens per word and bytes per token. Tokenization runs in the page with @huggingface/tokenizers (pure
// JS): its ESM build is inlined with its one `export {…}` clause turned into an object, so no bundler is
// needed. The tokenizer.json files are inlined as compact JSON; the shared counting and labelling code
// (token-pieces.ts) is inlined from its source, so the page and the terminal `inspect` count the same way.
import { promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { HackError } from '../io/errors.ts';
import { escapeHtml as esc } from '../io/html.ts';
import { tokenizerSizeOf, type TokenizerJson } from '../io/model-dir.ts';
import { BYTE_TO_CHAR } from './byte-level.ts';
import { WORD } from './fertility.ts';
import { PAGE_FUNCTIONS, STAT_COLUMNS } from './token-pieces.ts';

export interface InspectorTokenizer {
  /** Shown above its column. */
  label: string;
  json: TokenizerJson;
  /** tokenizer_config.json, when the tokenizer came with one. */
  config?: Record<string, unknown> | null;
}

export interface InspectorPageOptions {
  /** The text the page starts with. */
  text?: string;
  title?: string;
}

/** Marks a page as ours: `--html` overwrites such a file, and no other. */
export const INSPECTOR_GENERATOR = 'hack-tokenizer inspect';

/** @huggingface/tokenizers' browser build as a script that defines `HFTokenizers` (its exports). */
export async function tokenizersLibraryScript(): Promise<string> {
  // the package's exports map gives the CommonJS file to require.resolve; its ESM builds sit beside it
  const dist = path.dirname(createRequire(import.meta.url).resolve('@huggingface/tokenizers'));
  const file = path.join(dist, 'tokenizers.min.mjs');
  const src = await fsp.readFile(file, 'utf8').catch(() => {
    throw new HackError('MISSING_DEPENDENCY', '@huggingface/tokenizers has no dist/tokenizers.min.mjs (reinstall the package)', { file });
  });
  const m = /export\s*\{([^}]*)\}\s*;?\s*$/.exec(src);
  if (!m || /\bimport\s*[{(*\w]/.test(src.slice(0, 200)) || /^\s*export\s/m.test(src.slice(0, m.index))) {
    throw new HackError('UNEXPECTED_DEPENDENCY', 'the @huggingface/tokenizers build no longer ends with a single export clause; the inspector cannot inline it', { file });
  }
  const entries = m[1].split(',').map((e) => e.trim()).filter(Boolean).map((e) => {
    const [local, exported] = e.split(/\s+as\s+/);
    return `${JSON.stringify(exported ?? local)}: ${local}`;
  });
  return `const HFTokenizers = (() => {\n${src.slice(0, m.index)}\nreturn { ${entries.join(', ')} };\n})();`;
}

/** JSON that is safe inside <script type="application/json"> ('<' escaped, so no '</script>'). */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');


interface PageData {
  tokenizers: Array<{ label: string; size: number; config: Record<string, unknown> }>;
  byteTable: string[];
  word: { source: string; flags: string };
  columns: readonly string[];
}

type Shared = typeof PAGE_FUNCTIONS;
interface JsTokenizer { encode(text: string, o: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] } }

/**
 * The page's program (runs in the browser; shipped by its source, so it uses only its arguments and
 * the DOM). Tokenizers load one at a time, yielding between them: a 150K-token tokenizer takes seconds.
 */
function inspectorMain(HF: { Tokenizer: new (json: object, config: object) => JsTokenizer }, S: Shared, data: PageData): void {
  const byId = (id: string) => document.getElementById(id)!;
  const area = byId('text') as HTMLTextAreaElement;
  const status = byId('status');
  const summary = byId('summary');
  const columns = byId('columns');
  const word = new RegExp(data.word.source, data.word.flags.includes('g') ? data.word.flags : data.word.flags + 'g');
  const charToByte = new Map<string, number>(data.byteTable.map((c, b) => [c, b] as [string, number]));
  const loaded: Array<{ label: string; size: number; tok: JsTokenizer; bytesOf: (t: string) => number[] }> = [];
  let firstVocab: Set<string> | null = null;
  let renders = 0;
  const el = (tag: string, cls?: string, text?: string) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const shown = (t: string) => t.replace(/\n/g, '\u21b5\n').replace(/\t/g, '\u2192');

  const render = () => {
    const text = area.value;
    const results = loaded.map((t) => {
      const enc = t.tok.encode(text, { add_special_tokens: false });
      const isNew = S.newTokenFlags(enc.tokens, firstVocab!);
      const stats = S.inspectStats(text, enc.ids.length, isNew.filter(Boolean).length, word);
      return { t, enc, isNew, stats, groups: S.groupTokens(enc.ids, enc.tokens, t.bytesOf) };
    });
    // the summary table: one row per tokenizer, the same cells as the terminal's table
    const table = el('table');
    const head = el('tr');
    for (const h of ['tokenizer', 'vocabulary', ...data.columns]) head.appendChild(el('th', undefined, h));
    table.appendChild(el('thead')).appendChild(head);
    const body = table.appendChild(el('tbody'));
    results.forEach((r, i) => {
      const tr = el('tr');
      tr.dataset.index = String(i);
      tr.appendChild(el('td', 'label', r.t.label));
      tr.appendChild(el('td', undefined, String(r.t.size)));
      S.statCells(r.stats, results[0].stats).forEach((c, j) => {
        const td = el('td', undefined, c);
        td.dataset.stat = data.columns[j];
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    summary.replaceChildren(table);
    // the columns: the text as coloured tokens
    const cols = results.map((r, i) => {
      const col = el('section', 'col');
      col.dataset.index = String(i);
      col.dataset.tokens = String(r.stats.tokens);
      col.dataset.new = String(r.stats.newTokens);
      const h = col.appendChild(el('h2', undefined, r.t.label));
      h.title = r.t.label;
      col.appendChild(el('div', 'stats', `${r.stats.tokens} tokens · ${r.stats.newTokens} new · ${S.statCells(r.stats, null)[3]} tokens/word · ${S.statCells(r.stats, null)[4]} bytes/token`));
      const view = col.appendChild(el('div', 'tokens'));
      const frag = document.createDocumentFragment();
      r.groups.forEach((g, k) => {
        const fresh = g.tokens.some((_, j) => r.isNew[g.first + j]);
        const span = el('span', `tok c${k % 4}${fresh ? ' new' : ''}`, shown(g.text));
        span.dataset.ids = g.ids.join(' ');
        span.title = `id${g.ids.length > 1 ? 's' : ''} ${g.ids.join(' ')}\n${g.tokens.map((t) => JSON.stringify(t)).join(' ')}${fresh ? `\nnew: not in ${results[0].t.label}` : ''}`;
        frag.appendChild(span);
      });
      view.appendChild(frag);
      return col;
    });
    columns.style.gridTemplateColumns = `repeat(${cols.length}, minmax(260px, 1fr))`;
    columns.replaceChildren(...cols);
    renders++;
    summary.dataset.text = text;
    document.body.dataset.renders = String(renders);
  };

  let timer: ReturnType<typeof setTimeout> | undefined;
  const load = (i: number) => {
    if (i === data.tokenizers.length) {
      status.textContent = '';
      document.body.dataset.state = 'ready';
      area.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(render, 60);
      });
      render();
      return;
    }
    const d = data.tokenizers[i];
    status.textContent = `loading ${d.label} (${i + 1} of ${data.tokenizers.length})…`;
    setTimeout(() => {
      try {
        const json = JSON.parse(byId(`tokenizer-${i}`).textContent!);
        const scheme = S.pieceSchemeOf(json);
        const added = new Set<string>((json.added_tokens ?? []).map((t: { content: string }) => t.content));
        if (i === 0) firstVocab = S.vocabOf(json);
        loaded.push({ label: d.label, size: d.size, tok: new HF.Tokenizer(json, d.config), bytesOf: (t) => S.tokenBytes(t, scheme, charToByte, added) });
      } catch (e) {
        status.textContent = `cannot load ${d.label}: ${(e as Error).message}`;
        document.body.dataset.state = 'error';
        return;
      }
      load(i + 1);
    }, 0);
  };
  load(0);
}

const STYLE = `
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:20px;color:#222}
h1{font-size:20px;margin:0 0 6px} .note{color:#666;font-size:13px;max-width:1100px}
textarea{width:100%;box-sizing:border-box;min-height:110px;font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;padding:8px}
#status{color:#a15c00;font-size:13px;min-height:18px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f4f4f4} th:first-child{text-align:left} td.label{text-align:left;max-width:420px;overflow:hidden;text-overflow:ellipsis}
#columns{display:grid;gap:14px;overflow-x:auto}
.col{border:1px solid #ddd;border-radius:6px;padding:8px 10px;min-width:0}
.col h2{font-size:14px;margin:0 0 2px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap} .stats{font-size:12px;color:#555;margin-bottom:6px}
.tokens{font:14px/1.9 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
.tok{border-radius:3px;padding:1px 0;margin-right:1px}
.c0{background:#cde4ff}.c1{background:#ffd9b3}.c2{background:#c8f0c8}.c3{background:#f7c6e6}
.tok.new{background:#ffe066;outline:2px solid #d6336c;outline-offset:-1px;font-weight:600}
.legend .tok{padding:1px 4px}
`;

/** The page: the tokenizers (at least one), inlined with the library and the page's program. */
export async function inspectorPage(tokenizers: InspectorTokenizer[], opts: InspectorPageOptions = {}): Promise<string> {
  if (tokenizers.length === 0) throw new HackError('BAD_OPTION', 'the inspector needs at least one tokenizer', { option: 'tokenizers' });
  const data: PageData = {
    tokenizers: tokenizers.map((t) => ({ label: t.label, size: tokenizerSizeOf(t.json), config: t.config ?? {} })),
    byteTable: [...BYTE_TO_CHAR],
    word: { source: WORD.source, flags: WORD.flags },
    columns: STAT_COLUMNS,
  };
  const shared = Object.entries(PAGE_FUNCTIONS).map(([name, f]) => `${name}: ${f.toString()}`);
  const program = [
    await tokenizersLibraryScript(),
    // tsx (esbuild with keepNames) wraps functions it compiles in __name(); dist/ (tsc) does not
    'const __name = (f) => f;',
    `const shared = { ${shared.join(',\n')} };`,
    `(${inspectorMain.toString()})(HFTokenizers, shared, JSON.parse(document.getElementById('inspector-data').textContent));`,
  ].join('\n');
  if (/<\/script/i.test(program)) throw new HackError('UNEXPECTED_DEPENDENCY', 'the inspector program contains "</script" and cannot be inlined');
  const title = opts.title ?? `Tokenizer inspector: ${tokenizers.map((t) => t.label).join(' vs ')}`;
  const text = opts.text ?? 'O Presidente da Assembleia da República anunciou que as votações regimentais decorrerão amanhã.\n' +
    'The President of the Assembly announced that the votes will take place tomorrow.';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="${INSPECTOR_GENERATOR}">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style></head><body data-state="loading">
<h1>${esc(title)}</h1>
<p class="note">Type or paste a text: each tokenizer's tokens are coloured one by one (a character split into several byte tokens is one piece); hover a token for its id(s) and string(s).
<span class="legend"><span class="tok new">new</span> tokens are absent from the first tokenizer's vocabulary (for an extended tokenizer: ids at or above the first one's size).
Words: runs of Unicode letters, digits and "_"; tokens/word = tokens ÷ words of the whole text; bytes are UTF-8. No special tokens (BOS/EOS) are added. Nothing leaves this page: the tokenizers run in it.</span></p>
<textarea id="text" spellcheck="false" aria-label="text to tokenize">${esc(text)}</textarea>
<div id="status">loading…</div>
<div id="summary"></div>
<div id="columns"></div>
${tokenizers.map((t, i) => `<script type="application/json" id="tokenizer-${i}">${scriptJson(t.json)}</script>`).join('\n')}
<script type="application/json" id="inspector-data">${scriptJson(data)}</script>
<script>
${program}
</script>
</body></html>
`;
}

/**
 * Writes the page atomically, refusing to write onto an input (a tokenizer.json, or into a model
 * directory it came from) or over a file that is not an inspector page.
 */
export async function writeInspectorPage(file: string, html: string, inputs: string[]): Promise<void> {
  const target = path.resolve(file);
  const real = async (p: string) => fsp.realpath(p).catch(() => path.resolve(p));
  const targetReal = path.join(await real(path.dirname(target)), path.basename(target));
  for (const input of inputs) {
    const inp = await real(input);
    const rel = path.relative(inp, targetReal);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
      throw new HackError('OUTPUT_IS_INPUT', `refusing to write the inspector page onto an input (${input})`, { file });
    }
  }
  const st = await fsp.stat(target).catch(() => null);
  if (st?.isDirectory()) throw new HackError('OUTPUT_EXISTS', 'is a directory; give a file name for the page', { file });
  if (st) {
    const fh = await fsp.open(target, 'r');
    const buf = Buffer.alloc(400);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0).finally(() => fh.close());
    const head = buf.subarray(0, bytesRead).toString('utf8');
    if (!head.includes(`<meta name="generator" content="${INSPECTOR_GENERATOR}">`)) {
      throw new HackError('OUTPUT_EXISTS', 'exists and is not an inspector page; refusing to overwrite it', { file });
    }
  }
  await writeFileAtomic(target, html);
}
