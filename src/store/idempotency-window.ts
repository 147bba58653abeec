import type { StreamView } from './expected-state.js';

/** One earlier write of events to one stream, remembered so that a retry of it is recognised. */
export interface WrittenBatch {
  stream: string;
  idKeys: string[];
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

/**
 * The recent event ids, by count and by age. It is derived from the log (rebuilt from the log's
 * tail on open), so retries are recognised across restarts too.
 */
export class IdempotencyWindow {
  /** Event id → the batch that wrote it (no per-id object: the id's place is found in the batch). */
  private readonly byId = new Map<string, WrittenBatch>();
  private readonly batches: WrittenBatch[] = [];
  private head = 0;
  private eventCount = 0;

  constructor(readonly limits: IdempotencyWindowLimits) {}

  get size(): number {
    return this.eventCount;
  }

  /** Classifies a write of events with these ids to `stream`: new, an exact retry, or a conflict. */
  match(stream: string, idKeys: readonly string[]): BatchMatch {
    let found = 0;
    let batch: WrittenBatch | undefined;
    let aligned = true;
    for (let i = 0; i < idKeys.length; i++) {
      const key = idKeys[i]!;
      const owner = this.byId.get(key);
      if (!owner) continue;
      found++;
      if (batch === undefined) batch = owner;
      if (owner !== batch || owner.idKeys[i] !== key) aligned = false;
    }
    if (found === 0 || !batch) return { kind: 'new' };
    if (found === idKeys.length && aligned && batch.idKeys.length === idKeys.length && batch.stream === stream) {
      return { kind: 'retry', batch };
    }
    const where = batch.stream === stream ? `'${stream}' at revision ${batch.firstRevision}` : `stream '${batch.stream}'`;
    return {
      kind: 'conflict',
      detail: `${found} of its ${idKeys.length} event ids were already written (to ${where}) in a different batch; retry the exact same batch, or use new ids`,
    };
  }

  add(batch: WrittenBatch): void {
    this.batches.push(batch);
    for (const key of batch.idKeys) this.byId.set(key, batch);
    this.eventCount += batch.idKeys.length;
    this.evictOverCount();
  }

  /** Forgets one batch (a write that was abandoned before it committed). */
  forget(batch: WrittenBatch): void {
    if (batch.forgotten) return;
    batch.forgotten = true;
    this.eventCount -= batch.idKeys.length;
    for (const key of batch.idKeys) {
      if (this.byId.get(key) === batch) this.byId.delete(key);
    }
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
    this.batches[this.head] = undefined as unknown as WrittenBatch;
    this.head++;
    if (!batch.forgotten) {
      this.eventCount -= batch.idKeys.length;
      for (const key of batch.idKeys) {
        if (this.byId.get(key) === batch) this.byId.delete(key);
      }
    }
    // Compact the queue once its dead prefix dominates.
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches.splice(0, this.head);
      this.head = 0;
    }
  }
}
