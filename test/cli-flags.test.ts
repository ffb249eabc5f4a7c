import test from 'node:test';
import assert from 'node:assert/strict';
import { numberFlag, requiredNumberFlag } from '../src/cli/flags.ts';

test('numberFlag: parses, leaves absent flags undefined, and names flag, value and rule on bad input', () => {
  assert.equal(numberFlag('--n', undefined, { int: true }), undefined);
  assert.equal(numberFlag('--n', '12', { int: true, min: 1 }), 12);
  assert.equal(numberFlag('--lr', '1e-3', { min: 0 }), 1e-3);
  assert.equal(numberFlag('--top-p', '1', { above: 0, max: 1 }), 1);
  assert.throws(() => numberFlag('--n', '1.5', { int: true }), /--n 1\.5: expected an integer$/);
  assert.throws(() => numberFlag('--n', '0', { int: true, min: 1 }), /--n 0: expected an integer >= 1/);
  assert.throws(() => numberFlag('--temperature', '-1', { min: 0 }), /--temperature -1: expected a number >= 0/);
  assert.throws(() => numberFlag('--top-p', '0', { above: 0, max: 1 }), /--top-p 0: expected a number in \(0, 1\]/);
  assert.throws(() => numberFlag('--top-p', '1.01', { above: 0, max: 1 }), /--top-p 1\.01/);
  assert.throws(() => numberFlag('--n', 'abc'), /--n abc: expected a number/);
  assert.throws(() => numberFlag('--n', ''), /--n "": expected a number/); // Number('') would be 0
  assert.throws(() => numberFlag('--n', 'Infinity'), /expected a number/);
});

test('requiredNumberFlag: a missing value is an error naming the flag', () => {
  assert.equal(requiredNumberFlag('--samples', '5', { int: true, min: 1 }), 5);
  assert.throws(() => requiredNumberFlag('--samples', undefined, { int: true, min: 1 }), /missing --samples \(expected an integer >= 1\)/);
});

test('demo checks its numeric flags before loading the model or doing any work', async () => {
  const { runCli } = await import('./support/cli.ts');
  const cases: Array<[string[], RegExp]> = [
    [['--max-bytes', '1,2'], /--max-bytes 1,2: expected a size \(bytes, or with k\/M\/G: 300k, 5MB\) >= 1/],
    [['--num-tokens', '1000,x'], /--num-tokens 1000,x: expected an integer >= 1/],
    [['--budget', '0'], /--budget 0: expected a number > 0/],
    [['--boost-runs', '0'], /--boost-runs 0: expected an integer >= 1/],
  ];
  for (const [extra, re] of cases) {
    // the model path does not exist: reaching it would give another error
    const r = await runCli(['demo', '--model', '/nonexistent/model', ...extra]);
    assert.notEqual(r.code, 0, extra.join(' '));
    assert.match(r.stderr, re, extra.join(' '));
  }
});
