import { eventIdOffset, preparePositionOf } from './event-codec.js';
import { ID_BYTES, type WrittenBatch } from './idempotency-window.js';
import { metastreamOf, TOMBSTONE_EVENT_TYPE } from './stream-names.js';

/** The facts of one event of a record that identify the write it belongs to. */
export interface BatchEventFacts {
  stream: string;
  revision: number;
  type: string;
  createdMicros: number;
}

/** One write of a record, its ids aside: what the idempotency window and a replica's ring keep of it. */
export interface WriteFacts {
  stream: string;
  firstRevision: number;
  /** The stream was soft-deleted before the write (which recreates it). */
  softDeleted: boolean;
  commitPosition: number;
  lastPreparePosition: number;
  createdMicros: number;
}

/** Reused by every call of `batchRunsOf`: a caller reads it before it calls again. */
const runs: number[] = [];

/**
 * The writes one record's events came from, as `[start, end, softDeleted]` triples (`softDeleted`
 * 1 or 0) over `events`: each run of consecutive events of one stream is one write, tombstones
 * excepted. The state the stream had before the write follows from the record itself: its
 * revision before the first event, and soft-deleted when the record recreates it (its metadata
 * stream's event comes right before). The write path, the rebuild from the log and a replica's
 * ring of written ids all split records this way, so a retry is recognised the same way on every
 * path. The array returned is reused by the next call (no allocation on the write path).
 */
export function batchRunsOf(events: readonly BatchEventFacts[]): readonly number[] {
  runs.length = 0;
  let index = 0;
  while (index < events.length) {
    const first = events[index]!;
    const previous = events[index - 1];
    let end = index;
    while (end < events.length && events[end]!.stream === first.stream) end++;
    if (first.type !== TOMBSTONE_EVENT_TYPE) runs.push(index, end, previous !== undefined && previous.stream === metastreamOf(first.stream) ? 1 : 0);
    index = end;
  }
  return runs;
}

/** The facts of the write at `runs[run]` (a triple from `batchRunsOf(events)`) of the record at `commitPosition`. */
export function writeFactsOf(events: readonly BatchEventFacts[], runs: readonly number[], run: number, entryOffsets: readonly number[], commitPosition: number): WriteFacts {
  const first = events[runs[run]!]!;
  return {
    stream: first.stream,
    firstRevision: first.revision,
    softDeleted: runs[run + 2] === 1,
    commitPosition,
    lastPreparePosition: preparePositionOf(commitPosition, entryOffsets[runs[run + 1]! - 1]!),
    createdMicros: first.createdMicros,
  };
}

/** The writes of one record as the idempotency window remembers them (see `batchRunsOf`). */
export function batchesOfRecord(
  events: readonly BatchEventFacts[],
  entryOffsets: readonly number[],
  payload: Uint8Array,
  commitPosition: number,
  committed: Promise<void>,
): WrittenBatch[] {
  const batches: WrittenBatch[] = [];
  const runs = batchRunsOf(events);
  for (let run = 0; run < runs.length; run += 3) {
    const start = runs[run]!;
    const end = runs[run + 1]!;
    const facts = writeFactsOf(events, runs, run, entryOffsets, commitPosition);
    // A copy: a view into the payload would keep every remembered record's data alive.
    const ids = Buffer.allocUnsafe((end - start) * ID_BYTES);
    for (let i = start; i < end; i++) {
      const from = eventIdOffset(entryOffsets[i]!);
      const to = (i - start) * ID_BYTES;
      for (let k = 0; k < ID_BYTES; k++) ids[to + k] = payload[from + k]!;
    }
    batches.push({
      stream: facts.stream,
      ids,
      firstRevision: facts.firstRevision,
      priorView: { lastRevision: facts.firstRevision - 1, tombstoned: false, softDeleted: facts.softDeleted },
      commitPosition,
      lastPreparePosition: facts.lastPreparePosition,
      createdMicros: facts.createdMicros,
      committed,
    });
  }
  return batches;
}
