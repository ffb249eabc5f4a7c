// How a text splits into tokens, for people to look at: which tokens are new, the counts shown beside
// them, and (for the web inspector, which has no offsets) token groups that each cover whole characters.
// Shared by `inspect` in the terminal and the web inspector page.
//
// The functions in PAGE_FUNCTIONS are page-safe: they use only their arguments and web-standard globals
// (TextEncoder, TextDecoder), because the web inspector ships their source (Function.prototype.toString)
// into its page. Keep them so: no imports, no module-level names inside them.
//
// New token: a token whose string is absent from the first tokenizer's vocabulary (its model vocab and
// its added tokens). For an extended tokenizer this is exactly "id >= the first tokenizer's size" (an
// extension appends new strings at new ids and changes no existing entry); for any other pair it still
// means "a token the first tokenizer does not have". Tokenizers of different families (byte-level 'Ġ'
// vs SentencePiece '▁') share few strings, so most of their tokens count as new against each other.
import type { TokenizerJson } from '../io/model-dir.ts';

/** How a tokenizer's token strings map to bytes. */
export interface PieceScheme {
  /** GPT-2 byte-level alphabet: one visible character per byte. */
  byteLevel: boolean;
  /** SentencePiece byte fallback: `<0xNN>` tokens are single bytes. */
  byteFallback: boolean;
  /** The character standing for a space (SentencePiece '▁'), or null. */
  space: string | null;
}

/** page-safe */
export function pieceSchemeOf(json: Pick<TokenizerJson, 'decoder' | 'pre_tokenizer' | 'model'>): PieceScheme {
  const dec = JSON.stringify(json.decoder ?? null);
  const pre = JSON.stringify(json.pre_tokenizer ?? null);
  return {
    byteLevel: dec.includes('"ByteLevel"') || (dec === 'null' && pre.includes('"ByteLevel"')),
    byteFallback: json.model?.byte_fallback === true || dec.includes('"ByteFallback"'),
    space: dec.includes('"Metaspace"') || dec.includes('\u2581') || pre.includes('"Metaspace"') ? '\u2581' : null,
  };
}

/**
 * The bytes a token stands for. Added tokens are their content's UTF-8 (what the decoders give for the
 * contents `extend --mode added` writes); `charToByte` is the byte-level alphabet (byte-level.ts). page-safe
 */
export function tokenBytes(token: string, scheme: PieceScheme, charToByte: ReadonlyMap<string, number>, added: ReadonlySet<string>): number[] {
  const utf8 = (s: string) => Array.from(new TextEncoder().encode(s));
  if (added.has(token)) return utf8(token);
  if (scheme.byteLevel) {
    const out: number[] = [];
    for (const ch of token) {
      const b = charToByte.get(ch);
      if (b === undefined) out.push(...utf8(ch));
      else out.push(b);
    }
    return out;
  }
  if (scheme.byteFallback && /^<0x[0-9A-Fa-f]{2}>$/.test(token)) return [parseInt(token.slice(3, 5), 16)];
  return utf8(scheme.space ? token.split(scheme.space).join(' ') : token);
}

export interface TokenGroup {
  /** The characters the group covers. */
  text: string;
  ids: number[];
  tokens: string[];
  /** Indices of the group's tokens in the encoding. */
  first: number;
}

/**
 * Consecutive tokens grouped until their bytes end on a character boundary, so a character split into
 * byte tokens shows as one piece (what `inspect` gets from offsets in the terminal). page-safe
 */
export function groupTokens(ids: number[], tokens: string[], bytesOf: (token: string) => number[]): TokenGroup[] {
  const out: TokenGroup[] = [];
  let pending: number[] = [];
  let group: TokenGroup | null = null;
  const complete = (bs: number[]): boolean => {
    let j = bs.length - 1;
    while (j >= 0 && (bs[j] & 0xc0) === 0x80) j--;
    if (j < 0) return false;
    const lead = bs[j];
    const need = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    return bs.length - j >= need;
  };
  const close = () => {
    if (!group) return;
    group.text = new TextDecoder().decode(new Uint8Array(pending));
    out.push(group);
    group = null;
    pending = [];
  };
  for (let i = 0; i < ids.length; i++) {
    group ??= { text: '', ids: [], tokens: [], first: i };
    group.ids.push(ids[i]);
    group.tokens.push(tokens[i]);
    for (const b of bytesOf(tokens[i])) pending.push(b);
    if (pending.length === 0 || complete(pending)) close();
  }
  close();
  return out;
}

/** Every string of a tokenizer's vocabulary: model vocab (BPE/WordPiece map, Unigram pairs) and added tokens. page-safe */
export function vocabOf(json: Pick<TokenizerJson, 'model' | 'added_tokens'>): Set<string> {
  const v = json.model?.vocab;
  const out = new Set<string>(Array.isArray(v) ? v.map((p) => p[0]) : Object.keys(v ?? {}));
  for (const t of json.added_tokens ?? []) out.add(t.content);
  return out;
}

/** Which tokens are new: absent from the first tokenizer's vocabulary (see the header). page-safe */
export function newTokenFlags(tokens: string[], firstVocab: { has(token: string): boolean }): boolean[] {
  return tokens.map((t) => !firstVocab.has(t));
}

export interface InspectStats {
  tokens: number;
  newTokens: number;
  /** Matches of the word pattern (fertility.ts: Unicode letters, digits, '_'). */
  words: number;
  /** UTF-8 bytes. */
  bytes: number;
  /** Code points. */
  chars: number;
  /** tokens / words: fertility.ts's tokensPerWord (equal to FertilityInput for one line of text). */
  tokensPerWord: number;
  bytesPerToken: number;
  charsPerToken: number;
}

/** The counts for one encoding of `text`; `word` is a global pattern (fertility.ts's). page-safe */
export function inspectStats(text: string, tokenCount: number, newCount: number, word: RegExp): InspectStats {
  const words = (text.match(word) ?? []).length;
  const bytes = new TextEncoder().encode(text).length;
  const chars = Array.from(text).length;
  return {
    tokens: tokenCount, newTokens: newCount, words, bytes, chars,
    tokensPerWord: words ? tokenCount / words : NaN,
    bytesPerToken: tokenCount ? bytes / tokenCount : NaN,
    charsPerToken: tokenCount ? chars / tokenCount : NaN,
  };
}

export const STAT_COLUMNS = ['tokens', 'new', 'words', 'tokens/word', 'bytes/token', 'chars/token', 'vs first'] as const;

/** The stats as the terminal table and the page show them (the same strings; the page test compares them). page-safe */
export function statCells(s: InspectStats, first: InspectStats | null): string[] {
  const f = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const vs = first && first.tokens ? `${((100 * s.tokens) / first.tokens).toFixed(1)}%` : '-';
  return [String(s.tokens), String(s.newTokens), String(s.words), f(s.tokensPerWord, 3), f(s.bytesPerToken, 2), f(s.charsPerToken, 2), vs];
}

/** The page-safe functions, shipped into the web inspector by name. */
export const PAGE_FUNCTIONS = { pieceSchemeOf, tokenBytes, groupTokens, vocabOf, newTokenFlags, inspectStats, statCells };
