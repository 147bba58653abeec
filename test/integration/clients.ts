import type { Readable } from 'node:stream';
import type * as KurrentLib from '@kurrent/kurrentdb-client';
import type * as EsdbLib from '@eventstore/db-client';

/**
 * One face for the two official clients, so a table of tests runs unchanged against both:
 * `@kurrent/kurrentdb-client` ("kurrentdb": reads through its Rust addon, everything else
 * through grpc-js) and `@eventstore/db-client` ("esdb": everything through grpc-js).
 *
 * The two packages cannot be loaded into one process: their generated protobuf code registers
 * the same message classes (`proto.event_store.client.*`) on one global object, and whichever
 * loads second replaces the other's (the kurrentdb client then throws inside
 * `BatchAppendReq.Options.setDeadline21100`, the esdb client fails with "Request message
 * serialization failure: message.getDeadline21100 is not a function"). So a process loads
 * exactly one of them, with `loadClientKit` (client-matrix.ts runs one process per client).
 */

export type ClientName = 'kurrentdb' | 'esdb';
export const CLIENT_NAMES: readonly ClientName[] = ['kurrentdb', 'esdb'];

export type StreamState = 'any' | 'no_stream' | 'stream_exists' | bigint;
export interface Position {
  commit: bigint;
  prepare: bigint;
}

export interface ProposedEvent {
  id?: string;
  type: string;
  /** JSON data (ignored when `binary` is given). */
  data?: unknown;
  /** Raw bytes: sent as a binary (application/octet-stream) event. */
  binary?: Uint8Array;
  metadata?: unknown;
}

export interface ReadEvent {
  streamId: string;
  revision: bigint;
  id: string;
  type: string;
  data: unknown;
  metadata: unknown;
  isJson: boolean;
  created: Date;
  position: Position | undefined;
  commitPosition: bigint | undefined;
}

export interface AppendOutcome {
  success: boolean;
  nextExpectedRevision: bigint;
  position: Position | undefined;
}

export interface ReadStreamOptions {
  direction?: 'forwards' | 'backwards';
  fromRevision?: 'start' | 'end' | bigint;
  maxCount?: number;
}

export interface ReadAllOptions {
  direction?: 'forwards' | 'backwards';
  fromPosition?: 'start' | 'end' | Position;
  maxCount?: number;
}

export interface SubscriptionFilterSpec {
  on: 'streamName' | 'eventType';
  prefixes?: string[];
  regex?: string;
  checkpointInterval?: number;
  maxSearchWindow?: number;
}

/** What a client's WrongExpectedVersionError says: the stream, the expected and the actual state. */
export interface WrongVersionFacts {
  streamName: string;
  expected: unknown;
  actual: unknown;
}

export interface ConnectOptions {
  /** Use the `+discover` scheme: the client asks Gossip.Read for the members first. */
  discover?: boolean;
  /** Several seeds (host:port), gossip is used to pick a member. */
  seeds?: readonly string[];
  /** Extra query parameters, e.g. 'nodePreference=leader'. */
  query?: string;
  /** Connect over TLS, trusting this CA certificate (PEM file). */
  tlsCaFile?: string;
}

export interface TestClient {
  readonly name: ClientName;
  readonly connectionString: string;
  append(stream: string, events: ProposedEvent[], state?: StreamState): Promise<AppendOutcome>;
  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadEvent[]>;
  readAll(options?: ReadAllOptions): Promise<ReadEvent[]>;
  deleteStream(stream: string, expected?: StreamState): Promise<Position | undefined>;
  tombstoneStream(stream: string, expected?: StreamState): Promise<Position | undefined>;
  setStreamMetadata(stream: string, metadata: Record<string, unknown>): Promise<AppendOutcome>;
  getStreamMetadata(stream: string): Promise<{ metadata: Record<string, unknown> | undefined; metastreamRevision: bigint | undefined }>;
  subscribeToStream(stream: string, from: 'start' | 'end' | bigint): SubscriptionRecorder;
  subscribeToAll(from: 'start' | 'end' | Position, filter?: SubscriptionFilterSpec): SubscriptionRecorder;
  /** The server's advertised methods as the client sees them (kurrentdb: its `capabilities`). */
  supportsBatchAppend(): Promise<boolean | undefined>;
  /** Persistent subscriptions: `source` is a stream name, or '$all'. */
  persistent: PersistentOperations;
  dispose(): Promise<void>;
}

