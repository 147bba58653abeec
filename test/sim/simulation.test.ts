import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSimulation, type SimulationReport } from '../../sim/simulation.js';
import { REGRESSION_SEEDS } from '../../sim/regression-seeds.js';

/** The fixed set `npm test` runs; `npm run sim -- --seeds N` runs more. */
const SEEDS = 300;

function describeFailure(report: SimulationReport): string {
  const lines = report.violations.slice(0, 5).map((violation) => `[${violation.checker}] ${violation.detail}`);
  return `seed ${report.seed}:\n${lines.join('\n')}\n${report.trace.slice(-25).join('\n')}\nreplay: npm run sim -- --seed ${report.seed}`;
}

describe('deterministic simulation of the cluster', () => {
  it(`finds no violation in ${SEEDS} seeds of faults (swarm: each seed turns fault classes on and off)`, async () => {
    const classesSeen = new Set<string>();
    let operations = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const report = await runSimulation({ seed });
      assert.deepEqual(report.violations, [], describeFailure(report));
      for (const [kind, on] of Object.entries(report.faultClasses)) if (on) classesSeen.add(kind);
      for (const [kind, count] of Object.entries(report.operations)) if (kind.endsWith(':ok')) operations += count;
    }
    // The run is only worth something if faults happened and clients got answers.
    assert.ok(classesSeen.size >= 10, `fault classes exercised: ${[...classesSeen].join(', ')}`);
    assert.ok(operations > SEEDS * 100, `acknowledged operations: ${operations}`);
  });

  it('replays a seed exactly: same seed, same history', async () => {
    const first = await runSimulation({ seed: 17 });
    const second = await runSimulation({ seed: 17 });
    assert.deepEqual(second.operations, first.operations);
    assert.deepEqual(second.trace, first.trace);
    assert.equal(second.committedEntries, first.committedEntries);
  });

  for (const regression of REGRESSION_SEEDS) {
    it(`regression seed ${regression.seed}: ${regression.bug}`, async () => {
      const report = await runSimulation({ seed: regression.seed });
      assert.deepEqual(report.violations, [], describeFailure(report));
    });
  }
});
