// One seeded uniform [0, 1) generator for every stage (init methods, sampling, probes, test
// models), so a seed means the same stream everywhere. It sits in io/ because every stage may
// import io/.

/** Mulberry32: small, fast, deterministic across platforms. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
