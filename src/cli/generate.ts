// `hack-tokenizer generate`: text generation with the ONNX Runtime engine, streamed to stdout.
// `--original <dir> --encode-with original`: extended-vocabulary decoding (the model reads through the original
// tokenizer and may emit the new tokens of its own, extended, tokenizer).
import type { Command } from 'commander';
import { HackError } from '../io/errors.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { decode, encode, tokenizerFromJson } from '../tokenizer/load.ts';
import { checkDerived } from '../tokenizer/provenance.ts';
import { loadEngine } from '../runtime/engine.ts';
import { generateExtended, newTokenMap } from '../runtime/extended-decoding.ts';
import { TextStream } from '../runtime/text-stream.ts';
import { info } from './progress.ts';
import { resolveModelForCli } from './download.ts';
import { originalOf } from './eval.ts';
import { ENCODE_WITH, MODEL, ORIGINAL, SEED, THREADS, command } from './options.ts';

export function register(program: Command): void {
  command(program, 'generate', 'Generate text with a model (ONNX Runtime, CPU); the generated text alone goes to stdout, streamed', [
    MODEL(),
    { key: 'prompt', kind: 'string', arg: '<text>', doc: 'prompt text', required: true },
    { key: 'maxNewTokens', kind: 'int', min: 0, default: 64, doc: 'most tokens to generate (generation also ends at the model\'s eos_token_id)' },
    { key: 'temperature', kind: 'number', min: 0, default: 0, doc: 'sampling temperature; 0 = greedy' },
    { key: 'topK', kind: 'int', min: 1, arg: '<k>', doc: 'sample among the k most likely tokens' },
    { key: 'topP', kind: 'number', above: 0, max: 1, arg: '<p>', doc: 'nucleus sampling: smallest set with probability >= p' },
    SEED,
    { key: 'stop', kind: 'files', arg: '<str...>', doc: 'stop when the generated text contains any of these strings (not printed)' },
    ORIGINAL({ doc: 'the model this one was built from; with --encode-with original, extended-vocabulary decoding: the input is read through its tokenizer and new tokens the model emits are fed back as their original pieces' }),
    ENCODE_WITH,
    THREADS,
    { key: 'special', flag: '--no-special', kind: 'bool', doc: 'do not add the tokenizer\'s special tokens (BOS) to the prompt' },
    { key: 'stats', kind: 'bool', doc: 'print tokens and speed to stderr at the end' },
  ], async (o) => {
      const { original, encodeWith } = originalOf(o);
      const maxNewTokens = o.maxNewTokens as number;
      const temperature = o.temperature as number;
      const topK = o.topK as number | undefined;
      const topP = o.topP as number | undefined;
      const seed = o.seed as number;
      const threads = o.threads as number | undefined;
      const addSpecial = o.special !== false;
      const model = await loadModelDir(await resolveModelForCli(o.model as string));
      const tokenizer = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath);
      const origModel = original ? await loadModelDir(await resolveModelForCli(original)) : null;
      // the original must be the model this one was built from: checked before the engine sees any id
      if (origModel) checkDerived(origModel.tokenizerJson, model.tokenizerJson, { original: original!, extended: o.model as string });
      const engine = await loadEngine(model, { threads });
      try {
        let readTok = tokenizer;
        let map: Map<number, number[]> | null = null;
        if (origModel && encodeWith === 'original') {
          readTok = tokenizerFromJson(origModel.tokenizerJson, origModel.tokenizerPath);
          map = await newTokenMap(tokenizer, readTok);
        }
        const prompt = await encode(readTok, o.prompt as string, addSpecial);
        if (prompt.length === 0) throw new HackError('BAD_OPTION', 'the prompt encodes to no tokens', { option: 'prompt' });
        const stream = new TextStream((ids) => decode(tokenizer, ids, true), (o.stop as string[] | undefined) ?? []);
        const ids: number[] = [];
        // A closed pipe (`generate ... | head`) ends generation quietly.
        let closed = false;
        const onPipeError = (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') closed = true; else throw e; };
        process.stdout.on('error', onPipeError);
        const onToken = async (id: number): Promise<boolean> => {
          ids.push(id);
          const text = await stream.update(ids);
          if (!closed && text) process.stdout.write(text);
          return stream.stopped || closed;
        };
        const t0 = performance.now();
        const opts = { maxNewTokens, temperature, topK, topP, seed, onToken };
        if (map) await generateExtended(engine, map, prompt, opts);
        else await engine.generate(prompt, opts);
        if (!closed) process.stdout.write(stream.flush() + (process.stdout.isTTY ? '\n' : ''));
        if (o.stats) {
          const s = (performance.now() - t0) / 1000;
          const fresh = map ? `, ${ids.filter((id) => map!.has(id)).length} of them from the extended vocabulary` : '';
          info(`${prompt.length} prompt tokens, ${ids.length} new tokens${fresh} in ${s.toFixed(2)} s (${(ids.length / s).toFixed(1)} tok/s)`);
        }
      } finally {
        await engine.dispose();
      }
  });
}