export interface ClientKit {
  name: ClientName;
  connect(port: number, options?: ConnectOptions): TestClient;
  /** The client's error classes, by the client's own names. */
  errors: {
    WrongExpectedVersionError: abstract new (...args: never[]) => Error;
    StreamNotFoundError: abstract new (...args: never[]) => Error;
    StreamDeletedError: abstract new (...args: never[]) => Error;
    MaxAppendSizeExceededError: abstract new (...args: never[]) => Error;
    PersistentSubscriptionExistsError: abstract new (...args: never[]) => Error;
    PersistentSubscriptionDoesNotExistError: abstract new (...args: never[]) => Error;
    PersistentSubscriptionMaximumSubscribersReachedError: abstract new (...args: never[]) => Error;
    PersistentSubscriptionDroppedError: abstract new (...args: never[]) => Error;
  };
  wrongVersionFacts(error: unknown): WrongVersionFacts | undefined;
  maxAppendSizeOf(error: unknown): number | undefined;
}

export async function loadClientKit(name: ClientName): Promise<ClientKit> {
  return name === 'kurrentdb' ? kurrentKit(await import('@kurrent/kurrentdb-client')) : esdbKit(await import('@eventstore/db-client'));
}

// ------------------------------------------------------------------------------ shared pieces

interface RecordedLike {
  streamId: string;
  revision: bigint;
  id: string;
  type: string;
  data: unknown;
  metadata?: unknown;
  isJson: boolean;
  created: Date;
  position?: Position;
}

interface ResolvedLike {
  event?: RecordedLike;
  commitPosition?: bigint;
}

function toReadEvent(resolved: ResolvedLike): ReadEvent {
  const event = resolved.event;
  if (!event) throw new Error('a read returned a resolved event without an event');
  return {
    streamId: event.streamId,
    revision: event.revision,
    id: event.id,
    type: event.type,
    data: event.data,
    metadata: event.metadata,
    isJson: event.isJson,
    created: event.created,
    position: event.position,
    commitPosition: resolved.commitPosition,
  };
}

async function collect(iterator: AsyncIterable<ResolvedLike>): Promise<ReadEvent[]> {
  const events: ReadEvent[] = [];
  for await (const resolved of iterator) events.push(toReadEvent(resolved));
  return events;
}

function connectionString(scheme: 'kurrentdb' | 'esdb', port: number, options: ConnectOptions): string {
  const hosts = options.seeds?.length ? options.seeds.join(',') : `127.0.0.1:${port}`;
  const tls = options.tlsCaFile ? ['tls=true', `tlsCAFile=${options.tlsCaFile}`] : ['tls=false'];
  const query = [...tls, ...(options.query ? [options.query] : [])].join('&');
  return `${scheme}${options.discover ? '+discover' : ''}://${hosts}?${query}`;
}

/** What both clients' subscriptions are: a Readable of resolved events with a few extra events. */
interface SubscriptionLike extends Readable {
  unsubscribe(): Promise<void>;
}

/**
 * Records what a subscription delivers: events (normalized), caught-up and fell-behind signals,
 * checkpoints, an error or the end. `waitFor` waits (bounded) for a condition on that record.
 */
/**
 * Resolves once `condition()` holds (checked on every change a recorder signals through
 * `waiters`); rejects with `failedFirst()` when that says the subscription failed, or with
 * `late()` after `timeoutMs`.
 */
function waitForRecord(waiters: Set<() => void>, condition: () => boolean, failedFirst: () => string | undefined, timeoutMs: number, late: () => string): Promise<void> {
  if (condition()) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      if (condition()) {
        finish();
        resolve();
        return;
      }
      const failure = failedFirst();
      if (failure !== undefined) {
        finish();
        reject(new Error(failure));
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(late()));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
  });
}

/** Both recorders note a subscription's first error and its end the same way. */
function recordEnding(subscription: Readable, record: { error: Error | undefined; ended: boolean }, changed: () => void): void {
  subscription.on('error', (error: Error) => {
    record.error ??= error;
    changed();
  });
  const ended = () => {
    record.ended = true;
    changed();
  };
  subscription.on('end', ended);
  subscription.on('close', ended);
}

export class SubscriptionRecorder {
  readonly events: ReadEvent[] = [];
  readonly checkpoints: Position[] = [];
  caughtUp = 0;
  fellBehind = 0;
  confirmed = false;
  error: Error | undefined;
  ended = false;
  private readonly waiters = new Set<() => void>();
  private subscription: SubscriptionLike | undefined;

