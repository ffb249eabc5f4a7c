// The inference engine: one ONNX Runtime (CPU) session over a graph built from config.json +
// safetensors (see graph.ts), created on first use and shared by scoring, logits, hidden states
// and KV-cache decoding. Batches are left-padded; position ids are cumsum(mask) - 1 (clamped at 0),
// as transformers does.
import * as ort from 'onnxruntime-node';
import * as path from 'node:path';
import { loadModelDir, type ModelDir } from '../io/model-dir.ts';
import { parameterCount, readWeightF32 } from '../io/weights.ts';
import { buildGraph, safetensorsLocator, variantKey, type GraphVariant } from './graph.ts';
import { checkSupported } from './model-spec.ts';
import { sampleNext, seededRandom, logSoftmax } from './sampling.ts';
import { HackError } from '../io/errors.ts';

export interface EngineOptions {
  /** Intra-op threads of ORT (default: ORT's choice, the number of physical cores). */
  threads?: number;
  /** Most sequences per forward pass for the batched APIs (default 16). */
  maxBatch?: number;
  /** Upper bound on batch * seq * vocab floats of logits per forward pass (default 32M = 128 MB). */
  maxLogitFloats?: number;
  /** Graph operators: 'fused' (default: opset-23 Attention/RotaryEmbedding, FusedMatMul), 'hybrid' (attention from MatMul/Softmax) or 'plain' (elementary opset-17 ops). */
  ops?: 'fused' | 'plain' | 'hybrid';
  /**
   * Weight layout of the matrix products (see GraphVariant.matmul). Default: 'transposed' (faster
   * prefill) when a float32 copy of the weights takes at most 1 GiB, else 'stored' (less memory).
   */
  matmul?: 'stored' | 'transposed';
  /**
   * 'float32' (default, exact: the parity tests hold) or 'int8': the decoder layers' linear weights
   * quantized per output column at load, matrix products through DynamicQuantizeMatMul. Faster
   * prefill on CPU, approximate logits: for quick evaluations, reported as such.
   */
  precision?: 'float32' | 'int8';
}

/** Largest model an int8 graph is built for (its int8 weights are embedded in the < 2 GB protobuf). */
const INT8_MAX_PARAMS = 1.5e9;

/** Models whose float32 weights fit in this many bytes get the faster, copy-making layout by default. */
const TRANSPOSED_WEIGHTS_MAX_BYTES = 1 << 30;

export interface GenerateOptions {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Ids that end generation (included in the result). Default: the model's eos_token_id(s). */
  eosIds?: number[];
  /** Called for each new id; return true (or a promise of true) to stop after it. */
  onToken?: (id: number) => void | boolean | Promise<void | boolean>;
  /**
   * Called after each new id with the ids generated so far for that sequence; true ends that
   * sequence (a batched run drops it from the batch, so the rest decode cheaper).
   */
  stopWhen?: (generated: readonly number[]) => boolean | Promise<boolean>;
  /**
   * What the model reads for an emitted id, when not the id itself: extended-vocabulary decoding
   * feeds a new token back as its original sub-token ids (runtime/extended-decoding.ts builds the map
   * and checks it). The generated ids are the emitted ones.
   */
  readAs?: ReadonlyMap<number, readonly number[]>;
}

/** Incremental decoding on a KV cache for a batch of sequences. */
export interface Decoder {
  readonly batchSize: number;
  /** Tokens fed so far per sequence. */
  readonly lengths: readonly number[];
  /**
   * Append ids to each sequence (rows may differ in length, empty rows allowed) and return the
   * logits after each sequence's last token.
   */
  feed(ids: number[][]): Promise<Float32Array[]>;
  /** Keep only these rows (indices into the current batch, in the new order); the batch shrinks. */
  retain(rows: number[]): void;
}

