import { majorityMatchIndex, voteOutcome } from './quorum.js';
import { TermIndex } from './term-index.js';
import type {
  AppendRequest,
  AppendResponse,
  Effects,
  Entry,
  EntryKind,
  Envelope,
  HardState,
  Heartbeat,
  HeartbeatResponse,
  Membership,
  Message,
  NodeId,
  PreVoteRequest,
  Role,
  Status,
  TermRun,
  VoteRequest,
  VoteResponse,
} from './types.js';

export interface RaftOptions {
  id: NodeId;
  /** A follower that hears nothing from a leader for this many ticks (randomised up to twice) campaigns. */
  electionTicks: number;
  heartbeatTicks: number;
  maxEntriesPerAppend: number;
  /** An append carries entries up to about this many bytes (at least one entry), when `entryBytes` is given. */
  maxBytesPerAppend?: number;
  /** The size of a local entry: a read of the caller's index of positions, synchronous and cheap. */
  entryBytes?: (index: number) => number;
  /** Appends sent to one follower and not yet acknowledged, at most. */
  maxInflightAppends: number;
  /**
   * A follower truncates at most this many uncommitted entries by itself; more than that is
   * reported as a fault and refused, so a person decides (it means a long divergent history).
   */
  maxAutoTruncateEntries: number;
  preVote: boolean;
  checkQuorum: boolean;
  /**
   * A leader holds new data entries back from its followers until they make up at least half as
   * many entries as the last batch it released. While an earlier batch is still uncommitted, its
   * commit is what brings those writers back; with nothing in flight, the caller's batching delay
   * ends the wait (`appendHold`, then `releaseAppends`). Writers in a closed loop are answered
   * together but send again a few at a time (the first answered is the first back): without the
   * hold, every round reaches the followers as a lone entry and then the rest, two messages,
   * two flushes and two acknowledgements where one would do.
   */
  batchAppends?: boolean;
  /** The seeded random source, in [0, 1). */
  random: () => number;
  /** Deliberate bugs, for proving that the simulator's checkers catch them. Never set in production. */
  unsafe?: UnsafeVariants;
}

export interface UnsafeVariants {
  /** The leader counts an entry committed as soon as it holds it itself. */
  commitWithoutQuorum?: boolean;
  /** Votes are granted and counted without comparing terms. */
  ignoreVoteTerms?: boolean;
  /** Followers apply what they hold before it is committed. */
  applyUncommitted?: boolean;
  /**
   * Followers cut their log after every append's last entry, even when what follows matches (and
   * was acknowledged, maybe committed): a late, reordered append then loses entries.
   */
  truncateCommitted?: boolean;
}

/** What the core is started from: what the caller found on disk. */
export interface RaftStart {
  hardState: HardState;
  termRuns: readonly TermRun[];
  lastIndex: number;
  /** Configuration entries in the log, oldest first. */
  configurations: readonly { index: number; membership: Membership }[];
  /** The membership to use (and to record) when the log has none yet. */
  bootstrap: Membership;
  /** An index known committed (the caller applied up to it before it stopped). */
  committedIndex: number;
}

interface Progress {
  match: number;
  next: number;
  /** Probe: one append at a time until the follower's log is found; replicate: pipelined. */
  state: 'probe' | 'replicate';
  probeSent: boolean;
  /** Last index of each append in flight, oldest first. */
  inflight: number[];
  /** The commit index last told to this follower. */
  commitSent: number;
  /** For telling lost appends: the match seen at the last heartbeat answer, and for how many rounds. */
  matchAtLastHeartbeat: number;
  stalledRounds: number;
  recentActive: boolean;
}

interface PendingRead {
  id: number;
  index: number;
  round: number;
  acks: Set<NodeId>;
}

export type ProposeResult = { ok: true; index: number; term: number } | { ok: false; leader: NodeId | undefined; reason: string };

/**
 * Raft as a deterministic state machine, after etcd's raft: messages, ticks and storage
 * completions go in; what to persist, send and apply comes out of `takeEffects`. It holds no
 * entries, only the term of each index; the caller keeps the log and attaches payloads to the
 * appends it sends.
 */
export class RaftNode<P> {
  readonly id: NodeId;
  private readonly options: RaftOptions;
  private readonly unsafe: UnsafeVariants;
  private term: number;
  private votedFor: NodeId | undefined;
  private role: Role = 'follower';
  private leader: NodeId | undefined;
  private readonly log: TermIndex;
  /** The local log is durable up to here. */
  private stableIndex: number;
  private commitIndex: number;
  private configurations: { index: number; membership: Membership }[];
  private readonly bootstrap: Membership;

  private electionElapsed = 0;
  private electionPenaltyTicks = 0;
  /** False while this node may have forgotten votes it cast (it restarted without its state). */
  private votingAllowed = true;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;
  private votes = new Map<NodeId, boolean>();