  /** Called by the client's `checkpointReached` callback (filtered $all subscriptions). */
  onCheckpoint = (position: Position): void => {
    this.checkpoints.push(position);
    this.changed();
  };

  attach(subscription: SubscriptionLike): this {
    this.subscription = subscription;
    subscription.on('data', (resolved: ResolvedLike) => {
      this.events.push(toReadEvent(resolved));
      this.changed();
    });
    subscription.on('confirmation', () => {
      this.confirmed = true;
      this.changed();
    });
    subscription.on('caughtUp', () => {
      this.caughtUp++;
      this.changed();
    });
    subscription.on('fellBehind', () => {
      this.fellBehind++;
      this.changed();
    });
    recordEnding(subscription, this, () => this.changed());
    return this;
  }

  private changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves once `condition()` holds; rejects after `timeoutMs`, or early if the subscription fails first. */
  waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return waitForRecord(this.waiters, condition, () => (this.error ? `${what}: the subscription failed first: ${this.error.name}: ${this.error.message} (${this.summary()})` : undefined), timeoutMs, () => `${what}: not within ${timeoutMs} ms (${this.summary()})`);
  }

  summary(): string {
    const last = this.events.at(-1);
    return `${this.events.length} events${last ? `, last ${last.streamId}@${last.revision}` : ''}, caughtUp ${this.caughtUp}, fellBehind ${this.fellBehind}, checkpoints ${this.checkpoints.length}, ended ${this.ended}, error ${this.error ? this.error.message : 'none'}`;
  }

  async unsubscribe(): Promise<void> {
    await this.subscription?.unsubscribe();
  }
}

// ------------------------------------------------------------------ persistent subscriptions

export type PersistentStrategy = 'RoundRobin' | 'DispatchToSingle' | 'Pinned' | 'PinnedByCorrelation';

/** Group settings in the clients' own names; what is left out gets the client's default. */
export interface PersistentSettings {
  /** A stream revision for a stream group, a position for a $all group. */
  startFrom?: 'start' | 'end' | bigint | Position;
  resolveLinkTos?: boolean;
  extraStatistics?: boolean;
  messageTimeout?: number;
  maxRetryCount?: number;
  checkPointAfter?: number;
  checkPointLowerBound?: number;
  checkPointUpperBound?: number;
  maxSubscriberCount?: number | 'unbounded';
  liveBufferSize?: number;
  readBatchSize?: number;
  historyBufferSize?: number;
  consumerStrategyName?: PersistentStrategy;
}

/** What the clients' GetInfo/List return (both clients map the reply the same way). */
export interface PersistentInfo {
  eventSource: string;
  groupName: string;
  status: string;
  settings: Record<string, unknown> & { startFrom: unknown; consumerStrategyName: string; maxSubscriberCount: unknown };
  stats: {
    totalItems: bigint;
    totalInFlightMessages: number;
    outstandingMessagesCount: number;
    retryBufferCount: number;
    readBufferCount: number;
    liveBufferCount: bigint;
    parkedMessageCount: bigint;
    /** Stream groups: a revision; $all groups: a position. Undefined when none. */
    lastCheckpointed: bigint | Position | undefined;
    lastKnown: bigint | Position | undefined;
  };
  connections: { from: string; username: string; connectionName: string; inFlightMessages: number; availableSlots: number; totalItems: bigint }[];
}

export interface PersistentOperations {
  create(source: string, group: string, settings?: PersistentSettings, filter?: SubscriptionFilterSpec): Promise<void>;
  update(source: string, group: string, settings?: PersistentSettings): Promise<void>;
  delete(source: string, group: string): Promise<void>;
  getInfo(source: string, group: string): Promise<PersistentInfo>;
  /** All groups (no source), or those of one stream or of '$all'. */
  list(source?: string): Promise<PersistentInfo[]>;
  replayParked(source: string, group: string, stopAt?: number): Promise<void>;
  restartSubsystem(): Promise<void>;
  /** Connects a consumer; `decide` says what it does with each delivery (default: ack). */
  subscribe(source: string, group: string, options?: { bufferSize?: number; decide?: PersistentDecider }): PersistentRecorder;
}

/** What a consumer does with a delivery: answer it at once, or hold it (no answer, the test may answer later). */
export type PersistentDecision = 'ack' | 'park' | 'retry' | 'skip' | 'stop' | 'hold';
export type PersistentDecider = (delivery: PersistentDelivery, recorder: PersistentRecorder) => PersistentDecision;

