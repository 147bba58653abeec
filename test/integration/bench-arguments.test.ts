import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The benchmarks' command lines: usage on --help, one line and exit code 2 on a bad option. */
const BENCHES = ['run', 'client', 'cluster', 'http'] as const;

function runBench(name: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const script = fileURLToPath(new URL(`../../bench/${name}.js`, import.meta.url));
  const result = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

for (const name of BENCHES) {
  test(`bench ${name}: --help prints the options; an unknown option or a bad value exits 2 naming it`, { timeout: 60_000 }, () => {
    const help = runBench(name, ['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--seconds N/);
    const unknown = runBench(name, ['--no-such-option']);
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr.split('\n')[0]!, /--no-such-option/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /, 'no stack trace');
    const badValue = runBench(name, ['--seconds', 'soon']);
    assert.equal(badValue.status, 2, badValue.stderr);
    assert.equal(badValue.stderr.split('\n')[0], "--seconds must be a number above 0, not 'soon'");
  });
}
