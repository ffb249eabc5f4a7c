// Relative error between an analytic and a finite-difference gradient: ||a - b|| / max(||a||, ||b||).
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    da += a[i] ** 2;
    db += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(da), Math.sqrt(db), 1e-30);
}