export interface PersistentDelivery {
  event: ReadEvent;
  /** The id the consumer acknowledges: the link's when the event came through a link. */
  ackId: string;
  retryCount: number;
  /** performance.now() when it arrived. */
  at: number;
  raw: unknown;
}

interface PersistentSubscriptionLike extends SubscriptionLike {
  ack(...events: unknown[]): Promise<void>;
  nack(action: string, reason: string, ...events: unknown[]): Promise<void>;
}

/**
 * One consumer of a persistent subscription group: records each delivery with its retry count,
 * answers it as `decide` says (ack, nack with park/retry/skip/stop, or hold), and records the
 * answers sent with the time they were sent, so tests can tell acknowledged from unacknowledged.
 */
export class PersistentRecorder {
  readonly deliveries: PersistentDelivery[] = [];
  /** Ack-ids acknowledged (the write to the call completed), in order, with performance.now() when the ack was sent. */
  readonly acked: { id: string; sentAt: number }[] = [];
  readonly nacked: { id: string; action: string; sentAt: number }[] = [];
  readonly held: PersistentDelivery[] = [];
  confirmed = false;
  error: Error | undefined;
  ended = false;
  /** Errors from ack/nack writes (a call that is already gone). */
  readonly answerErrors: Error[] = [];
  private readonly waiters = new Set<() => void>();
  private subscription: PersistentSubscriptionLike | undefined;

  constructor(
    readonly label: string,
    public decide: PersistentDecider = () => 'ack',
  ) {}

  attach(subscription: PersistentSubscriptionLike): this {
    this.subscription = subscription;
    subscription.on('data', (resolved: ResolvedLike & { retryCount?: number; link?: RecordedLike }) => {
      const delivery: PersistentDelivery = {
        event: toReadEvent(resolved),
        ackId: resolved.link?.id ?? resolved.event!.id,
        retryCount: resolved.retryCount ?? 0,
        at: performance.now(),
        raw: resolved,
      };
      this.deliveries.push(delivery);
      let decision: PersistentDecision;
      try {
        decision = this.decide(delivery, this);
      } catch (error) {
        this.error ??= error as Error;
        decision = 'hold';
      }
      if (decision === 'hold') this.held.push(delivery);
      else if (decision === 'ack') void this.ack([delivery]);
      else void this.nack(decision, [delivery]);
      this.changed();
    });
    subscription.on('confirmation', () => {
      this.confirmed = true;
      this.changed();
    });
    recordEnding(subscription, this, () => this.changed());
    return this;
  }

  /** Acknowledges deliveries (removing them from `held`). */
  async ack(deliveries: readonly PersistentDelivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    this.unhold(deliveries);
    const sentAt = performance.now();
    try {
      await this.subscription!.ack(...deliveries.map((delivery) => delivery.raw));
      for (const delivery of deliveries) this.acked.push({ id: delivery.ackId, sentAt });
    } catch (error) {
      this.answerErrors.push(error as Error);
    }
    this.changed();
  }

  async nack(action: 'park' | 'retry' | 'skip' | 'stop', deliveries: readonly PersistentDelivery[], reason = `test ${action}`): Promise<void> {
    if (deliveries.length === 0) return;
    this.unhold(deliveries);
    const sentAt = performance.now();
    try {
      await this.subscription!.nack(action, reason, ...deliveries.map((delivery) => delivery.raw));
      for (const delivery of deliveries) this.nacked.push({ id: delivery.ackId, action, sentAt });
    } catch (error) {
      this.answerErrors.push(error as Error);
    }
    this.changed();
  }

  private unhold(deliveries: readonly PersistentDelivery[]): void {
    for (const delivery of deliveries) {
      const index = this.held.indexOf(delivery);
      if (index >= 0) this.held.splice(index, 1);
    }
  }

  /** Ids in delivery order. */
  ids(): string[] {
    return this.deliveries.map((delivery) => delivery.ackId);
  }

  private changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves once `condition()` holds; rejects after `timeoutMs`, or early if the subscription fails first (unless `allowError`). */
  waitFor(condition: () => boolean, timeoutMs: number, what: string, allowError = false): Promise<void> {
    return waitForRecord(
      this.waiters,
      condition,
      () => (this.error && !allowError ? `${what}: ${this.label}'s subscription failed first: ${this.error.name}: ${this.error.message} (${this.summary()})` : undefined),
      timeoutMs,
      () => `${what}: not within ${timeoutMs} ms (${this.summary()})`,
    );
  }

