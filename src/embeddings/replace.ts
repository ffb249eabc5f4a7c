// Vocabulary replacement (TokAlign): a model gets another tokenizer's whole vocabulary. Each target
// token's input row (and output row, when untied) is copied byte for byte from one source token's:
// the token with the same canonical string (gold), the source token its GloVe vector aligns to
// (alignment.ts), or, for a target token with neither, the mean of the rows of its pieces under the
// source tokenizer (as FVT; such rows are the only ones computed, in float32). `init` picks how
// non-gold tokens are filled: `tokalign` (alignment), `mean` (FVT for every non-gold token: the
// baseline), `random` (a seeded random source row: TokAlign's random-permutation baseline) or
// `focus` (FOCUS, as extension's: sparsemax over cosines in auxiliary CBOW vectors trained on the
// corpus under the TARGET tokenizer, to the gold tokens, times those tokens' source rows; tokens
// without an auxiliary vector get the FVT mean, kind `fallback`).
// Special tokens the config names (bos, eos, pad) are mapped by role to the source's. The chat
// template the output carries is, by default, the source model's (the format the model was trained
// on): every special or markup-like added token it spells out must be an added token of the target too,
// and keeps its row.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { HackError, opt } from '../io/errors.ts';
import { EMBED_TENSOR, LM_HEAD_TENSOR, readChatTemplate, tokenizerSizeOf, type ChatTemplate, type ModelDir, type TokenizerJson } from '../io/model-dir.ts';
import { writeModel, type MatrixEdit, type RowValues } from '../io/model-writer.ts';
import { seededRandom } from '../io/seeded-random.ts';
import { readWeightF32 } from '../io/weights.ts';
import { BYTE_TO_CHAR } from '../tokenizer/byte-level.ts';
import { tokenizerFingerprint } from '../tokenizer/fingerprint.ts';
import { encode, tokenizerFromJson, type LoadedTokenizer } from '../tokenizer/load.ts';
import { alignTokens, canonicalTokens, goldMap, tokenStrings, type AlignKind, type Alignment } from './alignment.ts';
import { auxEmbeddings, DEFAULT_AUX_SETTINGS, type AuxSettings, type AuxVectors } from './aux-embeddings.ts';
import { auxSpaceWithAnchors, type AuxOptions, type AuxReport } from './extend-model.ts';
import { combineFocus } from './init-methods.ts';
import { gloveOnCorpus, TOKALIGN_GLOVE, type GloveEmbedding, type GloveSettings } from './glove.ts';

export const REPLACE_INITS = ['tokalign', 'mean', 'random', 'focus'] as const;
export type ReplaceInit = (typeof REPLACE_INITS)[number];

/** How a target row was filled (alignment's kinds, plus the baselines'). */
export type RowKind = AlignKind | 'mean' | 'random' | 'focus';

/** The target tokenizer: its tokenizer.json (raw bytes, written unchanged) and tokenizer_config.json. */
export interface TargetTokenizer {
  file: string;
  raw: Uint8Array;
  json: TokenizerJson;
  config: Record<string, unknown> | null;
  /** tokenizer_config.json as stored (written unchanged unless the chat template changes). */
  configRaw: Uint8Array | null;
  /** The target tokenizer's own chat template (tokenizer_config.json or a chat_template file beside it). */
  chatTemplate: ChatTemplate | null;
}

