import { RaftNode, type RaftOptions, type UnsafeVariants } from '../consensus/raft.js';
import type { Effects, Entry, Envelope, Fault, HardState, Membership, Message, NodeId, Status } from '../consensus/types.js';
import { NoQuorumError, NotLeaderError } from '../errors.js';
import type { Log } from '../storage/log.js';
import { joinPath, type FileSystem } from '../storage/file-system.js';
import { framePayload } from '../storage/record-frame.js';
import type { Proposal } from '../store/committer.js';
import { EventStore, type EventStoreOptions } from '../store/event-store.js';
import type { EntryPositionsOptions } from './entry-positions.js';
import { HardStateFile } from './hard-state-file.js';
import { RaftLog, type RecordBody } from './raft-log.js';

/** How a replica reaches its peers. Appends arrive with their entries filled in. */
export interface ReplicaTransport {
  send(to: NodeId, message: Message<RecordBody>): void;
}

/** Time as the replica sees it: real timers in a server, simulated ones in the simulator. */
export interface ReplicaTimers {
  schedule(delayMs: number, action: () => void): { cancel(): void };
  /** Runs `action` soon, after the current turn (batching everything the turn produced). */
  soon(action: () => void): void;
}

/** The node states clients know from KurrentDB's gossip. */
export type NodeState = 'Leader' | 'PreLeader' | 'Follower' | 'CatchingUp' | 'ReadOnlyReplica' | 'PreReadOnlyReplica' | 'Unknown' | 'ShuttingDown';

export interface ReplicaUnsafeVariants extends UnsafeVariants {
  /** The term and vote are written without fsync. */
  skipHardStateSync?: boolean;
  /** A restarted node replays its whole log into the store, uncommitted tail included, and serves it. */
  replayUncommittedOnOpen?: boolean;
}

export interface ReplicaOptions {
  id: NodeId;
  /** The voters and read-only replicas, used (and recorded in the log) until the log holds one. */
  membership: Membership;
  directory: string;
  fileSystem: FileSystem;
  transport: ReplicaTransport;
  timers: ReplicaTimers;
  /** Seeded randomness for election timeouts. */
  random: () => number;
  /** One Raft tick; election and heartbeat timeouts are counted in ticks. */
  tickMs?: number;
  raft?: Partial<Pick<RaftOptions, 'electionTicks' | 'heartbeatTicks' | 'maxEntriesPerAppend' | 'maxBytesPerAppend' | 'maxInflightAppends' | 'maxAutoTruncateEntries' | 'preVote' | 'checkQuorum'>>;
  /** A write not committed within this long fails with "no quorum" (its outcome is then unknown). */
  writeTimeoutMs?: number;
  /**
   * How long a leader with nothing in flight holds a few new writes back from its followers, when
   * the last batch it sent was larger, for the rest of that wave of writers (see `batchAppends`).
   * 0 sends every write at once.
   */
  appendBatchDelayMs?: number;
  /** How many entry positions the Raft log holds in memory (the simulator keeps few, so old ones are re-read from the log). */
  entryPositions?: EntryPositionsOptions;
  /** How many of the newest entries the Raft log keeps in memory (default 8192; the simulator keeps few, so older ones are read back). */
  recentEntries?: number;
  /** What the store needs besides its log: limits, clock, index backend... */
  store?: Omit<EventStoreOptions, 'directory' | 'fileSystem' | 'replication' | 'scheduleTimer' | 'inMemory'>;
  /** Where a not-leader error tells clients to go. */
  endpointOf?: (id: NodeId) => { host: string; port: number } | undefined;
  onFault?: (fault: Fault) => void;
  onStatus?: (status: Status) => void;
  /** Called before the log drops every entry after an index (checkers watch it). */
  onTruncate?: (afterIndex: number, dropped: Effects<RecordBody>['dropped']) => void;
  /** Called after the store applied the committed log up to an index (checkers watch it). */
  onApplied?: (index: number) => void;
  /** Called when the node must stop (a storage failure or a broken invariant). */
  onFailure?: (error: Error) => void;
  unsafe?: ReplicaUnsafeVariants;
}

