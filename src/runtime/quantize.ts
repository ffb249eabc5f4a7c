// Symmetric int8 quantization of linear-layer weights for ORT's DynamicQuantizeMatMul (int8 x
// dynamically quantized uint8 activations): one scale per output column, zero point 0.

export interface QuantizedColumns {
  /** [in, out] int8, row-major (the layout DynamicQuantizeMatMul's B input takes). */
  q: Int8Array;
  /** [out] dequantization scale per output column: w ~ q * scale. */
  scales: Float32Array;
  inDim: number;
  outDim: number;
}

/**
 * Quantize [out_i, in] weight matrices (as stored by transformers) concatenated along the output
 * axis: scale = max |w| of the output row / 127 (1 for an all-zero row), q = round(w / scale).
 */
export function quantizeColumns(weights: Float32Array[], inDim: number): QuantizedColumns {
  let outDim = 0;
  for (const w of weights) {
    if (w.length % inDim !== 0) throw new Error(`quantizeColumns: a weight of ${w.length} values is not [out, ${inDim}]`);
    outDim += w.length / inDim;
  }
  const q = new Int8Array(inDim * outDim);
  const scales = new Float32Array(outDim);
  let col = 0;
  for (const w of weights) {
    const rows = w.length / inDim;
    for (let r = 0; r < rows; r++, col++) {
      let max = 0;
      const off = r * inDim;
      for (let k = 0; k < inDim; k++) max = Math.max(max, Math.abs(w[off + k]));
      const scale = max > 0 ? max / 127 : 1;
      scales[col] = scale;
      for (let k = 0; k < inDim; k++) q[k * outDim + col] = Math.round(w[off + k] / scale);
    }
  }
  return { q, scales, inDim, outDim };
}
