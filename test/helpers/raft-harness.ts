/**
 * A small scenario harness for the Raft core: a few `RaftNode<string>`s, each with an in-memory
 * log that carries out its effects, and one message queue between them that a test delivers,
 * drops or filters. Time moves only when the test ticks, so every scenario replays exactly.
 *
 *   const cluster = new Cluster({ voters: ['a', 'b', 'c'] });
 *   const leader = cluster.tickUntilLeader();
 *   cluster.propose(leader, 'x');
 *   cluster.stabilize();
 */
import { RaftNode, type ProposeResult, type RaftOptions, type RaftStart, type UnsafeVariants } from '../../src/consensus/raft.js';
import type { Effects, Entry, Envelope, Fault, HardState, Membership, Message, NodeId, ReadReady, Status, TermRun } from '../../src/consensus/types.js';

export type Payload = string;
export type SimEnvelope = Envelope<Payload>;
export type MessagePredicate = (envelope: SimEnvelope) => boolean;
/** Sees one round of messages (all that were queued) just before they are delivered. */
export type RoundObserver = (queued: readonly SimEnvelope[]) => void;

export interface ClusterOptions {
  voters: NodeId[];
  learners?: NodeId[];
  /** Seeds every node's random source; two clusters with one seed run alike. */
  seed?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  maxEntriesPerAppend?: number;
  maxInflightAppends?: number;
  maxAutoTruncateEntries?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  batchAppends?: boolean;
  unsafe?: UnsafeVariants;
}

/** A seeded linear congruential generator (Numerical Recipes' constants), in [0, 1). */
export function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 0x1_0000_0000;
  };
}

/** One node: the core and the storage and state machine its caller would keep. */
export class SimNode {
  raft: RaftNode<Payload>;
  /** Written entries, durable or not; `log[i]` holds index i + 1. */
  log: Entry<Payload>[] = [];
  /** Up to here the log survives a crash (what was reported with `persisted`). */
  durableIndex = 0;
  hardState: HardState = { term: 0, votedFor: undefined };
  /** Entries handed to the state machine, in order. */
  applied: Entry<Payload>[] = [];
  /** When false, written entries wait for `Cluster.persist` before the core hears they are durable. */
  autoPersist = true;
  up = true;
  faults: Fault[] = [];
  readsReady: ReadReady[] = [];
  readsFailed: number[] = [];
  /** Every `status` effect, oldest first. */
  statuses: Status[] = [];
  /** Every `truncateAfter` effect. */
  truncations: number[] = [];
  /** Every `commitIndex` effect. */
  commitIndexes: number[] = [];
  /** Every `appendHold` effect: holds waiting for `Cluster.releaseAppends`. */
  appendHolds: number[] = [];

  constructor(
    readonly id: NodeId,
    private readonly options: RaftOptions,
    private readonly bootstrap: Membership,
  ) {
    this.raft = new RaftNode<Payload>(options, this.start());
  }

  /** What the caller finds on disk: the hard state, the durable log, what it had applied. */
  start(): RaftStart {
    const termRuns: TermRun[] = [];
    for (const entry of this.log) if (termRuns.at(-1)?.term !== entry.term) termRuns.push({ startIndex: entry.index, term: entry.term });
    return {
      hardState: { ...this.hardState },
      termRuns,
      lastIndex: this.log.length,
      configurations: this.log.flatMap((entry) => (entry.membership ? [{ index: entry.index, membership: entry.membership }] : [])),
      bootstrap: this.bootstrap,
      committedIndex: this.applied.length,
    };
  }

  /** Loses what was not durable and starts a new core from what is. */
  restart(): void {
    this.log = this.log.slice(0, this.durableIndex);
    // The random source carries on where it was, as a restarted process reseeds from a fresh source.
    this.raft = new RaftNode<Payload>(this.options, this.start());
    this.up = true;
    this.autoPersist = true;
  }

  get status(): Status {
    return this.raft.status;
  }

  get appliedIndex(): number {
    return this.applied.length;
  }

  /** The payloads of the data entries applied, in order. */
  get appliedData(): Payload[] {
    return this.applied.filter((entry) => entry.kind === 'data').map((entry) => entry.payload);
  }

  /** The log as `term:payload` (or `term:kind` for noop and config entries), for compact assertions. */
  get logSummary(): string[] {
    return this.log.map((entry) => `${entry.term}:${entry.kind === 'data' ? entry.payload : entry.kind}`);
  }
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>();
  readonly membership: Membership;
  /** Messages taken from the nodes and not yet delivered or dropped, oldest first. */
  queue: SimEnvelope[] = [];
  /** Every message handed to a node, oldest first. */
  readonly delivered: SimEnvelope[] = [];
  /** Every message lost to a partition, a crash, a drop rule or `dropQueued`. */
  readonly dropped: SimEnvelope[] = [];
  /** Breaches of state machine safety seen while applying (two nodes applied different entries at one index, ...). */
  readonly violations: string[] = [];
  private readonly committed = new Map<number, Entry<Payload>>();
  private groups = new Map<NodeId, number>();
  private readonly dropRules = new Set<MessagePredicate>();

