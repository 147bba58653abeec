import { ackWindow, type ConsumerStrategy, type GroupSettings } from './group-settings.js';

/**
 * One persistent subscription group as a pure state machine: which messages are buffered, which
 * are in flight to which consumer and until when, which wait for a retry, and how far the
 * handled prefix (the checkpoint) reaches. Inputs are calls (consumers joining and leaving, pages
 * read, acks, nacks, ticks carrying the time, completed writes); outputs are effects the host
 * takes with `takeEffects()` and carries out (deliver, read more, commit the ack state, drop a
 * consumer). No I/O, clock or timer in here: the simulator and the unit tests drive it directly.
 *
 * Durability model: the ack state (the checkpoint plus every handled message beyond it, plus the
 * messages parked since the last commit) is committed through the log in small windows (see
 * `ackWindow`). The checkpoint only covers a prefix in which every message is handled, so it never
 * runs ahead of an unacknowledged message; messages handled beyond it are listed so that a
 * restarted group skips them instead of delivering them again.
 */

/** What the machine needs to know about a message; the host's payload rides along in `M`. */
export interface GroupMessage<C> {
  /** Strictly increasing in read order: the stream revision, or the position in `$all`. */
  sequence: number;
  /** Where a read resumes after this message (a revision, or a `$all` position). */
  position: C;
  /** The id consumers acknowledge (the link's id when the message came through a link). */
  id: string;
  streamId: string;
  /** `$correlationId` from the event's metadata, for PinnedByCorrelation. */
  correlationId?: string;
}

export type NackAction = 'park' | 'retry' | 'skip' | 'stop';

export interface Checkpoint<C> {
  sequence: number;
  position: C;
}

/** The state a restarted group resumes from, as the last committed ack state recorded it. */
export interface RestoredAckState<C> {
  checkpoint: Checkpoint<C> | undefined;
  /** Sequences beyond the checkpoint already handled: skipped when read again. */
  handledBeyond: readonly number[];
  /** Unhandled messages already delivered, with the retry count of their last delivery: the next one counts up from there. */
  delivered?: readonly (readonly [sequence: number, retryCount: number])[];
}

export interface AckStateSnapshot<M extends GroupMessage<C>, C> {
  checkpoint: Checkpoint<C> | undefined;
  handledBeyond: number[];
  /** Unhandled messages delivered at least once, and the retry count of their last delivery. */
  delivered: [sequence: number, retryCount: number][];
  /** Messages to append to the parked stream in the same write. */
  parks: { message: M; reason: string }[];
  /** Set when every replayed parked message is handled: the parked stream may be truncated up to here. */
  parkedReplayedUpTo?: number;
}

export interface Delivery<M> {
  consumer: string;
  message: M;
  retryCount: number;
}

export interface GroupEffects<M extends GroupMessage<C>, C> {
  deliveries: Delivery<M>[];
  /** Read the next page: after this position (or from the group's configured start when undefined). */
  read?: { after: Checkpoint<C> | undefined; maxCount: number };
  /** Commit this ack state through the log, then call `ackStateCommitted` (or `ackStateFailed`). */
  commitAckState?: AckStateSnapshot<M, C>;
  drops: { consumer: string; reason: string }[];
}

interface Consumer {
  id: string;
  bufferSize: number;
  inFlight: number;
  delivered: number;
}

interface InFlight<M> {
  message: M;
  consumer: string;
  retryCount: number;
  deadline: number;
  /** A replayed parked message: outside the checkpoint window. */
  replayed: boolean;
}

interface Queued<M> {
  message: M;
  retryCount: number;
  replayed: boolean;
}

interface WindowEntry<C> {
  sequence: number;
  position: C;
  handled: boolean;
  /** The retry count of the last delivery; undefined while never delivered. */
  lastRetryCount: number | undefined;
}

export interface GroupStatistics {
  consumers: { id: string; bufferSize: number; inFlight: number; delivered: number }[];
  bufferedCount: number;
  retryCount: number;
  inFlightCount: number;
  /** Read but not yet handled, delivered or not. */
  outstandingCount: number;
  deliveredCount: number;
  parkedSinceStart: number;
  caughtUp: boolean;
  checkpoint: Checkpoint<unknown> | undefined;
  lastRead: Checkpoint<unknown> | undefined;
}

/** How many queued messages Pinned strategies look past a message whose consumer is full. */
const PINNED_SCAN_LIMIT = 4096;

