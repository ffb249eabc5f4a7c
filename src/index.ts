// Public library API: one entry per stage of the flow
// corpus -> candidate tokens -> extended tokenizer -> extended model -> tuned model -> evaluation.

// io: safetensors, model directories, Hub
export * from './io/dtype.ts';
export * from './io/safetensors.ts';
export * from './io/weights.ts';
export * from './io/config.ts';
export * from './io/model-dir.ts';
export * from './io/hub.ts';
export { summarizeModel, formatSummary, type ModelSummary } from './io/summary.ts';

// tokenizer: loading, token discovery, extension, fertility
export * from './tokenizer/load.ts';
export { learnTokens, learnTokensFromCorpus, type LearnOptions, type LearnResult } from './tokenizer/learn.ts';
export * from './tokenizer/tokens-file.ts';
export { extendTokenizer, writeTokenizerFiles, ExtendError, type ExtendMode, type ExtendOptions, type ExtendResult } from './tokenizer/extend.ts';
export { fertility, fertilityOfFiles, fertilityLines, FertilityAccumulator, type FertilityResult } from './tokenizer/fertility.ts';

// embeddings: init methods and model extension
export { parseInitMethod, parseInitMethodList, ALL_METHODS, VALID_FORMS, InitMethodError, type InitMethod } from './embeddings/init-methods.ts';
export { extendModel, type ExtendModelOptions, type ExtendModelResult } from './embeddings/extend-model.ts';

// runtime: ONNX engine, generation, extended-vocabulary decoding
export { loadEngine, type Engine, type EngineOptions, type GenerateOptions } from './runtime/engine.ts';
export { generateExtended, extendedDecoding, newTokenMap } from './runtime/extended-decoding.ts';

// tune and eval
export { runTune, type TuneOptions, type TuneSummary } from './tune/run-tune.ts';
export { evaluate, METRICS, BENCHMARKS, type EvalOptions } from './eval/evaluate.ts';
export { measureBpb } from './eval/bpb.ts';
export { compareInit, type CompareInitOptions, type CompareInitResult } from './eval/init-analysis.ts';
export { newTokenRank, type NewTokenRankResult, type NewTokenRankOptions } from './eval/new-token-rank.ts';
export { runGrid, readGridConfig, parseGridConfig, type GridConfig, type TuneVariant } from './eval/grid.ts';
