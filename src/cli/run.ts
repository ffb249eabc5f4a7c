// Source entry point of the CLI (`node --import tsx src/cli/run.ts ...`): what bin/hack-tokenizer.js
// does with the compiled dist/, without needing a build. Tests spawn this.
import { main } from './main.ts';

main(process.argv).catch((err: unknown) => {
  const e = err as { message?: string } | null;
  process.stderr.write(`hack-tokenizer: ${e && e.message ? e.message : String(err)}\n`);
  process.exitCode = 1;
});