export class PersistentGroup<M extends GroupMessage<C>, C> {
  private readonly consumers: Consumer[] = [];
  private roundRobinNext = 0;
  private buffer: Queued<M>[] = [];
  private retries: Queued<M>[] = [];
  private readonly inFlight = new Map<string, InFlight<M>>();
  /** Every read message not yet behind the checkpoint, in read order. */
  private readonly window: WindowEntry<C>[] = [];
  private windowHead = 0;
  private readonly windowBySequence = new Map<number, WindowEntry<C>>();
  private readonly skipOnRead: Set<number>;
  /** Restored retry counts of messages delivered before the restart, until they are read again. */
  private readonly deliveredBeforeRestart: Map<number, number>;
  private checkpoint: Checkpoint<C> | undefined;
  private lastRead: Checkpoint<C> | undefined;
  private readOutstanding = false;
  private caughtUp = false;
  private now = 0;
  private readonly window_: { maxDelayMs: number; maxAcks: number };
  // The ack state not yet committed.
  private dirtySince: number | undefined;
  private handledSinceCommit = 0;
  private committing: { parks: number; replayDone: boolean } | undefined;
  private pendingParks: { message: M; reason: string }[] = [];
  // Replayed parked messages still to handle, and the parked-stream revision they reach.
  private replayOutstanding = 0;
  private replayUpTo: number | undefined;
  private replayDone = false;
  private deliveredCount = 0;
  private parkedSinceStart = 0;
  private stopped = false;
  private effects: GroupEffects<M, C> = { deliveries: [], drops: [] };

  constructor(
    readonly settings: GroupSettings,
    restored: RestoredAckState<C>,
  ) {
    this.window_ = ackWindow(settings);
    this.checkpoint = restored.checkpoint;
    this.lastRead = restored.checkpoint;
    const checkpointSequence = restored.checkpoint?.sequence ?? -Infinity;
    this.skipOnRead = new Set(restored.handledBeyond.filter((sequence) => sequence > checkpointSequence));
    this.deliveredBeforeRestart = new Map((restored.delivered ?? []).filter(([sequence]) => sequence > checkpointSequence && !this.skipOnRead.has(sequence)));
  }

  // ------------------------------------------------------------------ inputs

  /** Starts reading. Call once, after construction. */
  start(now: number): void {
    this.now = now;
    this.requestRead();
  }

  /** A consumer connects with room for `bufferSize` unacknowledged messages; false when the group is full. */
  consumerJoined(id: string, bufferSize: number): boolean {
    if (this.stopped) return false;
    if (this.settings.maxSubscriberCount > 0 && this.consumers.length >= this.settings.maxSubscriberCount) return false;
    this.consumers.push({ id, bufferSize: Math.max(1, bufferSize), inFlight: 0, delivered: 0 });
    this.dispatch();
    return true;
  }

  /** A consumer went away: what it held is retried (its retry count goes up). */
  consumerLeft(id: string): void {
    const index = this.consumers.findIndex((consumer) => consumer.id === id);
    if (index < 0) return;
    this.consumers.splice(index, 1);
    if (this.roundRobinNext > index) this.roundRobinNext--;
    for (const [messageId, entry] of [...this.inFlight]) {
      if (entry.consumer !== id) continue;
      this.inFlight.delete(messageId);
      this.retryOrPark(entry, 'the consumer disconnected');
    }
    this.dispatch();
  }

  /** A page read after the position the last `read` effect asked for. */
  messagesRead(messages: readonly M[], reachedEnd: boolean): void {
    this.readOutstanding = false;
    if (this.stopped) return;
    for (const message of messages) {
      if (this.lastRead && message.sequence <= this.lastRead.sequence) continue;
      this.lastRead = { sequence: message.sequence, position: message.position };
      const entry: WindowEntry<C> = { sequence: message.sequence, position: message.position, handled: false, lastRetryCount: undefined };
      this.window.push(entry);
      this.windowBySequence.set(message.sequence, entry);
      if (this.skipOnRead.delete(message.sequence)) {
        // Acknowledged before the restart: handled already, only the checkpoint has to move past it.
        this.markHandled(message.sequence);
        continue;
      }
      // Delivered before a restart and never answered: this is a retry.
      const earlier = this.deliveredBeforeRestart.get(message.sequence);
      this.deliveredBeforeRestart.delete(message.sequence);
      this.buffer.push({ message, retryCount: earlier === undefined ? 0 : earlier + 1, replayed: false });
    }
    this.caughtUp = reachedEnd;
    this.advanceCheckpoint();
    this.dispatch();
  }

