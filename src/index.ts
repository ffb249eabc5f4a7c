// Public library API, curated: per stage of the flow what a user needs to run that stage (its entry
// point, its inputs' loaders, its option and result types), plus every error class. Internals (the
// safetensors header serializer, tensor sources, graph builders, option specs) stay unexported so
// they can change without breaking users.
// corpus -> candidate tokens -> extended tokenizer -> extended model -> tuned model -> evaluation -> exports.

// errors: one base class with a `code` (and `file` / `option`); every class below extends it
export { HackError, isHackError, type ErrorDetails } from './io/errors.ts';
export { ConfigError } from './io/config.ts';
export { ModelDirError } from './io/model-dir.ts';
export { HubError, type HubErrorCode } from './io/hub.ts';
export { SafetensorsError, type SafetensorsErrorCode } from './io/safetensors.ts';
export { TokenizerError } from './tokenizer/load.ts';
export { UnsupportedTokenizerError } from './tokenizer/bpe-model.ts';
export { TokensFileError } from './tokenizer/tokens-file.ts';
export { ExtendError } from './tokenizer/extend.ts';
export { InitMethodError } from './embeddings/init-methods.ts';
export { SurgeryError } from './embeddings/surgery.ts';
export { UnsupportedModelError } from './runtime/model-spec.ts';
export { BenchmarkFileError } from './eval/bench/readers.ts';
export { GridConfigError } from './eval/grid.ts';

// io: model directories, the Hub, weights
export { loadModelDir, readTokenizerJson, type ModelDir, type TokenizerJson } from './io/model-dir.ts';
export { parseConfig, type ModelConfig, type RopeScaling } from './io/config.ts';
export { resolveModel, downloadModel, isRepoId, defaultCacheDir, type ResolveOptions, type HubProgress } from './io/hub.ts';
export { openWeights, readWeightF32, parameterCount, type WeightSet } from './io/weights.ts';
export { openSafetensors, readTensorF32, type SafetensorsFile, type TensorInfo } from './io/safetensors.ts';
export type { DType } from './io/dtype.ts';
export { summarizeModel, formatSummary, type ModelSummary } from './io/summary.ts';
export { readTextFile } from './io/text.ts';

// tokenizer: loading, token discovery (learnTokens over counted words, or from a corpus in one call), extension, fertility
export { loadTokenizer, tokenizerFromJson, encode, encodeBatch, decode, type LoadedTokenizer } from './tokenizer/load.ts';
export { countWords, type WordFrequencies } from './tokenizer/corpus.ts';
export { learnTokens, learnTokensFromCorpus, type LearnOptions, type LearnResult } from './tokenizer/learn.ts';
export { readTokensFile, writeTokensFile, type NewToken, type NewTokenList } from './tokenizer/tokens-file.ts';
export { extendTokenizer, writeTokenizerFiles, type ExtendMode, type ExtendOptions, type ExtendResult } from './tokenizer/extend.ts';
export { fertility, fertilityOfFiles, fertilityLines, FertilityAccumulator, type FertilityResult } from './tokenizer/fertility.ts';
export { bpeModelOf, type BpeKind } from './tokenizer/bpe-model.ts';

// embeddings: init methods, model extension, vocabulary replacement (TokAlign)
export { parseInitMethod, parseInitMethodList, ALL_METHODS, SOURCE_METHODS, VALID_FORMS, type InitMethod } from './embeddings/init-methods.ts';
export { extendModel, type ExtendModelOptions, type ExtendModelResult } from './embeddings/extend-model.ts';
export {
  readTargetTokenizer, planReplacement, writeReplacement, alignmentReport, REPLACE_INITS, CHAT_TEMPLATE_CHOICES,
  type ReplaceInit, type ReplaceOptions, type ReplacementPlan, type TargetTokenizer, type ChatTemplateChoice,
} from './embeddings/replace.ts';

// runtime: the ONNX engine, generation, extended-vocabulary decoding
export { loadEngine, type Engine, type EngineOptions, type GenerateOptions } from './runtime/engine.ts';
export { generateExtended, extendedDecoding, newTokenMap } from './runtime/extended-decoding.ts';

// tune: the TypeScript new-row engine (library defaults: a call needs only its inputs)
export { runTune, type TuneOptions, type TuneInputs, type TuneSettings, type TuneSummary } from './tune/run-tune.ts';

// eval: one model (loadSetup + evaluate), init analysis, the experiment grid (runGrid over pipelineSteps)
export { loadSetup, type SetupOptions, type LoadedSetup } from './eval/setup.ts';
export { codecOf } from './eval/codec.ts';
export {
  evaluate, defaultBenchFiles, METRICS, BENCHMARKS, METRIC_REGISTRY, BENCH_REGISTRY,
  type EvalOptions, type EvalSetup, type BenchFiles, type MetricName, type BenchName,
} from './eval/evaluate.ts';
export type { EvalResults, Lang } from './eval/results.ts';
export { measureBpb } from './eval/bpb.ts';
export { compareInit, type CompareInitOptions, type CompareInitResult } from './eval/init-analysis.ts';
export { newTokenRank, type NewTokenRankResult, type NewTokenRankOptions } from './eval/new-token-rank.ts';
export {
  runGrid, readGridConfig, parseGridConfig, writeGridOutputs,
  type GridConfig, type GridSteps, type GridRun, type GridProgress, type CellRecord, type TuneVariant,
} from './eval/grid.ts';
export { pipelineSteps, type PipelineHooks } from './eval/pipeline.ts';
export { readCurve, curveChartSpec, curveTable, CURVE_X, type Curve, type CurvePoint, type CurveX } from './eval/curves.ts';

// export: transformers.js (ONNX) and llama.cpp (GGUF)
export { exportOnnx, type ExportResult as OnnxExportResult } from './export/onnx.ts';
export { exportGguf, GGUF_TYPES, type GgufExportType, type GgufExportResult } from './export/gguf.ts';
