// How numbers are shown to people, in one place, so the text tables, the report's tables and its
// chart labels agree (a share is a percentage with two decimals everywhere).

/** A missing value: undefined, null (NaN after a JSON round trip) or NaN. */
export const isMissing = (x: number | null | undefined): x is null | undefined => x === undefined || x === null || Number.isNaN(x);

/** A share (0.1234) as a percentage ("12.34%"); '-' when missing. */
export function pct(x: number | null | undefined, digits = 2): string {
  return isMissing(x) ? '-' : (100 * x).toFixed(digits) + '%';
}

/** A number with fixed decimals; '-' when missing. */
export function num(x: number | null | undefined, digits = 3): string {
  return isMissing(x) ? '-' : x.toFixed(digits);
}

/** A signed relative change, new vs old ("+4.0%", "-50.1%"); '-' when either is missing or old is 0. */
export function relChange(now: number | null | undefined, before: number | null | undefined, digits = 1): string {
  if (isMissing(now) || isMissing(before) || before === 0) return '-';
  const r = 100 * (now / before - 1);
  const s = r.toFixed(digits);
  return (r >= 0 && !s.startsWith('-') ? '+' : '') + s + '%';
}