  summary(): string {
    const last = this.deliveries.at(-1);
    return `${this.label}: ${this.deliveries.length} deliveries${last ? `, last ${last.event.streamId}@${last.event.revision} retry ${last.retryCount}` : ''}, acked ${this.acked.length}, nacked ${this.nacked.length}, held ${this.held.length}, confirmed ${this.confirmed}, ended ${this.ended}, error ${this.error ? `${this.error.name}: ${this.error.message}` : 'none'}`;
  }

  async unsubscribe(): Promise<void> {
    await this.subscription?.unsubscribe();
  }
}

/** The part of either client's module the persistent-subscription operations use. */
interface PersistentLib {
  START: unknown;
  END: unknown;
  UNBOUNDED: unknown;
  persistentSubscriptionToStreamSettingsFromDefaults(changes?: object): unknown;
  persistentSubscriptionToAllSettingsFromDefaults(changes?: object): unknown;
  streamNameFilter(options: object): unknown;
  eventTypeFilter(options: object): unknown;
}

/** The part of either client the persistent-subscription operations use (both name them alike). */
interface PersistentClientLike {
  createPersistentSubscriptionToStream(stream: string, group: string, settings: unknown): Promise<void>;
  createPersistentSubscriptionToAll(group: string, settings: unknown, options?: { filter?: unknown }): Promise<void>;
  updatePersistentSubscriptionToStream(stream: string, group: string, settings: unknown): Promise<void>;
  updatePersistentSubscriptionToAll(group: string, settings: unknown): Promise<void>;
  deletePersistentSubscriptionToStream(stream: string, group: string): Promise<void>;
  deletePersistentSubscriptionToAll(group: string): Promise<void>;
  getPersistentSubscriptionToStreamInfo(stream: string, group: string): Promise<unknown>;
  getPersistentSubscriptionToAllInfo(group: string): Promise<unknown>;
  listAllPersistentSubscriptions(): Promise<unknown[]>;
  listPersistentSubscriptionsToStream(stream: string): Promise<unknown[]>;
  listPersistentSubscriptionsToAll(): Promise<unknown[]>;
  replayParkedMessagesToStream(stream: string, group: string, options?: { stopAt?: number }): Promise<void>;
  replayParkedMessagesToAll(group: string, options?: { stopAt?: number }): Promise<void>;
  restartPersistentSubscriptionSubsystem(): Promise<void>;
  subscribeToPersistentSubscriptionToStream(stream: string, group: string, options?: { bufferSize?: number }): PersistentSubscriptionLike;
  subscribeToPersistentSubscriptionToAll(group: string, options?: { bufferSize?: number }): PersistentSubscriptionLike;
}

