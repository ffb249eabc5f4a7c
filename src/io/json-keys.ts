// Written JSON uses snake_case keys (as Hugging Face's config files and our results.json do); the
// library's objects use camelCase. Files written before that rule (camelCase tune.json, tokens.json)
// are still read: readers convert both spellings to the same object.

const toSnake = (k: string) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
const toCamel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function convert(v: unknown, key: (k: string) => string, keep: Set<string>): unknown {
  if (Array.isArray(v)) return v.map((x) => convert(x, key, keep));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      // values under `keep` keys are data (option objects, maps keyed by names): left as they are
      out[key(k)] = keep.has(k) ? x : convert(x, key, keep);
    }
    return out;
  }
  return v;
}

/** A deep copy with snake_case keys (values under `keep` keys untouched). */
export function snakeKeys<T>(v: T, keep: string[] = []): unknown {
  return convert(v, toSnake, new Set(keep));
}

/** A deep copy with camelCase keys (both spellings read the same). */
export function camelKeys<T = unknown>(v: unknown, keep: string[] = []): T {
  return convert(v, toCamel, new Set(keep)) as T;
}
