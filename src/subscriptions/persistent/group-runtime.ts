import { MaximumSubscribersReachedError, PersistentSubscriptionDroppedError, StreamDeletedError, StreamNotFoundError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { EventData, RecordedEvent } from '../../store/types.js';
import { PersistentGroup, type AckStateSnapshot, type GroupStatistics, type NackAction, type RestoredAckState } from '../core/persistent-group.js';
import {
  ACK_STATE_EVENT_TYPE,
  checkpointStreamOf,
  decodeAckState,
  encodeAckState,
  LINK_EVENT_TYPE,
  linkData,
  parkedStreamOf,
  sourceName,
  type GroupDefinition,
  type GroupPosition,
} from './durable-state.js';
import { GroupReader, type SubscriptionMessage } from './group-reader.js';

/** Where a group's deliveries go: one consumer's call. */
export interface ConsumerSink {
  deliver(message: SubscriptionMessage, retryCount: number): void;
  /** The group let this consumer go: end its call with `error`. */
  end(error: Error): void;
}

export interface ConsumerDescription {
  /** The client's address, as GetInfo shows it. */
  from: string;
  connectionName: string;
  username: string;
}

export interface ConsumerHandle {
  readonly id: string;
  ack(ids: readonly string[]): void;
  nack(ids: readonly string[], action: NackAction, reason: string): void;
  /** The consumer's call ended: what it held goes to the others. */
  leave(): void;
}

/** What a group needs from the world: time, timers, ids and a log (real on a node, simulated in the simulator). */
export interface HostEnvironment {
  /** Monotonic milliseconds. */
  now(): number;
  schedule(delayMs: number, action: () => void): { cancel(): void };
  newId(): string;
  log(level: 'info' | 'warn' | 'error', message: string, error?: unknown): void;
  /** Told after each ack state is committed (the simulator's checkers watch these). */
  onAckStateCommitted?(definition: GroupDefinition, snapshot: AckStateSnapshot<SubscriptionMessage, GroupPosition>): void;
  /**
   * In a cluster: resolves only once this node is known to lead now, with every committed entry
   * applied (a linearizable read barrier), and rejects otherwise. The host waits for it before it
   * loads the groups' state: hosting may start long after this node became leader (after a
   * handover that gave up, a failed start, a restart of the subsystem), when a newer leader it
   * has not heard of may have committed ack states this node's log lacks.
   */
  confirmLeadership?(): Promise<void>;
}

export interface GroupInfo {
  definition: GroupDefinition;
  statistics: GroupStatistics;
  parkedCount: number;
  consumers: (ConsumerDescription & { id: string; inFlight: number; bufferSize: number; delivered: number })[];
  averagePerSecond: number;
  countSinceLastMeasurement: number;
  status: string;
}

/**
 * One group at work on the node that hosts it: the pure group machine, plus what it cannot do
 * itself — reading the source, waiting for new events, keeping time, committing the ack state
 * through the log, and talking to the consumers' calls.
 */
export class GroupRuntime {
  private machine!: PersistentGroup<SubscriptionMessage, GroupPosition>;
  private readonly reader: GroupReader;
  private readonly consumers = new Map<string, { sink: ConsumerSink; description: ConsumerDescription }>();
  private readonly abort = new AbortController();
  private timer: { cancel(): void } | undefined;
  private timerAt: number | undefined;
  private commitInFlight: Promise<void> | undefined;
  /** The parked stream: its next revision and where its live part begins (after replays truncated it). */
  private parkedNext = 0;
  private parkedFrom = 0;
  private replaying = false;
  private measurement = { at: 0, delivered: 0 };
  private stopped = false;
  private readonly checkpointStream: string;
  private readonly parkedStream: string;

  constructor(
    private readonly store: EventStore,
    readonly definition: GroupDefinition,
    private readonly clock: HostEnvironment,
  ) {
    this.reader = new GroupReader(store, definition);
    this.checkpointStream = checkpointStreamOf(definition.source, definition.group);
    this.parkedStream = parkedStreamOf(definition.source, definition.group);
  }

  get name(): string {
    return `${this.definition.group} on ${sourceName(this.definition.source)}`;
  }

  /** Loads the committed ack state and the parked stream's extent, then starts reading. */
  async start(): Promise<void> {
    const restored = await this.loadAckState();
    await this.loadParkedExtent();
    this.machine = new PersistentGroup(this.definition.settings, restored);
    this.measurement = { at: this.clock.now(), delivered: 0 };
    this.machine.start(this.clock.now());
    this.pump();
  }

  connect(bufferSize: number, description: ConsumerDescription, sink: ConsumerSink): ConsumerHandle {
    const id = this.clock.newId();
    this.consumers.set(id, { sink, description });
    this.machine.advanceTime(this.clock.now());
    if (!this.machine.consumerJoined(id, bufferSize)) {
      this.consumers.delete(id);
      throw new MaximumSubscribersReachedError(sourceName(this.definition.source), this.definition.group, this.definition.settings.maxSubscriberCount);
    }
    this.pump();
    return {
      id,
      ack: (ids) => this.input(() => this.machine.ack(id, ids)),
      nack: (ids, action, reason) => this.input(() => this.machine.nack(id, ids, action, reason)),
      leave: () => {
        if (!this.consumers.delete(id)) return;
        this.input(() => this.machine.consumerLeft(id));
      },
    };
  }

  /**
   * Stops the group. Graceful (a stop, a handover, an update): the acknowledgements received so far
   * are committed first, so none of them is delivered again. Consumers' calls end with `error`.
   */
  async stop(graceful: boolean, error: Error): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.timer?.cancel();
    this.machine?.stop();
    if (graceful && this.machine) {
      await this.commitInFlight;
      if (this.machine.hasUncommittedAcks) {
        try {
          await this.commitAckState(this.machine.snapshot());
        } catch (commitError) {
          this.clock.log('warn', `could not commit the last acknowledgements of ${this.name}; they may be delivered again`, commitError);
        }
      }
    }
    for (const { sink } of this.consumers.values()) sink.end(error);
    this.consumers.clear();
  }

  /** Resolves once no commit of this group is in flight (a stopped group's last write may still land). */
  async settled(): Promise<void> {
    await this.commitInFlight;
  }

  /** Re-delivers parked messages (up to `stopAt` of them, all when undefined). */
  async replayParked(stopAt: number | undefined): Promise<void> {
    if (this.replaying) return;
    this.replaying = true;
    try {
      const count = stopAt === undefined ? this.parkedNext - this.parkedFrom : Math.min(stopAt, this.parkedNext - this.parkedFrom);
      if (count <= 0) return;
      let links: RecordedEvent[];
      try {
        links = await this.store.readStream(this.parkedStream, { fromRevision: this.parkedFrom, maxCount: count });
      } catch (error) {
        if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return;
        throw error;
      }
      const messages: SubscriptionMessage[] = [];
      let upTo = this.parkedFrom - 1;
      for (const link of links) {
        upTo = link.revision;
        const target = await this.reader.resolve(link);
        // A parked message whose event is gone (deleted, truncated) has nothing left to deliver.
        if (!target) continue;
        const position: GroupPosition = this.definition.source.kind === 'stream' ? target.revision : target.position;
        messages.push(await this.reader.toMessage(target, typeof position === 'number' ? position : position.prepare, position));
      }
      if (this.stopped) return;
      this.input(() => this.machine.replayParked(messages, upTo));
    } finally {
      this.replaying = false;
    }
  }

  /** The figures of `info` that cost nothing to read (metrics scrape them; the rates stay GetInfo's). */
  figures(): { definition: GroupDefinition; statistics: GroupStatistics; parkedCount: number } {
    return { definition: this.definition, statistics: this.machine.statistics(), parkedCount: this.parkedNext - this.parkedFrom };
  }

  info(): GroupInfo {
    const statistics = this.machine.statistics();
    const now = this.clock.now();
    const since = statistics.deliveredCount - this.measurement.delivered;
    const seconds = Math.max((now - this.measurement.at) / 1000, 0.001);
    this.measurement = { at: now, delivered: statistics.deliveredCount };
    const byId = new Map(statistics.consumers.map((consumer) => [consumer.id, consumer]));
    return {
      definition: this.definition,
      statistics,
      parkedCount: this.parkedNext - this.parkedFrom,
      consumers: [...this.consumers].map(([id, { description }]) => ({
        id,
        ...description,
        inFlight: byId.get(id)?.inFlight ?? 0,
        bufferSize: byId.get(id)?.bufferSize ?? 0,
        delivered: byId.get(id)?.delivered ?? 0,
      })),
      averagePerSecond: Math.round(since / seconds),
      countSinceLastMeasurement: since,
      status: this.stopped ? 'NotReady' : statistics.caughtUp ? 'Live' : 'Behind',
    };
  }

  // ------------------------------------------------------------------ the machine's effects

  private input(change: () => void): void {
    if (this.stopped) return;
    this.machine.advanceTime(this.clock.now());
    change();
    this.pump();
  }

  private pump(): void {
    if (this.stopped) return;
    const effects = this.machine.takeEffects();
    for (const delivery of effects.deliveries) this.consumers.get(delivery.consumer)?.sink.deliver(delivery.message, delivery.retryCount);
    for (const drop of effects.drops) {
      const consumer = this.consumers.get(drop.consumer);
      this.consumers.delete(drop.consumer);
      consumer?.sink.end(new PersistentSubscriptionDroppedError(sourceName(this.definition.source), this.definition.group, drop.reason));
    }
    if (effects.read) void this.read(effects.read.after, effects.read.maxCount);
    if (effects.commitAckState) this.startCommit(effects.commitAckState);
    this.scheduleTick();
  }

  private scheduleTick(): void {
    const at = this.machine.nextTickAt();
    if (at === this.timerAt) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = at;
    if (at === undefined) return;
    this.timer = this.clock.schedule(Math.max(0, at - this.clock.now()) + 1, () => {
      this.timer = undefined;
      this.timerAt = undefined;
      this.input(() => this.machine.tick(this.clock.now()));
    });
  }

  private async read(after: Parameters<GroupReader['read']>[0], maxCount: number): Promise<void> {
    try {
      for (;;) {
        const seen = this.store.position;
        const page = await this.reader.read(after, maxCount);
        if (this.stopped) return;
        if (page.messages.length > 0 || !page.reachedEnd) {
          this.input(() => this.machine.messagesRead(page.messages, page.reachedEnd));
          return;
        }
        // At the end: wait for the next commit, then read again.
        this.machine.reachedEnd();
        await this.store.waitForCommitAfter(seen, this.abort.signal);
        if (this.stopped) return;
      }
    } catch (error) {
      if (this.stopped) return;
      this.clock.log('error', `reading the source of ${this.name} failed; retrying in a second`, error);
      await new Promise<void>((resolve) => this.clock.schedule(1000, resolve));
      if (this.stopped) return;
      // Report an empty page so the machine asks again.
      this.input(() => this.machine.messagesRead([], false));
    }
  }

  private startCommit(snapshot: AckStateSnapshot<SubscriptionMessage, GroupPosition>): void {
    const commit = this.commitAckState(snapshot).then(
      () => this.input(() => this.machine.ackStateCommitted()),
      (error: unknown) => {
        if (!this.stopped) this.clock.log('warn', `committing the acknowledgements of ${this.name} failed; trying again`, error);
        this.input(() => this.machine.ackStateFailed());
      },
    );
    this.commitInFlight = commit.finally(() => {
      if (this.commitInFlight === tracked) this.commitInFlight = undefined;
    });
    const tracked = this.commitInFlight;
  }

  /** One atomic write: the ack state, the messages parked since the last one, and the parked stream's truncation. */
  private async commitAckState(snapshot: AckStateSnapshot<SubscriptionMessage, GroupPosition>): Promise<void> {
    const requests: { stream: string; events: EventData[] }[] = [
      {
        stream: this.checkpointStream,
        events: [{ type: ACK_STATE_EVENT_TYPE, data: encodeAckState(snapshot), metadata: Buffer.from(JSON.stringify({ generation: this.definition.generation })), contentType: 'application/json' }],
      },
    ];
    if (snapshot.parks.length > 0) {
      requests.push({
        stream: this.parkedStream,
        events: snapshot.parks.map(({ message, reason }) => {
          const target = message.link ?? message.event;
          return {
            type: LINK_EVENT_TYPE,
            data: linkData(target.streamId, target.revision),
            metadata: Buffer.from(JSON.stringify({ reason, group: this.definition.group })),
            contentType: 'application/octet-stream' as const,
          };
        }),
      });
    }
    const truncateTo = snapshot.parkedReplayedUpTo !== undefined ? snapshot.parkedReplayedUpTo + 1 : undefined;
    if (truncateTo !== undefined) {
      requests.push({ stream: `$$${this.parkedStream}`, events: [{ type: '$metadata', data: { $tb: truncateTo } }] });
    }
    await this.store.appendToSystemStreams(requests);
    this.clock.onAckStateCommitted?.(this.definition, snapshot);
    this.parkedNext += snapshot.parks.length;
    if (truncateTo !== undefined) this.parkedFrom = Math.max(this.parkedFrom, truncateTo);
  }

  private async loadAckState(): Promise<RestoredAckState<GroupPosition>> {
    const empty: RestoredAckState<GroupPosition> = { checkpoint: undefined, handledBeyond: [] };
    try {
      const [last] = await this.store.readStream(this.checkpointStream, { direction: 'backwards', maxCount: 1 });
      if (!last || last.type !== ACK_STATE_EVENT_TYPE) return empty;
      // A group deleted and created again under the same name starts afresh.
      const generation = (JSON.parse(Buffer.from(last.metadata).toString('utf8') || '{}') as { generation?: string }).generation;
      if (generation !== this.definition.generation) return empty;
      return decodeAckState(last.data);
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return empty;
      throw error;
    }
  }

  private async loadParkedExtent(): Promise<void> {
    try {
      const [last] = await this.store.readStream(this.parkedStream, { direction: 'backwards', maxCount: 1 });
      this.parkedNext = last ? last.revision + 1 : 0;
      const { metadata } = await this.store.getStreamMetadata(this.parkedStream);
      const truncateBefore = metadata.$tb;
      this.parkedFrom = typeof truncateBefore === 'number' ? Math.min(truncateBefore, this.parkedNext) : 0;
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return;
      throw error;
    }
  }
}
