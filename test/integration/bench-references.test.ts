import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { runBench } from './bench-process.js';

/**
 * The benchmarks' references that say what a target asks of a server on this machine: durable
 * stubs that spend a given CPU time per append (client bench, `--stub-cpu`), and the single node
 * beside processes burning the followers' CPU (cluster bench, `--ceiling`). Short runs: the figures
 * are not judged, only that each reference ran, measured what it claims and left nothing behind.
 */

/** The cells of the table row that starts with `| first | second |`, as numbers (commas dropped). */
function tableRow(output: string, first: string, second?: string): number[] {
  const prefix = second === undefined ? `| ${first} |` : `| ${first} | ${second} |`;
  const line = output.split('\n').find((candidate) => candidate.startsWith(prefix));
  assert.ok(line, `no row starting ${prefix} in:\n${output}`);
  return line
    .split('|')
    .slice(1, -1)
    .map((cell) => Number(cell.trim().replaceAll(',', '')));
}

/** Processes still running a burner program (their command line carries it). */
function runningBurners(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('busy / share')) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

test('client bench --stub-cpu: a durable stub that spends 40 µs per append shows (at least half of) that much more CPU per append than the plain durable stub, and every figure of the row is there', { timeout: 120_000 }, async () => {
  const run = await runBench('client', ['--sections', '1', '--scenario', '64x1', '--seconds', '1', '--stub-cpu', '40'], 110_000);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /durable stub \+ 40 µs CPU\/append: appends\/s \| ÷ no-op stub \| server CPU µs\/append \|/);
  const [, , chronicle, noOp, ratio, durable, durableToNoOp, , chronicleCpu, durableCpu, spending, spendingRatio, spendingCpu] = tableRow(run.stdout, '64', '1');
  for (const [name, value] of Object.entries({ chronicle, noOp, ratio, durable, durableToNoOp, chronicleCpu, durableCpu, spending, spendingRatio })) {
    assert.ok(Number.isFinite(value) && value! > 0, `${name} is ${value}`);
  }
  assert.ok(Math.abs(durableToNoOp! - durable! / noOp!) < 0.02, `durable ÷ no-op ${durableToNoOp} is far from ${durable} / ${noOp}`);
  // A busy wait is CPU time unless the stub is descheduled in it; on a busy machine some is lost.
  assert.ok(spendingCpu! - durableCpu! >= 20, `the stub spending 40 µs per append used ${spendingCpu} µs against the durable stub's ${durableCpu}`);
});

test('cluster bench --ceiling: the single node measured beside two burners of the followers\' CPU, which are stopped afterwards', { timeout: 150_000 }, async () => {
  const before = new Set(runningBurners());
  const run = await runBench('cluster', ['--writers', '8', '--seconds', '1', '--failover-runs', '0', '--ceiling'], 140_000);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /single beside followers' CPU appends\/s \| its CPU µs\/append \| ceiling ÷ single \|/);
  const cells = tableRow(run.stdout, '8');
  const [, singleRate, , , clusterRate] = cells;
  const [besideRate, besideCpu, ceiling] = cells.slice(-3);
  for (const [name, value] of Object.entries({ singleRate, clusterRate, besideRate, besideCpu, ceiling })) {
    assert.ok(Number.isFinite(value) && value! > 0, `${name} is ${value}`);
  }
  assert.ok(Math.abs(ceiling! - besideRate! / singleRate!) < 0.02, `ceiling ${ceiling} is not ${besideRate} / ${singleRate}`);
  const left = runningBurners().filter((pid) => !before.has(pid));
  assert.deepEqual(left, [], 'burner processes left running');
});
