// Parameters declared once, as specs: the library's option tables (tuning, recipes) and the CLI's
// flags share this shape, so defaults, rules, documentation and messages come from one place. The
// CLI (src/cli/options.ts) turns specs into flags; config files (experiment grids, recipes) are
// checked against the same specs.
import { HackError } from './errors.ts';
import { parseSize } from './size.ts';

export type ParamKind = 'string' | 'int' | 'number' | 'size' | 'bool' | 'list' | 'files' | 'choice';

export interface ParamSpec {
  /** The library's name for the option (camelCase). */
  key: string;
  /** The flag (default: the key in kebab case). */
  flag?: string;
  /** Placeholder of the value in --help (default by kind). */
  arg?: string;
  kind: ParamKind;
  doc: string;
  required?: boolean;
  default?: string | number | boolean | string[];
  /** How the default is shown when it is computed elsewhere (e.g. "one per core"). */
  defaultText?: string;
  choices?: readonly string[];
  /** Numeric rules (int, number, size; each element of a numeric list). */
  min?: number;
  max?: number;
  above?: number;
  /** list kind: elements are integers. */
  intList?: boolean;
  /** Old flag names kept for one release (accepted, with a note on stderr). */
  aliases?: string[];
}

export type OptionKind = ParamKind;

export const kebabOf = (key: string) => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const flagName = (s: ParamSpec) => s.flag ?? `--${kebabOf(s.key)}`;
export const camelOf = (flag: string) => flag.replace(/^--?/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function ruleText(s: ParamSpec): string {
  const what = s.kind === 'int' || s.intList ? 'an integer' : s.kind === 'size' ? 'a size (bytes, or with k/M/G: 300k, 5MB)' : 'a number';
  if (s.above !== undefined && s.max !== undefined) return `${what} in (${s.above}, ${s.max}]`;
  const parts = [what];
  if (s.above !== undefined) parts.push(`> ${s.above}`);
  if (s.min !== undefined) parts.push(`>= ${s.min}`);
  if (s.max !== undefined) parts.push(`<= ${s.max}`);
  return parts.join(' ');
}

function bad(s: ParamSpec, value: unknown, expected: string): HackError {
  const shown = value === '' ? '""' : Array.isArray(value) ? value.join(' ') : typeof value === 'string' ? value : JSON.stringify(value);
  return new HackError('BAD_OPTION_VALUE', `${shown}: expected ${expected}`, { option: s.key });
}

function checkNumber(s: ParamSpec, v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? (s.kind === 'size' ? parseSize(v) : Number(v)) : null;
  const integral = s.kind === 'int' || s.kind === 'size' || s.intList;
  const ok = n !== null && Number.isFinite(n) && (!integral || Number.isInteger(n)) &&
    (s.min === undefined || n >= s.min) && (s.max === undefined || n <= s.max) && (s.above === undefined || n > s.above);
  if (!ok) throw bad(s, v, ruleText(s));
  return n as number;
}

export type ParamValues = Record<string, unknown>;

export interface ReadParamsOptions {
  /** Where old names are reported (default: stderr). */
  note?: (msg: string) => void;
  /** Refuse keys no spec declares (config files; the CLI's parser does that itself). */
  strict?: boolean;
  /** How an old name is spelled in the note: as a flag (CLI) or as a key (config files). */
  spelling?: 'flag' | 'key';
}

/**
 * Check and convert raw values (CLI strings, or typed values from a config file) by the specs:
 * numbers and sizes by their rules, choices, lists; required parameters present; old names mapped
 * to the new (with a note). Throws HackError (option = the key) on the first bad value.
 */
export function readParams(specs: readonly ParamSpec[], raw: Record<string, unknown>, o: ReadParamsOptions = {}): ParamValues {
  const note = o.note ?? ((m: string) => process.stderr.write(m + '\n'));
  const spell = (name: string) => (o.spelling === 'key' ? camelOf(name) : name);
  if (o.strict) {
    const known = new Set(specs.flatMap((s) => [s.key, ...(s.aliases ?? []).map(camelOf)]));
    const unknown = Object.keys(raw).filter((k) => !known.has(k));
    if (unknown.length) throw new HackError('UNKNOWN_KEY', `unknown key(s) ${unknown.join(', ')} (known: ${specs.map((s) => s.key).join(', ')})`, { option: unknown[0] });
  }
  const out: ParamValues = {};
  for (const s of specs) {
    let v = raw[s.key];
    for (const a of s.aliases ?? []) {
      const av = raw[camelOf(a)];
      if (av === undefined) continue;
      if (v !== undefined && v !== s.default) throw new HackError('BAD_OPTION', `given twice (also as its old name ${spell(a)})`, { option: s.key });
      note(`note: ${spell(a)} is now ${o.spelling === 'key' ? s.key : flagName(s)} (the old name works for one release)`);
      v = av;
    }
    if (v === undefined || v === null) v = s.default;
    if (v === undefined) {
      if (s.required) throw new HackError('MISSING_OPTION', `missing (${s.doc})`, { option: s.key });
      continue;
    }
    switch (s.kind) {
      case 'bool':
        if (typeof v !== 'boolean' && v !== 'true' && v !== 'false') throw bad(s, v, 'true or false');
        out[s.key] = v === true || v === 'true';
        break;
      case 'string':
        if (typeof v !== 'string' || v === '') throw bad(s, v, 'a non-empty string');
        out[s.key] = v;
        break;
      case 'int': case 'number': case 'size':
        out[s.key] = checkNumber(s, v);
        break;
      case 'choice': {
        const c = String(v);
        if (!(s.choices ?? []).includes(c)) throw bad(s, v, `one of ${(s.choices ?? []).join(', ')}`);
        out[s.key] = c;
        break;
      }
      case 'list': {
        const items = (Array.isArray(v) ? v.map(String) : String(v).split(',')).map((x) => x.trim()).filter((x) => x.length > 0);
        if (items.length === 0) throw bad(s, v, 'a comma-separated list');
        out[s.key] = s.intList ? items.map((x) => checkNumber(s, x)) : items;
        break;
      }
      case 'files': {
        const items = (Array.isArray(v) ? v.map(String) : [String(v)]).filter((x) => x.length > 0);
        if (items.length === 0) throw bad(s, v, 'one or more files');
        out[s.key] = items;
        break;
      }
    }
  }
  return out;
}
