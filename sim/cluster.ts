import type { Membership, Message, Status, TermRun } from '../src/consensus/types.js';
import { Replica, type ReplicaUnsafeVariants } from '../src/cluster/replica.js';
import type { RecordBody } from '../src/cluster/raft-log.js';
import { MemoryFileSystem } from '../src/storage/memory-file-system.js';
import { checkFrame } from '../src/storage/record-frame.js';
import type { AckStateSnapshot } from '../src/subscriptions/core/persistent-group.js';
import type { GroupPosition } from '../src/subscriptions/persistent/durable-state.js';
import type { SubscriptionMessage } from '../src/subscriptions/persistent/group-reader.js';
import { PersistentSubscriptionHost } from '../src/subscriptions/persistent/host.js';
import { LeaderHosting } from '../src/subscriptions/persistent/leader-hosting.js';
import { FencedFileSystem } from './fenced-file-system.js';
import type { SimNetwork } from './network.js';
import type { SimRandom } from './random.js';
import type { Scheduler } from './scheduler.js';

/** Larger than any record the simulation writes: only to walk the frames of a log file. */
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** The simulated wall clock starts here, so event timestamps look like real ones. */
export const SIM_EPOCH_MS = Date.UTC(2026, 0, 1);

export interface ClusterObserver {
  onStatus(node: string, incarnation: number, status: Status): void;
  onApplied(node: string, incarnation: number, replica: Replica, index: number): void;
  /** A live node stopped on a failed assertion or storage error (not a crash the simulator made). */
  onNodeFailure(node: string, error: Error): void;
  onFault(node: string, detail: string): void;
  onTruncate(node: string, afterIndex: number, dropped: { runs: TermRun[]; lastIndex: number }, term: number): void;
  onSend(node: string, to: string, message: Message<RecordBody>): void;
  /** A node could not start from its disk. */
  onStartFailure(node: string, error: Error): void;
  /** A node's persistent subscription host committed a group's ack state. */
  onAckStateCommitted(node: string, incarnation: number, epoch: number, group: string, snapshot: AckStateSnapshot<SubscriptionMessage, GroupPosition>): void;
}

export interface SimClusterConfig {
  voters: string[];
  learners: string[];
  tickMs: number;
  raft: { preVote: boolean; checkQuorum: boolean };
  electionStorm: boolean;
  /** Learners join mid-run through a configuration entry, instead of being in the bootstrap membership. */
  lateLearners: boolean;
  writeTimeoutMs: number;
  /** The leaders' batching delay (0: every write is sent at once). */
  appendBatchDelayMs: number;
  /** Per node: how fast its clock runs (1 = real time). */
  clockRates: Map<string, number>;
  diskLatencyMs: { min: number; max: number };
  unsafe: ReplicaUnsafeVariants | undefined;
}

interface SimNode {
  id: string;
  disk: MemoryFileSystem;
  fenced: FencedFileSystem | undefined;
  replica: Replica | undefined;
  /** The node's persistent subscription groups, hosted while it leads (as on a real node). */
  subscriptions: PersistentSubscriptionHost | undefined;
  hosting: LeaderHosting | undefined;
  incarnation: number;
  up: boolean;
  random: SimRandom;
}

/**
 * The production replica (consensus core, log, store) of every node, over simulated disks,
 * network and time. Crashes drop what a node had not fsynced; restarts recover from its disk.
 */
