// Training loops over the new rows, with a step schedule that can be checkpointed and resumed:
// the data order of every epoch is a seeded permutation of batches, and a checkpoint records the
// epoch, the index inside it, Adam's state and the rows.
import { adamInit, adamStep, type AdamState } from './adam.ts';
import type { DenseKernels } from './ort-kernels.ts';
import { outputLossAndGrad, seedHeuristicStep } from './output-rows.ts';
import type { HiddenCache } from './hidden-cache.ts';
import { lmLossAndGrad, type FrozenModel, type NewRows } from './frozen-model.ts';
import type { CheckpointState } from './checkpoint.ts';
import { HackError } from '../io/errors.ts';
import { permutation, seededRandom } from '../io/seeded-random.ts';

export interface Schedule {
  batchesPerEpoch: number;
  totalSteps: number;
}

/** Steps for `epochs` passes, or until `maxItems` items (positions, tokens) were seen. */
export function makeSchedule(items: number, batch: number, epochs: number | undefined, maxItems: number | undefined): Schedule {
  const batchesPerEpoch = Math.max(1, Math.ceil(items / batch));
  let totalSteps = Math.ceil((epochs ?? 1) * batchesPerEpoch);
  if (maxItems !== undefined) totalSteps = Math.max(1, Math.ceil(maxItems / batch));
  return { batchesPerEpoch, totalSteps };
}

/** Seeded permutation of [0, n) (the batch order of one epoch); the seed is spread by a Knuth multiplicative hash so seeds s and s+1 give unrelated orders. */
export function epochPermutation(n: number, seed: number): Int32Array {
  return permutation(n, seededRandom((seed * 2654435761) >>> 0));
}

/** Linear warm-up over the first 5% of steps, then cosine decay to 10% of the peak. */
export function lrScale(step: number, total: number): number {
  const warm = Math.max(1, Math.floor(total * 0.05));
  if (step < warm) return (step + 1) / warm;
  const t = (step - warm) / Math.max(1, total - warm);
  return 0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, t)));
}

export interface StepInfo {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  /** Mean loss over positions whose target is a new token (output-row objective). */
  newLoss?: number;
  items: number;
}

export interface LoopControl {
  seed: number;
  /** Save a checkpoint every this many seconds (and at the end). */
  checkpointSeconds: number;
  checkpoint: (s: CheckpointState) => Promise<void>;
  resume?: CheckpointState | null;
  onStep?: (s: StepInfo) => void;
}

export interface TrainResult {
  steps: number;
  items: number;
  firstLoss: number;
  lastLoss: number;
  seconds: number;
  resumedAt: number;
}

interface LoopState {
  step: number;
  items: number;
  firstLoss: number;
  ema: number;
}

async function runLoop(
  phase: string, sched: Schedule, ctl: LoopControl, arrays: Record<string, Float32Array>, extra: () => Record<string, unknown>,
  restore: (p: Record<string, unknown>) => void,
  step: (batchIndex: number, step: number) => Promise<{ loss: number; items: number; newLoss?: number }>,
): Promise<TrainResult> {
  const t0 = performance.now();
  const st: LoopState = { step: 0, items: 0, firstLoss: NaN, ema: NaN };
  if (ctl.resume && ctl.resume.progress.phase === phase) {
    const p = ctl.resume.progress;
    if (p.totalSteps !== sched.totalSteps) {
      throw new HackError('RESUME_MISMATCH', `the checkpoint was made for ${p.totalSteps} steps, this run has ${sched.totalSteps} (different data or options); use another {opt:workDir} or drop {opt:resume}`, { option: 'resume' });
    }
    for (const [name, a] of Object.entries(arrays)) {
      const saved = ctl.resume.arrays[name];
      if (!saved || saved.length !== a.length) throw new Error(`checkpoint: "${name}" is missing or has the wrong size (${saved?.length} vs ${a.length})`);
      a.set(saved);
    }
    st.step = p.step as number;
    st.items = p.items as number;
    st.firstLoss = p.firstLoss as number;
    st.ema = p.ema as number;
    restore(p);
  }
  const resumedAt = st.step;
  const save = () => ctl.checkpoint({ progress: { phase, ...st, totalSteps: sched.totalSteps, ...extra() }, arrays });
  let lastSave = performance.now();
  let perm: Int32Array | null = null;
  let permEpoch = -1;
  while (st.step < sched.totalSteps) {
    const epoch = Math.floor(st.step / sched.batchesPerEpoch);
    if (epoch !== permEpoch) {
      perm = epochPermutation(sched.batchesPerEpoch, ctl.seed + epoch);
      permEpoch = epoch;
    }
    const r = await step(perm![st.step % sched.batchesPerEpoch], st.step);
    if (!Number.isFinite(r.loss)) throw new HackError('DIVERGED', `${phase}: the loss became ${r.loss} at step ${st.step} (lower {opt:lr})`);
    st.items += r.items;
    if (Number.isNaN(st.firstLoss)) st.firstLoss = r.loss;
    st.ema = Number.isNaN(st.ema) ? r.loss : 0.95 * st.ema + 0.05 * r.loss;
    st.step++;
    ctl.onStep?.({ step: st.step, totalSteps: sched.totalSteps, epoch, loss: r.loss, newLoss: r.newLoss, items: st.items });
    if (performance.now() - lastSave > ctl.checkpointSeconds * 1000 && st.step < sched.totalSteps) {
      await save();
      lastSave = performance.now();
    }
  }
  await save();
  return { steps: st.step, items: st.items, firstLoss: st.firstLoss, lastLoss: st.ema, seconds: (performance.now() - t0) / 1000, resumedAt };
}

