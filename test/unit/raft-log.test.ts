import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftLog, type RecordBody } from '../../src/cluster/raft-log.js';
import type { Entry } from '../../src/consensus/types.js';
import { Log } from '../../src/storage/log.js';
import { MemoryFileSystem } from '../../src/storage/memory-file-system.js';
import { RecordType } from '../../src/storage/record-frame.js';

const HELD_IN_MEMORY = 8192;

function entries(from: number, count: number, term: number): Entry<RecordBody | undefined>[] {
  return Array.from({ length: count }, (_, i) =>
    i + from === 1 ? { index: 1, term, kind: 'noop' as const, payload: undefined } : { index: i + from, term, kind: 'data' as const, payload: { type: RecordType.Events, payload: Uint8Array.of((i + from) % 251) } },
  );
}

/** Which of the log's entries the RaftLog still serves from memory. */
function heldIndexes(raftLog: RaftLog): number[] {
  const held: number[] = [];
  for (let index = 1; index <= raftLog.lastIndex; index++) if (raftLog.recentRecordAt(raftLog.positionOf(index))) held.push(index);
  return held;
}

describe('RaftLog', () => {
  it('holds the newest entries in memory, up to its bound, across truncations', async () => {
    const log = await Log.open({ fileSystem: new MemoryFileSystem(), directory: '/db/log' });
    const { raftLog } = await RaftLog.open(log);
    await raftLog.append(entries(1, HELD_IN_MEMORY + 500, 1));
    let held = heldIndexes(raftLog);
    assert.equal(held.length, HELD_IN_MEMORY);
    assert.equal(held[0], 501);
    assert.equal(held.at(-1), HELD_IN_MEMORY + 500);

    // A new leader's log replaces the uncommitted tail; the run held stays contiguous.
    await raftLog.truncateAfter(HELD_IN_MEMORY);
    assert.equal(heldIndexes(raftLog).length, HELD_IN_MEMORY - 500);
    await raftLog.append(entries(HELD_IN_MEMORY + 1, 1000, 2));
    held = heldIndexes(raftLog);
    assert.equal(held.length, HELD_IN_MEMORY);
    assert.equal(held[0], 1001);
    assert.equal(held.at(-1), HELD_IN_MEMORY + 1000);
    const newest = raftLog.recentRecordAt(raftLog.positionOf(HELD_IN_MEMORY + 1000))!;
    assert.equal(newest.term, 2);
    assert.deepEqual([...newest.payload], [(HELD_IN_MEMORY + 1000) % 251]);

    // Only a run held whole is served at once from memory; anything else is read with `entries`.
    const recent = raftLog.recentEntries(HELD_IN_MEMORY + 998, 3)!;
    assert.deepEqual(recent.map((entry) => [entry.index, entry.term, [...entry.payload.payload]]), [998, 999, 1000].map((i) => [HELD_IN_MEMORY + i, 2, [(HELD_IN_MEMORY + i) % 251]]));
    assert.equal(raftLog.recentEntries(1001, 1)?.length, 1);
    assert.equal(raftLog.recentEntries(1000, 2), undefined, 'entry 1000 is no longer held');
    assert.equal(raftLog.recentEntries(HELD_IN_MEMORY + 1000, 2), undefined, 'past the last entry');

    // Entries no longer held come from the file.
    const [first] = await raftLog.entries(1, 1);
    assert.equal(first!.kind, 'noop');
    const [old] = await raftLog.entries(600, 1);
    assert.deepEqual([...old!.payload.payload], [600 % 251]);
    await log.close();
  });

  it('holds at most 32 MiB of entries past the newest, however large they are', async () => {
    const log = await Log.open({ fileSystem: new MemoryFileSystem(), directory: '/db/log' });
    const { raftLog } = await RaftLog.open(log);
    const megabytes = (index: number) => ({ index, term: 1, kind: 'data' as const, payload: { type: RecordType.Events, payload: new Uint8Array(1024 * 1024).fill(index) } });
    await raftLog.append(Array.from({ length: 60 }, (_, i) => megabytes(i + 1)));
    const held = heldIndexes(raftLog);
    assert.ok(held.length >= 31 && held.length <= 33, `${held.length} entries of 1 MiB held`);
    assert.equal(held.at(-1), 60);
    const read = await raftLog.entries(1, 60);
    assert.deepEqual(
      read.map((entry) => entry.payload.payload[0]),
      Array.from({ length: 60 }, (_, i) => (i + 1) % 256),
    );
    await log.close();
  });
});
