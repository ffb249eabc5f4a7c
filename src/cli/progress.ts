// Progress bars on stderr (results go to stdout). Silent when stderr is not a terminal,
// except for a start and an end line, so logs of CI runs stay readable.
import cliProgress from 'cli-progress';

export interface Progress {
  tick(n?: number): void;
  update(value: number): void;
  setTotal(total: number): void;
  stop(): void;
}

export function progressBar(label: string, total: number, unit = ''): Progress {
  const tty = process.stderr.isTTY === true && !process.env.CI;
  if (!tty) {
    process.stderr.write(`${label}...\n`);
    let value = 0;
    let t = total;
    return {
      tick: (n = 1) => { value += n; },
      update: (v) => { value = v; },
      setTotal: (n) => { t = n; },
      stop: () => { process.stderr.write(`${label}: done (${value}${t ? `/${t}` : ''}${unit ? ' ' + unit : ''})\n`); },
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total}${unit ? ' ' + unit : ''} | eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  let value = 0;
  return {
    tick: (n = 1) => { value += n; bar.update(value); },
    update: (v) => { value = v; bar.update(v); },
    setTotal: (n) => bar.setTotal(n),
    stop: () => bar.stop(),
  };
}

/** Informational messages go to stderr so stdout stays machine-readable. */
export function info(msg: string): void {
  process.stderr.write(msg + '\n');
}
