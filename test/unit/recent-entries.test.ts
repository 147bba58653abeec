import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RecentEntries } from '../../src/cluster/recent-entries.js';

type Operation = { kind: 'append'; count: number } | { kind: 'truncate'; back: number } | { kind: 'restart'; gap: number };

const operations = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('append' as const), count: fc.integer({ min: 1, max: 20 }) }),
    fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 25 }) }),
    fc.record({ kind: fc.constant('restart' as const), gap: fc.integer({ min: 0, max: 30 }) }),
  ),
  { maxLength: 60 },
);

describe('recent Raft entries (a ring by index)', () => {
  it('holds exactly the newest run of at most `capacity` entries, through appends, truncations and gaps', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), operations, (capacity, ops: Operation[]) => {
        const ring = new RecentEntries<string>(capacity);
        // The model: what the ring must hold, as index → entry, trimmed to the newest `capacity`.
        let model = new Map<number, string>();
        let last = 0;
        const trim = () => {
          const kept = [...model.keys()].sort((a, b) => a - b).slice(-capacity);
          model = new Map(kept.map((index) => [index, model.get(index)!]));
        };
        for (const op of ops) {
          if (op.kind === 'append') {
            for (let i = 0; i < op.count; i++) {
              last++;
              ring.push(last, `entry ${last}`);
              model.set(last, `entry ${last}`);
              trim();
            }
          } else if (op.kind === 'truncate') {
            last = Math.max(0, last - op.back);
            ring.truncateAfter(last);
            for (const index of [...model.keys()]) if (index > last) model.delete(index);
          } else {
            // A push that does not follow the newest (a node whose cache starts mid-log) starts a new run.
            last += op.gap + 2;
            ring.push(last, `entry ${last}`);
            model = new Map([[last, `entry ${last}`]]);
          }
          assert.equal(ring.size, model.size);
          for (let index = Math.max(0, last - capacity - 30); index <= last + 2; index++) assert.equal(ring.get(index), model.get(index), `entry ${index}`);
          if (model.size > 0) assert.equal(ring.firstIndex, Math.min(...model.keys()));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a capacity that is not a positive integer', () => {
    assert.throws(() => new RecentEntries(0), /positive integer/);
  });
});