  // Leader state.
  private progress = new Map<NodeId, Progress>();
  private firstIndexOfTerm = 0;
  private leaderReady = false;
  private transferTarget: NodeId | undefined;
  private transferElapsed = 0;
  private replicationWanted = false;
  /** Entries after this index are held back from followers (`batchAppends`). */
  private releasedUpTo = 0;
  private lastReleasedBatch = 1;
  /** The hold waiting for the caller's `releaseAppends`, 0 when none. */
  private pendingHold = 0;
  private holdSequence = 0;
  private readRound = 0;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingReady: number[] = [];

  // Follower state: how far the log is known to match the current leader's, and what was acknowledged.
  private matchedUpTo = 0;
  private lastAckSent = 0;

  private effects: Effects<P>;
  private hardStateDirty = false;
  private lastStatus: Status | undefined;
  private lastCommitEmitted: number;

  constructor(options: RaftOptions, start: RaftStart) {
    this.options = options;
    this.unsafe = options.unsafe ?? {};
    this.id = options.id;
    this.term = start.hardState.term;
    this.votedFor = start.hardState.votedFor;
    this.log = new TermIndex(start.termRuns, start.lastIndex);
    this.stableIndex = start.lastIndex;
    this.commitIndex = Math.min(start.committedIndex, start.lastIndex);
    this.lastCommitEmitted = this.commitIndex;
    this.configurations = start.configurations.map((entry) => ({ ...entry }));
    this.bootstrap = start.bootstrap;
    this.effects = emptyEffects();
    this.role = this.isVoter(this.id) ? 'follower' : 'learner';
    this.resetElectionTimer();
    this.noteStatus();
  }

