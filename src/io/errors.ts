// The one error type of the library. Every error a user can cause carries a stable `code`, and the
// file or the option it is about, so the CLI can print it without a stack trace and name the flag the
// user typed (the library speaks of options by their library names, `numTokens`; the CLI maps them to
// flags, `--num-tokens`, in one place: src/cli/options.ts).

export interface ErrorDetails {
  /** The file or directory the error is about. */
  file?: string;
  /** The library option the error is about (camelCase, as in the library's option objects). */
  option?: string;
  cause?: unknown;
}

/**
 * An option named inside a message: `${opt('allowInvalidUtf8')}` reads "allowInvalidUtf8" in the
 * library's message and "--allow-invalid-utf8" when the CLI prints it.
 */
export const opt = (key: string) => `{opt:${key}}`;

/** A message with its option references spelled by `spell` (the library: the key itself). */
export function spellOptions(text: string, spell: (key: string) => string = (k) => k): string {
  return text.replace(/\{opt:(\w+)\}/g, (_, k: string) => spell(k));
}

export class HackError extends Error {
  readonly code: string;
  readonly file?: string;
  readonly option?: string;
  /** The message without the option or file prefix (option references as `opt(key)` tokens). */
  readonly detail: string;

  constructor(code: string, detail: string, details: ErrorDetails = {}) {
    const prefix = details.option !== undefined && details.file !== undefined ? `${details.option} ${details.file}: `
      : details.option !== undefined ? `${details.option}: ` : details.file !== undefined ? `${details.file}: ` : '';
    super(spellOptions(prefix + detail), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'HackError';
    this.code = code;
    this.detail = detail;
    if (details.file !== undefined) this.file = details.file;
    if (details.option !== undefined) this.option = details.option;
  }
}

/** A bad value for a library option: `optionError('numTokens', 'expected an integer >= 1, got 0')`. */
export function optionError(option: string, detail: string, code = 'BAD_OPTION'): HackError {
  return new HackError(code, detail, { option });
}

/** An error about a file (or directory): the message starts with its path. */
export function fileError(file: string, detail: string, code = 'BAD_FILE'): HackError {
  return new HackError(code, detail, { file });
}

export function isHackError(e: unknown): e is HackError {
  return e instanceof HackError;
}

/** Plain words for the errno codes a user meets (messages never show the raw code). */
export const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such file or directory', EACCES: 'permission denied', EPERM: 'permission denied', EISDIR: 'is a directory',
  ENOTDIR: 'not a directory', EROFS: 'read-only file system', ENOSPC: 'no space left on device', EMFILE: 'too many open files',
};

/** Why a file operation failed, in plain words. */
export function plainReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string') return ERRNO_WORDS[code] ?? (code === 'ENOENT' ? 'file not found' : (e as Error).message.replace(/^E[A-Z]+: /, ''));
  return (e as Error)?.message ?? String(e);
}