export interface Engine {
  readonly model: ModelDir;
  /** Logits width (= embedding rows). */
  readonly vocabRows: number;
  tokenLogprobs(batch: number[][]): Promise<Float32Array[]>;
  scoreContinuations(items: Array<{ context: number[]; continuation: number[] }>): Promise<Array<{ logprobs: Float32Array; sum: number }>>;
  lastLogits(batch: number[][]): Promise<Float32Array[]>;
  logits(ids: number[]): Promise<Float32Array>;
  hiddenStates(batch: number[][]): Promise<Float32Array[]>;
  generate(prompt: number[], opts: GenerateOptions): Promise<number[]>;
  /** Batched generation (one list of new ids per prompt); used by the benchmark. */
  generateBatch(prompts: number[][], opts: GenerateOptions): Promise<number[][]>;
  /** A KV-cache decoder for `batchSize` sequences starting empty. */
  decoder(batchSize?: number): Decoder;
  /** Default stop ids (eos_token_id of generation_config.json or config.json). */
  readonly eosIds: number[];
  dispose(): Promise<void>;
}

/**
 * One graph serves every call (one session, one float32 copy of the weights): logits for the last
 * `num_logits_to_keep` positions, target log-probs and the KV cache; each call fetches only the
 * outputs it needs. (Hidden states come from a second graph, HIDDEN.)
 */
const UNIFIED: GraphVariant = { logits: 'keep', hidden: false, cache: true, targets: true };
/**
 * Final hidden states of every position (tuning's cache): a second session, built on first use,
 * because a graph with this output cannot skip the last layer's work on positions whose logits
 * are not kept (which UNIFIED does).
 */
const HIDDEN: GraphVariant = { logits: 'none', hidden: true, cache: false, targets: false };

/** Contexts at least this long are run once for all the continuations that share them. */
const SHARED_CONTEXT_MIN = 8;

function idsOf(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

interface Padded { ids: BigInt64Array; mask: BigInt64Array; pos: BigInt64Array; len: number }

/** What one run of the graph reads: ids and positions [batch, len], the mask [batch, total] over past + new positions. */
interface FeedParts extends Padded {
  batch: number;
  /** Past + new positions (default len: no past). */
  total?: number;
  /** Positions whose logits are kept (with their target ids for target_logprobs); absent for the hidden-state graph. */
  keep?: number;
  targets?: BigInt64Array;
  /** The KV cache (past_key_values.*), for the graphs that take one. */
  past?: Record<string, ort.Tensor>;
}

/** The one place the graph's feed record is built (every forward pass, scoring and decoding). */
function feedRecord(f: FeedParts): Record<string, ort.Tensor> {
  const r: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', f.ids, [f.batch, f.len]),
    attention_mask: new ort.Tensor('int64', f.mask, [f.batch, f.total ?? f.len]),
    position_ids: new ort.Tensor('int64', f.pos, [f.batch, f.len]),
  };
  if (f.keep !== undefined) {
    r.num_logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(BigInt(f.keep)), []);
    r.target_ids = new ort.Tensor('int64', f.targets ?? new BigInt64Array(f.batch * f.keep), [f.batch, f.keep]);
  }
  return f.past ? { ...r, ...f.past } : r;
}

/** Left-pad ragged sequences; position ids = cumsum(mask) - 1 clamped at 0. */
export function leftPad(batch: number[][], padId = 0): Padded {
  const len = Math.max(1, ...batch.map((s) => s.length));
  const B = batch.length;
  const ids = new BigInt64Array(B * len).fill(BigInt(padId));
  const mask = new BigInt64Array(B * len);
  const pos = new BigInt64Array(B * len);
  batch.forEach((s, b) => {
    const off = len - s.length;
    for (let i = 0; i < s.length; i++) {
      ids[b * len + off + i] = BigInt(s[i]);
      mask[b * len + off + i] = 1n;
      pos[b * len + off + i] = BigInt(i);
    }
  });
  return { ids, mask, pos, len };
}

class OrtEngine implements Engine {
  readonly vocabRows: number;
  readonly eosIds: number[];
  private sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly maxBatch: number;
  private readonly maxLogitFloats: number;

