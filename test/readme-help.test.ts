// README's CLI reference and --help agree flag for flag: every command has a section, every flag its
// --help lists is in that section, and the usage line heading the section names only real flags.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Option } from 'commander';
import { buildProgram } from '../src/cli/main.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('README CLI reference and --help agree flag for flag', () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const sections = readme.split(/\n(?=### `hack-tokenizer )/).map((s) => s.split(/\n## /)[0]);
  const problems: string[] = [];
  for (const c of buildProgram().commands) {
    const name = c.name();
    const sec = sections.find((s) => s.startsWith(`### \`hack-tokenizer ${name}\``) || s.startsWith(`### \`hack-tokenizer ${name} `));
    if (!sec) { problems.push(`${name}: no README section`); continue; }
    const options = c.options as Option[];
    const visible = options.filter((o) => !o.hidden && o.long).map((o) => o.long!);
    for (const f of visible) if (!new RegExp(`${f}(?![a-z0-9-])`).test(sec)) problems.push(`${name}: ${f} is in --help but not in its README section`);
    const heading = sec.split('\n')[0];
    for (const f of heading.match(/--[a-z][a-z0-9-]*/g) ?? []) {
      if (!options.some((o) => o.long === f)) problems.push(`${name}: README heading names ${f}, which --help does not have`);
    }
  }
  assert.deepEqual(problems, []);
});
