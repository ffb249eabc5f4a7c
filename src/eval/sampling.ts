// Deterministic sampling helpers (seeded), shared by FertilityBoost and generation-based metrics.
import { seededRandom } from '../io/seeded-random.ts';

export { seededRandom } from '../io/seeded-random.ts';

/**
 * Draw `draws.length` samples from softmax(row / temperature) for one position, one per uniform
 * in `draws` (each run gets its own uniform, the exponentials are computed once).
 */
export function sampleMany(row: Float32Array, offset: number, width: number, temperature: number, draws: number[], scratch: Float64Array): number[] {
  let max = -Infinity;
  for (let j = 0; j < width; j++) if (row[offset + j] > max) max = row[offset + j];
  let sum = 0;
  for (let j = 0; j < width; j++) { sum += Math.exp((row[offset + j] - max) / temperature); scratch[j] = sum; }
  // scratch holds the cumulative sums: binary search each draw
  return draws.map((u) => {
    const target = u * sum;
    let lo = 0;
    let hi = width - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (scratch[mid] > target) hi = mid; else lo = mid + 1;
    }
    return lo;
  });
}
