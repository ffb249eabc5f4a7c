// Tokenizer identity: a hash of what decides how text becomes ids (model type, vocabulary, merges,
// normalizer, pre-tokenizer, added tokens). A tokens.json records the fingerprint of the tokenizer
// it was learned for, so it is never applied to another one.
import { createHash } from 'node:crypto';
import type { TokenizerJson } from '../io/model-dir.ts';

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, canonical(o[k])]));
  }
  return v;
}

/** sha256 (hex, first 16 characters) of the tokenizer's identity. */
export function tokenizerFingerprint(json: TokenizerJson): string {
  const vocab = json.model?.vocab;
  const pairs = Array.isArray(vocab) ? vocab.map(([t], i) => [t, i] as [string, number]) : Object.entries(vocab ?? {}).sort((a, b) => a[1] - b[1]);
  const merges = (json.model?.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const added = (json.added_tokens ?? []).map((t) => [t.id, t.content, t.special]);
  const h = createHash('sha256');
  h.update(JSON.stringify([json.model?.type ?? null, pairs, merges, canonical(json.normalizer ?? null), canonical(json.pre_tokenizer ?? null), added]));
  return h.digest('hex').slice(0, 16);
}