  constructor(options: ClusterOptions) {
    this.membership = { voters: [...options.voters], learners: [...(options.learners ?? [])] };
    const ids = [...this.membership.voters, ...this.membership.learners];
    ids.forEach((id, position) => {
      const raftOptions: RaftOptions = {
        id,
        electionTicks: options.electionTicks ?? 10,
        heartbeatTicks: options.heartbeatTicks ?? 2,
        maxEntriesPerAppend: options.maxEntriesPerAppend ?? 64,
        maxInflightAppends: options.maxInflightAppends ?? 4,
        maxAutoTruncateEntries: options.maxAutoTruncateEntries ?? 1000,
        preVote: options.preVote ?? true,
        checkQuorum: options.checkQuorum ?? true,
        batchAppends: options.batchAppends ?? false,
        random: lcg((options.seed ?? 1) * 7919 + position * 104729),
      };
      if (options.unsafe) raftOptions.unsafe = options.unsafe;
      this.nodes.set(id, new SimNode(id, raftOptions, this.membership));
    });
  }

  // ------------------------------------------------------------------ looking

  node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  status(id: NodeId): Status {
    return this.node(id).status;
  }

  get ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  /** The running nodes that believe they lead. */
  leaders(): NodeId[] {
    return this.ids.filter((id) => this.node(id).up && this.status(id).role === 'leader');
  }

  /** The running node that leads and takes writes, in the highest term; throws if none. */
  leader(): NodeId {
    const ready = this.ids.filter((id) => this.node(id).up && this.status(id).leaderReady);
    ready.sort((a, b) => this.status(b).term - this.status(a).term);
    const leader = ready[0];
    if (leader === undefined) throw new Error(`no leader: ${this.describe()}`);
    return leader;
  }

  /** One line per node, for failure messages. */
  describe(): string {
    return this.ids
      .map((id) => {
        const { role, term, leader, commitIndex, lastIndex } = this.status(id);
        return `${id}${this.node(id).up ? '' : ' (down)'}: ${role} term ${term} leader ${leader ?? '-'} commit ${commitIndex} last ${lastIndex}`;
      })
      .join('; ');
  }

  // ------------------------------------------------------------------ time

  /** Ticks one node `count` times, letting the cluster settle after each tick. */
  tick(id: NodeId, count = 1, observe?: RoundObserver): void {
    for (let tick = 0; tick < count; tick++) {
      this.node(id).raft.tick();
      this.stabilize(observe);
    }
  }

  /** Ticks every running node `count` times, letting the cluster settle after each tick. */
  tickAll(count = 1): void {
    for (let tick = 0; tick < count; tick++) {
      for (const node of this.nodes.values()) if (node.up) node.raft.tick();
      this.stabilize();
    }
  }

  /** Ticks every running node until `done` holds; returns the ticks it took. */
  tickUntil(done: () => boolean, maxTicks = 500): number {
    for (let tick = 0; tick < maxTicks; tick++) {
      if (done()) return tick;
      this.tickAll();
    }
    if (done()) return maxTicks;
    throw new Error(`not done after ${maxTicks} ticks: ${this.describe()}`);
  }

  /** Ticks until a node of `among` (any by default) leads and takes writes; returns it. */
  tickUntilLeader(among: readonly NodeId[] = this.ids, maxTicks = 500): NodeId {
    this.tickUntil(() => among.some((id) => this.node(id).up && this.status(id).leaderReady), maxTicks);
    return among.find((id) => this.node(id).up && this.status(id).leaderReady)!;
  }

  /** `id` campaigns at once (as its election timeout would make it) and the cluster settles. */
  campaign(id: NodeId): void {
    this.node(id).raft.campaignNow();
    this.stabilize();
  }

  // ------------------------------------------------------------------ clients

  /** Proposes on `id`; nothing is sent until the next `collect` or `stabilize`. */
  propose(id: NodeId, payload: Payload, kind: 'data' | 'noop' = 'data'): ProposeResult {
    return this.node(id).raft.propose(kind, payload);
  }

  /** Proposes each payload on the leader, asserting it is accepted, and lets the cluster settle. */
  write(...payloads: Payload[]): void {
    const leader = this.leader();
    for (const payload of payloads) {
      const result = this.propose(leader, payload);
      if (!result.ok) throw new Error(`${leader} refused ${payload}: ${result.reason}`);
    }
    this.stabilize();
  }