  private readonly matmul: 'stored' | 'transposed';

  constructor(readonly model: ModelDir, private opts: EngineOptions) {
    this.vocabRows = model.embeddingRows;
    this.matmul = opts.matmul ?? (parameterCount(model.weights) * 4 <= TRANSPOSED_WEIGHTS_MAX_BYTES ? 'transposed' : 'stored');
    this.maxBatch = Math.max(1, opts.maxBatch ?? 16);
    this.maxLogitFloats = opts.maxLogitFloats ?? 32 * 1024 * 1024;
    const eos = idsOf(model.generationConfig?.eos_token_id);
    this.eosIds = eos.length ? eos : idsOf(model.config.eosTokenId);
  }

  session(base: GraphVariant = UNIFIED): Promise<ort.InferenceSession> {
    const int8 = this.opts.precision === 'int8';
    // int8 graphs read their float32 lm_head in the stored layout (no transposed copy of the largest matrix)
    const variant: GraphVariant = { ...base, ops: this.opts.ops ?? 'fused', ...(int8 ? { matmul: 'stored', precision: 'int8' } : { matmul: this.matmul }) };
    const key = variantKey(variant);
    let s = this.sessions.get(key);
    if (!s) {
      const dir = path.resolve(this.model.dir);
      const options: ort.InferenceSession.SessionOptions = {
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        interOpNumThreads: 1,
        // Graph loaded from memory: external data (the safetensors files) is resolved here.
        extra: { session: { model_external_initializers_file_folder_path: dir } },
      };
      if (this.opts.threads) options.intraOpNumThreads = this.opts.threads;
      s = (async () => {
        const values = int8 ? await this.linearWeights() : undefined;
        const built = buildGraph(this.model, variant, safetensorsLocator(this.model, dir), values ? (t) => {
          const v = values.get(t);
          if (!v) throw new Error(`int8: weight ${t} was not loaded`);
          return v;
        } : undefined);
        return ort.InferenceSession.create(built.bytes, options);
      })();
      this.sessions.set(key, s);
    }
    return s;
  }

  /** float32 values of every decoder layer's linear weight (what an int8 graph quantizes). */
  private async linearWeights(): Promise<Map<string, Float32Array>> {
    // the quantized weights are embedded in the graph, and an ONNX protobuf must stay under 2 GB
    const params = parameterCount(this.model.weights);
    if (params > INT8_MAX_PARAMS) {
      throw new HackError('BAD_OPTION', `int8: ${this.model.dir} has ${(params / 1e9).toFixed(2)}B parameters; int8 graphs embed their weights and support at most ${INT8_MAX_PARAMS / 1e9}B (use float32)`, { option: 'precision' });
    }
    const out = new Map<string, Float32Array>();
    for (let l = 0; l < this.model.config.numLayers; l++) {
      for (const n of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) {
        const name = `model.layers.${l}.${n}.weight`;
        out.set(name, await readWeightF32(this.model.weights, name));
      }
    }
    return out;
  }

  /** Feeds of a forward pass from scratch (empty KV cache) keeping `keep` positions of logits. */
  private feeds(p: Padded, B: number, keep: number, targets?: BigInt64Array): Record<string, ort.Tensor> {
    return feedRecord({ ...p, batch: B, keep, targets, past: this.emptyPast(B) });
  }

