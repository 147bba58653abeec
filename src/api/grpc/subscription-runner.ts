import { StreamNotFoundError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { EventFilter, Position, RecordedEvent } from '../../store/types.js';
import type { ResponseStream } from './grpc-server.js';
import type { Message } from './protocol.js';
import { positionMessage, readEventMessage, type ReadShape } from './streams-service.js';

/**
 * Catch-up subscriptions over the Read call. One loop serves history and live alike: read a page
 * from the cursor, send it (each send waits for HTTP/2 flow control, so a slow client slows its
 * own reads and the server holds at most one page per subscriber), and once at the committed end
 * wait for the next commit. Live pages come from the store's in-memory recent records, so many
 * subscribers tailing the log share those instead of each reading the disk.
 *
 * Signals: `caught_up` when the subscription first reaches the end of the log (and again after
 * falling behind); `fell_behind` when a live subscription finds a full page waiting (it is reading
 * history again).
 */
const PAGE_EVENTS = 256;

function timestampNow(): Message {
  const now = Date.now();
  return { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 };
}

export async function runStreamSubscription(
  store: EventStore,
  stream: string,
  after: number | 'start' | 'end',
  shape: ReadShape,
  responses: ResponseStream<Message>,
  signal: AbortSignal,
): Promise<void> {
  let next: number;
  if (after === 'end') {
    next = await lastRevisionOf(store, stream) + 1;
  } else {
    next = after === 'start' ? 0 : after + 1;
  }
  let lastDelivered: number | undefined = after === 'start' || after === 'end' ? undefined : after;
  let live = false;
  while (!signal.aborted) {
    const seen = store.position;
    let page: RecordedEvent[];
    try {
      page = await store.readStream(stream, { fromRevision: next, maxCount: PAGE_EVENTS });
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
      page = [];
    }
    for (const event of page) {
      await responses.send(readEventMessage(event, shape));
      next = event.revision + 1;
      lastDelivered = event.revision;
    }
    if (page.length === PAGE_EVENTS) {
      if (live) {
        live = false;
        await responses.send({ fell_behind: { timestamp: timestampNow(), ...(lastDelivered !== undefined ? { stream_revision: lastDelivered } : {}) } });
      }
      continue;
    }
    if (!live) {
      live = true;
      await responses.send({ caught_up: { timestamp: timestampNow(), ...(lastDelivered !== undefined ? { stream_revision: lastDelivered } : {}) } });
    }
    await store.waitForCommitAfter(seen, signal);
  }
}

async function lastRevisionOf(store: EventStore, stream: string): Promise<number> {
  try {
    const [last] = await store.readStream(stream, { direction: 'backwards', maxCount: 1 });
    return last ? last.revision : -1;
  } catch (error) {
    if (error instanceof StreamNotFoundError) return -1;
    throw error;
  }
}

export async function runAllSubscription(
  store: EventStore,
  after: Position | 'start' | 'end',
  filter: EventFilter | undefined,
  checkpointEveryEvents: number,
  shape: ReadShape,
  responses: ResponseStream<Message>,
  signal: AbortSignal,
): Promise<void> {
  let cursor: Position | 'start' = after === 'end' ? { commit: store.position, prepare: store.position } : after;
  // A subscription from a position starts after the event at that position.
  const skip: Position | undefined = after !== 'start' && after !== 'end' ? after : undefined;
  let lastDelivered: Position | undefined = skip;
  let lastCheckpoint: Position | undefined;
  let live = false;
  const scanLimit = filter && checkpointEveryEvents > 0 ? checkpointEveryEvents : undefined;
  while (!signal.aborted) {
    const page = await store.readAll({
      fromPosition: cursor,
      maxCount: PAGE_EVENTS,
      ...(filter ? { filter } : {}),
      ...(scanLimit ? { scanLimit } : {}),
    });
    for (const event of page.events) {
      if (skip && event.position.commit === skip.commit && event.position.prepare === skip.prepare) continue;
      await responses.send(readEventMessage(event, shape));
      lastDelivered = event.position;
    }
    cursor = page.nextPosition;
    // Filtered subscriptions report how far they have looked, so a client can resume past long
    // stretches of events it does not want. The checkpoint is the last event examined: resuming
    // from a position starts after it, so nothing unexamined is skipped.
    const scannedTo = page.lastScannedPosition;
    if (filter && checkpointEveryEvents > 0 && scannedTo && (!lastCheckpoint || lastCheckpoint.commit !== scannedTo.commit || lastCheckpoint.prepare !== scannedTo.prepare)) {
      await responses.send({ checkpoint: { ...positionMessage(scannedTo), timestamp: timestampNow() } });
      lastCheckpoint = scannedTo;
    }
    if (!page.isEnd) {
      if (live && page.events.length === PAGE_EVENTS) {
        live = false;
        await responses.send({ fell_behind: { timestamp: timestampNow(), ...(lastDelivered ? { position: positionMessage(lastDelivered) } : {}) } });
      }
      continue;
    }
    if (!live) {
      live = true;
      await responses.send({ caught_up: { timestamp: timestampNow(), ...(lastDelivered ? { position: positionMessage(lastDelivered) } : {}) } });
    }
    await store.waitForCommitAfter(cursor.commit, signal);
  }
}