  /** The source has nothing more for now (the host waits for new events): the group is live. */
  reachedEnd(): void {
    this.caughtUp = true;
  }

  ack(consumerId: string, ids: readonly string[]): void {
    for (const id of ids) {
      const entry = this.takeInFlight(consumerId, id);
      if (!entry) continue;
      this.handled(entry);
    }
    this.dispatch();
  }

  nack(consumerId: string, ids: readonly string[], action: NackAction, reason: string): void {
    for (const id of ids) {
      const entry = this.takeInFlight(consumerId, id);
      if (!entry) continue;
      if (action === 'skip') this.handled(entry);
      else if (action === 'park') this.park(entry, reason || 'parked by the consumer');
      else if (action === 'retry') this.retryOrPark(entry, reason || 'retried by the consumer');
      else {
        // Stop: the message goes back for another consumer and this one is let go.
        this.retryOrPark(entry, reason || 'the consumer stopped');
      }
    }
    if (action === 'stop' && this.consumers.some((consumer) => consumer.id === consumerId)) {
      this.effects.drops.push({ consumer: consumerId, reason: reason || 'the consumer asked to stop' });
      this.consumerLeft(consumerId);
    }
    this.dispatch();
  }

  /**
   * The host's current time, given before any other input: a delivery's deadline and the ack
   * window start from it. Without it they would start from the last `tick`, which may be long
   * ago for an idle group (a message would then time out as soon as it is delivered).
   */
  advanceTime(now: number): void {
    this.now = Math.max(this.now, now);
  }

  /** The time moved on: retry what timed out, and commit the ack state if the window has closed. */
  tick(now: number): void {
    this.now = Math.max(this.now, now);
    for (const [messageId, entry] of [...this.inFlight]) {
      if (entry.deadline > this.now) continue;
      this.inFlight.delete(messageId);
      const consumer = this.consumers.find((candidate) => candidate.id === entry.consumer);
      if (consumer) consumer.inFlight--;
      this.retryOrPark(entry, 'the message timed out');
    }
    this.dispatch();
  }

  /** Parked messages to deliver again (from the parked stream, up to revision `upTo` of it). */
  replayParked(messages: readonly M[], upTo: number): void {
    for (const message of messages) this.retries.push({ message, retryCount: 0, replayed: true });
    this.replayOutstanding += messages.length;
    this.replayUpTo = Math.max(this.replayUpTo ?? -1, upTo);
    if (this.replayOutstanding === 0) this.markReplayDone();
    this.dispatch();
  }

  ackStateCommitted(): void {
    const committed = this.committing;
    this.committing = undefined;
    if (!committed) return;
    this.pendingParks.splice(0, committed.parks);
    if (committed.replayDone) {
      this.replayDone = false;
      this.replayUpTo = undefined;
    }
    this.dispatch();
  }

  /** The commit did not happen: the state stays dirty and is committed again later. */
  ackStateFailed(): void {
    if (!this.committing) return;
    this.committing = undefined;
    this.dirtySince ??= this.now;
  }

  /** Stops all activity: nothing more is delivered, read or committed. */
  stop(): void {
    this.stopped = true;
  }

  // ------------------------------------------------------------------ outputs

  takeEffects(): GroupEffects<M, C> {
    const effects = this.effects;
    this.effects = { deliveries: [], drops: [] };
    return effects;
  }

  /** When the host should call `tick` next (undefined: only when something else happens). */
  nextTickAt(): number | undefined {
    let next: number | undefined;
    if (this.dirtySince !== undefined && !this.committing) next = this.dirtySince + this.window_.maxDelayMs;
    for (const entry of this.inFlight.values()) {
      if (entry.deadline !== Infinity && (next === undefined || entry.deadline < next)) next = entry.deadline;
    }
    return next;
  }

  get hasUncommittedAcks(): boolean {
    return this.dirtySince !== undefined || this.committing !== undefined;
  }