export interface OutputTrainOptions extends LoopControl {
  cache: HiddenCache;
  kernels: DenseKernels;
  /** [n x d] rows, updated in place. */
  rows: Float32Array;
  newIds: number[];
  method: 'adam' | 'seed-heuristic';
  lr: number;
  batch: number;
  epochs?: number;
  maxPositions?: number;
  /** Distillation weight (0 = plain cross-entropy); see output-rows.ts. */
  distill?: number;
}

/** Fit the output rows on the cached hidden states (or apply the seed heuristic for comparison). */
export async function trainOutputRows(o: OutputTrainOptions): Promise<TrainResult> {
  const P = o.cache.meta.positions;
  const d = o.cache.meta.hidden;
  const n = o.newIds.length;
  const newIndex = new Map(o.newIds.map((id, j) => [id, j]));
  // the heuristic is one pass; Adam follows the schedule
  const sched = o.method === 'seed-heuristic' ? makeSchedule(P, o.batch, 1, undefined) : makeSchedule(P, o.batch, o.epochs, o.maxPositions);
  const adam: AdamState = adamInit(n * d);
  const arrays = { rows: o.rows, adam_m: adam.m, adam_v: adam.v };
  const W = { data: o.rows, rows: n, cols: d };
  return runLoop(
    `output:${o.method}`, sched, o, arrays, () => ({ adamStep: adam.step }), (p) => { adam.step = p.adamStep as number; },
    async (bi, step) => {
      const start = bi * o.batch;
      const count = Math.min(o.batch, P - start);
      const b = await o.cache.batch(start, count, newIndex);
      if (o.method === 'seed-heuristic') {
        const before = await outputLossAndGrad(o.kernels, W, b);
        await seedHeuristicStep(o.kernels, W, b, b.maxOld, o.lr);
        return { loss: before.loss, items: count, newLoss: before.newCount ? before.newLoss / before.newCount : undefined };
      }
      const r = await outputLossAndGrad(o.kernels, W, b, o.distill ?? 0);
      adamStep(o.rows, r.grad, adam, { lr: o.lr }, lrScale(step, sched.totalSteps));
      return { loss: r.loss, items: count, newLoss: r.newCount ? r.newLoss / r.newCount : undefined };
    },
  );
}

export interface LmTrainOptions extends LoopControl {
  model: FrozenModel;
  kernels: DenseKernels;
  /** Extended-id windows (the model reads the extended tokenization). */
  windows: number[][];
  /** Rows updated in place (input === output for a tied model). */
  rows: NewRows;
  trainInput: boolean;
  trainOutput: boolean;
  lr: number;
  /** Windows per step. */
  batch: number;
  epochs?: number;
  maxTokens?: number;
}

/** Train input (and/or output) rows through the frozen network on the extended tokenization. */
export async function trainLmRows(o: LmTrainOptions): Promise<TrainResult> {
  const tied = o.rows.input === o.rows.output;
  const tokensPerWindow = o.windows.reduce((a, w) => a + w.length, 0) / Math.max(1, o.windows.length);
  const sched = makeSchedule(o.windows.length, o.batch, o.epochs, o.maxTokens !== undefined ? Math.ceil(o.maxTokens / tokensPerWindow) : undefined);
  const size = o.rows.input.length;
  const inAdam = adamInit(size);
  const outAdam = tied ? inAdam : adamInit(size);
  const arrays: Record<string, Float32Array> = { input: o.rows.input as Float32Array, in_m: inAdam.m, in_v: inAdam.v };
  if (!tied) Object.assign(arrays, { output: o.rows.output as Float32Array, out_m: outAdam.m, out_v: outAdam.v });
  const want = { input: o.trainInput, output: o.trainOutput };
  return runLoop(
    `lm:${o.trainInput ? 'in' : ''}${o.trainOutput ? 'out' : ''}`, sched, o, arrays,
    () => ({ inStep: inAdam.step, outStep: outAdam.step }),
    (p) => { inAdam.step = p.inStep as number; outAdam.step = p.outStep as number; },
    async (bi, step) => {
      const seqs = o.windows.slice(bi * o.batch, (bi + 1) * o.batch);
      const r = await lmLossAndGrad(o.model, o.kernels, seqs, o.rows, want);
      const scale = lrScale(step, sched.totalSteps);
      if (tied) {
        const g = new Float32Array(size);
        if (r.gradInput) for (let i = 0; i < size; i++) g[i] += r.gradInput[i];
        if (r.gradOutput) for (let i = 0; i < size; i++) g[i] += r.gradOutput[i];
        adamStep(o.rows.input as Float32Array, g, inAdam, { lr: o.lr }, scale);
      } else {
        if (r.gradInput) adamStep(o.rows.input as Float32Array, Float32Array.from(r.gradInput), inAdam, { lr: o.lr }, scale);
        if (r.gradOutput) adamStep(o.rows.output as Float32Array, Float32Array.from(r.gradOutput), outAdam, { lr: o.lr }, scale);
      }
      return { loss: r.loss, items: seqs.reduce((a, s) => a + s.length, 0) };
    },
  );
}