export const DEFAULT_TICK_MS = 100;
export const DEFAULT_WRITE_TIMEOUT_MS = 5000;
export const DEFAULT_APPEND_BATCH_DELAY_MS = 1;
const DEFAULT_RAFT = {
  electionTicks: 10,
  heartbeatTicks: 1,
  maxEntriesPerAppend: 256,
  maxInflightAppends: 16,
  maxAutoTruncateEntries: 100_000,
  // Well under the transport's frame limit (256 MiB), and small enough to keep a pipeline moving.
  maxBytesPerAppend: 4 * 1024 * 1024,
  preVote: true,
  checkQuorum: true,
};

/** Proposals made between two pumps: they commit together and share one promise. */
interface CommitGroup {
  lastIndex: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: { cancel(): void } | undefined;
  settled: boolean;
}

interface ReadBarrier {
  index: number | undefined;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: { cancel(): void };
}

/**
 * One member of a cluster: the pure replication core wired to the event log, the store and the
 * outside world. It carries out the core's effects in the order Raft needs (vote durable before
 * any message, entries durable before they are acknowledged, apply only what is committed), and
 * is the store's committer, so the store's write path is the same as on a single node.
 */
export class Replica {
  readonly store: EventStore;
  private readonly core: RaftNode<RecordBody>;
  private readonly raftLog: RaftLog;
  private readonly hardStateFile: HardStateFile;
  private readonly options: ReplicaOptions;
  private readonly writeTimeoutMs: number;
  private readonly appendBatchDelayMs: number;
  private status: Status;
  private appliedIndex: number;
  private readyIndex: number | undefined;
  /** Once applied up to the first commit index heard from a leader, reads here are never older than before a restart. */
  private caughtUp = false;
  private catchUpTarget: number | undefined;
  private groups: CommitGroup[] = [];
  private openGroup: CommitGroup | undefined;
  private durableTracker: { promise: Promise<void>; index: number; term: number } | undefined;
  private readonly reads = new Map<number, ReadBarrier>();
  private readSequence = 0;
  private readonly sendChains = new Map<NodeId, Promise<void>>();
  private applyChain: Promise<void> = Promise.resolve();
  private pumpScheduled = false;
  private pumping = false;
  private pumpAgain = false;
  private tickTimer: { cancel(): void } | undefined;
  private readonly writableWaiters = new Set<() => void>();
  private failure: Error | undefined;
  private closed = false;
  private startedWithoutState = false;

  private constructor(options: ReplicaOptions, store: EventStore, core: RaftNode<RecordBody>, raftLog: RaftLog, hardStateFile: HardStateFile, appliedIndex: number) {
    this.options = options;
    this.store = store;
    this.core = core;
    this.raftLog = raftLog;
    this.hardStateFile = hardStateFile;
    this.writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    this.appendBatchDelayMs = appendBatchDelayOf(options);
    this.status = core.status;
    this.appliedIndex = appliedIndex;
  }

  static async open(options: ReplicaOptions): Promise<Replica> {
    const { file: hardStateFile, state: savedHardState } = await HardStateFile.open(options.fileSystem, options.directory);
    // The store needs its committer before the replica exists: propose goes through this holder.
    const committerTarget: { replica?: Replica; raftLog?: RaftLog } = {};
    let storeLog: Log | undefined;
    let appliedPosition = 0;
    const store = await EventStore.open({
      ...options.store,
      directory: joinPath(options.directory, 'store'),
      fileSystem: options.fileSystem,
      scheduleTimer: options.timers.schedule,
      replication: {
        replayWholeLog: options.unsafe?.replayUncommittedOnOpen === true,
        recordAt: (position) => committerTarget.raftLog?.recentRecordAt(position),
        committer: (log: Log, applied: number) => {
          storeLog = log;
          appliedPosition = applied;
          return {
            propose: (type, frame) => {
              if (!committerTarget.replica) throw new NotLeaderError('the node is still starting', undefined);
              return committerTarget.replica.propose(type, frame);
            },
            admitWrite: () => {
              if (!committerTarget.replica) return Promise.reject(new NotLeaderError('the node is still starting', undefined));
              return committerTarget.replica.admitWrite();
            },
          };
        },
      },
    });
    try {
      if (!storeLog) throw new Error('the store did not hand over its log');
      const replica = await Replica.assemble(options, store, storeLog, appliedPosition, hardStateFile, savedHardState);
      committerTarget.replica = replica;
      committerTarget.raftLog = replica.raftLog;
      replica.start();
      return replica;
    } catch (error) {
      await store.close().catch(() => undefined);
      throw error;
    }
  }

