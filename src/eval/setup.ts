// Builds an EvalSetup from model directories: the engine, the tokenizers on the input and output
// sides, the added ids, and the original model's generation for decode-speed comparisons. Under
// encodeWith the setup's engine decodes extended-vocabulary (extendedDecoding), so every metric and
// benchmark that generates uses it.
import * as path from 'node:path';
import { loadModelDir } from '../io/model-dir.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { loadEngine, type Engine } from '../runtime/engine.ts';
import { addedIds, codecOf } from './codec.ts';
import { extendedDecoding, newTokenMap } from '../runtime/extended-decoding.ts';
import type { EvalSetup } from './evaluate.ts';
import { checkDerived } from '../tokenizer/provenance.ts';

export interface SetupOptions {
  /** The original (base) model directory: its tokenizer encodes the input (the research's setup). */
  encodeWith?: string;
  /** The original model: its tokenizer identifies the added ids and it generates for decode-speed (no input change). */
  original?: string;
  threads?: number;
  /** Engine precision (EngineOptions.precision), for the model and the original alike. */
  precision?: 'float32' | 'int8';
  /** Load the original model's engine too (decode-speed comparison, new-token-rank's reference). */
  originalEngine?: boolean;
}

export interface LoadedSetup { setup: EvalSetup; engines: Engine[] }

export async function loadSetup(modelDir: string, opts: SetupOptions = {}): Promise<LoadedSetup> {
  const model = await loadModelDir(modelDir);
  const tok = await loadTokenizer(model.tokenizerPath);
  const origDir = opts.encodeWith ?? opts.original;
  // the original must be the model this one was built from: checked before any engine runs on its ids
  if (origDir) checkDerived((await loadModelDir(origDir)).tokenizerJson, model.tokenizerJson, { original: origDir, extended: modelDir });
  const engine = await loadEngine(model, { threads: opts.threads, precision: opts.precision });
  const engines: Engine[] = [engine];
  const modelCodec = codecOf(tok);
  const setup: EvalSetup = {
    engine, model: path.resolve(modelDir), modelCodec, inputCodec: modelCodec, inputTokenizer: path.resolve(model.tokenizerPath),
    // without the original model nothing says whether this tokenizer was extended: it is the model's own
    input: origDir ? 'extended' : 'model', eosIds: engine.eosIds,
  };
  if (origDir) {
    const orig = await loadModelDir(origDir);
    const otok = await loadTokenizer(orig.tokenizerPath);
    const ocodec = codecOf(otok);
    const added = addedIds(otok, tok);
    setup.originalCodec = ocodec;
    setup.isNew = (id) => added.has(id);
    let map: Promise<Map<number, number[]>> | undefined;
    setup.newTokenOriginalIds = () => (map ??= newTokenMap(tok, otok));
    if (opts.encodeWith) {
      setup.inputCodec = ocodec;
      setup.inputTokenizer = path.resolve(orig.tokenizerPath);
      setup.input = 'original';
      // the research's setup, decoding fixed: new tokens the model emits are fed back as their original
      // ids, in every generation (decode-speed, repetition, fertility-output, CalamePT)
      setup.engine = extendedDecoding(engine, await setup.newTokenOriginalIds());
    }
    if (opts.originalEngine) {
      const oeng = await loadEngine(orig, { threads: opts.threads, precision: opts.precision });
      engines.push(oeng);
      setup.originalGenerate = async (prompt, n) => {
        const ids = await oeng.generate(await ocodec.encode(prompt), { maxNewTokens: n, temperature: 0 });
        return { ids, text: await ocodec.decode(ids) };
      };
      setup.originalLastLogits = (batch) => oeng.lastLogits(batch);
    }
  }
  return { setup, engines };
}
