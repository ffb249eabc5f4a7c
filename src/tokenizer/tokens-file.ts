// tokens.json: the ordered list of new tokens learned from a corpus, with the fingerprint of the
// tokenizer it was learned for. Written with snake_case keys, one token per line; files with the
// older camelCase keys are read as well.
import { promises as fsp } from 'node:fs';
import { HackError } from '../io/errors.ts';
import { camelKeys, snakeKeys } from '../io/json-keys.ts';
import { writeOutputFile, writtenBy } from '../io/output.ts';
import { writeFileAtomic } from '../io/atomic.ts';

export type TokensMethod = 'fresh' | 'continue';
export type TokensRank = 'merge' | 'frequency' | 'saved';

export interface NewToken {
  /** Vocab-form string as in tokenizer.json ('Ġdeputados', '▁deputados'). */
  token: string;
  /** The text it stands for (' deputados'); null when the token is not valid UTF-8 on its own. */
  text: string | null;
  /** Ids of this token's text under the original tokenizer's model (its BPE segmentation). */
  originalIds: number[];
  /** Occurrences in the training corpus segmented with the learned merges. */
  frequency: number;
  /** Tokens saved on the corpus if this token alone were added: frequency * (originalIds.length - 1). */
  saved: number;
  /** The merge that builds it (vocab strings), or null when unknown. */
  merge: [string, string] | null;
}

export interface NewTokenList {
  version: 1;
  tokenizer: string;
  /** tokenizerFingerprint() of the tokenizer the list was learned for (lists before 0.2 have none). */
  tokenizerFingerprint?: string;
  method: TokensMethod;
  corpus: string[];
  numTokens: number;
  /** How the list is ordered. 'merge' = the order the merges were learned (required by --mode merges). */
  rank: TokensRank;
  /** Candidates each filter removed. */
  filters: Record<string, number>;
  /** Corpus statistics. */
  stats?: { lines: number; words: number; distinctWords: number; mergesLearned: number; seconds: number };
  tokens: NewToken[];
}

export class TokensFileError extends HackError {
  constructor(file: string, message: string, option = 'tokens') {
    super('BAD_TOKENS_FILE', message, { file, option });
    this.name = 'TokensFileError';
  }
}

/** The file's text: snake_case keys, `written_by`, one token per line (diffable, still valid JSON). */
export function tokensFileText(data: NewTokenList, command = 'tokens'): string {
  const { tokens, ...head } = data;
  const headJson = JSON.stringify({ written_by: writtenBy(command), ...(snakeKeys(head) as object) }, null, 2);
  const body = tokens.map((t) => '    ' + JSON.stringify(snakeKeys(t))).join(',\n');
  return headJson.slice(0, -2) + ',\n  "tokens": [\n' + body + '\n  ]\n}\n';
}

/** Write tokens.json inside an output being built (no policy checks: the caller's output has them). */
export async function writeTokensFile(file: string, data: NewTokenList, command = 'tokens'): Promise<void> {
  await writeFileAtomic(file, tokensFileText(data, command));
}

/** Write tokens.json as a command's own output (--out), through the output policy. */
export async function writeTokensOutput(file: string, data: NewTokenList, o: { inputs?: string[]; force?: boolean } = {}): Promise<void> {
  await writeOutputFile({ path: file, command: 'tokens', inputs: o.inputs, force: o.force }, tokensFileText(data));
}

export async function readTokensFile(file: string, option = 'tokens'): Promise<NewTokenList> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new TokensFileError(file, (e as NodeJS.ErrnoException).code === 'EISDIR' ? 'is a directory, expected a tokens.json file' : 'tokens file not found', option);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TokensFileError(file, `not valid JSON (${(e as Error).message})`, option);
  }
  const data = camelKeys<NewTokenList & { writtenBy?: string }>(raw, ['filters']);
  if (!data || data.version !== 1 || !Array.isArray(data.tokens)) {
    throw new TokensFileError(file, 'not a tokens.json written by `hack-tokenizer tokens` (expected version 1 and a "tokens" array)', option);
  }
  for (const [i, t] of data.tokens.entries()) {
    if (!t || typeof t.token !== 'string' || t.token.length === 0) throw new TokensFileError(file, `tokens[${i}] has no "token" string`, option);
    if (!Array.isArray(t.originalIds) || t.originalIds.length === 0) throw new TokensFileError(file, `tokens[${i}] has no "original_ids" list`, option);
  }
  delete data.writtenBy;
  return data;
}