  private static async assemble(
    options: ReplicaOptions,
    store: EventStore,
    log: Log,
    appliedPosition: number,
    hardStateFile: HardStateFile,
    savedHardState: HardState | undefined,
  ): Promise<Replica> {
    const { raftLog, state } = await RaftLog.open(log, options.entryPositions, options.recentEntries);
    const appliedIndex = indexEndingAt(raftLog, appliedPosition);
    const lastTerm = state.termRuns.at(-1)?.term ?? 0;
    const hardState = savedHardState ?? { term: lastTerm, votedFor: undefined };
    if (hardState.term < lastTerm) throw new Error(`the saved term ${hardState.term} is older than the log's last term ${lastTerm}: the Raft state does not belong to this log`);
    const core = new RaftNode<RecordBody>(
      {
        ...DEFAULT_RAFT,
        ...options.raft,
        id: options.id,
        random: options.random,
        batchAppends: appendBatchDelayOf(options) > 0,
        // Entries the core made this turn (a new term's no-op) are not written yet: small, count them as 0.
        entryBytes: (index) => (index <= raftLog.lastIndex ? raftLog.endOf(index) - raftLog.positionOf(index) : 0),
        ...(options.unsafe ? { unsafe: options.unsafe } : {}),
      },
      { hardState, termRuns: state.termRuns, lastIndex: state.lastIndex, configurations: state.configurations, bootstrap: options.membership, committedIndex: appliedIndex },
    );
    const replica = new Replica(options, store, core, raftLog, hardStateFile, appliedIndex);
    replica.startedWithoutState = savedHardState === undefined && state.lastIndex === 0;
    return replica;
  }

  private start(): void {
    const membership = this.core.membership;
    if (membership.voters.length === 1 && membership.voters[0] === this.options.id) this.core.campaignNow();
    this.scheduleTick();
    this.requestPump();
  }

  // ------------------------------------------------------------------ inputs

  /** A message from a peer (the transport already checked it comes from this cluster). */
  receive(from: NodeId, message: Message<RecordBody>): void {
    if (this.closed || this.failure) return;
    if ((message.kind === 'append' || message.kind === 'heartbeat') && message.term >= this.status.term && this.catchUpTarget === undefined) {
      this.catchUpTarget = message.commit;
    }
    try {
      this.core.receive(from, message);
    } catch (error) {
      this.failNode(error);
      return;
    }
    this.requestPump();
  }

  private scheduleTick(): void {
    if (this.closed) return;
    this.tickTimer = this.options.timers.schedule(this.options.tickMs ?? DEFAULT_TICK_MS, () => {
      if (this.closed || this.failure) return;
      this.core.tick();
      this.requestPump();
      this.scheduleTick();
    });
  }

  // ------------------------------------------------------------------ the store's committer

  propose(type: number, frame: Uint8Array): Proposal {
    if (!this.writable) throw this.notLeader('this node cannot take writes now');
    const result = this.core.propose('data', { type, frame, payload: framePayload(frame) });
    if (!result.ok) throw this.notLeader(result.reason, result.leader);
    const entries = this.core.takeProposed();
    const durable = this.raftLog.append(entries);
    this.trackDurable(durable, result.index, result.term);
    let group = this.openGroup;
    if (!group) {
      group = this.newGroup();
      this.openGroup = group;
    }
    group.lastIndex = result.index;
    this.requestPump();
    return { position: this.raftLog.positionOf(result.index), end: this.raftLog.endOf(result.index), term: result.term, index: result.index, committed: group.promise };
  }

