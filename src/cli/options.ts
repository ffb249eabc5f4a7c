// One option vocabulary for every command: options are declared once, as specs (library name,
// flag, kind, rule, default, doc), and the commander options, the `--help` lines, the parsing and
// the messages all derive from them. The library names its options by their camelCase keys; this
// is the one place that maps a key to the flag a user types (for error messages too).
import { Command, Option } from 'commander';
import { ERRNO_WORDS, HackError, isHackError, spellOptions } from '../io/errors.ts';
import { camelOf, kebabOf as kebab, readParams, type ParamSpec, type ParamValues } from '../io/params.ts';

/** A command-line option: a parameter spec (io/params.ts) declared on a command. */
export type OptionSpec = ParamSpec;
export type OptionValues = ParamValues;
export type { OptionKind } from '../io/params.ts';

/** Check a command's raw values by its specs (see io/params.ts readParams). */
export function readOptions(specs: readonly OptionSpec[], raw: Record<string, unknown>, note?: (msg: string) => void): OptionValues {
  // commander names a value after its flag; a spec with its own flag (--checkpoint-every for
  // checkpointSeconds) is read under its key
  const byKey = { ...raw };
  for (const s of specs) {
    if (!s.flag) continue;
    const name = camelOf(s.flag);
    if (name !== s.key && byKey[name] !== undefined) {
      byKey[s.key] = byKey[name];
      delete byKey[name];
    }
  }
  return readParams(specs, byKey, { note });
}

export const flagOf = (s: OptionSpec) => s.flag ?? `--${kebab(s.key)}`;

/** Every flag any command declared, by library key: the error printer's map. */
const FLAGS = new Map<string, string>();

/** The flag for a library option key (declared flags first, else the key in kebab case). */
export function flagForKey(key: string): string {
  return FLAGS.get(key) ?? `--${kebab(key)}`;
}

function placeholder(s: OptionSpec): string {
  if (s.arg) return s.arg;
  switch (s.kind) {
    case 'int': return '<n>';
    case 'number': return '<x>';
    case 'size': return '<size>';
    case 'list': return '<list>';
    case 'files': return '<files...>';
    case 'choice': return `<${(s.choices ?? []).join('|')}>`;
    default: return '<value>';
  }
}

function defaultShown(s: OptionSpec): string | null {
  if (s.defaultText) return s.defaultText;
  if (s.default === undefined || s.default === false) return null;
  if (Array.isArray(s.default)) return s.default.join(',');
  return String(s.default);
}

/** The one style of a --help line: doc, then "(required)" or "(default: X)", then old names. */
export function helpText(s: OptionSpec): string {
  const parts = [s.doc];
  if (s.required) parts.push('(required)');
  else {
    const d = defaultShown(s);
    if (d !== null) parts.push(`(default: ${d})`);
  }
  if (s.aliases?.length) parts.push(`(old name${s.aliases.length > 1 ? 's' : ''}: ${s.aliases.join(', ')}, kept for one release)`);
  return parts.join(' ');
}

/** Declare the options on a command (commander parses the strings; `readOptions` checks them). */
export function addOptions(cmd: Command, specs: readonly OptionSpec[]): Command {
  for (const s of specs) {
    const flag = flagOf(s);
    const prev = FLAGS.get(s.key);
    if (prev === undefined) FLAGS.set(s.key, flag);
    const text = s.kind === 'bool' ? flag : `${flag} ${placeholder(s)}`;
    cmd.addOption(new Option(text, helpText(s)));
    for (const a of s.aliases ?? []) {
      cmd.addOption(new Option(s.kind === 'bool' ? a : `${a} ${placeholder(s)}`).hideHelp());
    }
  }
  (cmd as Command & { __specs?: readonly OptionSpec[] }).__specs = [...(((cmd as Command & { __specs?: readonly OptionSpec[] }).__specs) ?? []), ...specs];
  return cmd;
}

/** The specs declared on a command (README/--help agreement test, fuzz test). */
export function specsOf(cmd: Command): readonly OptionSpec[] {
  return (cmd as Command & { __specs?: readonly OptionSpec[] }).__specs ?? [];
}

/**
 * A command whose options are declared by specs: commander's action receives the checked values
 * (plus positional arguments). Every option is checked before `run` does any work.
 */
export function command<T extends OptionValues>(
  program: Command, name: string, description: string, specs: readonly OptionSpec[],
  run: (o: T, args: string[], cmd: Command) => Promise<void>,
): Command {
  const cmd = program.command(name).description(description);
  addOptions(cmd, specs);
  cmd.action(async (...a: unknown[]) => {
    const c = a[a.length - 1] as Command;
    const args = a.slice(0, -2).map(String);
    const values = readOptions(specsOf(c), c.opts()) as T;
    await run(values, args, c);
  });
  return cmd;
}