  /** The ack state as it stands, for a final commit before the group stops (graceful stop, handover). */
  snapshot(): AckStateSnapshot<M, C> {
    return {
      checkpoint: this.checkpoint,
      handledBeyond: this.handledBeyond(),
      delivered: this.deliveredBeyond(),
      parks: [...this.pendingParks],
      ...(this.replayDone && this.replayUpTo !== undefined ? { parkedReplayedUpTo: this.replayUpTo } : {}),
    };
  }

  statistics(): GroupStatistics {
    return {
      consumers: this.consumers.map((consumer) => ({ ...consumer })),
      bufferedCount: this.buffer.length,
      retryCount: this.retries.length,
      inFlightCount: this.inFlight.size,
      outstandingCount: this.window.length - this.windowHead,
      deliveredCount: this.deliveredCount,
      parkedSinceStart: this.parkedSinceStart,
      caughtUp: this.caughtUp,
      checkpoint: this.checkpoint,
      lastRead: this.lastRead,
    };
  }

  // ------------------------------------------------------------------ internals

  private takeInFlight(consumerId: string, id: string): InFlight<M> | undefined {
    const entry = this.inFlight.get(id);
    // An ack from a consumer that no longer holds the message (it timed out and went elsewhere) is stale.
    if (!entry || entry.consumer !== consumerId) return undefined;
    this.inFlight.delete(id);
    const consumer = this.consumers.find((candidate) => candidate.id === consumerId);
    if (consumer) consumer.inFlight--;
    return entry;
  }

  private handled(entry: Queued<M>): void {
    if (entry.replayed) this.replayedHandled();
    else this.markHandled(entry.message.sequence);
  }

  private retryOrPark(entry: Queued<M>, reason: string): void {
    const retryCount = entry.retryCount + 1;
    if (retryCount > this.settings.maxRetryCount) {
      this.park(entry, `${reason}; retried ${entry.retryCount} times (max retry count ${this.settings.maxRetryCount})`);
      return;
    }
    this.retries.push({ message: entry.message, retryCount, replayed: entry.replayed });
  }

  private park(entry: Queued<M>, reason: string): void {
    this.pendingParks.push({ message: entry.message, reason });
    this.parkedSinceStart++;
    // A park is part of the ack state: it is committed in the same write as the checkpoint.
    this.handled(entry);
    this.touch();
  }

  private replayedHandled(): void {
    this.replayOutstanding--;
    if (this.replayOutstanding === 0) this.markReplayDone();
  }

  private markReplayDone(): void {
    this.replayDone = true;
    this.touch();
  }

  private markHandled(sequence: number): void {
    const entry = this.windowBySequence.get(sequence);
    if (!entry || entry.handled) return;
    entry.handled = true;
    this.handledSinceCommit++;
    this.touch();
    this.advanceCheckpoint();
  }

  private advanceCheckpoint(): void {
    let moved: WindowEntry<C> | undefined;
    while (this.windowHead < this.window.length && this.window[this.windowHead]!.handled) {
      moved = this.window[this.windowHead]!;
      this.windowBySequence.delete(moved.sequence);
      this.windowHead++;
    }
    if (this.windowHead > 1024 && this.windowHead * 2 > this.window.length) {
      this.window.splice(0, this.windowHead);
      this.windowHead = 0;
    }
    if (moved) this.checkpoint = { sequence: moved.sequence, position: moved.position };
  }

  private touch(): void {
    this.dirtySince ??= this.now;
  }

  private deliveredBeyond(): [number, number][] {
    const delivered: [number, number][] = [];
    for (let index = this.windowHead; index < this.window.length; index++) {
      const entry = this.window[index]!;
      if (!entry.handled && entry.lastRetryCount !== undefined) delivered.push([entry.sequence, entry.lastRetryCount]);
    }
    for (const [sequence, retryCount] of this.deliveredBeforeRestart) delivered.push([sequence, retryCount]);
    return delivered;
  }

  private handledBeyond(): number[] {
    const beyond: number[] = [];
    for (let index = this.windowHead; index < this.window.length; index++) {
      const entry = this.window[index]!;
      if (entry.handled) beyond.push(entry.sequence);
    }
    // Restored acknowledgements of messages not read again yet are still owed a skip.
    for (const sequence of this.skipOnRead) beyond.push(sequence);
    return beyond;
  }

