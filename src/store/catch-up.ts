import { StoreUnavailableError, StreamNotFoundError } from '../errors.js';
import type { EventStore } from './event-store.js';
import type { EventFilter, Position, RecordedEvent } from './types.js';

export interface SubscribeToAllOptions {
  fromPosition?: Position | 'start' | 'end';
  filter?: EventFilter;
  /** Events read per round from history; also bounds what is buffered. */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface SubscribeToStreamOptions {
  /** The first revision delivered; 'end' delivers only events appended from now on. */
  fromRevision?: number | 'start' | 'end';
  batchSize?: number;
  signal?: AbortSignal;
}

/**
 * A catch-up subscription to `$all`: history from the position first, then live events as they
 * are committed, with no gap and no duplicate at the switch (both phases read the same committed
 * log from the same cursor). The consumer pulls, so a slow consumer slows the reads, never
 * buffers without bound. Ends when the signal aborts or the store closes.
 */
export async function* subscribeToAll(store: EventStore, options: SubscribeToAllOptions = {}): AsyncGenerator<RecordedEvent> {
  const batchSize = options.batchSize ?? 500;
  const from = options.fromPosition ?? 'start';
  let cursor: Position | 'start' = from === 'end' ? { commit: store.position, prepare: store.position } : from;
  while (!options.signal?.aborted) {
    let page;
    try {
      page = await store.readAll({ fromPosition: cursor, maxCount: batchSize, ...(options.filter ? { filter: options.filter } : {}) });
    } catch (error) {
      if (error instanceof StoreUnavailableError) return;
      throw error;
    }
    for (const event of page.events) yield event;
    cursor = page.nextPosition;
    // Caught up: sleep until something is committed past the cursor (or the store closes).
    if (page.isEnd) await store.waitForCommitAfter(cursor.commit, options.signal);
  }
}

/** A catch-up subscription to one stream; waits for the stream if it does not exist yet. */
export async function* subscribeToStream(store: EventStore, stream: string, options: SubscribeToStreamOptions = {}): AsyncGenerator<RecordedEvent> {
  const batchSize = options.batchSize ?? 500;
  let next: number | undefined = typeof options.fromRevision === 'number' ? options.fromRevision : undefined;
  if (options.fromRevision === 'end') {
    try {
      const [last] = await store.readStream(stream, { direction: 'backwards', maxCount: 1 });
      next = last ? last.revision + 1 : 0;
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
      next = 0;
    }
  }
  while (!options.signal?.aborted) {
    const seenPosition = store.position;
    let events: RecordedEvent[] = [];
    try {
      events = await store.readStream(stream, { fromRevision: next ?? 'start', maxCount: batchSize });
    } catch (error) {
      if (error instanceof StoreUnavailableError) return;
      if (!(error instanceof StreamNotFoundError)) throw error;
    }
    for (const event of events) {
      yield event;
      next = event.revision + 1;
    }
    if (events.length < batchSize) await store.waitForCommitAfter(seenPosition, options.signal);
  }
}