  /** `id`'s batching delay ended for `hold` (its newest by default); nothing is sent until the next `collect`. */
  releaseAppends(id: NodeId, hold?: number): void {
    const node = this.node(id);
    node.raft.releaseAppends(hold ?? node.appendHolds.at(-1) ?? 0);
  }

  readIndex(id: NodeId, readId: number): void {
    this.node(id).raft.readIndex(readId);
  }

  /** `from` hands leadership to `target`; the cluster settles. Returns whether `from` took the request. */
  transferLeadership(from: NodeId, target: NodeId): boolean {
    const accepted = this.node(from).raft.transferLeadership(target);
    this.stabilize();
    return accepted;
  }

  /** `id` resigns; the cluster settles. */
  resign(id: NodeId): boolean {
    const accepted = this.node(id).raft.resign();
    this.stabilize();
    return accepted;
  }

  // ------------------------------------------------------------------ network

  /** Only nodes in one group hear each other; a node in no group is alone. */
  partition(...groups: NodeId[][]): void {
    this.groups = new Map();
    groups.forEach((group, position) => group.forEach((id) => this.groups.set(id, position)));
  }

  /** Cuts `id` off from everyone. */
  isolate(id: NodeId): void {
    this.partition(this.ids.filter((other) => other !== id));
  }

  heal(): void {
    this.groups = new Map();
  }

  /** Drops every message matching `rule` until the returned function is called. */
  dropIf(rule: MessagePredicate): () => void {
    this.dropRules.add(rule);
    return () => this.dropRules.delete(rule);
  }

  /** Whether `envelope` would get through now. */
  reachable(envelope: SimEnvelope): boolean {
    const from = this.nodes.get(envelope.from);
    const to = this.nodes.get(envelope.to);
    if (!from?.up || !to?.up) return false;
    if (this.group(envelope.from) !== this.group(envelope.to)) return false;
    for (const rule of this.dropRules) if (rule(envelope)) return false;
    return true;
  }

  private group(id: NodeId): string {
    const group = this.groups.get(id);
    return this.groups.size === 0 ? 'all' : group === undefined ? `alone:${id}` : `${group}`;
  }

  /** Takes the effects of every running node: persists, applies, and queues the messages. */
  collect(): void {
    for (const node of this.nodes.values()) if (node.up) this.drain(node);
  }

  /** Delivers the queued messages that match `which` (all by default), oldest first; the rest stay queued. */
  deliver(which: MessagePredicate = () => true): number {
    const chosen = this.queue.filter(which);
    this.queue = this.queue.filter((envelope) => !which(envelope));
    for (const envelope of chosen) this.deliverOne(envelope);
    return chosen.length;
  }

  /** Drops the queued messages that match `which` (all by default). */
  dropQueued(which: MessagePredicate = () => true): SimEnvelope[] {
    const chosen = this.queue.filter(which);
    this.queue = this.queue.filter((envelope) => !which(envelope));
    this.dropped.push(...chosen);
    return chosen;
  }

  /** Queues a message as if `from` had sent it (a duplicate, a late or a forged one). */
  inject(envelope: SimEnvelope): void {
    this.queue.push(envelope);
  }

  /**
   * Collects and delivers until no message is left; throws if that takes more than `maxRounds`.
   * `observe` sees each round's messages before they are delivered.
   */
  stabilize(observe?: RoundObserver, maxRounds = 200): void {
    for (let round = 0; round < maxRounds; round++) {
      this.collect();
      if (this.queue.length === 0) return;
      observe?.(this.queue);
      this.deliver();
    }
    throw new Error(`the cluster did not settle in ${maxRounds} rounds: ${this.describe()}`);
  }

  /** Delivered messages matching a filter, for assertions on the conversation. */
  deliveredWhere(which: MessagePredicate): SimEnvelope[] {
    return this.delivered.filter(which);
  }

  private deliverOne(envelope: SimEnvelope): void {
    if (!this.reachable(envelope)) {
      this.dropped.push(envelope);
      return;
    }
    this.delivered.push(envelope);
    this.node(envelope.to).raft.receive(envelope.from, envelope.message);
  }

  // ------------------------------------------------------------------ storage

  /** `id`'s writes stay unacknowledged by its disk until `persist` or `releasePersistence`. */
  holdPersistence(...ids: NodeId[]): void {
    for (const id of ids) this.node(id).autoPersist = false;
  }

  /** Reports `id`'s log durable up to `upTo` (all of it by default). */
  persist(id: NodeId, upTo?: number): void {
    const node = this.node(id);
    const index = Math.min(upTo ?? node.log.length, node.log.length);
    if (index <= node.durableIndex) return;
    node.durableIndex = index;
    node.raft.persisted(index, node.log[index - 1]!.term);
  }

  releasePersistence(...ids: NodeId[]): void {
    for (const id of ids) {
      this.node(id).autoPersist = true;
      this.persist(id);
    }
  }

