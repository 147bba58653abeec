import {
  ChronicleError,
  EventIdConflictError,
  InvalidArgumentError,
  MaximumAppendSizeExceededError,
  StorageFailureError,
  StoreUnavailableError,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
} from '../errors.js';
import { LogCorruptionError } from '../storage/errors.js';
import type { FileSystem } from '../storage/file-system.js';
import type { IndexBackend } from '../storage/index-backend.js';
import { DEFAULT_MAX_FRAME_BYTES, Log } from '../storage/log.js';
import { MemoryFileSystem } from '../storage/memory-file-system.js';
import { NodeFileSystem } from '../storage/node-file-system.js';
import { RecordType, type LogRecord } from '../storage/record-frame.js';
import { LocalCommitter, type Committer, type Proposal } from './committer.js';
import { decodeEventAt, encodeEvents, eventHeaderAt, eventIdOffset, entryOffsetsOf, preparePositionOf, type EventToEncode } from './event-codec.js';
import { compileFilter, type EventPredicate } from './event-filter.js';
import {
  DEFAULT_MAX_APPEND_SIZE_BYTES,
  DEFAULT_MAX_EVENT_SIZE_BYTES,
  prepareEvents,
  type PreparedEvent,
  type SizeLimits,
} from './event-preparation.js';
import {
  actualStateOf,
  describeExpectedState,
  expectedStateHolds,
  parseExpectedState,
  type ExpectedState,
  type StreamView,
} from './expected-state.js';
import { DEFAULT_IDEMPOTENCY_WINDOW, IdempotencyWindow, type IdempotencyWindowLimits, type WrittenBatch } from './idempotency-window.js';
import { RecentRecords, type RecentRecordsLimits } from './recent-records.js';
import { toRecordedEvent } from './recorded-event.js';
import { indexOpened, openLmdbBackend, openMemoryBackend, recoverIdempotencyWindow, recoverIndex } from './store-recovery.js';
import type { IndexedEventFacts, StreamIndex } from './stream-index.js';
import {
  firstVisibleRevision,
  isExpired,
  isSoftDeleted,
  metadataFromJson,
  metadataToJson,
  parseStoredMetadata,
  SOFT_DELETED_TB_TEXT,
  type StreamMetadata,
} from './stream-metadata.js';
import {
  isMetastream,
  METADATA_EVENT_TYPE,
  metastreamOf,
  streamOfMetastream,
  TOMBSTONE_EVENT_TYPE,
  validateStreamName,
  validateUserWritableStream,
} from './stream-names.js';
import type {
  AppendOptions,
  AppendResult,
  DeleteResult,
  EventData,
  MultiStreamAppendResult,
  Position,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  RecordedEvent,
  StreamMetadataResult,
} from './types.js';
import { randomUuidBytes, uuidToBytes } from './uuid.js';
import { batchesOfRecord, batchRunsOf, writeFactsOf, type BatchEventFacts } from './written-batches.js';
import { WrittenIdRing } from './written-id-ring.js';
import { joinPath } from '../storage/file-system.js';

export interface EventStoreOptions {
  /** Where the log and the index live. Required unless `inMemory`. */
  directory?: string;
  /** Keep log and index in memory: same semantics, nothing survives the process. */
  inMemory?: boolean;
  /** The file system under the log (tests and the simulator pass a MemoryFileSystem). */
  fileSystem?: FileSystem;
  /** 'lmdb' (default on disk) or 'memory' (default in memory). */
  indexBackend?: 'lmdb' | 'memory';
  segmentSizeBytes?: number;
  maxEventSizeBytes?: number;
  maxAppendSizeBytes?: number;
  idempotencyWindow?: Partial<IdempotencyWindowLimits>;
  /** How long applied changes may wait in memory before going to the index backend. */
  indexFlushIntervalMs?: number;
  /** Wall clock in milliseconds (event timestamps, `$maxAge`); the simulator injects its own. */
  clock?: () => number;
  newUuid?: () => string;
  /** Where the store reports what it did on open and why (index rebuilds, torn tails). */
  log?: (message: string) => void;
  /** How the log schedules its next flush (the simulator injects its own; default `setImmediate`). */
  scheduleLogFlush?: (flush: () => void) => void;
  /** How delayed work (the index flush) is scheduled; the simulator injects simulated time. */
  scheduleTimer?: (delayMs: number, action: () => void) => { cancel(): void };
  /**
   * Cluster mode: the replication core decides what is committed. The log's tail may hold records
   * that are not committed, so the store opens with only what its index had applied and is told
   * what to apply next (`applyCommittedUpTo`); `committer` builds the committer over the log.
   */
  replication?: {
    committer: (log: Log, appliedPosition: number) => Committer;
    /** Only the simulator's broken variant sets it: replays the uncommitted tail on open. */
    replayWholeLog?: boolean;
    /** A record that starts at `position`, if the replication layer still holds it in memory. */
    recordAt?: (position: number) => LogRecord | undefined;
  };
}

/**
 * Told what the store did, for metrics. Each call is one per write, read or group commit, never one
 * per event, so observing costs the hot path a function call.
 */
export interface StoreObserver {
  /** A write committed: its events and the bytes of its record. */
  written(events: number, bytes: number): void;
  /** A read returned these events (their data and metadata bytes counted by the observer). */
  read(events: readonly RecordedEvent[]): void;
  /** A group commit made `frames` records (`bytes` bytes) durable; the fdatasync took `syncMs`. */
  flushed(frames: number, bytes: number, syncMs: number): void;
}

/** Proposals committed together (see `commitGroupFor`). */
interface CommitGroup {
  committed: Promise<void>;
  /** Where the group's last record ends. */
  end: number;
  /** Resolves once the group is committed and applied; rejects as the commit did. */
  applied: Promise<void>;
  /** `applied` as writers see it: a storage failure becomes a `StorageFailureError`. */
  settled: Promise<void>;
}

/** The state the write path decides on: the committed state plus every write still in flight. */
interface WriteView extends StreamView {
  metadata: StreamMetadata | undefined;
}

interface PendingView extends WriteView {
  /** Writes in flight that touch this stream; the entry goes when the last one is applied. */
  pending: number;
}

