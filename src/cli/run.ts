// Source entry point of the CLI (`node --import tsx src/cli/run.ts ...`): what bin/hack-tokenizer.js
// does with the compiled dist/, without needing a build. Tests spawn this.
import { main } from './main.ts';

await main(process.argv);