  private maybeCommit(): void {
    if (this.committing || this.dirtySince === undefined || this.stopped) return;
    const due = this.handledSinceCommit >= this.window_.maxAcks || this.pendingParks.length >= this.window_.maxAcks || this.now >= this.dirtySince + this.window_.maxDelayMs;
    if (!due) return;
    const snapshot = this.snapshot();
    this.committing = { parks: snapshot.parks.length, replayDone: snapshot.parkedReplayedUpTo !== undefined };
    this.dirtySince = undefined;
    this.handledSinceCommit = 0;
    this.effects.commitAckState = snapshot;
  }

  private requestRead(): void {
    if (this.readOutstanding || this.stopped) return;
    const limit = this.caughtUp ? this.settings.liveBufferSize : this.settings.historyBufferSize;
    const room = limit - this.buffer.length;
    if (room <= 0) return;
    this.readOutstanding = true;
    this.effects.read = { after: this.lastRead, maxCount: Math.min(this.settings.readBatchSize, room) };
  }

  private dispatch(): void {
    if (!this.stopped && this.consumers.length > 0) {
      this.retries = this.dispatchFrom(this.retries);
      this.buffer = this.dispatchFrom(this.buffer);
    }
    this.requestRead();
    this.maybeCommit();
  }

  /** Delivers what it can from `queue`; returns what stays queued, in order. */
  private dispatchFrom(queue: Queued<M>[]): Queued<M>[] {
    if (queue.length === 0) return queue;
    const pinned = isPinned(this.settings.strategy);
    const kept: Queued<M>[] = [];
    let index = 0;
    for (; index < queue.length; index++) {
      if (!this.consumers.some(hasRoom)) break;
      const queued = queue[index]!;
      if (this.inFlight.has(queued.message.id)) {
        // The same id is already out (an event id reused in $all, or a replay): one at a time.
        kept.push(queued);
        continue;
      }
      const consumer = this.chooseConsumer(queued.message);
      if (!consumer) {
        if (!pinned || kept.length >= PINNED_SCAN_LIMIT) break;
        kept.push(queued);
        continue;
      }
      this.deliver(consumer, queued);
    }
    if (index === queue.length) return kept;
    return kept.length === 0 ? queue.slice(index) : kept.concat(queue.slice(index));
  }

  private deliver(consumer: Consumer, queued: Queued<M>): void {
    if (!queued.replayed) {
      const entry = this.windowBySequence.get(queued.message.sequence);
      if (entry) entry.lastRetryCount = queued.retryCount;
      // Deliveries are part of the ack state too: after a failover, a message that was out comes back counted as a retry.
      this.touch();
    }
    consumer.inFlight++;
    consumer.delivered++;
    this.deliveredCount++;
    this.inFlight.set(queued.message.id, {
      message: queued.message,
      consumer: consumer.id,
      retryCount: queued.retryCount,
      // 0 means no timeout: a message stays with its consumer until it answers or goes away.
      deadline: this.settings.messageTimeoutMs > 0 ? this.now + this.settings.messageTimeoutMs : Infinity,
      replayed: queued.replayed,
    });
    this.effects.deliveries.push({ consumer: consumer.id, message: queued.message, retryCount: queued.retryCount });
  }

  private chooseConsumer(message: M): Consumer | undefined {
    switch (this.settings.strategy) {
      case 'DispatchToSingle':
        return this.consumers.find(hasRoom);
      case 'RoundRobin': {
        for (let step = 0; step < this.consumers.length; step++) {
          const index = (this.roundRobinNext + step) % this.consumers.length;
          const consumer = this.consumers[index]!;
          if (hasRoom(consumer)) {
            this.roundRobinNext = (index + 1) % this.consumers.length;
            return consumer;
          }
        }
        return undefined;
      }
      case 'Pinned':
      case 'PinnedByCorrelation': {
        const key = this.settings.strategy === 'PinnedByCorrelation' ? (message.correlationId ?? message.streamId) : message.streamId;
        const consumer = this.consumers[stringHash(key) % this.consumers.length]!;
        return hasRoom(consumer) ? consumer : undefined;
      }
    }
  }
}

function hasRoom(consumer: Consumer): boolean {
  return consumer.inFlight < consumer.bufferSize;
}

function isPinned(strategy: ConsumerStrategy): boolean {
  return strategy === 'Pinned' || strategy === 'PinnedByCorrelation';
}

/** FNV-1a: a stable, well-spread hash so a key keeps its consumer while the consumers stay the same. */
function stringHash(key: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index++) {
    hash ^= key.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
