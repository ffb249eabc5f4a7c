// A one-screen summary of a model directory (what `hack-tokenizer info` and the demo print).
import { type ModelDir } from './model-dir.ts';
import { parameterCount } from './weights.ts';

export interface ModelSummary {
  dir: string;
  architecture: string;
  modelType: string;
  configFormat: 'v4' | 'v5';
  parameters: number;
  dtype: string;
  layers: number;
  hiddenSize: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  embeddingRows: number;
  tokenizerSize: number;
  paddedRows: number;
  tied: boolean;
  shards: number;
  tokenizerModel: string;
  preTokenizer: string;
  normalizer: string;
  byteFallback: boolean;
}

function typeName(x: unknown): string {
  if (!x || typeof x !== 'object') return 'none';
  const o = x as { type?: string; pretokenizers?: unknown[]; normalizers?: unknown[] };
  if (o.type === 'Sequence') return `Sequence[${(o.pretokenizers ?? o.normalizers ?? []).map(typeName).join(', ')}]`;
  return o.type ?? 'unknown';
}

export function summarizeModel(m: ModelDir): ModelSummary {
  return {
    dir: m.dir,
    architecture: m.config.architecture,
    modelType: m.config.modelType,
    configFormat: m.config.format,
    parameters: parameterCount(m.weights),
    dtype: m.config.dtype,
    layers: m.config.numLayers,
    hiddenSize: m.config.hiddenSize,
    heads: m.config.numHeads,
    kvHeads: m.config.numKvHeads,
    vocabSize: m.config.vocabSize,
    embeddingRows: m.embeddingRows,
    tokenizerSize: m.tokenizerSize,
    paddedRows: m.embeddingRows - m.tokenizerSize,
    tied: m.tied,
    shards: m.weights.files.length,
    tokenizerModel: m.tokenizerJson.model.type,
    preTokenizer: typeName(m.tokenizerJson.pre_tokenizer),
    normalizer: typeName(m.tokenizerJson.normalizer),
    byteFallback: m.tokenizerJson.model.byte_fallback === true,
  };
}

export function formatSummary(s: ModelSummary): string {
  const rows: Array<[string, string]> = [
    ['model', s.dir],
    ['architecture', `${s.architecture} (${s.modelType}, config ${s.configFormat})`],
    ['parameters', `${s.parameters.toLocaleString('en-US')} (${s.dtype}, ${s.shards} file${s.shards > 1 ? 's' : ''})`],
    ['layers / hidden', `${s.layers} / ${s.hiddenSize}`],
    ['heads / kv heads', `${s.heads} / ${s.kvHeads}`],
    ['vocabulary', `${s.tokenizerSize.toLocaleString('en-US')} tokens, ${s.embeddingRows.toLocaleString('en-US')} embedding rows${s.paddedRows > 0 ? ` (${s.paddedRows} padding)` : ''}`],
    ['embeddings', s.tied ? 'tied (lm_head shares embed_tokens)' : 'untied (separate lm_head)'],
    ['tokenizer', `${s.tokenizerModel}${s.byteFallback ? ' with byte fallback' : ''}, pre-tokenizer ${s.preTokenizer}, normalizer ${s.normalizer}`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
