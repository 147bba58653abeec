import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BROKEN_VARIANTS, runSimulation, type BrokenVariant } from '../../sim/simulation.js';

/**
 * Proof that the checkers can fail: each deliberately broken variant of the replica must be
 * caught within a bounded number of seeds. The bounds leave room above where each is caught today.
 */
const SEED_BOUND: Record<BrokenVariant, number> = {
  'ack-before-quorum': 50,
  'apply-uncommitted': 50,
  'follower-uncommitted-reads': 60,
  'truncate-committed': 50,
  'skip-vote-fsync': 150,
  'ignore-vote-terms': 250,
};

describe('broken variants are caught by the simulator', () => {
  for (const variant of Object.keys(BROKEN_VARIANTS) as BrokenVariant[]) {
    it(`catches ${variant} within ${SEED_BOUND[variant]} seeds`, async () => {
      for (let seed = 1; seed <= SEED_BOUND[variant]; seed++) {
        const report = await runSimulation({ seed, variant });
        if (report.violations.length > 0) return;
      }
      assert.fail(`${variant} survived ${SEED_BOUND[variant]} seeds: the checkers missed it`);
    });
  }
});
