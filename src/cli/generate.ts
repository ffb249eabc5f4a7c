// `hack-tokenizer generate`: text generation with the ONNX Runtime engine, streamed to stdout.
// `--encode-with <original>`: extended-vocabulary decoding (the model reads through the original
// tokenizer and may emit the new tokens of its own, extended, tokenizer).
import type { Command } from 'commander';
import * as path from 'node:path';
import { resolveModel } from '../io/hub.ts';
import { loadModelDir } from '../io/model-dir.ts';
import { decode, encode, loadTokenizer, tokenizerFromJson } from '../tokenizer/load.ts';
import { loadEngine } from '../runtime/engine.ts';
import { generateExtended, newTokenMap } from '../runtime/extended-decoding.ts';
import { TextStream } from '../runtime/text-stream.ts';
import { info } from './progress.ts';
import { numberFlag } from './flags.ts';

interface GenerateFlags {
  model: string; prompt: string; maxNewTokens: string; temperature: string; topK?: string; topP?: string;
  seed: string; stop?: string[]; encodeWith?: string; threads?: string; special: boolean; stats?: boolean;
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('Generate text with a model (ONNX Runtime, CPU); the generated text alone goes to stdout, streamed')
    .requiredOption('--model <dir|repo-id>', 'model directory or Hugging Face repo id')
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--max-new-tokens <n>', 'most tokens to generate', '64')
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', '0')
    .option('--top-k <k>', 'sample among the k most likely tokens')
    .option('--top-p <p>', 'nucleus sampling: smallest set with probability >= p')
    .option('--seed <s>', 'random seed for sampling', '0')
    .option('--stop <str...>', 'stop when the generated text contains any of these strings (not printed)')
    .option('--encode-with <original-model>', 'extended-vocabulary decoding: read the input through this ORIGINAL model\'s tokenizer; new tokens the model emits are fed back as their original sub-tokens')
    .option('--threads <n>', 'ONNX Runtime intra-op threads')
    .option('--no-special', 'do not add the tokenizer\'s special tokens (BOS) to the prompt')
    .option('--stats', 'print tokens and speed to stderr at the end')
    .action(async (o: GenerateFlags) => {
      const maxNewTokens = numberFlag('--max-new-tokens', o.maxNewTokens, { int: true, min: 0 })!;
      const temperature = numberFlag('--temperature', o.temperature, { min: 0 })!;
      const topK = numberFlag('--top-k', o.topK, { int: true, min: 1 });
      const topP = numberFlag('--top-p', o.topP, { above: 0, max: 1 });
      const seed = numberFlag('--seed', o.seed, { int: true })!;
      const threads = numberFlag('--threads', o.threads, { int: true, min: 1 });
      const model = await loadModelDir(await resolveModel(o.model));
      const tokenizer = tokenizerFromJson(model.tokenizerJson, model.tokenizerPath);
      const engine = await loadEngine(model, { threads });
      try {
        let readTok = tokenizer;
        let map: Map<number, number[]> | null = null;
        if (o.encodeWith) {
          const origDir = await resolveModel(o.encodeWith);
          readTok = await loadTokenizer(path.join(origDir, 'tokenizer.json')).catch((e: Error) => {
            throw new Error(`--encode-with ${o.encodeWith}: ${e.message}`);
          });
          map = await newTokenMap(tokenizer, readTok);
        }
        const prompt = await encode(readTok, o.prompt, o.special);
        if (prompt.length === 0) throw new Error('--prompt: the prompt encodes to no tokens');
        const stream = new TextStream((ids) => decode(tokenizer, ids, true), o.stop ?? []);
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
