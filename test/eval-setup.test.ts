// eval under --encode-with: every metric and benchmark that generates (CalamePT, fertility-output,
// decode-speed, repetition) goes through extended-vocabulary decoding, the engine's one generation
// loop, with its stopping criteria; the output is decoded by the model's own tokenizer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTestModel } from './support/factory.ts';
import { openSafetensors, readTensorF32, writeSafetensors, bytesSource } from '../src/io/safetensors.ts';
import { fromFloat32 } from '../src/io/dtype.ts';
import { loadEngine, type Engine, type GenerateOptions } from '../src/runtime/engine.ts';
import { extendedDecoding, generateExtended } from '../src/runtime/extended-decoding.ts';
import { encode, loadTokenizer } from '../src/tokenizer/load.ts';
import { loadSetup } from '../src/eval/setup.ts';
import { evaluate, type EvalOptions } from '../src/eval/evaluate.ts';
import { firstWordSettled } from '../src/eval/text-metrics.ts';

let tmp: string;
before(async () => { tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'eval-setup-')); });
after(async () => { await fsp.rm(tmp, { recursive: true, force: true }); });

const PROMPT = 'O Sr. Presidente declarou aberta a sessão com os';
const PT = [
  'O Sr. Presidente: Srs. Deputados, está aberta a sessão. A proposta de lei que hoje discutimos visa garantir aos cidadãos o acesso à justiça.',
  'Os deputados votaram a favor da proposta de lei que garante aos cidadãos portugueses o acesso à justiça em condições de igualdade perante todos.',
  'A sessão foi encerrada pelo Sr. Presidente depois de os deputados terem votado a proposta de lei sobre o acesso à justiça em Portugal.',
].join('\n');

/**
 * An original model and an extension of it by one added token, ' deputados', whose (tied) row makes
 * it the model's first choice right after PROMPT: there extended and plain decoding part ways.
 */
