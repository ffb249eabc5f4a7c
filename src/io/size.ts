// Sizes as users write them: 5MB, 300k, 1.5G, 2GiB, or plain bytes. Decimal units (k = 1000) as
// corpus sizes are usually quoted; binary units (KiB = 1024) when asked for.

const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};

/** Bytes for a size string, or null when it is not one. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return null;
  const mult = UNITS[m[2].toLowerCase()];
  if (mult === undefined) return null;
  const v = Number(m[1]) * mult;
  return Number.isFinite(v) ? Math.floor(v) : null;
}

/** A byte count for messages: 1.2 MB, 300 kB, 17 bytes. */
export function formatSize(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)} kB`;
  return `${n} byte${n === 1 ? '' : 's'}`;
}
