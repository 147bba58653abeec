import { StreamNotFoundError } from '../errors.js';
import type { EventStore } from '../store/event-store.js';
import type { EventFilter, Position, RecordedEvent } from '../store/types.js';
import type { TrackedSubscription } from './subscription-tracker.js';

/**
 * The catch-up loops behind every live subscription, whatever carries it (gRPC Read, HTTP
 * Server-Sent Events). One loop serves history and live alike: read a page from the cursor, hand
 * it to the sink (each call waits until the transport takes more, so a slow client slows its own
 * reads and the server holds at most one page per subscriber), and once at the committed end wait
 * for the next commit. Live pages come from the store's in-memory recent records, so many
 * subscribers tailing the log share those instead of each reading the disk.
 *
 * Signals: `caughtUp` when the subscription first reaches the end of the log (and again after
 * falling behind); `fellBehind` when a live subscription finds a full page waiting (it is reading
 * history again); `checkpoint` (filtered `$all` only) with how far the filter has looked.
 */
export interface CatchUpSink<Cursor> {
  event(event: RecordedEvent): Promise<void>;
  caughtUp(lastDelivered: Cursor | undefined): Promise<void>;
  fellBehind(lastDelivered: Cursor | undefined): Promise<void>;
}

export interface AllCatchUpSink extends CatchUpSink<Position> {
  checkpoint(scannedTo: Position): Promise<void>;
}

export const CATCH_UP_PAGE_EVENTS = 256;

/**
 * Whether a subscription is live (at the committed end) or reading history, and the signals of
 * each switch: `caughtUp` on reaching the end, `fellBehind` when a live subscription finds a full
 * page waiting.
 */
class Phase<Cursor> {
  private live = false;

  constructor(private readonly sink: CatchUpSink<Cursor>) {}

  async pageRead(atEnd: boolean, fullPage: boolean, lastDelivered: Cursor | undefined): Promise<void> {
    if (!atEnd) {
      if (this.live && fullPage) {
        this.live = false;
        await this.sink.fellBehind(lastDelivered);
      }
      return;
    }
    if (!this.live) {
      this.live = true;
      await this.sink.caughtUp(lastDelivered);
    }
  }
}

/** Delivers the stream's events after `after` (a revision, or from its start, or only new ones). */
export async function runStreamCatchUp(
  store: EventStore,
  stream: string,
  after: number | 'start' | 'end',
  sink: CatchUpSink<number>,
  signal: AbortSignal,
  tracked?: TrackedSubscription,
): Promise<void> {
  let lastDelivered: number | undefined = after === 'start' || after === 'end' ? undefined : after;
  const phase = new Phase(sink);
  try {
    let next = after === 'end' ? (await lastRevisionOf(store, stream)) + 1 : after === 'start' ? 0 : after + 1;
    while (!signal.aborted) {
      const seen = store.position;
      let page: RecordedEvent[];
      try {
        page = await store.readStream(stream, { fromRevision: next, maxCount: CATCH_UP_PAGE_EVENTS });
      } catch (error) {
        if (!(error instanceof StreamNotFoundError)) throw error;
        page = [];
      }
      for (const event of page) {
        await sink.event(event);
        tracked?.reached(event.position.commit);
        next = event.revision + 1;
        lastDelivered = event.revision;
      }
      const full = page.length === CATCH_UP_PAGE_EVENTS;
      await phase.pageRead(!full, full, lastDelivered);
      if (full) continue;
      tracked?.reached(seen);
      await store.waitForCommitAfter(seen, signal);
    }
  } finally {
    tracked?.close();
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

/** Delivers `$all` after `after` (a position, or from the start, or only new events), filtered. */
export async function runAllCatchUp(
  store: EventStore,
  after: Position | 'start' | 'end',
  filter: EventFilter | undefined,
  checkpointEveryEvents: number,
  sink: AllCatchUpSink,
  signal: AbortSignal,
  tracked?: TrackedSubscription,
): Promise<void> {
  let cursor: Position | 'start' = after === 'end' ? { commit: store.position, prepare: store.position } : after;
  // A subscription from a position starts after the event at that position.
  const skip: Position | undefined = after !== 'start' && after !== 'end' ? after : undefined;
  let lastDelivered: Position | undefined = skip;
  let lastCheckpoint: Position | undefined;
  const phase = new Phase(sink);
  const scanLimit = filter && checkpointEveryEvents > 0 ? checkpointEveryEvents : undefined;
  try {
    while (!signal.aborted) {
      const page = await store.readAll({
        fromPosition: cursor,
        maxCount: CATCH_UP_PAGE_EVENTS,
        ...(filter ? { filter } : {}),
        ...(scanLimit ? { scanLimit } : {}),
      });
      for (const event of page.events) {
        if (skip && event.position.commit === skip.commit && event.position.prepare === skip.prepare) continue;
        await sink.event(event);
        lastDelivered = event.position;
      }
      cursor = page.nextPosition;
      tracked?.reached(cursor.commit);
      // Filtered subscriptions report how far they have looked, so a client can resume past long
      // stretches of events it does not want. The checkpoint is the last event examined: resuming
      // from a position starts after it, so nothing unexamined is skipped.
      const scannedTo = page.lastScannedPosition;
      if (scanLimit && scannedTo && (!lastCheckpoint || lastCheckpoint.commit !== scannedTo.commit || lastCheckpoint.prepare !== scannedTo.prepare)) {
        await sink.checkpoint(scannedTo);
        lastCheckpoint = scannedTo;
      }
      await phase.pageRead(page.isEnd, page.events.length === CATCH_UP_PAGE_EVENTS, lastDelivered);
      if (!page.isEnd) continue;
      await store.waitForCommitAfter(cursor.commit, signal);
    }
  } finally {
    tracked?.close();
  }
}
