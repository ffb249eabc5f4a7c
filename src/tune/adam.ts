// Adam (Kingma & Ba) over one flat float32 parameter block, with state that can be checkpointed.
export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (AdamW); 0 by default. */
  weightDecay?: number;
}

export interface AdamState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

export function adamInit(size: number): AdamState {
  return { step: 0, m: new Float32Array(size), v: new Float32Array(size) };
}

/** One update of `param` in place; `lrScale` multiplies the learning rate (schedules). */
export function adamStep(param: Float32Array, grad: Float32Array, st: AdamState, o: AdamOptions, lrScale = 1): void {
  if (param.length !== grad.length || param.length !== st.m.length) {
    throw new Error(`adamStep: sizes differ (param ${param.length}, grad ${grad.length}, state ${st.m.length})`);
  }
  const b1 = o.beta1 ?? 0.9;
  const b2 = o.beta2 ?? 0.999;
  const eps = o.eps ?? 1e-8;
  const wd = o.weightDecay ?? 0;
  st.step++;
  const lr = o.lr * lrScale;
  const c1 = 1 - b1 ** st.step;
  const c2 = 1 - b2 ** st.step;
  const { m, v } = st;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    const upd = m[i] / c1 / (Math.sqrt(v[i] / c2) + eps);
    param[i] -= lr * (upd + wd * param[i]);
  }
}