  private newGroup(): CommitGroup {
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    const group: CommitGroup = { lastIndex: 0, promise, resolve, reject, timer: undefined, settled: false };
    group.timer = this.options.timers.schedule(this.writeTimeoutMs, () => {
      this.settleGroup(group, new NoQuorumError(`the write was not committed within ${this.writeTimeoutMs} ms: a quorum of the cluster did not confirm it; its outcome is unknown, retry it with the same event ids`));
    });
    this.groups.push(group);
    return group;
  }

  private settleGroup(group: CommitGroup, error?: Error): void {
    if (group.settled) return;
    group.settled = true;
    group.timer?.cancel();
    if (error) group.reject(error);
    else group.resolve();
  }

  private trackDurable(durable: Promise<void>, index: number, term: number): void {
    const tracker = this.durableTracker;
    if (tracker && tracker.promise === durable) {
      tracker.index = index;
      tracker.term = term;
      return;
    }
    const next = { promise: durable, index, term };
    this.durableTracker = next;
    durable.then(
      () => {
        if (this.closed || this.failure) return;
        this.core.persisted(next.index, next.term);
        this.requestPump();
      },
      (error: unknown) => this.failNode(error),
    );
  }

  // ------------------------------------------------------------------ carrying out effects

  private requestPump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    this.options.timers.soon(() => {
      this.pumpScheduled = false;
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        if (this.closed || this.failure) return;
        this.openGroup = undefined;
        await this.carryOut(this.core.takeEffects());
      } while (this.pumpAgain);
    } catch (error) {
      this.failNode(error);
    } finally {
      this.pumping = false;
    }
  }

  private async carryOut(effects: Effects<RecordBody>): Promise<void> {
    // A lost leadership first: the writes in flight are abandoned before their records may go.
    if (effects.status) this.onStatus(effects.status);
    if (effects.hardState) await this.hardStateFile.write(effects.hardState, { sync: this.options.unsafe?.skipHardStateSync !== true });
    if (effects.truncateAfter !== undefined) {
      if (this.status.role === 'leader') throw new Error(`a leader never truncates its log (asked to truncate after ${effects.truncateAfter})`);
      if (this.raftLog.endOf(Math.min(effects.truncateAfter, this.raftLog.lastIndex)) < this.store.position) {
        throw new Error(`refusing to truncate after entry ${effects.truncateAfter}: entries up to position ${this.store.position} are applied`);
      }
      this.options.onTruncate?.(effects.truncateAfter, effects.dropped);
      await this.raftLog.truncateAfter(effects.truncateAfter);
    }
    if (effects.append.length > 0) {
      const last = effects.append.at(-1)!;
      this.trackDurable(this.raftLog.append(effects.append), last.index, last.term);
    }
    for (const envelope of effects.messages) this.dispatch(envelope);
    if (effects.appendHold !== undefined) this.releaseAppendsLater(effects.appendHold);
    if (effects.commitIndex !== undefined) {
      const index = effects.commitIndex;
      this.applyChain = this.applyChain.then(() => this.applyUpTo(index)).catch((error: unknown) => this.failNode(error));
    }
    for (const ready of effects.readsReady) {
      const read = this.reads.get(ready.id);
      if (read) read.index = ready.index;
    }
    for (const id of effects.readsFailed) this.settleRead(id, this.notLeader('leadership was lost before the read was confirmed'));
    this.releaseReads();
    for (const fault of effects.faults) this.options.onFault?.(fault);
  }

  private releaseAppendsLater(hold: number): void {
    this.options.timers.schedule(this.appendBatchDelayMs, () => {
      // Most holds end before their delay, when the rest of the wave arrives: nothing to pump then.
      if (this.closed || this.failure || !this.core.releaseAppends(hold)) return;
      this.requestPump();
    });
  }

  /** Sends in order per peer; appends get their entries from the log first. */
  private dispatch(envelope: Envelope<RecordBody>): void {
    const { to, message } = envelope;
    const previous = this.sendChains.get(to);
    if (message.kind !== 'append' || message.count === 0) {
      if (!previous) this.options.transport.send(to, message);
      else this.chainSend(to, previous, async () => message);
      return;
    }
    // The usual case on a leader keeping up: the entries are in memory and nothing to this peer
    // waits ahead of the message, so it goes now, without a round through the promise chain.
    const recent = previous ? undefined : this.raftLog.recentEntries(message.prevIndex + 1, message.count);
    if (recent) {
      const { role, term } = this.core.status;
      if (role === 'leader' && term === message.term) this.options.transport.send(to, { ...message, entries: recent });
      return;
    }
    this.chainSend(to, previous ?? Promise.resolve(), async () => {
      const entries = await this.raftLog.entries(message.prevIndex + 1, message.count);
      // While the entries were read this node may have lost that term's leadership and had its
      // log rewritten by the next leader: the message is stale, and its entries may not even be
      // the ones it meant. A leader never rewrites its own log, so one still leading is safe.
      const { role, term } = this.core.status;
      return role === 'leader' && term === message.term ? { ...message, entries } : undefined;
    });
  }

  private chainSend(to: NodeId, previous: Promise<void>, build: () => Promise<Message<RecordBody> | undefined>): void {
    const next = previous
      .then(async () => {
        const message = await build();
        if (message && !this.closed && !this.failure) this.options.transport.send(to, message);
      })
      .catch(() => {
        // The entries moved (a truncation after losing leadership): the message is stale anyway.
      })
      .finally(() => {
        if (this.sendChains.get(to) === next) this.sendChains.delete(to);
      });
    this.sendChains.set(to, next);
  }

  private async applyUpTo(index: number): Promise<void> {
    if (index <= this.appliedIndex || this.closed || this.failure) return;
    await this.store.applyCommittedUpTo(this.raftLog.endOf(index));
    this.appliedIndex = index;
    this.options.onApplied?.(index);
    while (this.groups.length > 0 && (this.groups[0]!.lastIndex <= index || this.groups[0]!.settled)) {
      const group = this.groups.shift()!;
      if (group.lastIndex > 0) this.settleGroup(group);
    }
    if (!this.caughtUp && this.catchUpTarget !== undefined && this.appliedIndex >= this.catchUpTarget) this.caughtUp = true;
    this.releaseReads();
    this.wakeWritableWaiters();
  }

  private onStatus(status: Status): void {
    const wasLeader = this.status.role === 'leader';
    this.status = status;
    if (status.role === 'leader') {
      this.caughtUp = true;
      if (status.leaderReady && this.readyIndex === undefined) this.readyIndex = status.commitIndex;
      // Only a leader decides writes, so only a leader keeps the idempotency window itself.
      if (!wasLeader) this.store.startKeepingWriteIds();
    } else {
      this.readyIndex = undefined;
    }
    if (wasLeader && status.role !== 'leader') {
      this.abandonWrites();
      this.store.stopKeepingWriteIds();
    }
    this.options.onStatus?.(status);
    this.wakeWritableWaiters();
  }

  /** Leadership lost: writes in flight may or may not commit under the next leader. */
  private abandonWrites(): void {
    this.store.abandonInFlight();
    const error = this.notLeader('leadership changed before the write was committed; its outcome is unknown, retry it with the same event ids');
    for (const group of this.groups) this.settleGroup(group, error);
    this.groups = [];
    this.openGroup = undefined;
  }

  // ------------------------------------------------------------------ reads

  /** Whether this node takes writes: it leads, and has applied everything committed before its term. */
  get writable(): boolean {
    return this.status.role === 'leader' && this.readyIndex !== undefined && this.appliedIndex >= this.readyIndex && !this.closed && !this.failure;
  }

  /** Whether reads may be served here without going back in time (a restarted node catches up first). */
  get canServeReads(): boolean {
    if (this.options.unsafe?.replayUncommittedOnOpen) return true;
    return this.caughtUp && !this.closed && !this.failure;
  }

  /**
   * Resolves once a read here would see every write acknowledged before the call (read-index:
   * a quorum confirms this node still leads, and the store has applied that far).
   */
  linearizableReadBarrier(): Promise<void> {
    if (!this.writable) return Promise.reject(this.notLeader('linearizable reads are served by the leader'));
    const id = ++this.readSequence;
    return new Promise<void>((resolve, reject) => {
      const timer = this.options.timers.schedule(this.writeTimeoutMs, () => {
        this.settleRead(id, new NoQuorumError(`a quorum did not confirm the leader within ${this.writeTimeoutMs} ms`));
      });
      this.reads.set(id, { index: undefined, resolve, reject, timer });
      this.core.readIndex(id);
      this.requestPump();
    });
  }

  private releaseReads(): void {
    for (const [id, read] of this.reads) {
      if (read.index !== undefined && this.appliedIndex >= read.index) this.settleRead(id);
    }
  }

  private settleRead(id: number, error?: Error): void {
    const read = this.reads.get(id);
    if (!read) return;
    this.reads.delete(id);
    read.timer.cancel();
    if (error) read.reject(error);
    else read.resolve();
  }

  /**
   * `undefined` when this node takes writes now; otherwise a promise that resolves once it does. A
   * leader still taking over, or a node that knows no leader yet, waits up to the write timeout;
   * a follower is refused at once with where the leader is.
   */
  admitWrite(): Promise<void> | undefined {
    return this.writable ? undefined : this.admitWriteWhenWritable();
  }

  private async admitWriteWhenWritable(): Promise<void> {
    const leader = this.status.leader;
    if (leader !== undefined && leader !== this.options.id) throw this.notLeader('this node is a follower; writes go to the leader');
    if (await this.waitUntilWritable(this.writeTimeoutMs)) return;
    const now = this.status.leader;
    if (now !== undefined && now !== this.options.id) throw this.notLeader('this node is a follower; writes go to the leader');
    throw new NoQuorumError(`no leader was elected within ${this.writeTimeoutMs} ms: fewer than a quorum of the cluster's nodes can reach each other`);
  }

  /** Waits (bounded) until this node takes writes; false if it does not within `timeoutMs`. */
  waitUntilWritable(timeoutMs: number): Promise<boolean> {
    if (this.writable) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const finish = (result: boolean): void => {
        this.writableWaiters.delete(check);
        timer.cancel();
        resolve(result);
      };
      const check = (): void => {
        if (this.writable) finish(true);
        else if (this.closed || this.failure || (this.status.leader !== undefined && this.status.leader !== this.options.id)) finish(false);
      };
      const timer = this.options.timers.schedule(timeoutMs, () => finish(false));
      this.writableWaiters.add(check);
    });
  }

  private wakeWritableWaiters(): void {
    for (const check of [...this.writableWaiters]) check();
  }

  // ------------------------------------------------------------------ state for gossip and checkers

  get raftStatus(): Status {
    return this.core.status;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  get nodeState(): NodeState {
    if (this.closed) return 'ShuttingDown';
    const role = this.status.role;
    if (role === 'leader') return this.writable ? 'Leader' : 'PreLeader';
    if (role === 'learner') return this.caughtUp ? 'ReadOnlyReplica' : 'PreReadOnlyReplica';
    if (role === 'follower' && this.status.leader !== undefined) return this.caughtUp ? 'Follower' : 'CatchingUp';
    return 'Unknown';
  }

  get leaderId(): NodeId | undefined {
    return this.status.leader;
  }

  /** Where clients reach the leader, when another node leads and its endpoint is known. */
  get leaderEndpoint(): { host: string; port: number } | undefined {
    const leader = this.status.leader;
    return leader !== undefined && leader !== this.options.id ? this.options.endpointOf?.(leader) : undefined;
  }

  /** The term of a local index (for checkers). */
  termAt(index: number): number | undefined {
    return this.core.termAt(index);
  }

  get lastIndex(): number {
    return this.raftLog.lastIndex;
  }

  /** Entries of the local log (for checkers and catch-up tooling). */
  entries(fromIndex: number, count: number): Promise<Entry<RecordBody>[]> {
    return this.raftLog.entries(fromIndex, count);
  }

  /** The voters and read-only replicas, as the log records them. */
  get membership(): Membership {
    return this.core.membership;
  }

  /**
   * Adds a read-only replica to the membership with a configuration entry (the leader only): from
   * then on the leader ships it the log. It never votes and never counts toward a quorum.
   */
  addLearner(id: NodeId): boolean {
    if (!this.writable) return false;
    const current = this.core.membership;
    if (current.voters.includes(id) || current.learners.includes(id)) return false;
    const result = this.core.propose('config', undefined as unknown as RecordBody, { voters: current.voters, learners: [...current.learners, id] });
    if (!result.ok) return false;
    this.trackDurable(this.raftLog.append(this.core.takeProposed()), result.index, result.term);
    this.requestPump();
    return true;
  }

  /** Whether this node started with nothing (no Raft state, empty log): an in-memory node, or a new disk. */
  get startedEmpty(): boolean {
    return this.startedWithoutState;
  }

  /** Lets this node vote and campaign, or not (see `RaftNode.setVotingAllowed`). */
  setVotingAllowed(allowed: boolean): void {
    this.core.setVotingAllowed(allowed);
  }

  /** Whether reads (and votes) are safe here: it applied what a leader had committed when it met it. */
  get isCaughtUp(): boolean {
    return this.caughtUp;
  }

  /** Makes this node wait `ticks` more before campaigning (lower node priority). */
  setElectionPenalty(ticks: number): void {
    this.core.setElectionPenalty(ticks);
  }

  /** A leadership transfer started by `resign` is under way. */
  get handingOver(): boolean {
    return this.core.handingOver;
  }

  /** Hands leadership to another voter (the Operations service's resign). */
  resign(): boolean {
    const handed = this.core.resign();
    this.requestPump();
    return handed;
  }

  private notLeader(reason: string, leader: NodeId | undefined = this.status.leader): NotLeaderError {
    const known = leader !== undefined && leader !== this.options.id ? leader : undefined;
    const endpoint = known !== undefined ? this.options.endpointOf?.(known) : undefined;
    const where = known !== undefined ? `the leader is ${known}` : 'no leader is known';
    return new NotLeaderError(`${reason} (${where})`, endpoint);
  }

  private failNode(error: unknown): void {
    if (this.failure) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.tickTimer?.cancel();
    const failure = new NotLeaderError(`the node failed: ${this.failure.message}`, undefined);
    for (const group of this.groups) this.settleGroup(group, failure);
    for (const id of [...this.reads.keys()]) this.settleRead(id, failure);
    this.options.onFailure?.(this.failure);
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tickTimer?.cancel();
    const error = this.notLeader('the node is shutting down');
    for (const group of this.groups) this.settleGroup(group, error);
    for (const id of [...this.reads.keys()]) this.settleRead(id, error);
    this.wakeWritableWaiters();
    await this.store.close();
  }
}

function appendBatchDelayOf(options: ReplicaOptions): number {
  return options.appendBatchDelayMs ?? DEFAULT_APPEND_BATCH_DELAY_MS;
}

/** The index of the entry that ends at `position` (0 for position 0). */
function indexEndingAt(raftLog: RaftLog, position: number): number {
  if (position === 0) return 0;
  let low = 1;
  let high = raftLog.lastIndex;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const end = raftLog.endOf(middle);
    if (end === position) return middle;
    if (end < position) low = middle + 1;
    else high = middle - 1;
  }
  throw new Error(`the store has applied up to ${position}, which is not the end of an entry of the log`);
}
