// Corpus streaming (plain text or gzip, any size) and the word-frequency table a BPE trainer
// needs: each line is split into words exactly as the model's own normalizer and pre-tokenizer
// do (through the tokenizers binding), so training sees what the model will see.
import type { LoadedTokenizer } from './load.ts';
import type { BpeKind } from './bpe-model.ts';
import { textLines, type TextReadOptions, type TextStats } from '../io/text.ts';

export interface CorpusProgress {
  /** Bytes of the (possibly compressed) files read so far, and their total size. */
  bytesRead: number;
  totalBytes: number;
}

export interface CorpusReadOptions {
  allowInvalidUtf8?: boolean;
  /** Filled while reading: bytes, lines, replaced sequences (see io/text.ts). */
  stats?: TextStats;
}

/** Lines of one or more corpus files (plain or gzip, strict UTF-8: io/text.ts), streamed. */
export function corpusLines(files: string[], onProgress?: (p: CorpusProgress) => void, o: CorpusReadOptions = {}): AsyncGenerator<string> {
  const opts: TextReadOptions = { option: 'corpus', allowInvalidUtf8: o.allowInvalidUtf8, onProgress };
  return textLines(files, opts, o.stats);
}

export interface WordFrequencies {
  /** Distinct words in vocab form ('Ġdeputados', '▁deputados'), with counts. */
  words: string[];
  counts: Float64Array;
  lines: number;
  /** Total word occurrences. */
  total: number;
}

// Splitting a line before every " X" (space then non-space) never cuts a pre-tokenizer match of
// the GPT-2 / Llama-3 / Qwen regexes (no match contains a space followed by a non-space except
// at its start), so the line can be cut into coarse pieces, the distinct pieces counted in JS,
// and only the distinct pieces sent through the native pre-tokenizer. Exactness is tested
// against the native encoder.
const COARSE = /(?= \S)/;
const SP_WORD = /(?<!\u2581)(?=\u2581)/;

/** Count the model's words over a corpus. */
export async function countWords(
  tok: LoadedTokenizer,
  kind: BpeKind,
  files: string[],
  onProgress?: (p: CorpusProgress) => void,
  read: CorpusReadOptions = {},
): Promise<WordFrequencies> {
  const normalizer = tok.native.getNormalizer();
  const pre = tok.native.getPreTokenizer();
  const pieces = new Map<string, number>();
  const words = new Map<string, number>();
  let lines = 0;
  const addWord = (w: string, c: number): void => {
    if (kind === 'sentencepiece' && w.length > 1 && w.indexOf('\u2581', 1) > 0) {
      for (const part of w.split(SP_WORD)) if (part) words.set(part, (words.get(part) ?? 0) + c);
    } else if (w) words.set(w, (words.get(w) ?? 0) + c);
  };
  // SentencePiece tokenizers without a pre-tokenizer (Llama-2) normalize the whole line
  // (Prepend '▁' + Replace ' ' -> '▁'): do that natively per line, then split at '▁'.
  const perLine = pre === null;
  for await (const line of corpusLines(files, onProgress, read)) {
    if (line.length === 0) continue;
    lines++;
    if (perLine) {
      addWord(normalizer ? normalizer.normalizeString(line) : line, 1);
      continue;
    }
    for (const p of line.split(COARSE)) pieces.set(p, (pieces.get(p) ?? 0) + 1);
  }
  for (const [p, c] of pieces) {
    const s = normalizer ? normalizer.normalizeString(p) : p;
    for (const [w] of pre!.preTokenizeString(s)) addWord(w, c);
  }
  const list = [...words.keys()];
  const counts = new Float64Array(list.length);
  let total = 0;
  for (let i = 0; i < list.length; i++) {
    counts[i] = words.get(list[i])!;
    total += counts[i];
  }
  return { words: list, counts, lines, total };
}