interface InFlightWrite {
  record: LogRecord;
  /** The events as encoded, so applying them needs no decoding. */
  events: readonly IndexedEventFacts[];
  entryOffsets: readonly number[];
  streams: string[];
  /** What the idempotency window remembers of it, forgotten if the write is abandoned. */
  batches: WrittenBatch[];
}

const READ_ALL_CHUNK_BYTES = 1024 * 1024;
const INDEX_FLUSH_AT_EVENTS = 50_000;
/** Fresh records for subscriptions and reads of the tail: 4096 small ones, or fewer large ones in 16 MiB. */
const RECENT_RECORDS: RecentRecordsLimits = { maxRecords: 4096, maxBytes: 16 * 1024 * 1024 };
const EMPTY = new Uint8Array(0);
/** The revision a tombstone is written at (KurrentDB uses the largest 64-bit value; this is the largest exact double). */
export const TOMBSTONE_REVISION = Number.MAX_SAFE_INTEGER;

/**
 * The event store: streams, revisions, expected states, idempotency, deletes and metadata over the
 * log and its index. There is one write path: validate against the latest state (including writes
 * in flight), propose to the committer, apply to the index once committed, then answer.
 */
export class EventStore {
  private readonly pendingViews = new Map<string, PendingView>();
  /**
   * In a cluster, while this node does not lead: the committed writes the idempotency window will
   * hold once it leads (see `startKeepingWriteIds`). Undefined while the window itself is kept: on
   * a single node always, on a leader.
   */
  private writtenIds: WrittenIdRing | undefined;
  /** Writes proposed and not yet applied, in log order, from `inFlightHead` on. */
  private inFlight: InFlightWrite[] = [];
  private inFlightHead = 0;
  private commitGroup: CommitGroup | undefined;
  private readonly recentRecords = new RecentRecords(RECENT_RECORDS);
  private readonly commitListeners = new Set<(position: number) => void>();
  private readonly metadataCache = new Map<string, StreamMetadata | undefined>();
  private committedPosition: number;
  private flushTimer: { cancel(): void } | undefined;
  private failure: Error | undefined;
  private closed = false;
  private observer: StoreObserver | undefined;

  private constructor(
    private readonly log: Log,
    private readonly index: StreamIndex,
    private readonly committer: Committer,
    private window: IdempotencyWindow,
    private readonly limits: SizeLimits,
    private readonly options: EventStoreOptions,
  ) {
    this.committedPosition = index.appliedPosition;
  }