function persistentOperations(lib: PersistentLib, client: PersistentClientLike): PersistentOperations {
  const ALL = '$all';
  const settingsOf = (source: string, settings: PersistentSettings = {}) => {
    const { startFrom, maxSubscriberCount, ...rest } = settings;
    const changes: Record<string, unknown> = { ...rest };
    if (startFrom !== undefined) changes.startFrom = startFrom === 'start' ? lib.START : startFrom === 'end' ? lib.END : startFrom;
    if (maxSubscriberCount !== undefined) changes.maxSubscriberCount = maxSubscriberCount === 'unbounded' ? lib.UNBOUNDED : maxSubscriberCount;
    return source === ALL ? lib.persistentSubscriptionToAllSettingsFromDefaults(changes) : lib.persistentSubscriptionToStreamSettingsFromDefaults(changes);
  };
  const infoOf = (raw: unknown): PersistentInfo => {
    const info = raw as PersistentInfo & { stats: Record<string, unknown> };
    const stats = info.stats;
    return {
      ...info,
      stats: {
        ...(stats as unknown as PersistentInfo['stats']),
        lastCheckpointed: (stats.lastCheckpointedEventRevision ?? stats.lastCheckpointedEventPosition) as bigint | Position | undefined,
        lastKnown: (stats.lastKnownEventRevision ?? stats.lastKnownEventPosition) as bigint | Position | undefined,
      },
    };
  };
  return {
    async create(source, group, settings, filter) {
      if (source !== ALL) {
        if (filter) throw new Error('a filter is for $all groups only');
        return client.createPersistentSubscriptionToStream(source, group, settingsOf(source, settings));
      }
      let built: unknown;
      if (filter) {
        const make = filter.on === 'streamName' ? lib.streamNameFilter : lib.eventTypeFilter;
        built = filter.regex !== undefined ? make({ regex: filter.regex }) : make({ prefixes: filter.prefixes ?? [] });
      }
      return client.createPersistentSubscriptionToAll(group, settingsOf(source, settings), built ? { filter: built } : {});
    },
    update: (source, group, settings) =>
      source === ALL ? client.updatePersistentSubscriptionToAll(group, settingsOf(source, settings)) : client.updatePersistentSubscriptionToStream(source, group, settingsOf(source, settings)),
    delete: (source, group) => (source === ALL ? client.deletePersistentSubscriptionToAll(group) : client.deletePersistentSubscriptionToStream(source, group)),
    getInfo: async (source, group) => infoOf(source === ALL ? await client.getPersistentSubscriptionToAllInfo(group) : await client.getPersistentSubscriptionToStreamInfo(source, group)),
    list: async (source) =>
      (source === undefined ? await client.listAllPersistentSubscriptions() : source === ALL ? await client.listPersistentSubscriptionsToAll() : await client.listPersistentSubscriptionsToStream(source)).map(infoOf),
    replayParked: (source, group, stopAt) => {
      const options = stopAt !== undefined ? { stopAt } : {};
      return source === ALL ? client.replayParkedMessagesToAll(group, options) : client.replayParkedMessagesToStream(source, group, options);
    },
    restartSubsystem: () => client.restartPersistentSubscriptionSubsystem(),
    subscribe(source, group, options = {}) {
      const recorder = new PersistentRecorder(`${group}@${source}`, options.decide);
      const subscribeOptions = options.bufferSize !== undefined ? { bufferSize: options.bufferSize } : {};
      return recorder.attach(source === ALL ? client.subscribeToPersistentSubscriptionToAll(group, subscribeOptions) : client.subscribeToPersistentSubscriptionToStream(source, group, subscribeOptions));
    },
  };
}

// --------------------------------------------------------------------- @kurrent/kurrentdb-client

type Kurrent = typeof KurrentLib;

