// The real grid steps: learn tokens (src/tokenizer), extend + initialize (src/embeddings),
// evaluate (this module) — each step writes its output atomically.
import { readTextFile } from '../io/text.ts';
import { HackError } from '../io/errors.ts';
import { resolveModel } from '../io/hub.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { learnTokensFromCorpus } from '../tokenizer/learn.ts';
import { readTokensFile, writeTokensFile, type TokensMethod } from '../tokenizer/tokens-file.ts';
import type { ExtendMode } from '../tokenizer/extend.ts';
import { extendModel } from '../embeddings/extend-model.ts';
import { runTune, type TuneSettings } from '../tune/run-tune.ts';
import { TORCH_DEFAULTS } from '../tune/options.ts';
import { runTorchTune, type Recipe } from '../tune/torch-engine.ts';
import { baselineMetrics, evaluate, needsOriginalEngine, type EvalOptions } from './evaluate.ts';
import { loadSetup } from './setup.ts';
import type { GridConfig, GridSteps } from './grid.ts';
import type { CellMeta } from './report.ts';
import { textPrefix } from '../io/text.ts';
import type { ProgressFn } from './engine-api.ts';

export interface PipelineHooks {
  onStage?: (label: string) => { tick: ProgressFn; stop: () => void };
  benchFiles: EvalOptions['benchFiles'];
}

async function readHeldOut(file: string | undefined, option: 'pt' | 'en', maxBytes?: number) {
  if (!file) return undefined;
  const text = await readTextFile(file, { option });
  return { file, text: textPrefix(text, maxBytes) };
}

