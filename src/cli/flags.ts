// Parsing of numeric command-line flags, shared by every command so that a bad value always gets
// the same kind of message: the flag, the value given and what was expected.

export interface NumberFlagRule {
  /** Whole numbers only. */
  int?: boolean;
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
  /** Values must be strictly greater than this. */
  above?: number;
}

function expectation(r: NumberFlagRule): string {
  const parts = [r.int ? 'an integer' : 'a number'];
  if (r.above !== undefined && r.max !== undefined) return `${parts[0]} in (${r.above}, ${r.max}]`;
  if (r.above !== undefined) parts.push(`> ${r.above}`);
  if (r.min !== undefined) parts.push(`>= ${r.min}`);
  if (r.max !== undefined) parts.push(`<= ${r.max}`);
  return parts.join(' ');
}

/** The flag's value as a number, or undefined when the flag was not given. */
export function numberFlag(flag: string, value: string | undefined, rule: NumberFlagRule = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  const ok = value.trim() !== '' && Number.isFinite(n) && (!rule.int || Number.isInteger(n)) &&
    (rule.min === undefined || n >= rule.min) && (rule.max === undefined || n <= rule.max) &&
    (rule.above === undefined || n > rule.above);
  if (!ok) throw new Error(`${flag} ${value === '' ? '""' : value}: expected ${expectation(rule)}`);
  return n;
}

/** Like numberFlag, for flags that must be given (commander defaults count as given). */
export function requiredNumberFlag(flag: string, value: string | undefined, rule: NumberFlagRule = {}): number {
  const n = numberFlag(flag, value, rule);
  if (n === undefined) throw new Error(`missing ${flag} (expected ${expectation(rule)})`);
  return n;
}