  /** Stops `id`: it neither ticks nor hears, and what it had not made durable is lost. */
  crash(id: NodeId): void {
    this.node(id).up = false;
  }

  /** Starts `id` again from its durable hard state and log. */
  restart(id: NodeId): void {
    this.node(id).restart();
  }

  // ------------------------------------------------------------------ carrying out effects

  private drain(node: SimNode): void {
    for (let batch = 0; batch < 100; batch++) {
      const effects = node.raft.takeEffects();
      if (isEmpty(effects)) return;
      this.carryOut(node, effects);
    }
    throw new Error(`${node.id} keeps producing effects`);
  }

  /** In the documented order: hard state, truncate, append, (persist), send, apply. */
  private carryOut(node: SimNode, effects: Effects<Payload>): void {
    if (effects.hardState) node.hardState = { ...effects.hardState };
    if (effects.truncateAfter !== undefined) {
      node.truncations.push(effects.truncateAfter);
      if (effects.truncateAfter < node.appliedIndex) {
        this.violations.push(`${node.id} truncated after ${effects.truncateAfter}, below its applied index ${node.appliedIndex}`);
      }
      node.log.length = Math.min(node.log.length, effects.truncateAfter);
      node.durableIndex = Math.min(node.durableIndex, effects.truncateAfter);
    }
    for (const entry of effects.append) {
      if (entry.index !== node.log.length + 1) throw new Error(`${node.id} was asked to append ${entry.index} after ${node.log.length}`);
      node.log.push(entry);
    }
    if (effects.append.length > 0 && node.autoPersist) this.persist(node.id);
    for (const envelope of effects.messages) this.queue.push(withEntries(node, envelope));
    if (effects.commitIndex !== undefined) {
      node.commitIndexes.push(effects.commitIndex);
      this.apply(node, effects.commitIndex);
    }
    node.readsReady.push(...effects.readsReady);
    node.readsFailed.push(...effects.readsFailed);
    if (effects.status) node.statuses.push(effects.status);
    node.faults.push(...effects.faults);
    if (effects.appendHold !== undefined) node.appendHolds.push(effects.appendHold);
  }

  private apply(node: SimNode, commitIndex: number): void {
    for (let index = node.appliedIndex + 1; index <= commitIndex; index++) {
      const entry = node.log[index - 1];
      if (!entry) {
        this.violations.push(`${node.id} was told to apply ${index} but holds only ${node.log.length}`);
        return;
      }
      const first = this.committed.get(index);
      if (!first) this.committed.set(index, entry);
      else if (first.term !== entry.term || first.payload !== entry.payload || first.kind !== entry.kind) {
        this.violations.push(`${node.id} applied ${entry.term}:${entry.payload} at ${index}, another node applied ${first.term}:${first.payload}`);
      }
      node.applied.push(entry);
    }
  }
}

/** An append as it goes on the wire: with the entries it announces, read from the sender's log. */
function withEntries(sender: SimNode, envelope: SimEnvelope): SimEnvelope {
  const message: Message<Payload> = envelope.message;
  if (message.kind !== 'append') return envelope;
  const entries = sender.log.slice(message.prevIndex, message.prevIndex + message.count);
  if (entries.length !== message.count) throw new Error(`${sender.id} cannot load ${message.count} entries after ${message.prevIndex}`);
  return { ...envelope, message: { ...message, entries } };
}

function isEmpty(effects: Effects<Payload>): boolean {
  return (
    effects.hardState === undefined &&
    effects.truncateAfter === undefined &&
    effects.append.length === 0 &&
    effects.messages.length === 0 &&
    effects.commitIndex === undefined &&
    effects.readsReady.length === 0 &&
    effects.readsFailed.length === 0 &&
    effects.status === undefined &&
    effects.faults.length === 0 &&
    effects.appendHold === undefined
  );
}

// ------------------------------------------------------------------ message predicates

export const from =
  (id: NodeId): MessagePredicate =>
  (envelope) =>
    envelope.from === id;

export const to =
  (id: NodeId): MessagePredicate =>
  (envelope) =>
    envelope.to === id;

export const ofKind =
  (...kinds: Message<Payload>['kind'][]): MessagePredicate =>
  (envelope) =>
    kinds.includes(envelope.message.kind);

export const all =
  (...predicates: MessagePredicate[]): MessagePredicate =>
  (envelope) =>
    predicates.every((predicate) => predicate(envelope));

/** Appends that carry entries (not the empty ones that only probe or tell a commit index). */
export const appendsWithEntries: MessagePredicate = (envelope) => envelope.message.kind === 'append' && envelope.message.count > 0;

/** Refusals of an append because the logs differ (not because of the term). */
export const appendRefusals: MessagePredicate = (envelope) =>
  envelope.message.kind === 'append-response' && !envelope.message.success && envelope.message.rejectHint !== undefined;