// ---------------------------------------------------------------- error messages


/** A one-line message for any error: flags for library option keys, plain words for errno codes, no stack. */
export function formatError(e: unknown): string {
  if (isHackError(e)) {
    const detail = spellOptions(e.detail, flagForKey);
    if (e.option === undefined) return e.file !== undefined ? `${e.file}: ${detail}` : detail;
    const flag = flagForKey(e.option);
    if (e.file !== undefined) return `${flag} ${e.file}: ${detail}`;
    if (e.code === 'BAD_OPTION_VALUE') return `${flag} ${detail}`;
    if (e.code === 'MISSING_OPTION') return /^missing: /.test(detail) ? detail.replace(/^missing: /, '') : `missing ${flag} ${detail.replace(/^missing /, '')}`;
    return `${flag}: ${detail}`;
  }
  const err = e as NodeJS.ErrnoException | null;
  if (err && typeof err.code === 'string' && ERRNO_WORDS[err.code]) {
    const p = (err as { path?: string }).path;
    return `${p ? p + ': ' : ''}${ERRNO_WORDS[err.code]}`;
  }
  const msg = err && typeof err.message === 'string' ? err.message : String(e);
  // ONNX Runtime and other native messages carry ANSI colours and long prefixes
  // eslint-disable-next-line no-control-regex
  return msg.replace(/\u001b\[[0-9;]*m/g, '').split('\n')[0];
}

// ---------------------------------------------------------------- the shared vocabulary

/** `--model`: a model directory or a Hub id (downloaded with progress). */
export const MODEL = (doc = 'model directory or Hugging Face repo id', required = true): OptionSpec =>
  ({ key: 'model', kind: 'string', arg: '<dir|hub id>', doc, required });
/** `--original`: the model this one was built from (its tokenizer tells which tokens are new). */
export const ORIGINAL = (extra: Partial<OptionSpec> = {}): OptionSpec =>
  ({ key: 'original', kind: 'string', arg: '<dir|hub id>', doc: 'the model this one was built from (the original, unextended model)', ...extra });
export const CORPUS = (doc = 'corpus files: plain text or .gz (detected by content), one paragraph per line', required = true): OptionSpec =>
  ({ key: 'corpus', kind: 'files', doc, required });
export const OUT = (arg: string, doc: string): OptionSpec => ({ key: 'out', kind: 'string', arg, doc, required: true });
export const FORCE: OptionSpec = { key: 'force', kind: 'bool', doc: 'replace this command\'s own earlier output at --out' };
export const THREADS: OptionSpec = { key: 'threads', kind: 'int', min: 1, doc: 'threads for inference and training', defaultText: 'one per core' };
export const SEED: OptionSpec = { key: 'seed', kind: 'int', min: 0, default: 0, doc: 'random seed (same seed, same result)' };
export const NUM_TOKENS = (doc = 'number of new tokens', required = false): OptionSpec => ({ key: 'numTokens', kind: 'int', min: 1, arg: '<N>', doc, required });
export const PT = (doc = 'Portuguese (target-language) held-out text'): OptionSpec => ({ key: 'pt', kind: 'string', arg: '<file>', doc });
export const EN = (doc = 'English held-out text'): OptionSpec => ({ key: 'en', kind: 'string', arg: '<file>', doc });
export const MAX_BYTES: OptionSpec = { key: 'maxBytes', kind: 'size', min: 1, doc: 'use only the first N bytes of each held-out file (cut at a line end; a documented subset)' };
/** The auxiliary embeddings of FOCUS-like inits (extend --init focus|wechsel|omp, replace --init focus): each command says what they are for and where the cache goes by default. */
export const AUX_CACHE = (doc: string, defaultText: string): OptionSpec => ({ key: 'auxCache', kind: 'string', arg: '<dir>', doc, defaultText });
export const AUX_NGRAMS = (doc: string): OptionSpec => ({ key: 'auxNgrams', kind: 'bool', doc });
export const AUX_MAX_BYTES = (doc: string): OptionSpec => ({ key: 'auxMaxBytes', kind: 'size', min: 1, doc });
export const ALLOW_INVALID_UTF8: OptionSpec = { key: 'allowInvalidUtf8', kind: 'bool', doc: 'accept text files with invalid UTF-8 or NUL bytes (counted and reported; default: an error naming the file, offset and line)' };
export const ENCODE_WITH: OptionSpec = {
  // a string, not a choice: the old form `--encode-with <dir>` is still read (cli/eval.ts originalOf)
  key: 'encodeWith', kind: 'string', arg: '<model|original>', default: 'model',
  doc: 'which tokenizer encodes the input: the model\'s own, or --original\'s (the research\'s setup: new tokens the model emits are fed back as their original pieces)',
};
