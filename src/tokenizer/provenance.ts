// Which tokenizer a thing was made for: a token list for the tokenizer it was learned with, an
// extended model for the model it was built from. Checked before any work, so a mismatch is a
// clear error instead of wrong rows, mojibake tokens or an engine's index error.
import { HackError } from '../io/errors.ts';
import type { TokenizerJson } from '../io/model-dir.ts';
import { tokenizerSizeOf } from '../io/model-dir.ts';
import { bpeModelOf, segmentWord } from './bpe-model.ts';
import { tokenizerFingerprint } from './fingerprint.ts';
import type { NewTokenList } from './tokens-file.ts';

/**
 * A token list applies to a tokenizer only if it was learned for it: the recorded fingerprint
 * matches, and (for lists of every age) each token's recorded original ids are what this
 * tokenizer's BPE gives for it.
 */
export function checkTokensFor(list: NewTokenList, file: string, tokenizer: TokenizerJson, tokenizerLabel: string, option = 'tokens'): void {
  const fp = tokenizerFingerprint(tokenizer);
  const foreign = (why: string) => new HackError('FOREIGN_TOKENS',
    `${file} was made for another tokenizer (${list.tokenizer || 'unknown'}${list.tokenizerFingerprint ? `, fingerprint ${list.tokenizerFingerprint}` : ''}), ` +
    `not for ${tokenizerLabel} (fingerprint ${fp}): ${why}; learn tokens for this model with \`hack-tokenizer tokens\``, { option, file });
  if (list.tokenizerFingerprint && list.tokenizerFingerprint !== fp) throw foreign('the fingerprints differ');
  let model;
  try { model = bpeModelOf(tokenizer); } catch { return; }
  const size = tokenizerSizeOf(tokenizer);
  for (const [i, t] of list.tokens.entries()) {
    if (t.originalIds.some((id) => !Number.isInteger(id) || id < 0 || id >= size)) throw foreign(`tokens[${i}] (${JSON.stringify(t.token)}) names ids this tokenizer does not have`);
    let seg: number[];
    try { seg = segmentWord(model, t.token); } catch { throw foreign(`tokens[${i}] (${JSON.stringify(t.token)}) cannot be written with this tokenizer`); }
    if (seg.length !== t.originalIds.length || seg.some((id, k) => id !== t.originalIds[k])) {
      throw foreign(`tokens[${i}] (${JSON.stringify(t.token)}) is [${t.originalIds.join(', ')}] in the list but [${seg.join(', ')}] under this tokenizer`);
    }
  }
}

/**
 * `extended` must have been built from `original`: every original vocabulary entry (and added token)
 * under the same id, the same special tokens, and at least as many ids.
 */
export function checkDerived(original: TokenizerJson, extended: TokenizerJson, labels: { original: string; extended: string; option?: string }): void {
  const fail = (why: string) => new HackError('NOT_DERIVED',
    `${labels.extended} was not built from ${labels.original}: ${why} (pass the original model the extended one was made from)`, { option: labels.option ?? 'original' });
  const ov = original.model?.vocab;
  const ev = extended.model?.vocab;
  if (!ov || !ev || Array.isArray(ov) !== Array.isArray(ev)) throw fail('their tokenizer models differ');
  if (original.model.type !== extended.model.type) throw fail(`tokenizer model ${original.model.type} vs ${extended.model.type}`);
  const osize = tokenizerSizeOf(original);
  const esize = tokenizerSizeOf(extended);
  if (esize < osize) throw fail(`it has fewer ids (${esize}) than the original (${osize}); the two may be swapped`);
  if (Array.isArray(ov)) {
    const e = ev as Array<[string, number]>;
    for (let i = 0; i < ov.length; i++) if (e[i]?.[0] !== ov[i][0]) throw fail(`id ${i} is ${JSON.stringify(e[i]?.[0])}, the original has ${JSON.stringify(ov[i][0])}`);
  } else {
    const e = ev as Record<string, number>;
    for (const [t, id] of Object.entries(ov)) {
      if (e[t] !== id) throw fail(`${JSON.stringify(t)} is id ${id} in the original but ${e[t] === undefined ? 'missing' : `id ${e[t]}`} in the extended tokenizer`);
    }
  }
  const eAdded = new Map((extended.added_tokens ?? []).map((t) => [t.id, t]));
  for (const t of original.added_tokens ?? []) {
    const x = eAdded.get(t.id);
    if (!x || x.content !== t.content || x.special !== t.special) throw fail(`added token ${JSON.stringify(t.content)} (id ${t.id}) differs`);
  }
  for (const t of extended.added_tokens ?? []) {
    if (t.special && t.id >= osize) throw fail(`it has a special token ${JSON.stringify(t.content)} the original lacks`);
  }
}
