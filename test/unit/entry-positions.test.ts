import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntryPositions } from '../../src/cluster/entry-positions.js';

/** A log as a list of record lengths: entry i starts where entry i - 1 ends. */
class FakeLog {
  lengths: number[] = [];
  starts: number[] = [];
  lengthReads = 0;

  append(length: number): number {
    const start = this.starts.length === 0 ? 0 : this.starts.at(-1)! + this.lengths.at(-1)!;
    this.starts.push(start);
    this.lengths.push(length);
    return start;
  }

  truncate(lastIndex: number): void {
    this.starts.length = lastIndex;
    this.lengths.length = lastIndex;
  }

  lengthAt = (position: number): number => {
    this.lengthReads++;
    const index = this.starts.indexOf(position);
    if (index < 0) throw new RangeError(`no record at ${position}`);
    return this.lengths[index]!;
  };
}

type Operation = { kind: 'append'; lengths: number[] } | { kind: 'truncate'; keep: number } | { kind: 'lookup'; at: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('append' as const), lengths: fc.array(fc.integer({ min: 40, max: 500 }), { minLength: 1, maxLength: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.integer({ min: 0, max: 100 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('lookup' as const), at: fc.integer({ min: 0, max: 100 }) }) },
);

describe('EntryPositions', () => {
  it('answers every entry as a full table would, through appends and truncations, holding a bounded number of positions', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.array(operation, { minLength: 5, maxLength: 60, size: 'max' }), (stride, cachedChunks, operations) => {
        const log = new FakeLog();
        const positions = new EntryPositions(log.lengthAt, { stride, cachedChunks });
        for (const step of operations) {
          if (step.kind === 'append') {
            for (const length of step.lengths) positions.push(log.append(length));
          } else if (step.kind === 'truncate') {
            const keep = Math.floor((step.keep / 100) * log.starts.length);
            positions.truncate(keep);
            log.truncate(keep);
          } else if (log.starts.length > 0) {
            const index = 1 + Math.min(log.starts.length - 1, Math.floor((step.at / 100) * log.starts.length));
            assert.equal(positions.positionOf(index), log.starts[index - 1]);
          }
          assert.equal(positions.lastIndex, log.starts.length);
          const chunkStarts = Math.ceil(log.starts.length / stride);
          assert.ok(positions.heldPositions <= chunkStarts + stride * (cachedChunks + 1), `${positions.heldPositions} positions held`);
        }
        for (let index = 1; index <= log.starts.length; index++) assert.equal(positions.positionOf(index), log.starts[index - 1]);
      }),
      { numRuns: 300 },
    );
  });

  it('holds one position per stride for a long log, and reads each old chunk once while it stays cached', () => {
    const log = new FakeLog();
    const positions = new EntryPositions(log.lengthAt, { stride: 100, cachedChunks: 2 });
    for (let i = 0; i < 100_000; i++) positions.push(log.append(200 + (i % 7)));
    assert.ok(positions.heldPositions <= 1000 + 300, `${positions.heldPositions} positions held for 100,000 entries`);
    const before = log.lengthReads;
    for (let index = 501; index <= 600; index++) assert.equal(positions.positionOf(index), log.starts[index - 1]);
    // One walk of the chunk (99 lengths) and one check that it leads to the next chunk's start.
    assert.equal(log.lengthReads - before, 100);
  });

  it('refuses a chunk whose records do not lead to the next chunk (a log that is not the one indexed)', () => {
    const log = new FakeLog();
    const positions = new EntryPositions(log.lengthAt, { stride: 4, cachedChunks: 1 });
    for (let i = 0; i < 20; i++) positions.push(log.append(100));
    log.lengths[3] = 90;
    assert.throws(() => positions.positionOf(2), /do not lead to entry 5/);
  });

  it('rejects entries it does not have', () => {
    const positions = new EntryPositions(() => 100);
    positions.push(0);
    assert.throws(() => positions.positionOf(0), RangeError);
    assert.throws(() => positions.positionOf(2), RangeError);
  });
});
