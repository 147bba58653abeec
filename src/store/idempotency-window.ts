import { EVENT_ID_BYTES } from './event-codec.js';
import type { StreamView } from './expected-state.js';
import { IdTable } from './id-table.js';

/** One earlier write of events to one stream, remembered so that a retry of it is recognised. */
export interface WrittenBatch {
  stream: string;
  /** The events' ids, 16 bytes each, in the order of the events. */
  ids: Uint8Array;
  firstRevision: number;
  /** The stream as it was just before this write: a retry must expect what held then. */
  priorView: StreamView;
  commitPosition: number;
  lastPreparePosition: number;
  createdMicros: number;
  /** Resolves when the write is committed; a retry reports success only after that. */
  committed: Promise<void>;
  /** Set once the window forgot it (an abandoned write). */
  forgotten?: boolean;
}

export type BatchMatch =
  | { kind: 'new' }
  | { kind: 'retry'; batch: WrittenBatch }
  | { kind: 'conflict'; detail: string };

export interface IdempotencyWindowLimits {
  /** Remember at most this many event ids. */
  maxEvents: number;
  /** Forget ids of events older than this. */
  maxAgeMs: number;
}

export const DEFAULT_IDEMPOTENCY_WINDOW: IdempotencyWindowLimits = { maxEvents: 100_000, maxAgeMs: 24 * 60 * 60 * 1000 };

/** The length of each id in `WrittenBatch.ids`. */
export const ID_BYTES = EVENT_ID_BYTES;

/**
 * The recent event ids, by count and by age. It is derived from the log (rebuilt from the log's
 * tail on open), so retries are recognised across restarts too.
 */
export class IdempotencyWindow {
  /** Event id → the sequence number of the batch that wrote it, and the id's place in that batch. */
  private readonly byId = new IdTable();
  /** The batches remembered, oldest first (those before `head` are gone); `batches[i]` has sequence number `firstSequence + i`. */
  private batches: WrittenBatch[] = [];
  private head = 0;
  /** The sequence number of `batches[0]` (sequence numbers start at 1: 0 marks an empty slot of the table). */
  private firstSequence = 1;
  private eventCount = 0;

  constructor(readonly limits: IdempotencyWindowLimits) {}

  get size(): number {
    return this.eventCount;
  }

  /** Classifies a write of events with these ids to `stream`: new, an exact retry, or a conflict. */
  match(stream: string, ids: readonly Uint8Array[]): BatchMatch {
    let found = 0;
    let batch: WrittenBatch | undefined;
    let aligned = true;
    for (let i = 0; i < ids.length; i++) {
      const slot = this.byId.find(ids[i]!, 0);
      if (slot < 0) continue;
      const owner = this.batches[this.byId.ownerAt(slot) - this.firstSequence]!;
      found++;
      if (batch === undefined) batch = owner;
      if (owner !== batch || this.byId.extraAt(slot) !== i) aligned = false;
    }
    if (found === 0 || !batch) return { kind: 'new' };
    if (found === ids.length && aligned && batch.ids.byteLength === ids.length * ID_BYTES && batch.stream === stream) {
      return { kind: 'retry', batch };
    }
    const where = batch.stream === stream ? `'${stream}' at revision ${batch.firstRevision}` : `stream '${batch.stream}'`;
    return {
      kind: 'conflict',
      detail: `${found} of its ${ids.length} event ids were already written (to ${where}) in a different batch; retry the exact same batch, or use new ids`,
    };
  }

  add(batch: WrittenBatch): void {
    const sequence = this.firstSequence + this.batches.length;
    this.batches.push(batch);
    const count = batch.ids.byteLength / ID_BYTES;
    // A later batch with an id already here (possible only in the log: an id reused after it left the window) owns it from now on.
    for (let i = 0; i < count; i++) this.byId.set(batch.ids, i * ID_BYTES, sequence, i);
    this.eventCount += count;
    this.evictOverCount();
  }

  /** Calls `visit` with each batch remembered, oldest first (forgotten ones left out). */
  forEachBatch(visit: (batch: WrittenBatch) => void): void {
    for (let i = this.head; i < this.batches.length; i++) {
      const batch = this.batches[i]!;
      if (!batch.forgotten) visit(batch);
    }
  }

  /** Forgets one batch (a write that was abandoned before it committed). */
  forget(batch: WrittenBatch): void {
    if (batch.forgotten) return;
    batch.forgotten = true;
    this.removeIdsOf(batch);
  }

  /** Forgets batches older than the age limit, given the current time. */
  evictExpired(nowMs: number): void {
    const oldestKeptMicros = (nowMs - this.limits.maxAgeMs) * 1000;
    while (this.head < this.batches.length && this.batches[this.head]!.createdMicros < oldestKeptMicros) this.dropOldest();
  }

  private evictOverCount(): void {
    while (this.eventCount > this.limits.maxEvents && this.head < this.batches.length) this.dropOldest();
  }

  private dropOldest(): void {
    const batch = this.batches[this.head]!;
    if (!batch.forgotten) this.removeIdsOf(batch);
    this.batches[this.head] = undefined as unknown as WrittenBatch;
    this.head++;
    // Compact the queue once its dead prefix dominates.
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches = this.batches.slice(this.head);
      this.firstSequence += this.head;
      this.head = 0;
    }
  }

  /** Removes the ids this batch still owns (a later batch may have taken one over). */
  private removeIdsOf(batch: WrittenBatch): void {
    const count = batch.ids.byteLength / ID_BYTES;
    this.eventCount -= count;
    for (let i = 0; i < count; i++) {
      const slot = this.byId.find(batch.ids, i * ID_BYTES);
      if (slot >= 0 && this.batches[this.byId.ownerAt(slot) - this.firstSequence] === batch) this.byId.removeAt(slot);
    }
  }
}
