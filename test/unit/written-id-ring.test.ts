/**
 * A replica's ring of committed writes: the idempotency window it builds when the replica comes to
 * lead must answer exactly as a window kept all along would, through eviction by count, wrapping
 * and growth of the ring, writes larger than the window, and the round trip a leader makes when it
 * stops leading and leads again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IdempotencyWindow, ID_BYTES, type BatchMatch, type WrittenBatch } from '../../src/store/idempotency-window.js';
import { WrittenIdRing } from '../../src/store/written-id-ring.js';

const LIMITS = (maxEvents: number) => ({ maxEvents, maxAgeMs: 24 * 60 * 60 * 1000 });
const NOW_MS = 1_800_000_000_000;

function idOf(n: number): Uint8Array {
  const bytes = new Uint8Array(ID_BYTES);
  bytes[3] = 0x40;
  bytes[14] = n & 0xff;
  bytes[15] = n >> 8;
  return bytes;
}

interface Write {
  stream: number;
  ids: number[];
  softDeleted: boolean;
  /** Microseconds before now the write was created (0 = now). */
  ageMicros: number;
}

function batchOf(write: Write, position: number): WrittenBatch {
  const ids = new Uint8Array(write.ids.length * ID_BYTES);
  write.ids.forEach((id, i) => ids.set(idOf(id), i * ID_BYTES));
  return {
    stream: `s${write.stream}`,
    ids,
    firstRevision: position * 3,
    priorView: { lastRevision: position * 3 - 1, tombstoned: false, softDeleted: write.softDeleted },
    commitPosition: position * 1000,
    lastPreparePosition: position * 1000 + 40,
    createdMicros: NOW_MS * 1000 - write.ageMicros,
    committed: Promise.resolve(),
  };
}

/** The ring records a write as a follower does: ids picked out of a record's payload at their offsets. */
function recordAsFollower(ring: WrittenIdRing, batch: WrittenBatch): void {
  const count = batch.ids.byteLength / ID_BYTES;
  // The ids spread through a larger payload, 40 bytes apart, behind some leading bytes.
  const payload = new Uint8Array(8 + count * 40);
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) {
    offsets.push(8 + i * 40 + 4);
    payload.set(batch.ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES), offsets[i]! + 3);
  }
  const { stream, firstRevision, commitPosition, lastPreparePosition, createdMicros } = batch;
  ring.record({ stream, firstRevision, softDeleted: batch.priorView.softDeleted, commitPosition, lastPreparePosition, createdMicros }, payload, offsets, 0, count, 3);
}

/** A window kept all along and a ring, both empty, with the same bound. */
function emptyWindowAndRing(maxEvents: number): { kept: IdempotencyWindow; ring: WrittenIdRing } {
  return { kept: new IdempotencyWindow(LIMITS(maxEvents)), ring: new WrittenIdRing(LIMITS(maxEvents)) };
}

/** Writes `writes` (at positions 1, 2, ...) into a window kept all along and, as a follower does, into the ring. */
function recordEverywhere(writes: readonly Write[], kept: IdempotencyWindow, ring: WrittenIdRing): void {
  writes.forEach((write, position) => {
    const batch = batchOf(write, position + 1);
    kept.add(batch);
    recordAsFollower(ring, batch);
  });
}

/** Everything a window answers about a write, as comparable data. */
function answer(window: IdempotencyWindow, stream: string, ids: Uint8Array[]): unknown {
  const match: BatchMatch = window.match(stream, ids);
  if (match.kind !== 'retry') return match.kind;
  const { committed: _committed, forgotten: _forgotten, ...facts } = match.batch;
  return { ...facts, ids: [...facts.ids] };
}

/** The window the ring builds answers every probe as the window kept all along does. */
function assertBuildsKeptWindow(ring: WrittenIdRing, kept: IdempotencyWindow, maxEvents: number, probes: readonly Write[]): void {
  kept.evictExpired(NOW_MS);
  const built = ring.toWindow(LIMITS(maxEvents), NOW_MS);
  assert.equal(built.size, kept.size);
  // Exact retries, partial overlaps and new writes.
  for (const write of probes) {
    const stream = `s${write.stream}`;
    const ids = write.ids.map(idOf);
    assert.deepEqual(answer(built, stream, ids), answer(kept, stream, ids), `${stream} [${write.ids.join(',')}]`);
    assert.deepEqual(answer(built, stream, ids.slice(1)), answer(kept, stream, ids.slice(1)));
  }
}

const writeArbitrary = fc.record({
  stream: fc.integer({ min: 0, max: 3 }),
  ids: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }).map((ids) => [...new Set(ids)]),
  softDeleted: fc.boolean(),
  ageMicros: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 * 24 * 60 * 60 * 1_000_000 })),
});