function kurrentKit(lib: Kurrent): ClientKit {
  const event = (proposed: ProposedEvent) =>
    proposed.binary !== undefined
      ? lib.binaryEvent({ type: proposed.type, data: proposed.binary, ...(proposed.id ? { id: proposed.id } : {}), ...(proposed.metadata !== undefined ? { metadata: proposed.metadata } : {}) })
      : lib.jsonEvent({
          type: proposed.type,
          data: (proposed.data ?? {}) as Record<string, unknown>,
          ...(proposed.id ? { id: proposed.id } : {}),
          ...(proposed.metadata !== undefined ? { metadata: proposed.metadata as Record<string, unknown> } : {}),
        });
  const appendState = (state: StreamState) => (state === 'any' ? lib.ANY : state === 'no_stream' ? lib.NO_STREAM : state === 'stream_exists' ? lib.STREAM_EXISTS : state);
  const deleteState = (state: StreamState) => {
    if (state === 'stream_exists') throw new Error('delete/tombstone take any, no_stream or a revision');
    return state === 'any' ? lib.ANY : state === 'no_stream' ? lib.NO_STREAM : state;
  };
  return {
    name: 'kurrentdb',
    errors: lib,
    wrongVersionFacts: (error) =>
      error instanceof lib.WrongExpectedVersionError ? { streamName: error.streamName, expected: error.expectedState, actual: error.actualState } : undefined,
    maxAppendSizeOf: (error) => (error instanceof lib.MaxAppendSizeExceededError ? error.maxAppendSize : undefined),
    connect(port, options = {}) {
      const text = connectionString('kurrentdb', port, options);
      const client = lib.KurrentDBClient.connectionString(text);
      return {
        name: 'kurrentdb',
        connectionString: text,
        async append(stream, events, state = 'any') {
          const result = await client.appendToStream(stream, events.map(event), { streamState: appendState(state) });
          return { success: result.success, nextExpectedRevision: result.nextExpectedRevision, position: result.position };
        },
        readStream: (stream, options = {}) =>
          collect(
            client.readStream(stream, {
              direction: options.direction === 'backwards' ? lib.BACKWARDS : lib.FORWARDS,
              fromRevision: options.fromRevision === 'end' ? lib.END : options.fromRevision === 'start' || options.fromRevision === undefined ? lib.START : options.fromRevision,
              ...(options.maxCount !== undefined ? { maxCount: options.maxCount } : {}),
            }),
          ),
        readAll: (options = {}) =>
          collect(
            client.readAll({
              direction: options.direction === 'backwards' ? lib.BACKWARDS : lib.FORWARDS,
              fromPosition: options.fromPosition === 'end' ? lib.END : options.fromPosition === 'start' || options.fromPosition === undefined ? lib.START : options.fromPosition,
              ...(options.maxCount !== undefined ? { maxCount: options.maxCount } : {}),
            }),
          ),
        deleteStream: async (stream, expected = 'any') => (await client.deleteStream(stream, { expectedRevision: deleteState(expected) })).position,
        tombstoneStream: async (stream, expected = 'any') => (await client.tombstoneStream(stream, { expectedRevision: deleteState(expected) })).position,
        async setStreamMetadata(stream, metadata) {
          const result = await client.setStreamMetadata(stream, metadata);
          return { success: result.success, nextExpectedRevision: result.nextExpectedRevision, position: result.position };
        },
        async getStreamMetadata(stream) {
          const result = await client.getStreamMetadata(stream);
          return { metadata: result.metadata as Record<string, unknown> | undefined, metastreamRevision: result.metastreamRevision };
        },
        subscribeToStream(stream, from) {
          const recorder = new SubscriptionRecorder();
          return recorder.attach(client.subscribeToStream(stream, { fromRevision: from === 'start' ? lib.START : from === 'end' ? lib.END : from }));
        },
        subscribeToAll(from, filter) {
          const recorder = new SubscriptionRecorder();
          const fromPosition = from === 'start' ? lib.START : from === 'end' ? lib.END : from;
          let built: KurrentLib.Filter | undefined;
          if (filter) {
            const common = {
              checkpointReached: (_subscription: unknown, position: Position) => recorder.onCheckpoint(position),
              ...(filter.checkpointInterval !== undefined ? { checkpointInterval: filter.checkpointInterval } : {}),
              ...(filter.maxSearchWindow !== undefined ? { maxSearchWindow: filter.maxSearchWindow } : {}),
            };
            const make = filter.on === 'streamName' ? lib.streamNameFilter : lib.eventTypeFilter;
            built = filter.regex !== undefined ? make({ ...common, regex: filter.regex }) : make({ ...common, prefixes: filter.prefixes ?? [] });
          }
          return recorder.attach(client.subscribeToAll({ fromPosition, ...(built ? { filter: built } : {}) }));
        },
        async supportsBatchAppend() {
          return supportsThroughCapabilities(client, await import('@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_grpc_pb.js'));
        },
        persistent: persistentOperations(lib as unknown as PersistentLib, client as unknown as PersistentClientLike),
        dispose: () => client.dispose(),
      };
    },
  };
}

// -------------------------------------------------------------------------- @eventstore/db-client

type Esdb = typeof EsdbLib;