async function extendedPair(): Promise<{ orig: string; ext: string; base: number; promptIds: number[] }> {
  const orig = await writeTestModel(path.join(tmp, 'orig'), { arch: 'llama', dtype: 'F32', seed: 5, padRows: 2, merges: 64 });
  const origTok = await loadTokenizer(path.join(orig, 'tokenizer.json'));
  const promptIds = await encode(origTok, PROMPT);
  const probe = await loadEngine(orig, { threads: 1 });
  const [hs] = await probe.hiddenStates([promptIds]);
  const [logits] = await probe.lastLogits([promptIds]);
  const H = probe.model.hiddenSize;
  await probe.dispose();
  const hLast = hs.slice(hs.length - H);
  const scale = (1.5 * Math.max(...logits)) / hLast.reduce((a, v) => a + v * v, 0);
  const ext = path.join(tmp, 'ext');
  await fsp.cp(orig, ext, { recursive: true });
  const tjPath = path.join(ext, 'tokenizer.json');
  const tj = JSON.parse(await fsp.readFile(tjPath, 'utf8'));
  const base = Object.keys(tj.model.vocab).length;
  tj.added_tokens.push({ id: base, content: ' deputados', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  await fsp.writeFile(tjPath, JSON.stringify(tj));
  const file = path.join(ext, 'model.safetensors');
  const st = await openSafetensors(file);
  const sources = [];
  for (const t of st.tensors) {
    const data = await readTensorF32(st, t.name);
    if (t.name === 'model.embed_tokens.weight') data.set(hLast.map((v) => v * scale), base * H);
    sources.push(bytesSource(t.name, 'F32', t.shape, fromFloat32(data, 'F32')));
  }
  await writeSafetensors(file, sources);
  return { orig, ext, base, promptIds };
}

/** Record the options of every generation the engine runs. */
function spyGenerations(engine: Engine): GenerateOptions[] {
  const seen: GenerateOptions[] = [];
  const generate = engine.generate.bind(engine);
  const generateBatch = engine.generateBatch.bind(engine);
  engine.generate = (p, o) => { seen.push(o); return generate(p, o); };
  engine.generateBatch = (ps, o) => { seen.push(o); return generateBatch(ps, o); };
  return seen;
}

test('--encode-with: CalamePT, fertility-output, decode-speed and repetition generate with extended decoding; stopWhen is honoured', async () => {
  const { orig, ext, base, promptIds } = await extendedPair();
  const calame = path.join(tmp, 'calame.jsonl');
  await fsp.writeFile(calame, JSON.stringify({ sentence: ` ${PROMPT} `, last_word: 'deputados' }) + '\n');
  const { setup, engines } = await loadSetup(ext, { encodeWith: orig, threads: 1 });
  const raw = engines[0] as Engine;
  try {
    const map = await setup.newTokenOriginalIds!();
    assert.deepEqual([...map.keys()], [base]);
    const sub = map.get(base)!;
    assert.ok(sub.length > 1);
    // precondition: the new token wins after the prompt, and reading it back as its pieces changes what follows
    const plain = await raw.generate(promptIds, { maxNewTokens: 6, eosIds: [] });
    const extended = (await generateExtended(raw, map, promptIds, { maxNewTokens: 6, eosIds: [] })).ids;
    assert.equal(plain[0], base);
    assert.equal(extended[0], base);
    assert.notDeepEqual(extended, plain);

    // the one loop's stopping criteria hold under extended decoding, single and batched
    const xd = extendedDecoding(raw, map);
    assert.deepEqual(await xd.generate(promptIds, { maxNewTokens: 6, eosIds: [], stopWhen: (g) => g.length === 2 }), extended.slice(0, 2));
    const batch = await xd.generateBatch([promptIds, promptIds.slice(0, 4)], { maxNewTokens: 6, eosIds: [], stopWhen: (g) => g.length === 3 });
    assert.deepEqual(batch.map((g) => g.length), [3, 3]);
    assert.deepEqual(batch[0], extended.slice(0, 3));

    // every generating metric and benchmark goes through it
    const seen = spyGenerations(raw);
    const runs: Array<{ name: string; opts: Partial<EvalOptions> }> = [
      { name: 'calamept', opts: { bench: ['calamept'], benchFiles: { calamept: calame } } },
      { name: 'fertility-output', opts: { metrics: ['fertility-output'], outputTexts: 2 } },
      { name: 'decode-speed', opts: { metrics: ['decode-speed'], genPrompts: 2, genTokens: 4 } },
      { name: 'repetition', opts: { metrics: ['repetition'], genPrompts: 2, genTokens: 4 } },
    ];
    const results: Record<string, Awaited<ReturnType<typeof evaluate>>> = {};
    for (const r of runs) {
      seen.length = 0;
      results[r.name] = await evaluate(setup, { metrics: [], bench: [], texts: { pt: { file: 'pt.txt', text: PT } }, benchFiles: {}, ...r.opts });
      assert.ok(seen.length > 0, `${r.name} generates`);
      for (const o of seen) assert.equal(o.readAs, map, `${r.name}: extended decoding`);
      if (r.name === 'calamept') assert.ok(seen.every((o) => typeof o.stopWhen === 'function'), 'CalamePT stops at a settled first word');
    }
    // CalamePT: the new token is read back as its pieces and the text decoded by the model's tokenizer
    // (the original's has no ' deputados'); the same ids as the loop gives with CalamePT's stopWhen
    const cal = results.calamept.benchmarks.calamept as { samples: Array<{ generated: string }> };
    const stopWhen = async (g: readonly number[]) => firstWordSettled(await setup.modelCodec.decode([...g]));
    const ref = await extendedDecoding(raw, map).generate(promptIds, { maxNewTokens: 8, temperature: 0, eosIds: setup.eosIds, stopWhen });
    assert.equal(cal.samples[0].generated, await setup.modelCodec.decode(ref));
    assert.ok(cal.samples[0].generated.startsWith(' deputados'), cal.samples[0].generated);
  } finally {
    for (const e of engines) await e.dispose();
  }
});