  // ------------------------------------------------------------------ inputs

  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickFollower();
  }

  receive(from: NodeId, message: Message<P>): void {
    if (!this.isMember(from)) return;
    if (!this.adoptTermOf(from, message)) return;
    switch (message.kind) {
      case 'pre-vote':
        this.onPreVote(from, message);
        break;
      case 'vote':
        this.onVote(from, message);
        break;
      case 'vote-response':
        this.onVoteResponse(from, message);
        break;
      case 'append':
        this.onAppend(from, message);
        break;
      case 'append-response':
        this.onAppendResponse(from, message);
        break;
      case 'heartbeat':
        this.onHeartbeat(from, message);
        break;
      case 'heartbeat-response':
        this.onHeartbeatResponse(from, message);
        break;
      case 'timeout-now':
        this.onTimeoutNow(from);
        break;
    }
    this.noteStatus();
  }

  /** The caller made the log durable up to `index`, where the entry has `term`. */
  persisted(index: number, term: number): void {
    if (index <= this.stableIndex || this.log.termAt(index) !== term) return;
    this.stableIndex = index;
    if (this.role === 'leader') this.advanceCommit();
    else this.acknowledgeLeader();
    this.noteStatus();
  }

  /** Appends an entry if this node leads; the caller learns it is committed from `commitIndex`. */
  propose(kind: EntryKind, payload: P, membership?: Membership): ProposeResult {
    if (this.role !== 'leader') return { ok: false, leader: this.leader, reason: 'this node is not the leader' };
    if (this.transferTarget !== undefined) return { ok: false, leader: undefined, reason: 'leadership is being handed over' };
    if (kind === 'data' && !this.leaderReady) return { ok: false, leader: this.id, reason: 'the new leader has not committed its first entry yet' };
    const entry = this.appendLocal(kind, payload, membership);
    this.noteStatus();
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * The entries a leader just proposed, for the caller to write at once (it needs their positions
   * before it answers `propose`'s caller). Everything else still comes through `takeEffects`.
   */
  takeProposed(): Entry<P>[] {
    if (this.role !== 'leader' || this.hardStateDirty || this.effects.truncateAfter !== undefined) {
      throw new Error('takeProposed is for a settled leader: a new term or a truncation must go through takeEffects first');
    }
    const proposed = this.effects.append;
    this.effects.append = [];
    return proposed;
  }

  /**
   * The batching delay of `appendHold` ended: the entries held go to the followers. False when
   * that hold had already ended (enough entries came first), so there is nothing to send.
   */
  releaseAppends(hold: number): boolean {
    if (this.role !== 'leader' || hold !== this.pendingHold) return false;
    this.releaseHeldEntries();
    this.replicationWanted = true;
    return true;
  }

  /**
   * Asks for a linearizable read point: once a quorum confirms this node still leads, `readsReady`
   * carries the index the read must wait to be applied.
   */
  readIndex(id: number): void {
    if (this.role !== 'leader') {
      this.effects.readsFailed.push(id);
      return;
    }
    if (!this.leaderReady) {
      this.readsAwaitingReady.push(id);
      return;
    }
    this.startRead(id);
  }

  /** Hands leadership to `target` once it holds the whole log. */
  transferLeadership(target: NodeId): boolean {
    if (this.role !== 'leader' || target === this.id || !this.isVoter(target)) return false;
    this.transferTarget = target;
    this.transferElapsed = 0;
    // The target must hold the whole log before it may take over: nothing stays held back.
    this.releaseHeldEntries();
    this.maybeSendTimeoutNow();
    return true;
  }

  /**
   * Extra ticks this node waits, beyond its election timeout, before it campaigns: nodes of a
   * higher priority time out first and so usually win (the Operations service's node priority).
   */
  setElectionPenalty(ticks: number): void {
    if (!Number.isSafeInteger(ticks) || ticks < 0) throw new RangeError(`an election penalty is a whole number of ticks, got ${ticks}`);
    this.electionPenaltyTicks = ticks;
  }

  /**
   * Stops (or resumes) this node granting votes and campaigning. A node that lost its disk (an
   * in-memory node restarted) may have voted in the current term already and holds none of the
   * committed entries: until it has caught up with a leader it must not take part in elections.
   */
  setVotingAllowed(allowed: boolean): void {
    this.votingAllowed = allowed;
  }

  /** Campaigns now instead of waiting for the election timeout (a cluster of one at start-up). */
  campaignNow(): void {
    if (this.role === 'leader' || this.role === 'learner') return;
    this.campaign(this.options.preVote ? 'pre-vote' : 'vote', false);
    this.noteStatus();
  }

  /**
   * Hands leadership to the voter furthest along among those that answered in the current
   * check-quorum period (a resign, or a leader stopping); a silent one only when none answered,
   * since a transfer to a dead node holds writes back until the transfer times out.
   */
  resign(): boolean {
    if (this.role !== 'leader') return false;
    let best: NodeId | undefined;
    let bestAnswered = false;
    let bestMatch = -1;
    for (const voter of this.voters()) {
      if (voter === this.id) continue;
      const progress = this.progress.get(voter);
      const answered = progress?.recentActive ?? false;
      const match = progress?.match ?? 0;
      if ((answered && !bestAnswered) || (answered === bestAnswered && match > bestMatch)) {
        best = voter;
        bestAnswered = answered;
        bestMatch = match;
      }
    }
    if (best === undefined) return false;
    return this.transferLeadership(best);
  }

  /** Collects what the caller must do now, and clears it. */
  takeEffects(): Effects<P> {
    if (this.role === 'leader' && this.replicationWanted) {
      this.replicationWanted = false;
      this.decideOnHeldEntries();
      for (const peer of this.progress.keys()) this.fillPipeline(peer);
    }
    if (this.hardStateDirty) {
      this.effects.hardState = { term: this.term, votedFor: this.votedFor };
      this.hardStateDirty = false;
    }
    const applicable = this.unsafe.applyUncommitted && this.role !== 'leader' ? this.stableIndex : Math.min(this.commitIndex, this.stableIndex);
    if (applicable > this.lastCommitEmitted) {
      this.effects.commitIndex = applicable;
      this.lastCommitEmitted = applicable;
    }
    this.noteStatus();
    const taken = this.effects;
    this.effects = emptyEffects();
    return taken;
  }

  get status(): Status {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      leader: this.leader,
      commitIndex: this.commitIndex,
      lastIndex: this.log.lastIndex,
      leaderReady: this.role === 'leader' && this.leaderReady,
    };
  }

  get membership(): Membership {
    return this.configurations.at(-1)?.membership ?? this.bootstrap;
  }

  /** For checkers: the term of each local index. */
  termAt(index: number): number | undefined {
    return this.log.termAt(index);
  }

  get durableIndex(): number {
    return this.stableIndex;
  }

  /** A leadership transfer is under way (it ends when the target leads, or after an election timeout). */
  get handingOver(): boolean {
    return this.role === 'leader' && this.transferTarget !== undefined;
  }

  // ------------------------------------------------------------------ timeouts

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.options.electionTicks) {
      this.electionElapsed = 0;
      if (this.options.checkQuorum && !this.quorumActive()) {
        // Cut off from a majority: stop taking writes, a leader on the other side may exist.
        this.becomeFollower(this.term, undefined);
        return;
      }
      for (const progress of this.progress.values()) progress.recentActive = false;
    }
    if (this.transferTarget !== undefined && ++this.transferElapsed >= this.options.electionTicks) {
      this.transferTarget = undefined;
    }
    if (this.heartbeatElapsed >= this.options.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private tickFollower(): void {
    this.electionElapsed++;
    if (this.role === 'learner') return;
    if (this.electionElapsed >= this.randomizedElectionTicks + this.electionPenaltyTicks) {
      this.electionElapsed = 0;
      if (this.votingAllowed) this.campaign(this.options.preVote ? 'pre-vote' : 'vote', false);
    }
  }

  // ------------------------------------------------------------------ terms and roles

  /**
   * Applies the rules about a message's term. Returns false when the message is to be ignored.
   */
  private adoptTermOf(from: NodeId, message: Message<P>): boolean {
    if (message.term > this.term) {
      const asksForVote = message.kind === 'pre-vote' || message.kind === 'vote';
      if (asksForVote) {
        const transfer = message.kind === 'vote' && message.transfer;
        // Leader lease: while a leader is heard from, a node that lost contact must not depose it.
        if (this.options.checkQuorum && !transfer && this.leader !== undefined && this.electionElapsed < this.options.electionTicks) return false;
      }
      if (message.kind === 'pre-vote') return true;
      if (message.kind === 'vote-response' && message.preVote && message.granted) return true;
      const leader = message.kind === 'append' || message.kind === 'heartbeat' || message.kind === 'timeout-now' ? from : undefined;
      // A vote request moves this node to the newer term but does not restart its election timer;
      // granting the vote does (onVote). Otherwise a candidate whose log is behind — one that can
      // never win — would keep restarting the timers of the nodes that could, and no one would
      // lead for as long as it kept trying (seen with pre-vote off and a slow network).
      this.becomeFollower(message.term, leader, message.kind !== 'vote');
      return true;
    }
    if (message.term < this.term) {
      if (this.unsafe.ignoreVoteTerms && (message.kind === 'vote' || message.kind === 'vote-response')) return true;
      if (message.kind === 'append' || message.kind === 'heartbeat') {
        // Tell a deposed leader about the newer term, so it steps down.
        this.send(from, { kind: 'append-response', term: this.term, success: false, matchIndex: 0 });
      } else if (message.kind === 'pre-vote') {
        this.send(from, { kind: 'vote-response', term: this.term, preVote: true, granted: false });
      }
      // A pre-vote answer carries the term asked about, which can be ours + 1 and was handled above.
      return false;
    }
    return true;
  }

  private becomeFollower(term: number, leader: NodeId | undefined, restartElectionTimer = true): void {
    const wasLeader = this.role === 'leader';
    // What matched and was acknowledged holds for one leader in one term only.
    if (term !== this.term || leader !== this.leader) {
      this.matchedUpTo = 0;
      this.lastAckSent = 0;
    }
    if (term !== this.term) {
      this.term = term;
      this.votedFor = undefined;
      this.hardStateDirty = true;
    }
    this.role = this.isVoter(this.id) ? 'follower' : 'learner';
    this.leader = leader;
    this.votes.clear();
    if (restartElectionTimer) this.resetElectionTimer();
    if (wasLeader) this.dropLeaderState();
  }

  private dropLeaderState(): void {
    this.progress.clear();
    this.leaderReady = false;
    this.transferTarget = undefined;
    for (const read of this.pendingReads) this.effects.readsFailed.push(read.id);
    this.effects.readsFailed.push(...this.readsAwaitingReady);
    this.pendingReads = [];
    this.readsAwaitingReady = [];
  }

  private campaign(kind: 'pre-vote' | 'vote', transfer: boolean): void {
    if (!this.isVoter(this.id)) return;
    this.votes = new Map([[this.id, true]]);
    if (kind === 'pre-vote') {
      this.role = 'pre-candidate';
      this.leader = undefined;
      this.resetElectionTimer();
      if (this.decideElection()) return;
      const request: PreVoteRequest = { kind: 'pre-vote', term: this.term + 1, lastIndex: this.log.lastIndex, lastTerm: this.log.lastTerm };
      for (const voter of this.voters()) if (voter !== this.id) this.send(voter, request);
      return;
    }
    this.role = 'candidate';
    this.term++;
    this.votedFor = this.id;
    this.hardStateDirty = true;
    this.leader = undefined;
    this.resetElectionTimer();
    if (this.decideElection()) return;
    const request: VoteRequest = { kind: 'vote', term: this.term, lastIndex: this.log.lastIndex, lastTerm: this.log.lastTerm, transfer };
    for (const voter of this.voters()) if (voter !== this.id) this.send(voter, request);
  }

  /** Acts on the votes so far; true when the election is over. */
  private decideElection(): boolean {
    const outcome = voteOutcome(this.voters(), this.votes);
    if (outcome === 'pending') return false;
    if (outcome === 'lost') {
      this.becomeFollower(this.term, undefined);
      return true;
    }
    if (this.role === 'pre-candidate') this.campaign('vote', false);
    else this.becomeLeader();
    return true;
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.votes.clear();
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.progress.clear();
    for (const peer of this.peers()) {
      // Recently active by assumption, so check-quorum gives the new leader a full period.
      this.progress.set(peer, { match: 0, next: this.log.lastIndex + 1, state: 'probe', probeSent: false, inflight: [], commitSent: 0, matchAtLastHeartbeat: 0, stalledRounds: 0, recentActive: true });
    }
    this.leaderReady = false;
    this.readRound = 0;
    this.releasedUpTo = this.log.lastIndex;
    this.lastReleasedBatch = 1;
    this.pendingHold = 0;
    const noop = this.appendLocal('noop', undefined as P);
    this.firstIndexOfTerm = noop.index;
    if (this.configurations.length === 0) this.appendLocal('config', undefined as P, this.bootstrap);
  }

  // ------------------------------------------------------------------ votes

  private logIsUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.log.lastTerm || (lastTerm === this.log.lastTerm && lastIndex >= this.log.lastIndex);
  }

  private onPreVote(from: NodeId, request: PreVoteRequest): void {
    const granted = this.votingAllowed && request.term > this.term && this.logIsUpToDate(request.lastIndex, request.lastTerm);
    // A refusal carries our own term: a pre-candidate behind it adopts it, one ahead ignores it.
    // (Echoing the term asked about would make every refused pre-candidate adopt its own term + 1.)
    this.send(from, { kind: 'vote-response', term: granted ? request.term : this.term, preVote: true, granted });
  }

  private onVote(from: NodeId, request: VoteRequest): void {
    if (this.role === 'learner') return;
    const termOk = this.unsafe.ignoreVoteTerms || request.term === this.term;
    const canVote = this.votedFor === from || (this.votedFor === undefined && this.leader === undefined);
    const granted = this.votingAllowed && termOk && canVote && this.logIsUpToDate(request.lastIndex, request.lastTerm);
    if (granted) {
      this.votedFor = from;
      this.hardStateDirty = true;
      this.electionElapsed = 0;
    }
    this.send(from, { kind: 'vote-response', term: this.unsafe.ignoreVoteTerms ? request.term : this.term, preVote: false, granted });
  }

  private onVoteResponse(from: NodeId, response: VoteResponse): void {
    if (response.preVote) {
      if (this.role !== 'pre-candidate' || response.term !== this.term + 1) return;
    } else {
      if (this.role !== 'candidate') return;
      if (response.term !== this.term && !this.unsafe.ignoreVoteTerms) return;
    }
    this.votes.set(from, response.granted);
    this.decideElection();
  }

  private onTimeoutNow(from: NodeId): void {
    if (from !== this.leader || this.role === 'learner') return;
    this.campaign('vote', true);
  }

  // ------------------------------------------------------------------ replication: follower side

  /** Accepts `from` as this term's leader; false if this node leads the same term itself. */
  private followLeader(from: NodeId): boolean {
    // Two leaders in one term cannot happen; if it does, do not let the other one rewrite us.
    if (this.role === 'leader') return false;
    if ((this.role !== 'follower' && this.role !== 'learner') || this.leader !== from) this.becomeFollower(this.term, from);
    this.electionElapsed = 0;
    return true;
  }

  private onAppend(from: NodeId, request: AppendRequest<P>): void {
    if (!this.followLeader(from)) return;
    const entries = request.entries ?? [];
    if (entries.length !== request.count) throw new Error(`an append announced ${request.count} entries and carried ${entries.length}`);
    const localPrevTerm = this.log.termAt(request.prevIndex);
    if (localPrevTerm !== request.prevTerm) {
      this.rejectAppend(from, request.prevIndex, localPrevTerm);
      return;
    }
    let firstNew = entries.length;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const localTerm = this.log.termAt(entry.index);
      if (localTerm === entry.term) continue;
      if (localTerm !== undefined) {
        if (!this.truncateForConflict(entry.index)) return;
      }
      firstNew = i;
      break;
    }
    for (let i = firstNew; i < entries.length; i++) this.appendReceived(entries[i]!);
    const lastNew = request.prevIndex + entries.length;
    if (this.unsafe.truncateCommitted && lastNew < this.log.lastIndex) {
      // The bug Raft's paper warns about: a late, shorter append cuts off entries already acknowledged.
      this.truncateLocal(lastNew);
      this.matchedUpTo = Math.min(this.matchedUpTo, lastNew);
    }
    this.matchedUpTo = Math.max(this.matchedUpTo, lastNew);
    this.followCommit(request.commit);
    if (!this.acknowledgeLeader() && Math.min(this.matchedUpTo, this.stableIndex) >= request.prevIndex + entries.length) {
      // Nothing new to acknowledge, but a probe waits for an answer.
      this.send(from, { kind: 'append-response', term: this.term, success: true, matchIndex: Math.min(this.matchedUpTo, this.stableIndex) });
    }
  }

  private rejectAppend(to: NodeId, prevIndex: number, localPrevTerm: number | undefined): void {
    const conflictTerm = localPrevTerm ?? 0;
    const conflictIndex = localPrevTerm === undefined ? this.log.lastIndex + 1 : this.log.runStartOf(prevIndex);
    this.send(to, {
      kind: 'append-response',
      term: this.term,
      success: false,
      matchIndex: 0,
      rejectHint: { rejectedIndex: prevIndex, lastIndex: this.log.lastIndex, conflictTerm, conflictIndex },
    });
  }

  /** Drops the local suffix from `index` on, within the bounds; false (and a fault) when refused. */
  private truncateForConflict(index: number): boolean {
    const dropped = this.log.lastIndex - index + 1;
    if (index <= this.commitIndex) {
      this.effects.faults.push({
        kind: 'committed-entry-conflict',
        detail: `the leader's entry at ${index} differs from a committed local entry (commit index ${this.commitIndex}); refusing to truncate`,
      });
      return false;
    }
    if (dropped > this.options.maxAutoTruncateEntries) {
      this.effects.faults.push({
        kind: 'truncation-over-bound',
        detail: `replicating would truncate ${dropped} local entries from index ${index}, more than the bound of ${this.options.maxAutoTruncateEntries}`,
      });
      return false;
    }
    this.truncateLocal(index - 1);
    return true;
  }

  private followCommit(leaderCommit: number): void {
    const commit = Math.min(leaderCommit, this.matchedUpTo);
    if (commit > this.commitIndex) this.commitIndex = commit;
  }

  /** Sends the leader an acknowledgement if more is durably matched than last said. */
  private acknowledgeLeader(): boolean {
    if (this.leader === undefined || this.role === 'leader') return false;
    const ack = Math.min(this.matchedUpTo, this.stableIndex);
    if (ack <= this.lastAckSent) return false;
    this.lastAckSent = ack;
    this.send(this.leader, { kind: 'append-response', term: this.term, success: true, matchIndex: ack });
    return true;
  }

  private onHeartbeat(from: NodeId, heartbeat: Heartbeat): void {
    if (!this.followLeader(from)) return;
    this.followCommit(heartbeat.commit);
    this.send(from, { kind: 'heartbeat-response', term: this.term, readRound: heartbeat.readRound, matchIndex: Math.min(this.matchedUpTo, this.stableIndex) });
  }

  // ------------------------------------------------------------------ replication: leader side

  private appendLocal(kind: EntryKind, payload: P, membership?: Membership): Entry<P> {
    const entry: Entry<P> = { index: this.log.lastIndex + 1, term: this.term, kind, payload };
    if (membership) entry.membership = membership;
    this.log.append(entry.index, entry.term);
    if (membership) this.configurations.push({ index: entry.index, membership });
    this.effects.append.push(entry);
    this.replicationWanted = true;
    if (!this.options.batchAppends) this.releaseHeldEntries();
    if (membership && this.role === 'leader') this.syncProgressWithMembership();
    return entry;
  }

  /** `batchAppends`: releases the entries held, holds them on, or asks the caller for a delay. */
  private decideOnHeldEntries(): void {
    const held = this.log.lastIndex - this.releasedUpTo;
    if (held <= 0) return;
    const enough = Math.min(this.options.maxEntriesPerAppend, Math.max(1, Math.floor(this.lastReleasedBatch / 2)));
    if (held >= enough) {
      this.releaseHeldEntries();
      return;
    }
    // An earlier batch is in flight: its commit answers its writers, who then come back.
    if (this.commitIndex < this.releasedUpTo) return;
    if (this.pendingHold === 0) {
      this.pendingHold = ++this.holdSequence;
      this.effects.appendHold = this.pendingHold;
    }
  }

  private releaseHeldEntries(): void {
    const held = this.log.lastIndex - this.releasedUpTo;
    if (held > 0) this.lastReleasedBatch = held;
    this.releasedUpTo = this.log.lastIndex;
    this.pendingHold = 0;
  }

  private appendReceived(entry: Entry<P>): void {
    this.log.append(entry.index, entry.term);
    if (entry.membership) this.configurations.push({ index: entry.index, membership: entry.membership });
    this.effects.append.push(entry);
  }

  private truncateLocal(afterIndex: number): void {
    if (afterIndex < this.log.lastIndex) {
      const runs = this.log.snapshot().filter((run, i, all) => (all[i + 1]?.startIndex ?? Infinity) > afterIndex + 1 || run.startIndex > afterIndex);
      const lastIndex = Math.max(this.log.lastIndex, this.effects.dropped?.lastIndex ?? 0);
      this.effects.dropped = { runs: runs.map((run) => ({ startIndex: Math.max(run.startIndex, afterIndex + 1), term: run.term })), lastIndex };
    }
    this.log.truncateAfter(afterIndex);
    this.stableIndex = Math.min(this.stableIndex, afterIndex);
    this.configurations = this.configurations.filter((configuration) => configuration.index <= afterIndex);
    this.effects.append = this.effects.append.filter((entry) => entry.index <= afterIndex);
    this.effects.truncateAfter = Math.min(this.effects.truncateAfter ?? afterIndex, afterIndex);
    this.role = this.isVoter(this.id) ? (this.role === 'learner' ? 'follower' : this.role) : 'learner';
  }

  private syncProgressWithMembership(): void {
    const peers = new Set(this.peers());
    for (const peer of [...this.progress.keys()]) if (!peers.has(peer)) this.progress.delete(peer);
    for (const peer of peers) {
      if (!this.progress.has(peer)) {
        this.progress.set(peer, { match: 0, next: this.log.lastIndex, state: 'probe', probeSent: false, inflight: [], commitSent: 0, matchAtLastHeartbeat: 0, stalledRounds: 0, recentActive: true });
      }
    }
  }

  /**
   * Sends a follower what it lacks, within flow control. Without entries to send, an append still
   * goes out to probe a follower whose log is not yet found (or `probeAnyway`), or to tell an idle
   * follower a newer commit index.
   */
  private sendAppend(peer: NodeId, probeAnyway = false): boolean {
    const progress = this.progress.get(peer);
    if (!progress) return false;
    if (progress.state === 'probe' ? progress.probeSent : progress.inflight.length >= this.options.maxInflightAppends) return false;
    const lastIndex = this.releasedUpTo;
    const prevIndex = progress.next - 1;
    const count = this.appendCount(prevIndex, lastIndex);
    if (count === 0) {
      const probing = progress.state === 'probe' && (probeAnyway || progress.match < prevIndex);
      const commitNews = progress.commitSent < Math.min(this.commitIndex, progress.match);
      if (!probing && !commitNews) return false;
    }
    const prevTerm = this.log.termAt(prevIndex);
    if (prevTerm === undefined) throw new Error(`progress of ${peer} points past the log: next ${progress.next}, last ${lastIndex}`);
    this.send(peer, { kind: 'append', term: this.term, prevIndex, prevTerm, commit: this.commitIndex, count });
    progress.commitSent = Math.max(progress.commitSent, Math.min(this.commitIndex, prevIndex + count));
    if (progress.state === 'probe') {
      progress.probeSent = true;
    } else if (count > 0) {
      progress.next = prevIndex + count + 1;
      progress.inflight.push(prevIndex + count);
    }
    // An empty append in replicate state only carried the commit index: nothing more follows it.
    return progress.state === 'replicate' && count > 0;
  }

  private onAppendResponse(from: NodeId, response: AppendResponse): void {
    if (this.role !== 'leader') return;
    const progress = this.progress.get(from);
    if (!progress) return;
    progress.recentActive = true;
    if (!response.success) {
      const hint = response.rejectHint;
      if (!hint) return;
      // A refusal of an append sent before the last back-off is stale.
      if (progress.state === 'replicate' ? hint.rejectedIndex <= progress.match : hint.rejectedIndex !== progress.next - 1) return;
      let next = hint.conflictIndex;
      if (hint.conflictTerm > 0) {
        const ours = this.log.lastIndexUpToTerm(hint.conflictTerm, hint.rejectedIndex);
        if (ours > 0 && this.log.termAt(ours) === hint.conflictTerm) next = ours + 1;
      }
      next = Math.max(progress.match + 1, Math.min(next, hint.lastIndex + 1, hint.rejectedIndex));
      progress.state = 'probe';
      progress.probeSent = false;
      progress.inflight = [];
      progress.next = next;
      this.sendAppend(from);
      return;
    }
    if (response.matchIndex > progress.match) {
      progress.match = response.matchIndex;
      if (progress.state === 'probe') {
        progress.state = 'replicate';
        progress.next = progress.match + 1;
        progress.inflight = [];
      } else {
        progress.next = Math.max(progress.next, progress.match + 1);
        while (progress.inflight.length > 0 && progress.inflight[0]! <= progress.match) progress.inflight.shift();
      }
      this.advanceCommit();
      this.maybeSendTimeoutNow();
    }
    progress.probeSent = false;
    this.fillPipeline(from);
  }

  /** Sends appends to a follower until its window is full or it has everything. */
  private fillPipeline(peer: NodeId): void {
    for (let i = 0; i <= this.options.maxInflightAppends; i++) if (!this.sendAppend(peer)) return;
  }

  private onHeartbeatResponse(from: NodeId, response: HeartbeatResponse): void {
    if (this.role !== 'leader') return;
    const progress = this.progress.get(from);
    if (!progress) return;
    progress.recentActive = true;
    progress.probeSent = false;
    if (response.matchIndex < progress.match) {
      // The follower restarted and no longer knows it matches us (its durable entries are still
      // there): probe from what it acknowledged, so it can follow the commit index again.
      progress.state = 'probe';
      progress.inflight = [];
      progress.next = progress.match + 1;
      this.sendAppend(from, true);
    } else if (progress.state === 'replicate' && this.pipelineStalled(progress)) {
      // Appends were lost and nothing newer came to reveal the gap: resend from what it holds.
      progress.state = 'probe';
      progress.inflight = [];
      progress.next = progress.match + 1;
      this.sendAppend(from, true);
    } else {
      // A full window may hold lost appends: let one more through; a gap then turns into a probe.
      if (progress.state === 'replicate' && progress.inflight.length >= this.options.maxInflightAppends) progress.inflight.shift();
      this.fillPipeline(from);
    }
    this.confirmReads(from, response.readRound);
  }

  /** How many entries after `prevIndex` one append carries: by count, and by bytes when sizes are known. */
  private appendCount(prevIndex: number, lastIndex: number): number {
    const byCount = Math.max(0, Math.min(this.options.maxEntriesPerAppend, lastIndex - prevIndex));
    const entryBytes = this.options.entryBytes;
    const maxBytes = this.options.maxBytesPerAppend;
    if (!entryBytes || maxBytes === undefined || byCount <= 1) return byCount;
    let bytes = entryBytes(prevIndex + 1);
    let count = 1;
    while (count < byCount) {
      const next = entryBytes(prevIndex + count + 1);
      if (bytes + next > maxBytes) break;
      bytes += next;
      count++;
    }
    return count;
  }

  /**
   * Whether appends to a follower are outstanding while its acknowledgements have not moved for
   * two heartbeat rounds (they were lost). A busy but healthy pipeline acknowledges in between.
   */
  private pipelineStalled(progress: Progress): boolean {
    const behind = progress.next - 1 > progress.match;
    progress.stalledRounds = behind && progress.match === progress.matchAtLastHeartbeat ? progress.stalledRounds + 1 : 0;
    progress.matchAtLastHeartbeat = progress.match;
    return progress.stalledRounds >= 2;
  }

  private advanceCommit(): void {
    const voters = this.voters();
    const matches = voters.map((voter) => (voter === this.id ? this.stableIndex : (this.progress.get(voter)?.match ?? 0)));
    const candidate = this.unsafe.commitWithoutQuorum ? this.stableIndex : majorityMatchIndex(matches);
    // Only an entry of the leader's own term is committed by counting (Raft §5.4.2).
    if (candidate <= this.commitIndex || this.log.termAt(candidate) !== this.term) return;
    this.commitIndex = candidate;
    if (!this.leaderReady && this.commitIndex >= this.firstIndexOfTerm) {
      this.leaderReady = true;
      const waiting = this.readsAwaitingReady;
      this.readsAwaitingReady = [];
      for (const id of waiting) this.startRead(id);
    }
    // Followers learn the new commit index with the next append; an idle one gets an empty append.
    this.replicationWanted = true;
  }

  private broadcastHeartbeat(): void {
    for (const [peer, progress] of this.progress) {
      const commit = Math.min(progress.match, this.commitIndex);
      progress.commitSent = Math.max(progress.commitSent, commit);
      this.send(peer, { kind: 'heartbeat', term: this.term, commit, readRound: this.readRound });
    }
  }

  private quorumActive(): boolean {
    const answers = new Map<NodeId, boolean>();
    for (const voter of this.voters()) answers.set(voter, voter === this.id || (this.progress.get(voter)?.recentActive ?? false));
    return voteOutcome(this.voters(), answers) === 'won';
  }

  private maybeSendTimeoutNow(): void {
    const target = this.transferTarget;
    if (target === undefined) return;
    const progress = this.progress.get(target);
    if (progress && progress.match === this.log.lastIndex) this.send(target, { kind: 'timeout-now', term: this.term });
    else this.sendAppend(target);
  }

  // ------------------------------------------------------------------ linearizable reads

  private startRead(id: number): void {
    const read: PendingRead = { id, index: this.commitIndex, round: ++this.readRound, acks: new Set([this.id]) };
    this.pendingReads.push(read);
    this.resolveConfirmedReads();
    if (this.pendingReads.length > 0) this.broadcastHeartbeat();
  }

  private confirmReads(from: NodeId, round: number): void {
    for (const read of this.pendingReads) if (read.round <= round) read.acks.add(from);
    this.resolveConfirmedReads();
  }

  private resolveConfirmedReads(): void {
    const voters = this.voters();
    while (this.pendingReads.length > 0) {
      const read = this.pendingReads[0]!;
      const answers = new Map<NodeId, boolean>();
      for (const voter of read.acks) answers.set(voter, true);
      if (voteOutcome(voters, answers) !== 'won') break;
      this.pendingReads.shift();
      this.effects.readsReady.push({ id: read.id, index: read.index });
    }
  }

  // ------------------------------------------------------------------ helpers

  private voters(): readonly NodeId[] {
    return this.membership.voters;
  }

  private isVoter(id: NodeId): boolean {
    return this.membership.voters.includes(id);
  }

  private isMember(id: NodeId): boolean {
    const membership = this.membership;
    return membership.voters.includes(id) || membership.learners.includes(id);
  }

  private peers(): NodeId[] {
    const membership = this.membership;
    return [...membership.voters, ...membership.learners].filter((id) => id !== this.id);
  }

  private send(to: NodeId, message: Message<P>): void {
    const envelope: Envelope<P> = { from: this.id, to, message };
    this.effects.messages.push(envelope);
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    const base = this.options.electionTicks;
    this.randomizedElectionTicks = base + Math.floor(this.options.random() * base);
  }

  private noteStatus(): void {
    const status = this.status;
    const last = this.lastStatus;
    if (
      !last ||
      last.role !== status.role ||
      last.term !== status.term ||
      last.leader !== status.leader ||
      last.leaderReady !== status.leaderReady
    ) {
      this.lastStatus = status;
      this.effects.status = status;
    }
  }

  /** For checkers and tests. */
  get hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor };
  }
}

function emptyEffects<P>(): Effects<P> {
  return {
    hardState: undefined,
    truncateAfter: undefined,
    dropped: undefined,
    append: [],
    messages: [],
    commitIndex: undefined,
    readsReady: [],
    readsFailed: [],
    status: undefined,
    faults: [],
    appendHold: undefined,
  };
}
