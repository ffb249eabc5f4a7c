#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import { main } from '../dist/cli/main.js';
main(process.argv).catch((err) => {
  process.stderr.write(`hack-tokenizer: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
