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

/**
 * Splits the events of one record into the writes they came from: each run of consecutive events
 * of one stream is one batch. The write path and the rebuild from the log both use this, so a
 * retry is recognised the same way before and after a restart. The state the stream had before the
 * batch follows from the record itself: its revision before the first event, and soft-deleted when
 * the record recreates it (its metadata stream's event comes right before).
 */
export function batchesOfRecord(
  events: readonly BatchEventFacts[],
  entryOffsets: readonly number[],
  payload: Uint8Array,
  commitPosition: number,
  committed: Promise<void>,
): WrittenBatch[] {
  const batches: WrittenBatch[] = [];
  let index = 0;
  while (index < events.length) {
    const first = events[index]!;
    const previous = events[index - 1];
    let end = index;
    while (end < events.length && events[end]!.stream === first.stream) end++;
    if (first.type !== TOMBSTONE_EVENT_TYPE) {
      // A copy: a view into the payload would keep every remembered record's data alive.
      const ids = Buffer.allocUnsafe((end - index) * ID_BYTES);
      for (let i = index; i < end; i++) {
        const from = eventIdOffset(entryOffsets[i]!);
        const to = (i - index) * ID_BYTES;
        for (let k = 0; k < ID_BYTES; k++) ids[to + k] = payload[from + k]!;
      }
      batches.push({
        stream: first.stream,
        ids,
        firstRevision: first.revision,
        priorView: {
          lastRevision: first.revision - 1,
          tombstoned: false,
          softDeleted: previous !== undefined && previous.stream === metastreamOf(first.stream),
        },
        commitPosition,
        lastPreparePosition: preparePositionOf(commitPosition, entryOffsets[end - 1]!),
        createdMicros: first.createdMicros,
        committed,
      });
    }
    index = end;
  }
  return batches;
}