export function pipelineSteps(cfg: GridConfig, hooks: PipelineHooks): GridSteps {
  let texts: EvalOptions['texts'] | null = null;
  const subsets: Record<string, string> = {};
  if (cfg.maxBytes) subsets.texts = `first ${cfg.maxBytes} bytes of each held-out file`;
  // only for what runs: a subset line for a benchmark the grid does not run would mislead
  if (cfg.bench.includes('calamept') && cfg.calameptRows && cfg.calameptRows !== 'all') subsets.calamept = `${cfg.calameptRows} CalamePT rows only`;
  if (cfg.boostTexts && (cfg.metrics.includes('fertility-boost') || cfg.metrics.includes('efficiency'))) {
    subsets.fertility_boost = `first ${cfg.boostTexts} PT held-out lines of 40+ characters`;
  }
  return {
    async learnTokens(model, method, numTokens, corpus, outFile) {
      const dir = await resolveModel(model);
      const m = await loadModelDir(dir);
      const tok = await loadTokenizer(m.tokenizerPath);
      const s = hooks.onStage?.(`learning ${numTokens} ${method} tokens`);
      const list = await learnTokensFromCorpus(tok, m.tokenizerPath, corpus, {
        method: method as TokensMethod, numTokens, onProgress: (p) => s?.tick(p.accepted, p.target),
      });
      s?.stop();
      await writeTokensFile(outFile, list);
    },
    async extendModel(model, tokensFile, numTokens, mode, init, outDir) {
      const list = await readTokensFile(tokensFile);
      // focus / wechsel / omp (auxiliary embeddings) and align read the grid's corpus; other methods ignore it
      const aux = cfg.corpus.length ? { corpus: cfg.corpus, cacheDir: `${outDir}.work/aux` } : undefined;
      await extendModel({ model: await resolveModel(model), tokens: list.tokens.slice(0, numTokens), mode: mode as ExtendMode, init, aux, out: outDir });
    },
    async tune(extendedDir, baseModel, outDir, opts) {
      const o = opts as Partial<TuneSettings> & { corpus?: string };
      const corpus = o.corpus ?? cfg.corpus[0];
      if (!corpus) throw new HackError('MISSING_OPTION', 'stage INITIALIZED_WITH_TRAINING: no corpus (set "corpus" or "tune.corpus" in the config)', { option: 'corpus' });
      let s: { tick: ProgressFn; stop: () => void } | undefined;
      let total = 0;
      const { corpus: _c, ...settings } = o;
      const torch = (o as { engine?: string }).engine === 'torch';
      if (torch) {
        // the PyTorch engine (adapt --engine torch): its own option names, resumable in <out>.work
        const t = o as unknown as { recipe?: Recipe; lr?: number; batchSize?: number; seqLen?: number; maxTokens?: number; corpusBytes?: number; seed?: number };
        const recipe = t.recipe ?? 'rows';
        await runTorchTune({
          model: extendedDir, original: await resolveModel(baseModel), corpus: [corpus], out: outDir, workDir: `${outDir}.work`,
          recipe, lr: t.lr ?? TORCH_DEFAULTS.lr[recipe], batchSize: t.batchSize ?? TORCH_DEFAULTS.batchSize, seqLen: t.seqLen ?? TORCH_DEFAULTS.seqLen,
          maxTokens: t.maxTokens, corpusBytes: t.corpusBytes, seed: t.seed ?? 0, threads: cfg.threads, device: 'auto', resume: true, force: true,
        }, {
          onPhase: (phase, n) => { s?.stop(); total = n; s = hooks.onStage?.(`tune (torch): ${phase}`); },
          onTick: (done) => s?.tick(done, total),
          onPhaseEnd: () => { s?.stop(); s = undefined; },
        });
        return;
      }
      await runTune({
        threads: cfg.threads ?? 2,
        ...settings,
        model: await loadModelDir(extendedDir), original: await loadModelDir(await resolveModel(baseModel)), corpus: [corpus], out: outDir, force: true,
        // one work directory (checkpoints) per variant; the hidden-state cache is shared by the variants of an
        // extended model (reused only when built from the same corpus bytes and window length)
        // (replay text joins the cache, so a variant with replay has its own); a self-sampled replay text
        // depends only on the base model and seed, so the variants share it too
        workDir: `${outDir}.work`, cacheDir: `${extendedDir}.tune-cache${o.replay ? '-replay' : ''}`, replayDir: `${extendedDir}.tune-replay`, resume: true,
        onPhase: (phase, t) => { s?.stop(); total = t; s = hooks.onStage?.(`tune: ${phase}`); },
        onTick: (done) => s?.tick(done, total),
        onPhaseEnd: () => { s?.stop(); s = undefined; },
      });
    },
    async evaluate(cell: CellMeta, modelDir: string, original: string | null) {
      texts ??= { pt: await readHeldOut(cfg.pt, 'pt', cfg.maxBytes), en: await readHeldOut(cfg.en, 'en', cfg.maxBytes) };
      const base = original ? await resolveModel(original) : undefined;
      // metrics about added tokens do not apply to the original model (the registry says which)
      const metrics = cell.stage === 'BASELINE' ? baselineMetrics(cfg.metrics) : cfg.metrics;
      const { setup, engines } = await loadSetup(await resolveModel(modelDir), {
        encodeWith: cell.input === 'original' && base ? base : undefined, original: base, threads: cfg.threads,
        originalEngine: !!base && needsOriginalEngine(metrics),
      });
      try {
        return await evaluate(setup, {
          metrics, bench: cfg.bench, texts: Object.fromEntries(Object.entries(texts).filter(([, v]) => v)), benchFiles: { ...hooks.benchFiles, ...(cfg.benchFiles ?? {}) },
          calameFilter: cfg.calameptRows === 'handwritten' ? (r) => r.source === 'handwritten' : cfg.calameptRows === 'generated' ? (r) => r.source !== 'handwritten' : undefined,
          mmluSubjects: cfg.mmluSubjects, boostTexts: cfg.boostTexts, boostRuns: cfg.boostRuns, rankProbes: cfg.rankProbes, subsets, onStage: hooks.onStage,
        });
      } finally {
        for (const e of engines) await e.dispose();
      }
    },
  };
}