/** Read a target tokenizer from a tokenizer.json or a directory holding one (its tokenizer_config.json beside it). */
export async function readTargetTokenizer(spec: string, option = 'tokenizer'): Promise<TargetTokenizer> {
  let file = spec;
  try {
    if ((await fsp.stat(spec)).isDirectory()) file = path.join(spec, 'tokenizer.json');
  } catch {
    throw new HackError('BAD_FILE', 'not found (expected a tokenizer.json or a directory with one)', { file: spec, option });
  }
  let raw: Uint8Array;
  try { raw = await fsp.readFile(file); } catch { throw new HackError('BAD_FILE', 'no tokenizer.json there', { file, option }); }
  let json: TokenizerJson;
  try { json = JSON.parse(Buffer.from(raw).toString('utf8')); } catch (e) { throw new HackError('BAD_FILE', `not valid JSON (${(e as Error).message})`, { file, option }); }
  if (!json || typeof json !== 'object' || !json.model || typeof json.model !== 'object') throw new HackError('BAD_FILE', 'has no "model" section (not a Hugging Face tokenizer.json)', { file, option });
  const type = json.model.type ?? (Array.isArray(json.model.vocab) ? 'Unigram' : undefined);
  if (type !== 'BPE' && type !== 'Unigram') {
    throw new HackError('UNSUPPORTED_TOKENIZER', `a ${type ?? 'untyped'} tokenizer: replace supports BPE (byte-level or SentencePiece) and Unigram tokenizers, whose token strings map to bytes`, { file, option });
  }
  try { tokenizerFromJson(json, file); } catch (e) { throw new HackError('BAD_FILE', (e as Error).message, { file, option }); }
  let config: Record<string, unknown> | null = null;
  let configRaw: Uint8Array | null = null;
  const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
  try {
    configRaw = await fsp.readFile(configFile);
    config = JSON.parse(Buffer.from(configRaw).toString('utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new HackError('BAD_FILE', `could not read (${(e as Error).message})`, { file: configFile, option });
    configRaw = null;
  }
  const chatTemplate = await readChatTemplate(path.dirname(file), config);
  return { file, raw, json, config, configRaw, chatTemplate };
}

export const CHAT_TEMPLATE_CHOICES = ['source', 'target', 'none'] as const;
export type ChatTemplateChoice = (typeof CHAT_TEMPLATE_CHOICES)[number];

/** Which chat template the output carries (null: none). */
export interface ChatTemplatePlan {
  choice: ChatTemplateChoice;
  template: ChatTemplate | null;
}

/**
 * The output's chat template: `source` (the default when the model has one: the format it was trained
 * on), `target` (the target tokenizer's own, if any; the default otherwise) or `none`.
 */
export async function planChatTemplate(model: ModelDir, target: TargetTokenizer, choice?: ChatTemplateChoice): Promise<ChatTemplatePlan> {
  const source = await readChatTemplate(model.dir, model.tokenizerConfig);
  const c = choice ?? (source ? 'source' : 'target');
  if (c === 'source' && !source) {
    throw new HackError('BAD_OPTION', `source: the model ${model.dir} has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja or chat_template.json)`, { option: 'chatTemplate' });
  }
  return { choice: c, template: c === 'source' ? source : c === 'target' ? target.chatTemplate : null };
}

const ROLES = ['bos', 'eos', 'pad'] as const;
type Role = (typeof ROLES)[number];

/** The content of a tokenizer_config role entry ("<s>" or {content: "<s>"}). */
function roleContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export interface SpecialMapping {
  /** config/generation-config field -> new value. */
  ids: Partial<Record<`${Role}_token_id`, number | number[] | null>>;
  /** target id -> source id, for the role tokens and the chat template's tokens. */
  forced: Map<number, number>;
  /** The source chat template's added tokens: each the same added token of the target. */
  chatTokens: Array<{ token: string; source: number; target: number }>;
}

/**
 * bos/eos/pad: the target's id for each role the source config sets (the source token's string in
 * the target's vocabulary, else the token the target's tokenizer_config names for the role); an
 * error when the target has neither. With the source's chat template kept, each source added token
 * the template spells out must be an added token of the target (else a prompt would be cut into
 * ordinary pieces the model never saw): an error naming them otherwise.
 */
export function mapSpecialTokens(model: ModelDir, target: TargetTokenizer, chat?: ChatTemplatePlan): SpecialMapping {
  const srcStrings = tokenStrings(model.tokenizerJson);
  const tgtIds = new Map<string, number>();
  tokenStrings(target.json).forEach((t, id) => { if (t !== '' && !tgtIds.has(t)) tgtIds.set(t, id); });
  for (const t of target.json.added_tokens ?? []) tgtIds.set(t.content, t.id);
  const ids: SpecialMapping['ids'] = {};
  const forced = new Map<number, number>();
  const raw = { ...(model.generationConfig ?? {}), ...model.config.raw } as Record<string, unknown>;
  for (const role of ROLES) {
    const key = `${role}_token_id` as const;
    const v = raw[key];
    if (v === undefined || v === null) { if (key in model.config.raw) ids[key] = null; continue; }
    const srcIds = (Array.isArray(v) ? v : [v]).filter((x): x is number => typeof x === 'number');
    const named = roleContent(target.config?.[`${role}_token`]);
    const out: number[] = [];
    for (const s of srcIds) {
      // the source's own token string first (the model was trained to emit it; it is then gold),
      // else the token the target's tokenizer_config names for the role
      const content = srcStrings[s] !== undefined && tgtIds.has(srcStrings[s]) ? srcStrings[s] : named ?? undefined;
      const t = content !== undefined ? tgtIds.get(content) : undefined;
      if (t === undefined) {
        throw new HackError('MISSING_SPECIAL_TOKEN', `the model's config sets ${key} = ${s} (${JSON.stringify(srcStrings[s] ?? '?')}), but the target tokenizer has no ${role} token: its tokenizer_config.json names none and its vocabulary lacks ${JSON.stringify(srcStrings[s] ?? '?')}; add a ${role}_token to the target's tokenizer_config.json`, { file: target.file, option: 'tokenizer' });
      }
      if (!out.includes(t)) out.push(t);
      if (!forced.has(t)) forced.set(t, s);
    }
    ids[key] = Array.isArray(v) ? out : out[0];
  }
  const chatTokens: SpecialMapping['chatTokens'] = [];
  if (chat?.choice === 'source' && chat.template) {
    const tgtAdded = new Map<string, number>();
    for (const t of target.json.added_tokens ?? []) if (!tgtAdded.has(t.content)) tgtAdded.set(t.content, t.id);
    const missing: string[] = [];
    // special tokens, and markup-like added ones (<tool_call>): not added whitespace or word pieces a template may
    // contain as plain text
    const markup = (t: { content: string; special: boolean }) => t.special || /[<>[\]|]/.test(t.content);
    for (const t of model.tokenizerJson.added_tokens ?? []) {
      if (t.content.trim() === '' || !markup(t) || !chat.template.text.includes(t.content) || chatTokens.some((c) => c.token === t.content)) continue;
      const id = tgtAdded.get(t.content);
      if (id === undefined) { if (!missing.includes(t.content)) missing.push(t.content); continue; }
      chatTokens.push({ token: t.content, source: t.id, target: id });
      if (!forced.has(id) && t.id < model.embeddingRows) forced.set(id, t.id);
    }
    if (missing.length > 0) {
      throw new HackError('MISSING_SPECIAL_TOKEN', `the model's chat template (${chat.template.file}) spells out ${missing.map((m) => JSON.stringify(m)).join(', ')}, which the target tokenizer has no added token for, so a chat prompt would be cut into ordinary pieces the model never saw; add ${missing.length > 1 ? 'them' : 'it'} to the target's added_tokens, or pass ${opt('chatTemplate')} target (the target's own template${target.chatTemplate ? '' : ': it has none'}) or ${opt('chatTemplate')} none`, { file: target.file, option: 'tokenizer' });
    }
  }
  return { ids, forced, chatTokens };
}

export interface ReplaceOptions {
  corpus: string[];
  /** The output's chat template (planChatTemplate): the source's by default when it has one. */
  chatTemplate?: ChatTemplateChoice;
  init?: ReplaceInit;
  glove?: Partial<GloveSettings>;
  /** GloVe cache directory (none: no cache). */
  gloveCacheDir?: string;
  pivots?: number;
  /** Alignment similarity (alignment.ts): dot (TokAlign) or cosine. */
  similarity?: 'dot' | 'cosine';
  seed?: number;
  allowInvalidUtf8?: boolean;
  /** focus: how the auxiliary vectors are trained (corpus: ReplaceOptions.corpus). */
  aux?: Omit<AuxOptions, 'corpus'>;
  /** focus: auxiliary vectors over the target's ids given ready-made (tests); then none are trained. */
  auxVectors?: AuxVectors;
  onProgress?: (stage: string, done: number, total: number, detail?: string) => void;
}

/** focus's row: weights on source rows (the anchors' gold source ids). */
export interface SourceCombination { sources: number[]; weights: number[] }

export interface ReplacementPlan {
  init: ReplaceInit;
  similarityMeasure: 'dot' | 'cosine';
  target: TargetTokenizer;
  rows: number;
  /** target id -> source row copied (-1: computed from pieces). */
  sourceOf: Int32Array;
  kind: RowKind[];
  similarity: Float32Array;
  /** Source pieces of the rows computed as means. */
  pieces: Map<number, number[]>;
  /** focus: the rows computed as weighted sums of source rows. */
  combinations: Map<number, SourceCombination>;
  special: SpecialMapping;
  chat: ChatTemplatePlan;
  counts: Record<string, number>;
  pivots: number[];
  glove: { source: GloveEmbedding['stats']; target: GloveEmbedding['stats'] } | null;
  /** focus: the auxiliary training (shared = anchors: gold tokens with a vector; newWithVector = non-gold target tokens with one). */
  aux: AuxReport | null;
  gold: number;
}

/** The source tokenizer's single-byte token for each byte (-1 when it has none). */
function byteTokens(json: TokenizerJson): Int32Array {
  const out = new Int32Array(256).fill(-1);
  const strings = tokenStrings(json);
  const byId = new Map<string, number>();
  strings.forEach((t, id) => { if (t !== '' && !byId.has(t)) byId.set(t, id); });
  for (let b = 0; b < 256; b++) {
    const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    out[b] = byId.get(BYTE_TO_CHAR[b]) ?? byId.get(hex) ?? -1;
  }
  return out;
}

/** A target token's pieces under the source tokenizer: its text encoded, or byte tokens when its bytes are not UTF-8 on their own. */
async function sourcePieces(src: LoadedTokenizer, canonical: string, bytesTok: Int32Array): Promise<number[]> {
  if (canonical.startsWith('\u0000special:')) return encode(src, canonical.slice(9));
  const bytes = Uint8Array.from(canonical, (c) => c.charCodeAt(0));
  let text: string | null = null;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { text = null; }
  if (text !== null && text.length > 0) return encode(src, text);
  return [...bytes].map((b) => bytesTok[b]).filter((id) => id >= 0);
}

/** Align the target's vocabulary to the model's (GloVe on both tokenizations for `tokalign`). */
export async function planReplacement(model: ModelDir, target: TargetTokenizer, o: ReplaceOptions): Promise<ReplacementPlan> {
  const init = o.init ?? 'tokalign';
  const seed = o.seed ?? 0;
  const rows = tokenizerSizeOf(target.json);
  const chat = await planChatTemplate(model, target, o.chatTemplate);
  const special = mapSpecialTokens(model, target, chat);
  const gold = goldMap(target.json, model.tokenizerJson);
  // gold rows must point at real source rows
  for (const [t, s] of gold) if (s >= model.embeddingRows) gold.delete(t);
  const srcTok = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath);
  let alignment: Alignment;
  let glove: ReplacementPlan['glove'] = null;
  if (init === 'tokalign') {
    const tgtTok = tokenizerFromJson(target.json, target.file);
    const settings = { ...TOKALIGN_GLOVE, seed, ...(o.glove ?? {}) };
    const gOpts = (label: string) => ({
      settings, cacheDir: o.gloveCacheDir, allowInvalidUtf8: o.allowInvalidUtf8,
      onProgress: (stage: string, done: number, total: number, detail?: string) => o.onProgress?.(`${label} ${stage}`, done, total, detail),
    });
    const sVec = await gloveOnCorpus(srcTok, o.corpus, gOpts('GloVe (source)'));
    const tVec = await gloveOnCorpus(tgtTok, o.corpus, gOpts('GloVe (target)'));
    glove = { source: sVec.stats, target: tVec.stats };
    const skip = new Set<number>(srcTok.specialIds);
    const unk = model.tokenizerJson.model.unk_token;
    if (typeof unk === 'string') { const id = tokenStrings(model.tokenizerJson).indexOf(unk); if (id >= 0) skip.add(id); }
    // source ids past the embedding matrix cannot be copied
    for (const id of sVec.tokenIds) if (id >= model.embeddingRows) skip.add(id);
    alignment = alignTokens(rows, gold, tVec, sVec, { pivots: o.pivots ?? 300, seed, skipSource: skip, forced: special.forced, similarity: o.similarity ?? 'dot' });
    if (alignment.pivots.length === 0) {
      throw new HackError('CORPUS_TOO_SMALL', `no gold token has a GloVe vector on both sides, so nothing can be aligned; give a larger ${opt('corpus')} or a lower ${opt('gloveMinCount')}`, { option: 'corpus' });
    }
  } else {
    alignment = alignTokens(rows, gold, { tokenIds: new Int32Array(0), dim: 1, vectors: new Float32Array(0) }, { tokenIds: new Int32Array(0), dim: 1, vectors: new Float32Array(0) }, { forced: special.forced });
  }
  const kind: RowKind[] = alignment.kind.slice();
  const sourceOf = alignment.sourceOf.slice();
  const pieces = new Map<number, number[]>();
  const canon = canonicalTokens(target.json);
  const bytesTok = byteTokens(model.tokenizerJson);
  const rnd = seededRandom(seed ^ 0x2545f491);
  const combinations = new Map<number, SourceCombination>();
  let aux: AuxReport | null = null;
  let focusSpace: ReturnType<typeof auxSpaceWithAnchors> | null = null;
  if (init === 'focus') {
    const settings: AuxSettings = { ...DEFAULT_AUX_SETTINGS, seed, ...(o.aux?.settings ?? {}) };
    const trained = o.auxVectors ? null : await auxEmbeddings({ ...o.aux, corpus: o.corpus, tokenizer: target.json, tokenizerName: 'target', settings });
    const a = o.auxVectors ?? trained!;
    // anchors: the gold tokens (both vocabularies have them, so their source rows are meaningful)
    focusSpace = auxSpaceWithAnchors(a, (id) => kind[id] === 'gold');
    if (focusSpace.sharedIds.length === 0) {
      throw new HackError('CORPUS_TOO_SMALL', `no token the two vocabularies share has an auxiliary vector (none occurs ${a.minCount}+ times in the ${a.tokens} corpus tokens), so FOCUS has nothing to combine; give a larger ${opt('corpus')}${o.aux?.maxBytes ? ` or a larger ${opt('auxMaxBytes')}` : ''}`, { option: 'corpus' });
    }
    aux = { tokens: a.tokens, seconds: a.seconds, cached: trained?.cached ?? false, cacheFile: trained?.cacheFile ?? null, minCount: a.minCount, settings, newWithVector: 0, shared: focusSpace.sharedIds.length };
  }
  for (let t = 0; t < rows; t++) {
    if (kind[t] !== 'fallback') continue;
    if (init === 'random') { sourceOf[t] = Math.floor(rnd() * model.embeddingRows); kind[t] = 'random'; continue; }
    if (focusSpace) {
      const c = combineFocus(t, { aux: focusSpace });
      if (c) {
        // the anchors are gold target ids; their rows are the gold source rows
        combinations.set(t, { sources: c.ids.map((id) => gold.get(id)!), weights: c.weights });
        kind[t] = 'focus';
        aux!.newWithVector++;
        continue;
      }
    }
    pieces.set(t, canon[t] === '' ? [] : (await sourcePieces(srcTok, canon[t], bytesTok)).filter((id) => id < model.embeddingRows));
    if (init === 'mean') kind[t] = 'mean';
  }
  if (focusSpace && combinations.size === 0) {
    // every row would be gold or the FVT mean: --init mean under another name
    throw new HackError('CORPUS_TOO_SMALL', `no target token outside the ${focusSpace.sharedIds.length} shared ones occurs ${aux!.minCount}+ times in the ${aux!.tokens} corpus tokens, so no row gets a FOCUS combination; give a larger ${opt('corpus')}${o.aux?.maxBytes ? ` or a larger ${opt('auxMaxBytes')}` : ''}`, { option: 'corpus' });
  }
  const counts: Record<string, number> = {};
  for (const k of kind) counts[k] = (counts[k] ?? 0) + 1;
  return { init, similarityMeasure: o.similarity ?? 'dot', target, rows, sourceOf, kind, similarity: alignment.similarity, pieces, combinations, special, chat, counts, pivots: alignment.pivots, glove, aux, gold: alignment.counts.gold };
}

/** Mean rows of each target token's pieces (the mean of all rows when a token has no pieces). */
async function meanRows(model: ModelDir, tensor: string, pieces: Map<number, number[]>): Promise<Map<number, RowValues>> {
  const out = new Map<number, RowValues>();
  if (pieces.size === 0) return out;
  const d = model.hiddenSize, R = model.embeddingRows;
  const m = await readWeightF32(model.weights, tensor);
  let all: Float32Array | null = null;
  for (const [t, ids] of pieces) {
    const row = new Float32Array(d);
    if (ids.length === 0) {
      if (!all) {
        all = new Float32Array(d);
        const acc = new Float64Array(d);
        for (let r = 0; r < R; r++) for (let k = 0; k < d; k++) acc[k] += m[r * d + k];
        for (let k = 0; k < d; k++) all[k] = acc[k] / R;
      }
      row.set(all);
    } else {
      const acc = new Float64Array(d);
      for (const id of ids) for (let k = 0; k < d; k++) acc[k] += m[id * d + k];
      for (let k = 0; k < d; k++) row[k] = acc[k] / ids.length;
    }
    out.set(t, row);
  }
  return out;
}

/** focus rows: each the weighted sum of its source rows (float64 sums, float32 rows). */
async function combinedRows(model: ModelDir, tensor: string, combinations: Map<number, SourceCombination>): Promise<Map<number, RowValues>> {
  const out = new Map<number, RowValues>();
  if (combinations.size === 0) return out;
  const d = model.hiddenSize;
  const m = await readWeightF32(model.weights, tensor);
  const acc = new Float64Array(d);
  for (const [t, c] of combinations) {
    acc.fill(0);
    c.sources.forEach((s, k) => { const w = c.weights[k]; for (let j = 0; j < d; j++) acc[j] += w * m[s * d + j]; });
    out.set(t, Float32Array.from(acc));
  }
  return out;
}

/** Where the output's chat template came from, and the tokens it spells out that kept their rows. */
export function chatTemplateReport(plan: ReplacementPlan): Record<string, unknown> {
  return { choice: plan.chat.choice, from: plan.chat.template ? path.resolve(plan.chat.template.file) : null, tokens: plan.special.chatTokens };
}

/** The output's tokenizer_config.json: the target's, with the chosen chat template (bytes unchanged when it already holds it). */
function outputTokenizerConfig(plan: ReplacementPlan): Uint8Array | string | null {
  const { target, chat } = plan;
  const want = chat.template?.value;
  const has = target.config?.chat_template;
  if (JSON.stringify(has) === JSON.stringify(want)) return target.configRaw;
  const cfg: Record<string, unknown> = { ...(target.config ?? {}) };
  if (want === undefined) delete cfg.chat_template; else cfg.chat_template = want;
  return JSON.stringify(cfg, null, 2) + '\n';
}

/** alignment.json: every target id, the source row it came from and how. */
export function alignmentReport(model: ModelDir, plan: ReplacementPlan): Record<string, unknown> {
  const tgt = tokenStrings(plan.target.json), src = tokenStrings(model.tokenizerJson);
  return {
    written_by: 'hack-tokenizer replace',
    source_model: path.resolve(model.dir),
    source_tokenizer_fingerprint: tokenizerFingerprint(model.tokenizerJson),
    target_tokenizer: path.resolve(plan.target.file),
    target_tokenizer_fingerprint: tokenizerFingerprint(plan.target.json),
    init: plan.init,
    similarity: plan.init === 'tokalign' ? plan.similarityMeasure : null,
    rows: plan.rows,
    counts: plan.counts,
    kinds: {
      gold: 'same canonical string as the source token: rows copied byte for byte',
      special: 'a role token (bos/eos/pad) or a token the kept chat template spells out, without gold: the source token\'s rows',
      aligned: 'GloVe relative-representation argmax: that source token\'s rows copied',
      fallback: 'no gold and no GloVe (tokalign) or auxiliary (focus) vector: mean of the source rows of its pieces (source: null, pieces listed)',
      mean: 'the mean of the source rows of its pieces (FVT baseline)',
      focus: 'FOCUS: sparsemax over auxiliary-vector cosines to the gold tokens, the weighted sum of those tokens\' source rows (source: null, sources and weights listed)',
      random: 'a seeded random source row (baseline)',
    },
    special_token_ids: plan.special.ids,
    chat_template: chatTemplateReport(plan),
    pivots: plan.pivots,
    glove: plan.glove,
    aux: plan.aux,
    map: Array.from({ length: plan.rows }, (_, t) => {
      const s = plan.sourceOf[t];
      const e: Record<string, unknown> = { target: t, token: tgt[t] ?? '', kind: plan.kind[t], source: s >= 0 ? s : null };
      if (s >= 0) e.source_token = src[s] ?? '';
      if (!Number.isNaN(plan.similarity[t])) e.similarity = Number(plan.similarity[t].toFixed(6));
      const p = plan.pieces.get(t);
      if (p) e.pieces = p;
      const c = plan.combinations.get(t);
      if (c) { e.sources = c.sources; e.weights = c.weights.map((w) => Number(w.toFixed(6))); }
      return e;
    }),
  };
}

/** Write the replaced model into `dir` (empty; normally output.ts's temporary directory). */
export async function writeReplacement(model: ModelDir, dir: string, plan: ReplacementPlan, onProgress?: (done: number, total: number) => void): Promise<{ files: string[] }> {
  const edit = async (tensor: string): Promise<MatrixEdit> => ({
    rows: plan.rows, gather: plan.sourceOf,
    set: new Map([...await meanRows(model, tensor, plan.pieces), ...await combinedRows(model, tensor, plan.combinations)]),
  });
  const edits: Record<string, MatrixEdit> = { [EMBED_TENSOR]: await edit(EMBED_TENSOR) };
  if (!model.tied) edits[LM_HEAD_TENSOR] = await edit(LM_HEAD_TENSOR);
  const config: Record<string, unknown> = { ...model.config.raw, vocab_size: plan.rows };
  for (const [k, v] of Object.entries(plan.special.ids)) if (k in model.config.raw) config[k] = v;
  const files: Record<string, string | Uint8Array> = {
    'tokenizer.json': plan.target.raw,
    'alignment.json': JSON.stringify(alignmentReport(model, plan)) + '\n',
  };
  const tokenizerConfig = outputTokenizerConfig(plan);
  if (tokenizerConfig !== null) files['tokenizer_config.json'] = tokenizerConfig;
  if (model.generationConfig) {
    const g: Record<string, unknown> = { ...model.generationConfig };
    for (const [k, v] of Object.entries(plan.special.ids)) if (k in g) g[k] = v;
    files['generation_config.json'] = JSON.stringify(g, null, 2) + '\n';
  }
  // the source's tokenizer side files describe the old vocabulary
  const drop = ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'chat_template.jinja', 'chat_template.json'];
  const res = await writeModel(dir, { source: model, edits, config, files, dropSideFiles: drop, onProgress });
  return { files: res.files };
}
