// tokens.json: the ordered list of new tokens learned from a corpus (see scratch/CONTRACTS.md §1).
import { promises as fsp } from 'node:fs';
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

export class TokensFileError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'TokensFileError';
  }
}

export async function writeTokensFile(file: string, data: NewTokenList): Promise<void> {
  // One token per line: diffable, still valid JSON.
  const { tokens, ...head } = data;
  const headJson = JSON.stringify(head, null, 2);
  const body = tokens.map((t) => '    ' + JSON.stringify(t)).join(',\n');
  const text = headJson.slice(0, -2) + ',\n  "tokens": [\n' + body + '\n  ]\n}\n';
  await writeFileAtomic(file, text);
}

export async function readTokensFile(file: string): Promise<NewTokenList> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    throw new TokensFileError(file, 'tokens file not found');
  }
  let data: NewTokenList;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new TokensFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (!data || data.version !== 1 || !Array.isArray(data.tokens)) {
    throw new TokensFileError(file, 'not a tokens.json written by `hack-tokenizer tokens` (expected version 1 and a "tokens" array)');
  }
  for (const [i, t] of data.tokens.entries()) {
    if (!t || typeof t.token !== 'string' || t.token.length === 0) throw new TokensFileError(file, `tokens[${i}] has no "token" string`);
  }
  return data;
}