describe('WrittenIdRing', () => {
  it('builds the window a window kept all along would be, through eviction, wrapping and growth', () => {
    fc.assert(
      fc.property(fc.array(writeArbitrary, { maxLength: 120 }), fc.integer({ min: 1, max: 30 }), fc.array(writeArbitrary, { minLength: 1, maxLength: 20 }), (writes, maxEvents, probes) => {
        const { kept, ring } = emptyWindowAndRing(maxEvents);
        recordEverywhere(writes, kept, ring);
        assertBuildsKeptWindow(ring, kept, maxEvents, [...writes, ...probes]);
      }),
      { numRuns: 400 },
    );
  });

  it('survives the round trip of a leader that stops leading and leads again', () => {
    fc.assert(
      fc.property(fc.array(writeArbitrary, { maxLength: 80 }), fc.array(writeArbitrary, { maxLength: 40 }), fc.integer({ min: 1, max: 25 }), (asLeader, asFollower, maxEvents) => {
        const kept = new IdempotencyWindow(LIMITS(maxEvents));
        const leading = new IdempotencyWindow(LIMITS(maxEvents));
        let position = 0;
        for (const write of asLeader) {
          const batch = batchOf(write, ++position);
          kept.add(batch);
          leading.add(batch);
        }
        const ring = WrittenIdRing.fromWindow(leading);
        for (const write of asFollower) {
          const batch = batchOf(write, ++position);
          kept.add(batch);
          recordAsFollower(ring, batch);
        }
        assertBuildsKeptWindow(ring, kept, maxEvents, [...asLeader, ...asFollower]);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves out writes a leader abandoned, and forgets everything for a write larger than the window', () => {
    const leading = new IdempotencyWindow(LIMITS(10));
    const committed = batchOf({ stream: 1, ids: [1, 2], softDeleted: false, ageMicros: 0 }, 1);
    const abandoned = batchOf({ stream: 1, ids: [3], softDeleted: false, ageMicros: 0 }, 2);
    leading.add(committed);
    leading.add(abandoned);
    leading.forget(abandoned);
    const ring = WrittenIdRing.fromWindow(leading);
    assert.equal(ring.size, 2);
    const built = ring.toWindow(LIMITS(10), NOW_MS);
    assert.equal(built.match('s1', [idOf(1), idOf(2)]).kind, 'retry');
    assert.equal(built.match('s1', [idOf(3)]).kind, 'new');

    recordAsFollower(ring, batchOf({ stream: 2, ids: Array.from({ length: 11 }, (_, i) => 100 + i), softDeleted: false, ageMicros: 0 }, 3));
    assert.equal(ring.size, 0);
    assert.equal(ring.toWindow(LIMITS(10), NOW_MS).match('s1', [idOf(1), idOf(2)]).kind, 'new');
  });

  it('grows its arrays after wrapping round, when smaller writes follow larger ones', () => {
    const maxEvents = 3000;
    const { kept, ring } = emptyWindowAndRing(maxEvents);
    const writes: Write[] = [];
    let next = 0;
    // 600 writes of 6 events fill the window and wrap the ring; 2,500 writes of one event then
    // need more batch slots than it had while it holds a wrapped run.
    for (let n = 0; n < 600; n++) writes.push({ stream: n % 5, ids: Array.from({ length: 6 }, () => next++), softDeleted: n % 2 === 0, ageMicros: 0 });
    for (let n = 0; n < 2500; n++) writes.push({ stream: n % 5, ids: [next++], softDeleted: false, ageMicros: 0 });
    recordEverywhere(writes, kept, ring);
    assertBuildsKeptWindow(ring, kept, maxEvents, writes.filter((_, i) => i % 7 === 0 || i > 3000));
  });

  it('grows while the ids it holds wrap round its end, after a write larger than the window emptied it', () => {
    const maxEvents = 3000;
    const { kept, ring } = emptyWindowAndRing(maxEvents);
    const writes: Write[] = [];
    let next = 0;
    // 1,800 ids grow the ring to 2,048 slots; the write of 3,001 empties it; the 2,900 single-id
    // writes that follow start at slot 1,800, wrap at 2,048 and then need 3,000 slots: every kept
    // id moves to a ring of another size from a run that wraps.
    for (let n = 0; n < 300; n++) writes.push({ stream: n % 5, ids: Array.from({ length: 6 }, () => next++), softDeleted: false, ageMicros: 0 });
    writes.push({ stream: 0, ids: Array.from({ length: maxEvents + 1 }, () => next++), softDeleted: false, ageMicros: 0 });
    const firstAfterEmptying = writes.length;
    for (let n = 0; n < 2900; n++) writes.push({ stream: n % 5, ids: [next++], softDeleted: false, ageMicros: 0 });
    recordEverywhere(writes, kept, ring);
    assert.equal(ring.size, 2900);
    assertBuildsKeptWindow(ring, kept, maxEvents, writes.slice(firstAfterEmptying));
  });

  it('holds a large window without allocating it up front', () => {
    const ring = new WrittenIdRing(LIMITS(10_000_000));
    for (let n = 0; n < 5000; n++) recordAsFollower(ring, batchOf({ stream: n % 7, ids: [n], softDeleted: false, ageMicros: 0 }, n + 1));
    assert.equal(ring.size, 5000);
    const built = ring.toWindow(LIMITS(10_000_000), NOW_MS);
    assert.equal(built.match(`s${4998 % 7}`, [idOf(4998)]).kind, 'retry');
    assert.equal(built.match('s1', [idOf(4998)]).kind, 'conflict');
  });
});
