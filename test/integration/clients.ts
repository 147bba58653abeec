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
    subscription.on('error', (error: Error) => {
      this.error ??= error;
      this.changed();
    });
    subscription.on('end', () => {
      this.ended = true;
      this.changed();
    });
    subscription.on('close', () => {
      this.ended = true;
      this.changed();
    });
    return this;
  }

  private changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves once `condition()` holds; rejects after `timeoutMs`, or early if the subscription fails first. */
  waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (condition()) {
          finish();
          resolve();
        } else if (this.error) {
          finish();
          reject(new Error(`${what}: the subscription failed first: ${this.error.name}: ${this.error.message} (${this.summary()})`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${what}: not within ${timeoutMs} ms (${this.summary()})`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  summary(): string {
    const last = this.events.at(-1);
    return `${this.events.length} events${last ? `, last ${last.streamId}@${last.revision}` : ''}, caughtUp ${this.caughtUp}, fellBehind ${this.fellBehind}, checkpoints ${this.checkpoints.length}, ended ${this.ended}, error ${this.error ? this.error.message : 'none'}`;
  }

  async unsubscribe(): Promise<void> {
    await this.subscription?.unsubscribe();
  }
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
