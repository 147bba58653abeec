import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBench } from './bench-process.js';

/** The benchmarks' command lines: usage on --help, one line and exit code 2 on a bad option. */
const BENCHES = ['run', 'client', 'cluster', 'http'] as const;

for (const name of BENCHES) {
  test(`bench ${name}: --help prints the options; an unknown option or a bad value exits 2 naming it`, { timeout: 60_000 }, async () => {
    const help = await runBench(name, ['--help'], 20_000);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--seconds N/);
    const unknown = await runBench(name, ['--no-such-option'], 20_000);
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr.split('\n')[0]!, /--no-such-option/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /, 'no stack trace');
    const badValue = await runBench(name, ['--seconds', 'soon'], 20_000);
    assert.equal(badValue.status, 2, badValue.stderr);
    assert.equal(badValue.stderr.split('\n')[0], "--seconds must be a number above 0, not 'soon'");
  });
}