function esdbKit(lib: Esdb): ClientKit {
  const event = (proposed: ProposedEvent) =>
    proposed.binary !== undefined
      ? lib.binaryEvent({ type: proposed.type, data: proposed.binary, ...(proposed.id ? { id: proposed.id } : {}), ...(proposed.metadata !== undefined ? { metadata: proposed.metadata } : {}) })
      : lib.jsonEvent({
          type: proposed.type,
          data: (proposed.data ?? {}) as Record<string, unknown>,
          ...(proposed.id ? { id: proposed.id } : {}),
          ...(proposed.metadata !== undefined ? { metadata: proposed.metadata as Record<string, unknown> } : {}),
        });
  const appendState = (state: StreamState) => (state === 'any' ? lib.ANY : state === 'no_stream' ? lib.NO_STREAM : state === 'stream_exists' ? lib.STREAM_EXISTS : state);
  const deleteState = (state: StreamState) => {
    if (state === 'stream_exists') throw new Error('delete/tombstone take any, no_stream or a revision');
    return state === 'any' ? lib.ANY : state === 'no_stream' ? lib.NO_STREAM : state;
  };
  return {
    name: 'esdb',
    errors: lib,
    wrongVersionFacts: (error) =>
      error instanceof lib.WrongExpectedVersionError ? { streamName: error.streamName, expected: error.expectedVersion, actual: error.actualVersion } : undefined,
    maxAppendSizeOf: (error) => (error instanceof lib.MaxAppendSizeExceededError ? error.maxAppendSize : undefined),
    connect(port, options = {}) {
      const text = connectionString('esdb', port, options);
      const client = lib.EventStoreDBClient.connectionString(text);
      return {
        name: 'esdb',
        connectionString: text,
        async append(stream, events, state = 'any') {
          const result = await client.appendToStream(stream, events.map(event), { expectedRevision: appendState(state) });
          return { success: result.success, nextExpectedRevision: result.nextExpectedRevision, position: result.position };
        },
        readStream: (stream, options = {}) =>
          collect(
            client.readStream(stream, {
              direction: options.direction === 'backwards' ? lib.BACKWARDS : lib.FORWARDS,
              fromRevision: options.fromRevision === 'end' ? lib.END : options.fromRevision === 'start' || options.fromRevision === undefined ? lib.START : options.fromRevision,
              ...(options.maxCount !== undefined ? { maxCount: options.maxCount } : {}),
            }),
          ),
        readAll: (options = {}) =>
          collect(
            client.readAll({
              direction: options.direction === 'backwards' ? lib.BACKWARDS : lib.FORWARDS,
              fromPosition: options.fromPosition === 'end' ? lib.END : options.fromPosition === 'start' || options.fromPosition === undefined ? lib.START : options.fromPosition,
              ...(options.maxCount !== undefined ? { maxCount: options.maxCount } : {}),
            }),
          ),
        deleteStream: async (stream, expected = 'any') => (await client.deleteStream(stream, { expectedRevision: deleteState(expected) })).position,
        tombstoneStream: async (stream, expected = 'any') => (await client.tombstoneStream(stream, { expectedRevision: deleteState(expected) })).position,
        async setStreamMetadata(stream, metadata) {
          const result = await client.setStreamMetadata(stream, metadata);
          return { success: result.success, nextExpectedRevision: result.nextExpectedRevision, position: result.position };
        },
        async getStreamMetadata(stream) {
          const result = await client.getStreamMetadata(stream);
          return { metadata: result.metadata as Record<string, unknown> | undefined, metastreamRevision: result.metastreamRevision };
        },
        subscribeToStream(stream, from) {
          const recorder = new SubscriptionRecorder();
          return recorder.attach(client.subscribeToStream(stream, { fromRevision: from === 'start' ? lib.START : from === 'end' ? lib.END : from }));
        },
        subscribeToAll(from, filter) {
          const recorder = new SubscriptionRecorder();
          const fromPosition = from === 'start' ? lib.START : from === 'end' ? lib.END : from;
          let built: EsdbLib.Filter | undefined;
          if (filter) {
            const common = {
              checkpointReached: (_subscription: unknown, position: Position) => recorder.onCheckpoint(position),
              ...(filter.checkpointInterval !== undefined ? { checkpointInterval: filter.checkpointInterval } : {}),
              ...(filter.maxSearchWindow !== undefined ? { maxSearchWindow: filter.maxSearchWindow } : {}),
            };
            const make = filter.on === 'streamName' ? lib.streamNameFilter : lib.eventTypeFilter;
            built = filter.regex !== undefined ? make({ ...common, regex: filter.regex }) : make({ ...common, prefixes: filter.prefixes ?? [] });
          }
          return recorder.attach(client.subscribeToAll({ fromPosition, ...(built ? { filter: built } : {}) }));
        },
        async supportsBatchAppend() {
          return supportsThroughCapabilities(client, await import('@eventstore/db-client/generated/streams_grpc_pb.js'));
        },
        persistent: persistentOperations(lib as unknown as PersistentLib, client as unknown as PersistentClientLike),
        dispose: () => client.dispose(),
      };
    },
  };
}

/**
 * Both clients decide whether to use BatchAppend with their (protected) `supports(method)`,
 * which reads the cached ServerFeatures.GetSupportedMethods answer. Asked here the same way.
 */
async function supportsThroughCapabilities(client: object, generated: unknown): Promise<boolean | undefined> {
  const streamsService = (generated as { StreamsService?: { batchAppend?: unknown }; default?: { StreamsService?: { batchAppend?: unknown } } });
  const method = streamsService.StreamsService?.batchAppend ?? streamsService.default?.StreamsService?.batchAppend;
  const supports = (client as { supports?: (method: unknown) => Promise<boolean> }).supports;
  if (!method || typeof supports !== 'function') return undefined;
  return supports.call(client, method);
}
