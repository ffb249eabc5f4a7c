// The CLI run in-process (no child process per case): stdout and stderr captured, the exit code as
// main() sets it. Commands must not run concurrently within one test file (process-wide capture).
import { main } from '../../src/cli/main.ts';

export interface CliResult { code: number; stdout: string; stderr: string }

export async function runCli(args: string[], opts: { cwd?: string } = {}): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  const capture = (sink: string[]) => ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    sink.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    cb?.();
    return true;
  }) as typeof process.stdout.write;
  const prevCode = process.exitCode;
  const prevCwd = process.cwd();
  process.exitCode = 0;
  process.stdout.write = capture(out);
  process.stderr.write = capture(err);
  try {
    if (opts.cwd) process.chdir(opts.cwd);
    await main(['node', 'hack-tokenizer', ...args], { signals: false });
  } catch (e) {
    // main() prints errors itself; anything that escapes is a bug of the CLI
    err.push(`UNCAUGHT: ${(e as Error)?.stack ?? String(e)}`);
    process.exitCode = 99;
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    if (opts.cwd) process.chdir(prevCwd);
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = prevCode;
  return { code, stdout: out.join(''), stderr: err.join('') };
}