export class SimCluster {
  private readonly nodes = new Map<string, SimNode>();
  private uuidCounter = 0;
  /** Election timeouts barely randomised (the simulator ends the storm when it heals the world). */
  electionStorm: boolean;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly network: SimNetwork<Message<RecordBody>>,
    private readonly random: SimRandom,
    private readonly config: SimClusterConfig,
    private readonly observer: ClusterObserver,
  ) {
    this.electionStorm = config.electionStorm;
    for (const id of [...config.voters, ...config.learners]) {
      const node: SimNode = { id, disk: new MemoryFileSystem(), fenced: undefined, replica: undefined, subscriptions: undefined, hosting: undefined, incarnation: 0, up: false, random: random.fork(`node/${id}`) };
      this.nodes.set(id, node);
      network.register(id, (from, message) => {
        if (node.up) node.replica?.receive(from, message);
      });
    }
  }

  get ids(): string[] {
    return [...this.nodes.keys()];
  }

  get membership(): Membership {
    return { voters: this.config.voters, learners: this.config.learners };
  }

  /**
   * The membership a node starts from. With late learners, the voters start without them (a
   * read-only replica that joins later); each learner knows itself.
   */
  private membershipFor(id: string): Membership {
    if (!this.config.lateLearners) return this.membership;
    return { voters: this.config.voters, learners: this.config.learners.includes(id) ? [id] : [] };
  }

  /** Asks whoever leads now to add the learners it lacks; true once all are members there. */
  addLateLearners(): boolean {
    const leader = this.ids.map((id) => this.replicaOf(id)).find((replica) => replica?.writable);
    if (!leader) return false;
    for (const learner of this.config.learners) leader.addLearner(learner);
    return this.config.learners.every((learner) => leader.membership.learners.includes(learner));
  }

  /**
   * The node's leader hands leadership over as a server does for `ResignNode` and before a
   * graceful stop: the persistent subscriptions' acknowledgements are committed, then a transfer
   * to the voter furthest along. False if it does not lead (or leads no longer) or none can take over.
   */
  async handOver(id: string): Promise<boolean> {
    const node = this.nodes.get(id)!;
    const replica = node.up ? node.replica : undefined;
    if (!replica || !node.hosting) return false;
    return node.hosting.handOver(() => replica.resign());
  }

  replicaOf(id: string): Replica | undefined {
    const node = this.nodes.get(id);
    return node?.up ? node.replica : undefined;
  }

  incarnationOf(id: string): number {
    return this.nodes.get(id)!.incarnation;
  }

  /** The persistent subscription host of a running node. */
  subscriptionsOf(id: string): PersistentSubscriptionHost | undefined {
    const node = this.nodes.get(id);
    return node?.up ? node.subscriptions : undefined;
  }

  isUp(id: string): boolean {
    return this.nodes.get(id)!.up;
  }

  diskOf(id: string): MemoryFileSystem {
    return this.nodes.get(id)!.disk;
  }

  async start(id: string): Promise<void> {
    const node = this.nodes.get(id)!;
    if (node.up) return;
    node.incarnation++;
    const incarnation = node.incarnation;
    node.up = true;
    this.network.up(id);
    const fenced = new FencedFileSystem(node.disk);
    node.fenced = fenced;
    const rate = this.config.clockRates.get(id) ?? 1;
    const alive = (): boolean => node.incarnation === incarnation && node.up;
    const schedule = (delayMs: number, action: () => void): { cancel(): void } => {
      const timer = this.scheduler.after(Math.max(0, Math.round(delayMs * rate)), () => {
        if (alive()) action();
      });
      return { cancel: () => this.scheduler.cancel(timer) };
    };
    const diskRandom = node.random.fork(`disk/${incarnation}`);
    try {
      const replica = await Replica.open({
        id,
        membership: this.membershipFor(id),
        directory: `/${id}`,
        fileSystem: fenced,
        transport: {
          send: (to, message) => {
            if (!alive()) return;
            this.observer.onSend(id, to, message);
            this.network.send(id, to, message);
          },
        },
        timers: { schedule, soon: (action) => schedule(0, action) },
        // In an election storm the timeouts are barely spread, so candidacies collide.
        random: () => (this.electionStorm ? node.random.next() * 0.25 : node.random.next()),
        tickMs: this.config.tickMs,
        raft: this.config.raft,
        writeTimeoutMs: this.config.writeTimeoutMs,
        appendBatchDelayMs: this.config.appendBatchDelayMs,
        // Few positions in memory: lagging followers, truncations and restarts re-read old ones from the log.
        entryPositions: { stride: 4, cachedChunks: 2 },
        // Few entries in memory too: appends to a lagging follower and applies read them back from the log.
        recentEntries: 16,
        store: {
          indexBackend: 'memory',
          clock: () => SIM_EPOCH_MS + this.scheduler.now,
          newUuid: () => this.nextUuid(),
          scheduleLogFlush: (flush) => {
            const latency = diskRandom.between(this.config.diskLatencyMs.min, this.config.diskLatencyMs.max);
            this.scheduler.after(latency, () => {
              if (alive()) flush();
            });
          },
        },
        endpointOf: (leader) => ({ host: leader, port: 0 }),
        onStatus: (status) => {
          if (alive()) this.observer.onStatus(id, incarnation, status);
        },
        onTruncate: (afterIndex, dropped) => {
          if (alive() && dropped && node.replica) this.observer.onTruncate(id, afterIndex, dropped, node.replica.raftStatus.term);
        },
        onApplied: (index) => {
          if (alive() && node.replica) this.observer.onApplied(id, incarnation, node.replica, index);
        },
        onFault: (fault) => {
          if (alive()) this.observer.onFault(id, `${fault.kind}: ${fault.detail}`);
        },
        onFailure: (error) => {
          if (alive()) this.observer.onNodeFailure(id, error);
        },
        ...(this.config.unsafe ? { unsafe: this.config.unsafe } : {}),
      });
      if (!alive()) {
        await replica.close().catch(() => undefined);
        return;
      }
      node.replica = replica;
      const host: PersistentSubscriptionHost = new PersistentSubscriptionHost(replica.store, {
        now: () => this.scheduler.now,
        schedule,
        newId: () => this.nextUuid(),
        log: () => undefined,
        confirmLeadership: () => replica.linearizableReadBarrier(),
        onAckStateCommitted: (definition, snapshot) => {
          if (alive()) this.observer.onAckStateCommitted(id, incarnation, host.epoch.number, definition.group, snapshot);
        },
      });
      node.subscriptions = host;
      const hosting = new LeaderHosting(host, () => alive() && replica.writable, () => undefined, () => replica.handingOver);
      node.hosting = hosting;
      const follow = (): void => {
        hosting.follow();
        schedule(100, follow);
      };
      follow();
    } catch (error) {
      // A node that cannot start from its disk (a corrupted record before its durable tail) stays down.
      if (alive()) {
        node.up = false;
        this.network.down(id);
        this.observer.onStartFailure(id, error as Error);
      }
    }
  }

  /** Power loss: unsynced writes are lost (the last one maybe torn), the process is gone. */
  crash(id: string, tearKeepFraction: number | undefined): void {
    const node = this.nodes.get(id)!;
    if (!node.up) return;
    node.up = false;
    node.fenced?.fence();
    node.replica = undefined;
    node.subscriptions = undefined;
    node.hosting = undefined;
    this.network.down(id);
    node.disk.crash(tearKeepFraction === undefined ? {} : { tearLastWrite: { keepFraction: tearKeepFraction } });
  }

  /**
   * Flips one bit in a stopped node's log (a latent disk error its CRCs must catch), inside a record
   * that is not the log's last one. A damaged last record cannot be told from a write torn by a
   * crash — recovery drops it as one — so a flip there would be the disk silently losing an fsynced
   * write, which no CRC can catch and Raft does not tolerate (that needs protocol-aware recovery).
   */
  async flipBitInLog(id: string, random: SimRandom): Promise<string | undefined> {
    const node = this.nodes.get(id)!;
    if (node.up) return undefined;
    const directory = `/${id}/store/log`;
    const segments = (await node.disk.list(directory)).filter((name) => name.startsWith('segment-')).sort();
    const candidates: { path: string; start: number; length: number }[] = [];
    for (const [i, name] of segments.entries()) {
      const path = `${directory}/${name}`;
      const file = await node.disk.open(path, { create: false });
      const bytes = new Uint8Array(await file.size());
      await file.read(bytes, 0, bytes.byteLength, 0);
      await file.close();
      const frames: { path: string; start: number; length: number }[] = [];
      for (let offset = 0; ; ) {
        const check = checkFrame(bytes, offset, MAX_FRAME_BYTES);
        if (!check.ok) break;
        frames.push({ path, start: offset, length: check.length });
        offset += check.length;
      }
      if (i === segments.length - 1) frames.pop();
      candidates.push(...frames);
    }
    if (candidates.length === 0) return undefined;
    const frame = random.pick(candidates);
    const offset = frame.start + random.int(frame.length);
    node.disk.flipByte(frame.path, offset, 1 << random.int(8));
    return `${frame.path}@${offset}`;
  }

  async stopAll(): Promise<void> {
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      node.up = false;
      await node.subscriptions?.stop(false, 'the simulation ends').catch(() => undefined);
      node.subscriptions = undefined;
      node.hosting = undefined;
      await node.replica?.close().catch(() => undefined);
      node.replica = undefined;
    }
  }

  private nextUuid(): string {
    this.uuidCounter++;
    return `00000000-0000-4000-8000-${this.uuidCounter.toString(16).padStart(12, '0')}`;
  }
}