  /** Opens a store: recovers the log, brings the index up to it, and refills the idempotency window. */
  static async open(options: EventStoreOptions): Promise<EventStore> {
    const inMemory = options.inMemory ?? false;
    if (!inMemory && !options.directory) throw new InvalidArgumentError('a store needs a directory unless it is in memory');
    const directory = options.directory ?? '/chronicle';
    const fileSystem = options.fileSystem ?? (inMemory ? new MemoryFileSystem() : new NodeFileSystem());
    const say = options.log ?? (() => undefined);
    const limits: SizeLimits = {
      maxEventSizeBytes: options.maxEventSizeBytes ?? DEFAULT_MAX_EVENT_SIZE_BYTES,
      maxAppendSizeBytes: options.maxAppendSizeBytes ?? DEFAULT_MAX_APPEND_SIZE_BYTES,
    };
    // A frame must hold the largest append with its framing and per-event headers.
    const maxFrameBytes = Math.max(DEFAULT_MAX_FRAME_BYTES, limits.maxAppendSizeBytes * 2 + 1024 * 1024);
    // The log reports a failure through this once the store exists to receive it.
    const failureSink: { notify?: (error: Error) => void } = {};
    const log = await Log.open({
      fileSystem,
      directory: joinPath(directory, 'log'),
      maxFrameBytes,
      ...(options.segmentSizeBytes !== undefined ? { segmentSizeBytes: options.segmentSizeBytes } : {}),
      onFailure: (error) => failureSink.notify?.(error),
      ...(options.scheduleLogFlush ? { scheduleFlush: options.scheduleLogFlush } : {}),
    });
    if (log.stats.recoveredTornBytes > 0) say(`log: cut off a torn tail of ${log.stats.recoveredTornBytes} bytes at ${log.tailPosition}`);
    const backendKind = options.indexBackend ?? (inMemory || fileSystem instanceof MemoryFileSystem ? 'memory' : 'lmdb');
    let backend: IndexBackend | undefined;
    try {
      const openingMarker = joinPath(directory, 'index.opening');
      backend = backendKind === 'lmdb' ? await openLmdbBackend(joinPath(directory, 'index'), openingMarker, say) : openMemoryBackend();
      // In a cluster the log's tail may not be committed: nothing past the index is applied yet.
      const recovery = await recoverIndex(backend, log, options.replication && !options.replication.replayWholeLog ? 'index-only' : 'whole-log');
      if (backendKind === 'lmdb') await indexOpened(openingMarker);
      if (recovery.rebuiltBecause && log.writtenPosition > log.startPosition) {
        say(`index: rebuilt from the log (${recovery.recordsReplayed} records) because ${recovery.rebuiltBecause}`);
      }
      const windowLimits = { ...DEFAULT_IDEMPOTENCY_WINDOW, ...options.idempotencyWindow };
      const window = new IdempotencyWindow(windowLimits);
      // A replica starts as a follower, which keeps the ring of written ids until it leads.
      const writtenIds = options.replication ? new WrittenIdRing(windowLimits) : undefined;
      const nowMs = (options.clock ?? Date.now)();
      await recoverIdempotencyWindow(writtenIds ?? window, log, nowMs, recovery.index.appliedPosition);
      window.evictExpired(nowMs);
      const committer = options.replication ? options.replication.committer(log, recovery.index.appliedPosition) : new LocalCommitter(log);
      const store = new EventStore(log, recovery.index, committer, window, limits, options);
      store.writtenIds = writtenIds;
      failureSink.notify = (error) => store.fail(error);
      return store;
    } catch (error) {
      // A refused open (damage found while replaying) must not leave files open behind it.
      await backend?.close().catch(() => undefined);
      await log.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * In a cluster, a write is decided only by a leader that has applied everything committed
   * before its term: elsewhere it fails ("not leader", with where the leader is) before it is
   * checked against state that may be stale. A single node always admits. `undefined` when the
   * write may be decided now, else what to wait for first (see `Committer.admitWrite`).
   */
  private admitWrite(): Promise<void> | undefined {
    const waiting = this.committer.admitWrite?.();
    if (!waiting) {
      this.assertUsable();
      return undefined;
    }
    return waiting.then(() => this.assertUsable());
  }

  private now(): number {
    return (this.options.clock ?? Date.now)();
  }

  // ---------------------------------------------------------------- write path

  /** Appends events atomically to one stream, if the expected state holds. */
  async appendToStream(stream: string, events: readonly EventData[], options: AppendOptions = {}): Promise<AppendResult> {
    this.assertUsable();
    validateStreamName(stream);
    validateUserWritableStream(stream);
    const expected = parseExpectedState(options.expectedState);
    const prepared = prepareEvents(stream, events, this.limits, this.options.newUuid);
    return this.append(stream, expected, prepared);
  }

  private async append(stream: string, expected: ExpectedState, prepared: PreparedEvent[]): Promise<AppendResult> {
    const admission = this.admitWrite();
    if (admission) await admission;
    if (prepared.length === 0) {
      const view = this.latestView(stream);
      if (view.tombstoned) throw new StreamDeletedError(stream);
      if (!expectedStateHolds(expected, view)) throw wrongExpectedVersion(stream, expected, view, 'append to');
      // Answer from committed state only: wait out the stream's writes in flight, then decide again.
      if (this.pendingViews.has(stream) && this.commitGroup) {
        await this.commitGroup.settled;
        return this.append(stream, expected, prepared);
      }
      const record = this.index.getStream(stream);
      const commit = Math.max(record?.lastCommitPosition ?? 0, 0);
      return { nextExpectedRevision: view.lastRevision, position: { commit, prepare: commit } };
    }
    const plan = this.planAppend(stream, expected, prepared);
    if (plan.kind === 'retry') {
      await this.committed(plan.batch.committed);
      return { nextExpectedRevision: plan.lastRevision, position: { commit: plan.batch.commitPosition, prepare: plan.batch.lastPreparePosition } };
    }
    const written = await this.propose(plan.writes);
    return { nextExpectedRevision: written.lastRevision, position: { commit: written.commitPosition, prepare: written.lastPreparePosition } };
  }

  /**
   * Decides, synchronously against the latest state, what appending `prepared` (non-empty) to a
   * stream means: an exact retry of an earlier batch, or the writes to propose (with the
   * recreating metadata of a soft-deleted stream first). Throws when it may not happen.
   */
  private planAppend(
    stream: string,
    expected: ExpectedState,
    prepared: PreparedEvent[],
  ): { kind: 'retry'; batch: WrittenBatch; lastRevision: number } | { kind: 'write'; writes: { stream: string; events: PreparedEvent[] }[] } {
    const view = this.latestView(stream);
    if (view.tombstoned) throw new StreamDeletedError(stream);
    // The committer admits writes only on a leader, which keeps the window; deciding one without it
    // could commit a retry twice.
    if (this.writtenIds) throw new Error('a write reached a replica that does not keep the idempotency window (it does not lead)');
    this.window.evictExpired(this.now());
    const match = this.window.match(
      stream,
      prepared.map((event) => event.id),
    );
    if (match.kind === 'conflict') throw new EventIdConflictError(stream, match.detail);
    if (match.kind === 'retry') {
      if (!expectedStateHolds(expected, match.batch.priorView)) throw wrongExpectedVersion(stream, expected, view, 'append to');
      return { kind: 'retry', batch: match.batch, lastRevision: match.batch.firstRevision + prepared.length - 1 };
    }
    if (!expectedStateHolds(expected, view)) throw wrongExpectedVersion(stream, expected, view, 'append to');
    const writes: { stream: string; events: PreparedEvent[] }[] = [];
    if (view.softDeleted && !isMetastream(stream)) {
      // Recreating a soft-deleted stream: its old events stay hidden behind a new `$tb`.
      const metadata: StreamMetadata = { ...(view.metadata ?? { custom: {} }), truncateBefore: view.lastRevision + 1 };
      writes.push({ stream: metastreamOf(stream), events: [this.metadataEvent(stream, metadata)] });
    }
    writes.push({ stream, events: prepared });
    return { kind: 'write', writes };
  }

  /**
   * Appends to several streams atomically: one record, so either every stream gets its events or
   * none does. Each stream appears once, with its own expected state; a retry of the same
   * multi-stream write (same ids) returns the original revisions and writes nothing.
   */
  async appendToStreams(requests: readonly { stream: string; events: readonly EventData[]; expectedState?: ExpectedState }[]): Promise<MultiStreamAppendResult> {
    return this.appendMany(requests, true);
  }

  /**
   * The same atomic write for the server's own subsystems, which keep their state in system
   * streams (`$persistentsubscription-...`, `$persistentSubscriptionConfig`): clients may not write
   * those, the server must.
   */
  async appendToSystemStreams(requests: readonly { stream: string; events: readonly EventData[]; expectedState?: ExpectedState }[]): Promise<MultiStreamAppendResult> {
    return this.appendMany(requests, false);
  }

  private async appendMany(
    requests: readonly { stream: string; events: readonly EventData[]; expectedState?: ExpectedState }[],
    fromClient: boolean,
  ): Promise<MultiStreamAppendResult> {
    this.assertUsable();
    if (!Array.isArray(requests) || requests.length === 0) throw new InvalidArgumentError('a multi-stream append needs at least one stream');
    const seen = new Set<string>();
    const parsed = requests.map((request) => {
      validateStreamName(request.stream);
      if (fromClient) validateUserWritableStream(request.stream);
      if (seen.has(request.stream)) throw new InvalidArgumentError(`stream '${request.stream}' appears twice in one multi-stream append`, { stream: request.stream });
      seen.add(request.stream);
      const prepared = prepareEvents(request.stream, request.events, this.limits, this.options.newUuid);
      if (prepared.length === 0) throw new InvalidArgumentError(`the multi-stream append to '${request.stream}' has no events`, { stream: request.stream });
      return { stream: request.stream, expected: parseExpectedState(request.expectedState), prepared };
    });
    let total = 0;
    for (const request of parsed) for (const event of request.prepared) total += event.data.byteLength + event.metadata.byteLength;
    if (total > this.limits.maxAppendSizeBytes) throw new MaximumAppendSizeExceededError(total, this.limits.maxAppendSizeBytes, 'the multi-stream append');
    const admission = this.admitWrite();
    if (admission) await admission;
    const plans = parsed.map((request) => ({ request, plan: this.planAppend(request.stream, request.expected, request.prepared) }));
    const retries = plans.filter(({ plan }) => plan.kind === 'retry');
    if (retries.length === plans.length) {
      const batches = retries.map(({ plan }) => plan as { kind: 'retry'; batch: WrittenBatch; lastRevision: number });
      await Promise.all(batches.map(({ batch }) => this.committed(batch.committed)));
      return {
        position: { commit: batches[0]!.batch.commitPosition, prepare: Math.max(...batches.map(({ batch }) => batch.lastPreparePosition)) },
        streams: plans.map(({ request }, i) => ({ stream: request.stream, nextExpectedRevision: batches[i]!.lastRevision })),
      };
    }
    if (retries.length > 0) {
      throw new EventIdConflictError(retries[0]!.request.stream, 'some streams of this multi-stream append repeat an earlier write and others do not');
    }
    const writes = plans.flatMap(({ plan }) => (plan.kind === 'write' ? plan.writes : []));
    const written = await this.propose(writes);
    return {
      position: { commit: written.commitPosition, prepare: written.lastPreparePosition },
      streams: parsed.map((request) => ({ stream: request.stream, nextExpectedRevision: written.changed.find((entry) => entry.stream === request.stream)!.view.lastRevision })),
    };
  }

  /**
   * Assigns revisions, encodes and proposes one record holding `writes`, records the writes as in
   * flight, and resolves once the record is committed and applied, with the position of the record
   * and the revision and prepare position of its last event.
   */
  private async propose(
    writes: readonly { stream: string; events: readonly PreparedEvent[]; tombstone?: boolean }[],
  ): Promise<{ commitPosition: number; lastRevision: number; lastPreparePosition: number; changed: readonly { stream: string; view: WriteView }[] }> {
    const createdMicros = this.now() * 1000;
    const toEncode: EventToEncode[] = [];
    // The streams this record changes and their views after it (one or two: a list beats a Map).
    const changed: { stream: string; view: WriteView }[] = [];
    const viewOf = (stream: string): WriteView => {
      for (const entry of changed) if (entry.stream === stream) return entry.view;
      return this.latestView(stream);
    };
    const setView = (stream: string, view: WriteView): void => {
      for (const entry of changed) {
        if (entry.stream === stream) {
          entry.view = view;
          return;
        }
      }
      changed.push({ stream, view });
    };
    for (const write of writes) {
      const view = viewOf(write.stream);
      let revision = view.lastRevision;
      for (const event of write.events) {
        toEncode.push({
          stream: event.stream,
          revision: write.tombstone ? TOMBSTONE_REVISION : ++revision,
          id: event.id,
          type: event.type,
          isJson: event.isJson,
          createdMicros,
          metadata: event.metadata,
          data: event.data,
        });
      }
      // A soft-deleted stream is only ever written after its recreating metadata (the write before
      // in this record), which already updated its view.
      setView(write.stream, {
        lastRevision: write.tombstone ? view.lastRevision : revision,
        tombstoned: view.tombstoned || write.tombstone === true,
        softDeleted: view.softDeleted,
        metadata: view.metadata,
      });
      if (isMetastream(write.stream)) {
        const target = streamOfMetastream(write.stream);
        const targetView = viewOf(target);
        const metadata = this.metadataOf(Buffer.from(write.events.at(-1)!.data).toString('utf8'));
        setView(target, { lastRevision: targetView.lastRevision, tombstoned: targetView.tombstoned, softDeleted: isSoftDeleted(metadata), metadata });
      }
    }
    const { frame, payload, entryOffsets } = encodeEvents(toEncode);
    if (frame.byteLength > this.log.maxFrameBytes) {
      throw new InvalidArgumentError(`the write is ${frame.byteLength} bytes, larger than a log record may be (${this.log.maxFrameBytes})`);
    }
    const proposal = this.committer.propose(RecordType.Events, frame);
    const record: LogRecord = { position: proposal.position, end: proposal.end, type: RecordType.Events, term: proposal.term, index: proposal.index, payload };
    const streams = new Array<string>(changed.length);
    for (let i = 0; i < changed.length; i++) {
      const { stream, view } = changed[i]!;
      const pending = this.pendingViews.get(stream);
      this.pendingViews.set(stream, {
        lastRevision: view.lastRevision,
        tombstoned: view.tombstoned,
        softDeleted: view.softDeleted,
        metadata: view.metadata,
        pending: (pending?.pending ?? 0) + 1,
      });
      streams[i] = stream;
    }
    const group = this.commitGroupFor(proposal);
    const batches = batchesOfRecord(toEncode, entryOffsets, payload, record.position, group.applied);
    this.inFlight.push({ record, events: toEncode, entryOffsets, streams, batches });
    for (const batch of batches) this.window.add(batch);
    await group.settled;
    this.observer?.written(toEncode.length, payload.byteLength);
    return {
      commitPosition: record.position,
      lastRevision: toEncode.at(-1)!.revision,
      lastPreparePosition: preparePositionOf(record.position, entryOffsets.at(-1)!),
      // Each stream's view after the record, its last revision included (a multi-stream append reports them).
      changed,
    };
  }

  /**
   * The group a proposal commits with. Proposals committed together (one group commit) share one
   * promise, one apply and one promise for their writers to wait on, so a batch costs one of each.
   */
  private commitGroupFor(proposal: Proposal): CommitGroup {
    const group = this.commitGroup;
    if (group && group.committed === proposal.committed) {
      group.end = proposal.end;
      return group;
    }
    const next: CommitGroup = { committed: proposal.committed, end: proposal.end, applied: Promise.resolve(), settled: Promise.resolve() };
    next.applied = proposal.committed.then(
      () => this.applyCommitted(next.end),
      (error: unknown) => {
        // A replicated write that lost its leader or quorum is not a storage failure: its outcome
        // is settled by the log (applied if it commits later, abandoned otherwise).
        if (!isReplicationOutcome(error)) this.fail(error instanceof Error ? error : new Error(String(error)));
        throw error;
      },
    );
    next.applied.catch(() => undefined);
    next.settled = this.committed(next.applied);
    next.settled.catch(() => undefined);
    this.commitGroup = next;
    return next;
  }

  /** Waits for a write to be committed and applied, turning a storage failure into its typed error. */
  private async committed(applied: Promise<void>): Promise<void> {
    try {
      await applied;
    } catch (error) {
      if (isReplicationOutcome(error)) throw error;
      throw new StorageFailureError(`the write could not be made durable: ${(error as Error).message}`, error);
    }
  }

  /** Applies, in log order, every in-flight write that ends at or before `end`. */
  private applyCommitted(end: number): void {
    this.applyInFlightUpTo(end);
    this.publishCommitted(end);
  }

  private applyInFlightUpTo(end: number): void {
    while (this.inFlightHead < this.inFlight.length && this.inFlight[this.inFlightHead]!.record.end <= end) {
      const write = this.inFlight[this.inFlightHead++]!;
      this.applyToIndex(write.record, { headers: write.events, entryOffsets: write.entryOffsets });
      this.recentRecords.add(write.record);
      for (const stream of write.streams) {
        const view = this.pendingViews.get(stream);
        if (view && --view.pending === 0) this.pendingViews.delete(stream);
      }
    }
    if (this.inFlightHead === this.inFlight.length) {
      this.inFlight = [];
      this.inFlightHead = 0;
    } else if (this.inFlightHead > 1024) {
      this.inFlight = this.inFlight.slice(this.inFlightHead);
      this.inFlightHead = 0;
    }
  }

  private applyToIndex(record: LogRecord, known?: { headers: readonly IndexedEventFacts[]; entryOffsets: readonly number[] }): void {
    try {
      this.index.apply(record, known);
    } catch (error) {
      // A broken index invariant: stop rather than answer from a wrong index.
      this.fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  }

  /**
   * Cluster mode: applies the committed log up to `end` (a record boundary): this node's own writes
   * in flight as they are, everything else (other leaders' records, no-ops) read from the log.
   * Calls must not overlap.
   */
  async applyCommittedUpTo(end: number): Promise<void> {
    this.assertUsable();
    while (this.committedPosition < end) {
      const head = this.inFlight[this.inFlightHead];
      if (head && head.record.position === this.committedPosition && head.record.end <= end) {
        this.applyInFlightUpTo(head.record.end);
        this.publishCommitted(head.record.end);
        continue;
      }
      const limit = head && head.record.position > this.committedPosition ? Math.min(end, head.record.position) : end;
      // Recent records are in memory (a follower just received them): no need to read them back.
      const cached: LogRecord[] = [];
      for (let cursor = this.committedPosition; cursor < limit && cached.length < 1024; ) {
        const record = this.options.replication?.recordAt?.(cursor);
        if (!record || record.end > limit) break;
        cached.push(record);
        cursor = record.end;
      }
      const records = cached.length > 0 ? cached : await this.log.read(this.committedPosition, READ_ALL_CHUNK_BYTES, limit);
      if (records.length === 0 || records[0]!.position !== this.committedPosition) {
        throw new Error(`cannot apply the committed log at ${this.committedPosition}: no record starts there (applying up to ${end})`);
      }
      for (const record of records) {
        if (record.type === RecordType.Events) {
          // Decoded once, for the index and for the idempotency window.
          const offsets = entryOffsetsOf(record.payload);
          const facts = offsets.map((offset) => eventHeaderAt(record.payload, offset));
          this.applyToIndex(record, { headers: facts, entryOffsets: offsets });
          this.rememberWrites(record, facts, offsets);
        } else {
          this.applyToIndex(record);
        }
        this.recentRecords.add(record);
      }
      this.publishCommitted(records.at(-1)!.end);
    }
  }

  /**
   * Cluster mode: this node stopped leading, so its writes in flight may never commit (or may,
   * under the next leader, and are then applied from the log). Forgets them: their views and what
   * the idempotency window holds of them. Their callers get the committer's error.
   */
  abandonInFlight(): void {
    for (let i = this.inFlightHead; i < this.inFlight.length; i++) {
      for (const batch of this.inFlight[i]!.batches) this.window.forget(batch);
    }
    this.inFlight = [];
    this.inFlightHead = 0;
    this.pendingViews.clear();
    this.commitGroup = undefined;
  }

  /** The writes of an applied record from another node, for the window or the ring. */
  private rememberWrites(record: LogRecord, facts: readonly BatchEventFacts[], offsets: readonly number[]): void {
    const ring = this.writtenIds;
    if (!ring) {
      for (const batch of batchesOfRecord(facts, offsets, record.payload, record.position, APPLIED)) this.window.add(batch);
      return;
    }
    const runs = batchRunsOf(facts);
    for (let run = 0; run < runs.length; run += 3) {
      const start = runs[run]!;
      ring.record(writeFactsOf(facts, runs, run, offsets, record.position), record.payload, offsets, start, runs[run + 1]! - start, eventIdOffset(0));
    }
  }

  /**
   * Cluster mode: this node starts to lead, and so to decide writes. The idempotency window is
   * built from the ring of committed writes it kept as a follower (about a tenth of a second for
   * 100,000 ids, no read of the log), so a client retrying a write after a failover is recognised.
   */
  startKeepingWriteIds(): void {
    const ring = this.writtenIds;
    if (!ring) return;
    this.window = ring.toWindow(this.window.limits, this.now());
    this.writtenIds = undefined;
  }

  /**
   * Cluster mode: this node stopped leading (after `abandonInFlight`, so the window holds committed
   * writes only). A follower keeps the ring instead: a copy of the ids per write it applies, where
   * the window cost a hash-table insertion and removal and three objects.
   */
  stopKeepingWriteIds(): void {
    if (this.writtenIds) return;
    this.writtenIds = WrittenIdRing.fromWindow(this.window);
    this.window = new IdempotencyWindow(this.window.limits);
  }

  private publishCommitted(end: number): void {
    if (end > this.committedPosition) {
      this.committedPosition = end;
      for (const listener of this.commitListeners) {
        try {
          listener(end);
        } catch (error) {
          // A listener's bug must not fail writes that are durable, nor starve the other listeners.
          this.options.log?.(`a commit listener failed: ${(error as Error).message}`);
        }
      }
    }
    this.scheduleIndexFlush();
  }

  private scheduleIndexFlush(): void {
    if (this.index.unflushedEventCount >= INDEX_FLUSH_AT_EVENTS) {
      this.flushIndex();
      return;
    }
    if (this.flushTimer || this.closed) return;
    const flush = (): void => {
      this.flushTimer = undefined;
      this.flushIndex();
    };
    const delayMs = this.options.indexFlushIntervalMs ?? 200;
    if (this.options.scheduleTimer) {
      this.flushTimer = this.options.scheduleTimer(delayMs, flush);
    } else {
      const timer = setTimeout(flush, delayMs);
      timer.unref();
      this.flushTimer = { cancel: () => clearTimeout(timer) };
    }
  }

  private flushIndex(): void {
    this.index.flush().catch((error: unknown) => this.fail(new Error(`index flush failed: ${(error as Error).message}`)));
  }

  private latestView(stream: string): WriteView {
    const pending = this.pendingViews.get(stream);
    if (pending) return pending;
    const record = this.index.getStream(stream);
    if (!record) return { lastRevision: -1, tombstoned: false, softDeleted: false, metadata: undefined };
    const metadata = this.metadataOf(record.metadataJson);
    return { lastRevision: record.lastRevision, tombstoned: record.tombstoned, softDeleted: isSoftDeleted(metadata), metadata };
  }

  private metadataOf(json: string | null): StreamMetadata | undefined {
    if (json === null) return undefined;
    if (this.metadataCache.has(json)) return this.metadataCache.get(json);
    const metadata = parseStoredMetadata(json);
    if (this.metadataCache.size > 10_000) this.metadataCache.clear();
    this.metadataCache.set(json, metadata);
    return metadata;
  }

  private metadataEvent(stream: string, metadata: StreamMetadata): PreparedEvent {
    const id = randomUUIDBytes(this.options.newUuid);
    return {
      stream: metastreamOf(stream),
      id,
      type: METADATA_EVENT_TYPE,
      isJson: true,
      data: Buffer.from(metadataToJson(metadata), 'utf8'),
      metadata: EMPTY,
    };
  }

  /**
   * Soft-deletes a stream: reads say "not found", its metadata stays, and a later append recreates
   * it with revisions continuing where they stopped.
   */
  async deleteStream(stream: string, options: AppendOptions = {}): Promise<DeleteResult> {
    this.assertUsable();
    validateStreamName(stream);
    validateUserWritableStream(stream);
    if (isMetastream(stream)) throw new InvalidArgumentError(`a metadata stream ('${stream}') cannot be deleted; delete '${streamOfMetastream(stream)}'`);
    const expected = parseExpectedState(options.expectedState);
    const admission = this.admitWrite();
    if (admission) await admission;
    const view = this.latestView(stream);
    if (view.tombstoned) throw new StreamDeletedError(stream);
    if (!expectedStateHolds(expected, view)) throw wrongExpectedVersion(stream, expected, view, 'delete');
    const metadata: StreamMetadata = { ...(view.metadata ?? { custom: {} }), truncateBefore: Number(SOFT_DELETED_TB_TEXT) };
    const written = await this.propose([{ stream: metastreamOf(stream), events: [this.metadataEvent(stream, metadata)] }]);
    return { position: { commit: written.commitPosition, prepare: written.lastPreparePosition } };
  }

  /** Tombstones a stream: final; it can never be read or written again. */
  async tombstoneStream(stream: string, options: AppendOptions = {}): Promise<DeleteResult> {
    this.assertUsable();
    validateStreamName(stream);
    validateUserWritableStream(stream);
    if (isMetastream(stream)) throw new InvalidArgumentError(`a metadata stream ('${stream}') cannot be tombstoned; tombstone '${streamOfMetastream(stream)}'`);
    const expected = parseExpectedState(options.expectedState);
    const admission = this.admitWrite();
    if (admission) await admission;
    const view = this.latestView(stream);
    if (view.tombstoned) throw new StreamDeletedError(stream);
    if (!expectedStateHolds(expected, view)) throw wrongExpectedVersion(stream, expected, view, 'tombstone');
    const id = randomUUIDBytes(this.options.newUuid);
    const tombstone: PreparedEvent = {
      stream,
      id,
      type: TOMBSTONE_EVENT_TYPE,
      isJson: false,
      data: EMPTY,
      metadata: EMPTY,
    };
    const written = await this.propose([{ stream, events: [tombstone], tombstone: true }]);
    return { position: { commit: written.commitPosition, prepare: written.lastPreparePosition } };
  }

  /**
   * Replaces a stream's metadata (the KurrentDB JSON form: `$maxCount`, `$maxAge`, `$tb`,
   * `$cacheControl`, `$acl`, and custom keys). The expected state is that of the `$$` stream.
   */
  async setStreamMetadata(stream: string, metadata: Record<string, unknown>, options: AppendOptions = {}): Promise<AppendResult> {
    this.assertUsable();
    validateStreamName(stream);
    if (isMetastream(stream)) throw new InvalidArgumentError(`metadata streams have no metadata of their own ('${stream}')`);
    metadataFromJson(metadata);
    if (this.latestView(stream).tombstoned) throw new StreamDeletedError(stream);
    const expected = parseExpectedState(options.expectedState);
    const metastream = metastreamOf(stream);
    const prepared = prepareEvents(metastream, [{ type: METADATA_EVENT_TYPE, data: metadata }], this.limits, this.options.newUuid);
    return this.append(metastream, expected, prepared);
  }

  // ---------------------------------------------------------------- reads

  async getStreamMetadata(stream: string): Promise<StreamMetadataResult> {
    this.assertUsable();
    validateStreamName(stream);
    const record = this.index.getStream(stream);
    if (record?.tombstoned) throw new StreamDeletedError(stream);
    const metastream = this.index.getStream(metastreamOf(stream));
    const json = record?.metadataJson;
    return {
      metadata: json ? (JSON.parse(json) as Record<string, unknown>) : {},
      metadataJson: json ?? null,
      metastreamRevision: metastream?.lastRevision ?? -1,
    };
  }

  /** Reads events of one stream, honouring `$tb`, `$maxCount` and `$maxAge`. */
  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.assertUsable();
    validateStreamName(stream);
    const direction = options.direction ?? 'forwards';
    if (direction !== 'forwards' && direction !== 'backwards') throw new InvalidArgumentError(`direction must be 'forwards' or 'backwards'`);
    const maxCount = parseMaxCount(options.maxCount);
    const record = this.index.getStream(stream);
    if (record?.tombstoned) throw new StreamDeletedError(stream);
    const metadata = record ? this.metadataOf(record.metadataJson) : undefined;
    if (!record || record.lastRevision < 0 || isSoftDeleted(metadata)) throw new StreamNotFoundError(stream);
    const first = firstVisibleRevision(metadata, record.lastRevision);
    const from = parseFromRevision(options.fromRevision, direction, record.lastRevision);
    const events: RecordedEvent[] = [];
    const nowMs = this.now();
    let cursor = direction === 'forwards' ? Math.max(from, first) : Math.min(from, record.lastRevision);
    // Expired events are skipped, so a page may need more than one round of lookups.
    while (events.length < maxCount && cursor >= first && cursor <= record.lastRevision) {
      const want = Math.min(maxCount - events.length, 4096);
      const locations = this.index.locate(record.id, cursor, direction, want).filter((location) => location.revision >= first);
      if (locations.length === 0) break;
      // Consecutive revisions often share a record (one append): read each record once.
      let logRecord: LogRecord | undefined;
      let cached = false;
      for (const location of locations) {
        if (logRecord?.position !== location.recordPosition) {
          const recent = this.recentRecords.get(location.recordPosition);
          cached = recent !== undefined;
          logRecord = recent ?? (await this.log.readRecord(location.recordPosition));
        }
        const event = decodeEventAt(logRecord.payload, location.entryOffset, logRecord.position);
        // Events decoded from the shared cache get their own bytes, so no caller can change what others read.
        if (!isExpired(metadata, event.createdMicros, nowMs)) events.push(toRecordedEvent(event, cached));
      }
      cursor = direction === 'forwards' ? locations.at(-1)!.revision + 1 : locations.at(-1)!.revision - 1;
    }
    this.observer?.read(events);
    return events;
  }

  /** Reads the global log of committed events, in either direction, optionally filtered. */
  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    this.assertUsable();
    const direction = options.direction ?? 'forwards';
    if (direction !== 'forwards' && direction !== 'backwards') throw new InvalidArgumentError(`direction must be 'forwards' or 'backwards'`);
    const maxCount = parseMaxCount(options.maxCount);
    const predicate = compileFilter(options.filter);
    const end = this.committedPosition;
    const start = this.log.startPosition;
    const from = options.fromPosition ?? (direction === 'forwards' ? 'start' : 'end');
    const position: Position =
      from === 'start' ? { commit: start, prepare: start } : from === 'end' ? { commit: end, prepare: end } : parsePosition(from);
    if (position.commit < start || position.commit > end) {
      throw new InvalidArgumentError(`position ${position.commit} is outside the committed log [${start}, ${end}]`);
    }
    const result = await (direction === 'forwards'
      ? this.readAllForwards(position, maxCount, predicate, end, parseScanLimit(options.scanLimit))
      : this.readAllBackwards(position, maxCount, predicate, start));
    this.observer?.read(result.events);
    return result;
  }

  private async readAllForwards(
    from: Position,
    maxCount: number,
    predicate: EventPredicate | undefined,
    end: number,
    scanLimit: number,
  ): Promise<ReadAllResult> {
    const events: RecordedEvent[] = [];
    let cursor = from.commit;
    let first = true;
    let scanned = 0;
    let lastScanned: Position | undefined;
    const result = (nextPosition: Position, isEnd: boolean): ReadAllResult => ({ events, nextPosition, isEnd, ...(lastScanned ? { lastScannedPosition: lastScanned } : {}) });
    while (cursor < end) {
      // Live tails read what was just committed: take it from memory when it is still there.
      const recent = this.recentRecords.get(cursor);
      const records = recent ? [recent] : await this.readRecordsAt(cursor, end, first);
      first = false;
      if (records.length === 0) break;
      for (const record of records) {
        if (record.type === RecordType.Events) {
          const offsets = entryOffsetsOf(record.payload);
          for (let i = 0; i < offsets.length; i++) {
            const prepare = preparePositionOf(record.position, offsets[i]!);
            if (record.position === from.commit && prepare < from.prepare) continue;
            if (events.length >= maxCount || scanned >= scanLimit) return result({ commit: record.position, prepare }, false);
            scanned++;
            lastScanned = { commit: record.position, prepare };
            if (!matches(record.payload, offsets[i]!, predicate)) continue;
            events.push(toRecordedEvent(decodeEventAt(record.payload, offsets[i]!, record.position), recent !== undefined));
          }
        }
        cursor = record.end;
        if (events.length >= maxCount || scanned >= scanLimit) return result({ commit: cursor, prepare: cursor }, cursor >= end);
      }
    }
    return result({ commit: cursor, prepare: cursor }, true);
  }

  private async readRecordsAt(position: number, end: number, validateBoundary: boolean): Promise<LogRecord[]> {
    try {
      return await this.log.read(position, READ_ALL_CHUNK_BYTES, end);
    } catch (error) {
      if (validateBoundary && error instanceof LogCorruptionError && error.logPosition === position) {
        throw new InvalidArgumentError(`position ${position} is not the start of a record in the log`);
      }
      throw error;
    }
  }

  private async readAllBackwards(from: Position, maxCount: number, predicate: EventPredicate | undefined, start: number): Promise<ReadAllResult> {
    const events: RecordedEvent[] = [];
    let cursor = from.commit;
    // A position inside a record (prepare past its start) includes that record's earlier events.
    const collect = (record: LogRecord, beforePrepare: number): Position | undefined => {
      if (record.type !== RecordType.Events) return undefined;
      const offsets = entryOffsetsOf(record.payload);
      for (let i = offsets.length - 1; i >= 0; i--) {
        const prepare = preparePositionOf(record.position, offsets[i]!);
        if (prepare >= beforePrepare) continue;
        // Continue from just after this event, so the next page (which takes prepare < that) starts with it.
        if (events.length >= maxCount) return { commit: record.position, prepare: offsets[i + 1] !== undefined ? preparePositionOf(record.position, offsets[i + 1]!) : record.end };
        if (!matches(record.payload, offsets[i]!, predicate)) continue;
        events.push(toRecordedEvent(decodeEventAt(record.payload, offsets[i]!, record.position)));
      }
      return undefined;
    };
    if (from.commit < this.committedPosition && from.prepare === from.commit) {
      await this.readRecordOrInvalid(from.commit); // proves `from` is a record boundary
    }
    if (from.prepare > from.commit && from.commit < this.committedPosition) {
      const record = await this.readRecordOrInvalid(from.commit);
      const stop = collect(record, from.prepare);
      if (stop) return { events, nextPosition: stop, isEnd: false };
    }
    while (cursor > start && events.length < maxCount) {
      const records = await this.log.readBackward(cursor, READ_ALL_CHUNK_BYTES);
      if (records.length === 0) break;
      for (const record of records) {
        const stop = collect(record, Infinity);
        if (stop) return { events, nextPosition: stop, isEnd: false };
        cursor = record.position;
        if (events.length >= maxCount) return { events, nextPosition: { commit: cursor, prepare: cursor }, isEnd: cursor <= start };
      }
    }
    return { events, nextPosition: { commit: cursor, prepare: cursor }, isEnd: cursor <= start };
  }

  private async readRecordOrInvalid(position: number): Promise<LogRecord> {
    try {
      return await this.log.readRecord(position);
    } catch (error) {
      if (error instanceof LogCorruptionError && error.logPosition === position) {
        throw new InvalidArgumentError(`position ${position} is not the start of a record in the log`);
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------- live

  /** The log position up to which writes are committed and visible to reads. */
  get position(): number {
    return this.committedPosition;
  }

  /** Calls `listener` with the new committed position after every commit. Returns an unsubscribe function. */
  onCommit(listener: (committedPosition: number) => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** Resolves once the committed position passes `position` (or at once if it has), or the store closes. */
  waitForCommitAfter(position: number, signal?: AbortSignal): Promise<void> {
    if (this.committedPosition > position || this.closed || this.failure || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        unsubscribe();
        this.closeWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const unsubscribe = this.onCommit((committed) => {
        if (committed > position) done();
      });
      this.closeWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private readonly closeWaiters = new Set<() => void>();

  /** Whether the store can serve: open, and not failed. */
  get usable(): boolean {
    return !this.closed && !this.failure;
  }

  /** Reports writes, reads and group commits to `observer` from now on (one observer: the node's metrics). */
  observe(observer: StoreObserver): void {
    this.observer = observer;
    this.log.onFlushed = (frames, bytes, syncMs) => observer.flushed(frames, bytes, syncMs);
  }

  /** Numbers for tests, metrics and benchmarks. */
  get stats(): { log: Log['stats']; pendingWrites: number; idempotencyWindowEvents: number; recentRecordBytes: number; indexBackend: string } {
    return {
      log: this.log.stats,
      pendingWrites: this.inFlight.length - this.inFlightHead,
      idempotencyWindowEvents: this.window.size,
      recentRecordBytes: this.recentRecords.bytes,
      indexBackend: this.index.backendKind,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  private assertUsable(): void {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    if (this.failure) throw new StorageFailureError(`the store has failed and must be restarted: ${this.failure.message}`, this.failure);
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.options.log?.(`store failed: ${error.message}`);
    for (const wake of [...this.closeWaiters]) wake();
  }

  /** Waits for writes in flight, flushes the index and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flushTimer?.cancel();
    for (const wake of [...this.closeWaiters]) wake();
    await this.log.sync().catch(() => undefined);
    // After a failure the index is not flushed (it may be wrong), but its files are closed.
    await this.index.close({ flush: !this.failure }).catch(() => undefined);
    await this.log.close();
  }
}

const APPLIED = Promise.resolve();

/** Errors with which a replicated write ends without a storage failure: its outcome is the log's. */
function isReplicationOutcome(error: unknown): boolean {
  return error instanceof ChronicleError && (error.code === 'NOT_LEADER' || error.code === 'NO_QUORUM');
}

function matches(payload: Uint8Array, entryOffset: number, predicate: EventPredicate | undefined): boolean {
  if (!predicate) return true;
  const header = eventHeaderAt(payload, entryOffset);
  return predicate(header.stream, header.type);
}

function randomUUIDBytes(newUuid: (() => string) | undefined): Uint8Array {
  return newUuid ? uuidToBytes(newUuid()) : randomUuidBytes();
}

function parseMaxCount(maxCount: unknown): number {
  if (maxCount === undefined) return Number.MAX_SAFE_INTEGER;
  const count = typeof maxCount === 'bigint' ? Number(maxCount) : maxCount;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
    throw new InvalidArgumentError(`maxCount must be a non-negative integer, not ${String(maxCount)}`);
  }
  return count;
}

function wrongExpectedVersion(stream: string, expected: ExpectedState, view: StreamView, operation: string): WrongExpectedVersionError {
  return new WrongExpectedVersionError(stream, describeExpectedState(expected), actualStateOf(view), expected, operation);
}

function parseScanLimit(scanLimit: unknown): number {
  if (scanLimit === undefined) return Number.MAX_SAFE_INTEGER;
  if (typeof scanLimit !== 'number' || !Number.isInteger(scanLimit) || scanLimit < 1) {
    throw new InvalidArgumentError(`scanLimit must be a positive integer, not ${String(scanLimit)}`);
  }
  return scanLimit;
}

function parseFromRevision(from: ReadStreamOptions['fromRevision'], direction: 'forwards' | 'backwards', lastRevision: number): number {
  if (from === undefined) return direction === 'forwards' ? 0 : lastRevision;
  if (from === 'start') return 0;
  if (from === 'end') return direction === 'forwards' ? lastRevision + 1 : lastRevision;
  const revision = typeof from === 'bigint' ? Number(from) : from;
  if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < 0) {
    throw new InvalidArgumentError(`fromRevision must be 'start', 'end' or a non-negative integer, not ${String(from)}`);
  }
  return revision;
}

function parsePosition(position: unknown): Position {
  const { commit, prepare } = (position ?? {}) as Partial<Position>;
  const valid = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
  if (!valid(commit) || !valid(prepare) || prepare! < commit!) {
    throw new InvalidArgumentError(`a position needs integer commit and prepare with prepare ≥ commit, not ${JSON.stringify(position)}`);
  }
  return { commit: commit!, prepare: prepare! };
}

export { ChronicleError };
