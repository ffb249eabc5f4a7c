// Fertility: how many tokens a tokenizer spends per word.
//  - fertilityInput: the research's FertilityInput, the mean over non-empty lines of
//    tokens(line) / words(line), words being the matches of Python's `\b\w+\b` on a str
//    (Unicode letters, digits and '_'; accented letters count as letters). Lines are stripped
//    first; lines with no word are left out of the mean (the ratio is undefined there).
//  - tokensPerWord: corpus total tokens / total words.
//  - bytesPerToken: corpus UTF-8 bytes / total tokens.
// Tokens are counted without special tokens (no BOS/EOS).
import type { LoadedTokenizer } from './load.ts';
import { encodeBatch } from './load.ts';
import { corpusLines } from './corpus.ts';

/**
 * A word: a run of Unicode letters, digits and "_", Python's `\w+` on a str as the research counted
 * (combining marks are not word characters there: NFD "a\u0301gua" is two words, NFC "água" one).
 * The one word definition of the project; global, so reset lastIndex before exec.
 */
export const WORD = /[\p{L}\p{N}_]+/gu;
/** One word character (Python's `\w`). */
export const WORD_CHAR = /[\p{L}\p{N}_]/u;

export function countWordsInLine(line: string): number {
  let n = 0;
  WORD.lastIndex = 0;
  while (WORD.exec(line) !== null) n++;
  return n;
}

export interface FertilityResult {
  fertilityInput: number;
  tokensPerWord: number;
  bytesPerToken: number;
  /** Non-empty lines with at least one word (the ones the mean is over). */
  lines: number;
  /** Non-empty lines without a word (left out of fertilityInput, included in the totals). */
  linesWithoutWords: number;
  tokens: number;
  words: number;
  bytes: number;
}

/** Accumulates per-line counts; pure, so any encoder can feed it. */
export class FertilityAccumulator {
  private sumRatio = 0;
  private lines = 0;
  private noWords = 0;
  private tokens = 0;
  private words = 0;
  private bytes = 0;

  add(line: string, tokenCount: number): void {
    const words = countWordsInLine(line);
    this.tokens += tokenCount;
    this.words += words;
    this.bytes += Buffer.byteLength(line, 'utf8');
    if (words === 0) {
      this.noWords++;
      return;
    }
    this.sumRatio += tokenCount / words;
    this.lines++;
  }

  result(): FertilityResult {
    return {
      fertilityInput: this.lines ? this.sumRatio / this.lines : NaN,
      tokensPerWord: this.words ? this.tokens / this.words : NaN,
      bytesPerToken: this.tokens ? this.bytes / this.tokens : NaN,
      lines: this.lines,
      linesWithoutWords: this.noWords,
      tokens: this.tokens,
      words: this.words,
      bytes: this.bytes,
    };
  }
}

/** Non-empty stripped lines of a text. */
export function fertilityLines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
}

/** Fertility of a tokenizer on a list of lines (already split). */
export async function fertility(tok: LoadedTokenizer, lines: Iterable<string> | AsyncIterable<string>, batchSize = 512): Promise<FertilityResult> {
  const acc = new FertilityAccumulator();
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    const ids = await encodeBatch(tok, batch);
    for (let i = 0; i < batch.length; i++) acc.add(batch[i], ids[i].length);
    batch = [];
  };
  for await (const raw of lines as AsyncIterable<string>) {
    const line = raw.trim();
    if (line.length === 0) continue;
    batch.push(line);
    if (batch.length >= batchSize) await flush();
  }
  if (batch.length) await flush();
  return acc.result();
}

/** Fertility of a tokenizer on corpus files (plain or gzip), streamed. */
export async function fertilityOfFiles(tok: LoadedTokenizer, files: string[]): Promise<FertilityResult> {
  return fertility(tok, corpusLines(files));
}