  /** Split a ragged batch into chunks (sorted by length) that respect maxBatch and the logits budget. */
  private chunks(batch: number[][], floatsPerToken: number): number[][] {
    const order = batch.map((_, i) => i).sort((a, b) => batch[a].length - batch[b].length);
    const out: number[][] = [];
    let cur: number[] = [];
    for (const i of order) {
      const len = Math.max(1, batch[i].length);
      const next = [...cur, i];
      if (cur.length && (next.length > this.maxBatch || next.length * len * floatsPerToken > this.maxLogitFloats)) {
        out.push(cur);
        cur = [i];
      } else cur = next;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  async tokenLogprobs(batch: number[][]): Promise<Float32Array[]> {
    return this.tailLogprobs(batch, batch.map((s) => Math.max(0, s.length - 1)));
  }

  /**
   * log p of the last `tails[i]` tokens of each sequence (each given everything before it). Logits
   * are computed only for the positions that predict them (num_logits_to_keep = longest tail).
   */
  private async tailLogprobs(batch: number[][], tails: number[]): Promise<Float32Array[]> {
    const result: Float32Array[] = batch.map(() => new Float32Array(0));
    const work = batch.map((s, i) => ({ s, i, tail: tails[i] })).filter(({ tail }) => tail > 0);
    const sess = await this.session();
    for (const chunk of this.chunks(work.map((w) => w.s), 2 * this.vocabRows)) {
      const inputs = chunk.map((k) => work[k].s.slice(0, -1));
      const p = leftPad(inputs);
      const keep = Math.max(...chunk.map((k) => work[k].tail));
      // kept position j (of `keep`) predicts the token `keep - j` from the end of each sequence
      const targets = new BigInt64Array(chunk.length * keep);
      chunk.forEach((k, b) => {
        const s = work[k].s;
        for (let j = 0; j < keep; j++) {
          const at = s.length - keep + j;
          if (at >= 1) targets[b * keep + j] = BigInt(s[at]);
        }
      });
      const out = await sess.run(this.feeds(p, chunk.length, keep, targets), ['target_logprobs']);
      const lp = out.target_logprobs.data as Float32Array;
      chunk.forEach((k, b) => {
        result[work[k].i] = lp.slice((b + 1) * keep - work[k].tail, (b + 1) * keep);
      });
    }
    return result;
  }

  async scoreContinuations(items: Array<{ context: number[]; continuation: number[] }>): Promise<Array<{ logprobs: Float32Array; sum: number }>> {
    for (const it of items) {
      if (it.context.length === 0 && it.continuation.length > 0) {
        throw new Error('scoreContinuations: an empty context cannot predict the first continuation token (prepend a BOS or other context)');
      }
    }
    // Items that share their context (the choices of one question) run the context once and score
    // the continuations on its KV cache; the others are scored as whole sequences in batches.
    const groups = new Map<string, number[]>();
    items.forEach((it, i) => {
      if (it.continuation.length === 0) return;
      const key = it.context.join(',');
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    const lps: Float32Array[] = items.map(() => new Float32Array(0));
    const single: number[] = [];
    for (const g of groups.values()) {
      if (g.length < 2 || items[g[0]].context.length < SHARED_CONTEXT_MIN) { single.push(...g); continue; }
      const res = await this.scoreSharedContext(items[g[0]].context, g.map((i) => items[i].continuation));
      g.forEach((i, k) => { lps[i] = res[k]; });
    }
    const rest = await this.tailLogprobs(single.map((i) => [...items[i].context, ...items[i].continuation]), single.map((i) => items[i].continuation.length));
    single.forEach((i, k) => { lps[i] = rest[k]; });
    return items.map((_, i) => {
      const logprobs = lps[i];
      let sum = 0;
      for (const v of logprobs) sum += v;
      return { logprobs, sum };
    });
  }

  /** Log-probs of several continuations of one context: the context's forward pass is done once. */
  private async scoreSharedContext(context: number[], conts: number[][]): Promise<Float32Array[]> {
    const sess = await this.session();
    const c = this.model.config;
    const first = await sess.run(this.feeds(leftPad([context]), 1, 1), [
      'logits', ...Array.from({ length: c.numLayers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat(),
    ]);
    const firstLp = logSoftmax(first.logits.data as Float32Array);
    const out = conts.map((x) => { const r = new Float32Array(x.length); r[0] = firstLp[x[0]]; return r; });
    // the rest of each continuation, batched on copies of the context's KV cache
    const longer = conts.map((x, k) => ({ x, k })).filter(({ x }) => x.length > 1);
    const C = context.length;
    for (let start = 0; start < longer.length; start += this.maxBatch) {
      const part = longer.slice(start, start + this.maxBatch);
      const B = part.length;
      const S = Math.max(...part.map(({ x }) => x.length - 1));
      const total = C + S;
      const ids = new BigInt64Array(B * S);
      const pos = new BigInt64Array(B * S);
      const mask = new BigInt64Array(B * total);
      const targets = new BigInt64Array(B * S);
      part.forEach(({ x }, b) => {
        const n = x.length - 1;
        const off = S - n; // padding sits between the context and this continuation (masked out)
        mask.fill(1n, b * total, b * total + C);
        for (let i = 0; i < n; i++) {
          ids[b * S + off + i] = BigInt(x[i]);
          pos[b * S + off + i] = BigInt(C + i);
          mask[b * total + C + off + i] = 1n;
          targets[b * S + off + i] = BigInt(x[i + 1]);
        }
      });
      const past: Record<string, ort.Tensor> = {};
      for (let l = 0; l < c.numLayers; l++) for (const kv of ['key', 'value']) {
        const one = first[`present.${l}.${kv}`].data as Float32Array;
        const rep = new Float32Array(one.length * B);
        for (let b = 0; b < B; b++) rep.set(one, b * one.length);
        past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', rep, [B, c.numKvHeads, C, c.headDim]);
      }
      const res = await sess.run(feedRecord({ ids, mask, pos, batch: B, len: S, total, keep: S, targets, past }), ['target_logprobs']);
      const lp = res.target_logprobs.data as Float32Array;
      part.forEach(({ x, k }, b) => {
        const n = x.length - 1;
        out[k].set(lp.subarray((b + 1) * S - n, (b + 1) * S), 1);
      });
    }
    return out;
  }

  async lastLogits(batch: number[][]): Promise<Float32Array[]> {
    for (const s of batch) if (s.length === 0) throw new Error('lastLogits: every sequence needs at least one token');
    const result: Float32Array[] = new Array(batch.length);
    const sess = await this.session();
    for (const chunk of this.chunks(batch, 0)) {
      const p = leftPad(chunk.map((i) => batch[i]));
      const out = await sess.run(this.feeds(p, chunk.length, 1), ['logits']);
      const data = out.logits.data as Float32Array;
      chunk.forEach((i, b) => { result[i] = data.slice(b * this.vocabRows, (b + 1) * this.vocabRows); });
    }
    return result;
  }

  async logits(ids: number[]): Promise<Float32Array> {
    if (ids.length === 0) return new Float32Array(0);
    const sess = await this.session();
    const out = await sess.run(this.feeds(leftPad([ids]), 1, ids.length), ['logits']);
    return out.logits.data as Float32Array;
  }

  async hiddenStates(batch: number[][]): Promise<Float32Array[]> {
    const H = this.model.hiddenSize;
    const result: Float32Array[] = batch.map(() => new Float32Array(0));
    const sess = await this.session(HIDDEN);
    for (const chunk of this.chunks(batch, 0)) {
      const p = leftPad(chunk.map((i) => batch[i]));
      const B = chunk.length;
      const out = await sess.run(feedRecord({ ...p, batch: B }), ['hidden_states']);
      const data = out.hidden_states.data as Float32Array;
      chunk.forEach((i, b) => {
        const n = batch[i].length;
        result[i] = data.slice((b * p.len + p.len - n) * H, (b + 1) * p.len * H);
      });
    }
    return result;
  }

  decoder(batchSize = 1): Decoder {
    return new KvDecoder(this, batchSize);
  }

  async generate(prompt: number[], opts: GenerateOptions): Promise<number[]> {
    return (await this.generateBatch([prompt], opts))[0];
  }

  /** The one generation loop (every decoding, plain or extended, goes through it). */
  async generateBatch(prompts: number[][], opts: GenerateOptions): Promise<number[][]> {
    for (const p of prompts) if (p.length === 0) throw new Error('generate: the prompt is empty (no token ids)');
    const eos = new Set(opts.eosIds ?? this.eosIds);
    const rand = seededRandom(opts.seed ?? 0);
    const dec = this.decoder(prompts.length);
    const out: number[][] = prompts.map(() => []);
    if (opts.maxNewTokens <= 0) return out;
    // alive[r] = the prompt index of decoder row r; finished rows leave the batch
    let alive = prompts.map((_, i) => i);
    let logits = await dec.feed(prompts);
    for (;;) {
      const keep: number[] = [];
      const next: number[][] = [];
      for (let r = 0; r < alive.length; r++) {
        const b = alive[r];
        const id = sampleNext(logits[r], opts, rand);
        out[b].push(id);
        let stop = (await opts.onToken?.(id)) === true;
        if (!stop && opts.stopWhen) stop = (await opts.stopWhen(out[b])) === true;
        if (stop || eos.has(id) || out[b].length >= opts.maxNewTokens) continue;
        keep.push(r);
        const read = opts.readAs?.get(id);
        next.push(read ? [...read] : [id]);
      }
      if (keep.length === 0) return out;
      if (keep.length < alive.length) {
        dec.retain(keep);
        alive = keep.map((r) => alive[r]);
      }
      logits = await dec.feed(next);
    }
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }

  /** Used by KvDecoder: one decoding step (the last position's logits) into `fetches`. */
  async runDecode(f: Omit<FeedParts, 'keep' | 'targets'>, fetches: Record<string, ort.Tensor | null>): Promise<ort.InferenceSession.OnnxValueMapType> {
    return (await this.session()).run(feedRecord({ ...f, keep: 1 }), fetches);
  }

  emptyPast(batchSize: number): Record<string, ort.Tensor> {
    const c = this.model.config;
    const past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < c.numLayers; l++) for (const kv of ['key', 'value']) {
      past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [batchSize, c.numKvHeads, 0, c.headDim]);
    }
    return past;
  }
}

class KvDecoder implements Decoder {
  private past: Record<string, ort.Tensor>;
  /** Attention mask so far, per row (1 = real token, 0 = padding), in buffers grown by doubling. */
  private maskRows: BigInt64Array[];
  private total = 0;
  private counts: number[];
  private last: Float32Array[];
  /**
   * Two sets of KV buffers used in turn (past from one, present written into the other as
   * pre-allocated outputs), grown by 25% when full: no per-step allocation or output copy.
   */
  private bufs: Float32Array[][] = [[], []];
  private capacity = 0;
  private flip = 0;

  constructor(private engine: OrtEngine, public batchSize: number) {
    this.past = engine.emptyPast(batchSize);
    this.maskRows = Array.from({ length: batchSize }, () => new BigInt64Array(64));
    this.counts = new Array(batchSize).fill(0);
    this.last = Array.from({ length: batchSize }, () => new Float32Array(0));
  }

  get lengths(): readonly number[] { return this.counts; }

  retain(rows: number[]): void {
    const B = this.batchSize;
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= B) throw new Error(`decoder.retain: row ${r} is not in the batch (0..${B - 1})`);
    const c = this.engine.model.config;
    const total = this.total;
    const rowFloats = c.numKvHeads * total * c.headDim; // one row of a [B, kvHeads, total, headDim] cache
    const nb = rows.length;
    const perPos = nb * c.numKvHeads * c.headDim;
    // fresh buffers for the smaller batch: the past goes into the set the next feed reads from
    const bufs = [0, 1].map(() => Array.from({ length: 2 * c.numLayers }, () => new Float32Array(perPos * Math.max(this.capacity, total))));
    const pastSet = bufs[this.flip ^ 1];
    for (let l = 0; l < c.numLayers; l++) ['key', 'value'].forEach((kv, k) => {
      const name = `past_key_values.${l}.${kv}`;
      const src = this.past[name].data as Float32Array;
      const dst = pastSet[2 * l + k];
      rows.forEach((r, i) => dst.set(src.subarray(r * rowFloats, (r + 1) * rowFloats), i * rowFloats));
      this.past[name] = new ort.Tensor('float32', dst.subarray(0, nb * rowFloats), [nb, c.numKvHeads, total, c.headDim]);
    });
    this.bufs = bufs;
    this.capacity = Math.max(this.capacity, total);
    this.maskRows = rows.map((r) => this.maskRows[r]);
    this.counts = rows.map((r) => this.counts[r]);
    this.last = rows.map((r) => this.last[r]);
    this.batchSize = nb;
  }

  async feed(ids: number[][]): Promise<Float32Array[]> {
    if (ids.length !== this.batchSize) throw new Error(`decoder.feed: expected ${this.batchSize} rows, got ${ids.length}`);
    const S = Math.max(...ids.map((r) => r.length));
    if (S === 0) return this.last;
    const B = this.batchSize;
    const before = this.total;
    const total = before + S;
    this.total = total;
    const inIds = new BigInt64Array(B * S);
    const pos = new BigInt64Array(B * S);
    for (let b = 0; b < B; b++) {
      const row = ids[b];
      const off = S - row.length;
      let m = this.maskRows[b];
      if (m.length < total) {
        const grown = new BigInt64Array(Math.max(total, 2 * m.length));
        grown.set(m.subarray(0, before));
        this.maskRows[b] = m = grown;
      }
      for (let i = 0; i < S; i++) {
        const real = i >= off;
        inIds[b * S + i] = real ? BigInt(row[i - off]) : 0n;
        pos[b * S + i] = BigInt(real ? this.counts[b] + i - off : Math.max(0, this.counts[b] - 1));
        m[before + i] = real ? 1n : 0n;
      }
      this.counts[b] += row.length;
    }
    let mask: BigInt64Array;
    if (B === 1) mask = this.maskRows[0].subarray(0, total);
    else {
      mask = new BigInt64Array(B * total);
      for (let b = 0; b < B; b++) mask.set(this.maskRows[b].subarray(0, total), b * total);
    }
    const c = this.engine.model.config;
    const perPos = B * c.numKvHeads * c.headDim;
    if (total > this.capacity) {
      // +25% headroom: each set holds at most 1.25x the cache (a plain run holds 2x: past + present)
      this.capacity = total + Math.max(64, Math.ceil(total / 4));
      this.bufs = [0, 1].map(() => Array.from({ length: 2 * c.numLayers }, () => new Float32Array(perPos * this.capacity)));
    }
    const set = this.bufs[this.flip];
    this.flip ^= 1;
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    for (let l = 0; l < c.numLayers; l++) ['key', 'value'].forEach((kv, k) => {
      fetches[`present.${l}.${kv}`] = new ort.Tensor('float32', set[2 * l + k].subarray(0, perPos * total), [B, c.numKvHeads, total, c.headDim]);
    });
    const out = await this.engine.runDecode({ ids: inIds, mask, pos, batch: B, len: S, total, past: this.past }, fetches);
    for (let l = 0; l < c.numLayers; l++) for (const kv of ['key', 'value']) {
      this.past[`past_key_values.${l}.${kv}`] = (fetches[`present.${l}.${kv}`] ?? out[`present.${l}.${kv}`]) as ort.Tensor;
    }
    const V = this.engine.vocabRows;
    const data = out.logits.data as Float32Array;
    // views of this run's output buffer (ORT returns a fresh one each run)
    for (let b = 0; b < B; b++) if (ids[b].length) this.last[b] = data.subarray(b * V, (b + 1) * V);
    return this.last;
  }
}

/** Load a model directory (or use a loaded one) and check that the engine supports it. */
export async function loadEngine(model: ModelDir | string, opts: EngineOptions = {}): Promise<Engine> {
  const m = typeof model === 'string' ? await loadModelDir(model) : model;
  checkSupported(m);
  return new OrtEngine(m, opts);
}

export { logSoftmax };
