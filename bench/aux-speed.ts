// Auxiliary-embedding speed: tokenize the first --mb MB of a corpus with an extended tokenizer, then
// train CBOW, printing each phase's wall and user CPU seconds (user CPU is the fair number on a shared
// machine). With --compare <file.ts>, a candidate trainer module (exporting trainAuxVectors, e.g. an earlier
// version of src/embeddings/aux-embeddings.ts saved elsewhere) trains the same tokens in the same run, and the vectors are compared.
import { readFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tokenizeCorpus, trainAuxVectors, DEFAULT_AUX_SETTINGS } from '../src/embeddings/aux-embeddings.ts';

const arg = (k: string, d: string) => { const i = process.argv.indexOf('--' + k); return i > 0 ? process.argv[i + 1] : d; };
const tokenizerFile = arg('tokenizer', '/tmp/m/ext5k/tokenizer.json');
const corpusFile = arg('corpus', 'assets/corpora/pt-pt-parliament-train.txt.gz');
const mb = Number(arg('mb', '2'));
const compareAt = process.argv.indexOf('--compare');
const compare = compareAt >= 0 ? path.resolve(process.argv[compareAt + 1] ?? '') : null;
const cpu = () => process.cpuUsage().user / 1e6;
const phase = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
  const w0 = Date.now(); const c0 = cpu();
  const r = await f();
  console.log(`${name}: wall ${((Date.now() - w0) / 1000).toFixed(1)} s, user CPU ${(cpu() - c0).toFixed(1)} s`);
  return r;
};
const tok = JSON.parse(readFileSync(tokenizerFile, 'utf8'));
const corpus = await phase('tokenize', () => tokenizeCorpus(tok, [corpusFile], mb * 1e6));
console.log(`tokens ${corpus.ids.length}, lines ${corpus.starts.length - 1}, vocab ${corpus.vocabSize}`);
const settings = { ...DEFAULT_AUX_SETTINGS, minCount: Number(arg('min-count', '0')) };
const fresh = await phase('train (current)', () => trainAuxVectors(corpus, settings));
if (compare && existsSync(compare)) {
  const prev = (await import(pathToFileURL(compare).href)) as { trainAuxVectors: typeof trainAuxVectors };
  const old = await phase('train (previous)', () => prev.trainAuxVectors(corpus, settings));
  let same = 0; for (let i = 0; i < fresh.vectors.length; i++) if (fresh.vectors[i] === old.vectors[i]) same++;
  console.log(`identical vector entries: ${same} / ${fresh.vectors.length}`);
}
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB; load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
