import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RecentEntries } from '../../src/storage/recent-entries.js';

type Operation = { kind: 'append'; count: number } | { kind: 'truncate'; back: number } | { kind: 'restart'; gap: number };

const operations = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('append' as const), count: fc.integer({ min: 1, max: 20 }) }),
    fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 25 }) }),
    fc.record({ kind: fc.constant('restart' as const), gap: fc.integer({ min: 0, max: 30 }) }),
  ),
  { maxLength: 60 },
);

/** An entry's weight in the tests: its index's last digit, so weights vary and some are 0. */
const weightOf = (entry: string) => Number(entry.at(-1));

describe('recent Raft entries (a ring by index)', () => {
  it('holds exactly the newest run of at most `capacity` entries and `maxBytes` past the newest, through appends, truncations and gaps', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }), operations, (capacity, maxBytes, ops: Operation[]) => {
        const ring = maxBytes === undefined ? new RecentEntries<string>(capacity) : new RecentEntries<string>(capacity, maxBytes, weightOf);
        // The model: what the ring must hold, as index → entry: the newest `capacity`, then the
        // newest whose weights sum to at most `maxBytes` (the newest one always).
        let model = new Map<number, string>();
        let last = 0;
        const trim = () => {
          const kept = [...model.keys()].sort((a, b) => a - b).slice(-capacity);
          if (maxBytes !== undefined) {
            let weight = kept.reduce((sum, index) => sum + weightOf(model.get(index)!), 0);
            while (weight > maxBytes && kept.length > 1) weight -= weightOf(model.get(kept.shift()!)!);
          }
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
          assert.equal(ring.bytes, maxBytes === undefined ? 0 : [...model.values()].reduce((sum, entry) => sum + weightOf(entry), 0));
          for (let index = Math.max(0, last - capacity - 30); index <= last + 2; index++) assert.equal(ring.get(index), model.get(index), `entry ${index}`);
          if (model.size > 0) assert.equal(ring.firstIndex, Math.min(...model.keys()));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a capacity that is not a positive integer, and a byte budget that is not a number of bytes', () => {
    assert.throws(() => new RecentEntries(0), /positive integer/);
    assert.throws(() => new RecentEntries(4, -1), /byte budget/);
    assert.throws(() => new RecentEntries(4, Number.NaN), /byte budget/);
  });

  it('holds one entry larger than the whole budget, alone', () => {
    const ring = new RecentEntries<number>(8, 100, (bytes) => bytes);
    for (let index = 1; index <= 4; index++) ring.push(index, 30);
    assert.deepEqual([ring.firstIndex, ring.size, ring.bytes], [2, 3, 90]);
    ring.push(5, 500);
    assert.deepEqual([ring.firstIndex, ring.size, ring.bytes], [5, 1, 500]);
    assert.equal(ring.get(5), 500);
    assert.equal(ring.get(4), undefined);
  });
});
