/**
 * The vocabulary of the replication core: node ids, log entries, messages between nodes and the
 * effects the core asks its caller to carry out. Nothing here does I/O.
 */

export type NodeId = string;

/** Who votes and who only follows. Recorded in the log as a configuration entry. */
export interface Membership {
  voters: readonly NodeId[];
  /** Non-voting read-only replicas: they receive the log but never count toward a quorum. */
  learners: readonly NodeId[];
}

/** A no-op starts every term; a configuration entry changes the membership; data is the store's. */
export type EntryKind = 'noop' | 'config' | 'data';

/** What the core knows about an entry. The payload is the caller's and passes through untouched. */
export interface EntryMeta {
  index: number;
  term: number;
  kind: EntryKind;
  /** Set on configuration entries. */
  membership?: Membership;
}

export interface Entry<P> extends EntryMeta {
  payload: P;
}

/** What must survive a crash besides the log: the term and the vote cast in it. */
export interface HardState {
  term: number;
  votedFor: NodeId | undefined;
}

/** A run of consecutive entries of one term, starting at `startIndex`. */
export interface TermRun {
  startIndex: number;
  term: number;
}

// ------------------------------------------------------------------ messages

export interface PreVoteRequest {
  kind: 'pre-vote';
  /** The term the sender would campaign in (its own term + 1); nobody adopts it. */
  term: number;
  lastIndex: number;
  lastTerm: number;
}

export interface VoteRequest {
  kind: 'vote';
  term: number;
  lastIndex: number;
  lastTerm: number;
  /** Set when the leader handed over on purpose: voters skip their leader-lease check. */
  transfer: boolean;
}

export interface VoteResponse {
  kind: 'vote-response';
  /** For a pre-vote: the term asked about. For a vote: the voter's term. */
  term: number;
  preVote: boolean;
  granted: boolean;
}

/**
 * Entries for a follower. The core emits it with `count` entries to ship and no `entries`: the
 * caller loads them from its log (or a cache) and fills `entries` before sending. A received
 * append must carry exactly `count` entries.
 */
export interface AppendRequest<P> {
  kind: 'append';
  term: number;
  prevIndex: number;
  prevTerm: number;
  /** The leader's commit index; the follower caps it to what it knows matches the leader's log. */
  commit: number;
  count: number;
  entries?: readonly Entry<P>[];
}

export interface AppendResponse {
  kind: 'append-response';
  term: number;
  success: boolean;
  /** On success: the follower holds the leader's log up to here, durably. */
  matchIndex: number;
  /** On rejection: where the leader should look next (fast back-off). */
  rejectHint?: {
    /** The `prevIndex` of the append refused, so the leader can tell a stale refusal. */
    rejectedIndex: number;
    lastIndex: number;
    /** The term the follower holds at `rejectedIndex` (0 if it holds nothing there). */
    conflictTerm: number;
    /** The first index the follower holds of `conflictTerm` (or its last index + 1). */
    conflictIndex: number;
  };
}

export interface Heartbeat {
  kind: 'heartbeat';
  term: number;
  commit: number;
  /** The newest read-index round this heartbeat confirms leadership for. */
  readRound: number;
}

export interface HeartbeatResponse {
  kind: 'heartbeat-response';
  term: number;
  readRound: number;
  /**
   * How far the follower durably holds the leader's log as it knows it. Less than the leader's
   * record of it means the follower restarted: the leader probes it again.
   */
  matchIndex: number;
}

/** Sent by a leader that hands over: the receiver campaigns at once. */
export interface TimeoutNow {
  kind: 'timeout-now';
  term: number;
}

export type Message<P> =
  | PreVoteRequest
  | VoteRequest
  | VoteResponse
  | AppendRequest<P>
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | TimeoutNow;

export interface Envelope<P> {
  from: NodeId;
  to: NodeId;
  message: Message<P>;
}

// ------------------------------------------------------------------ effects

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader' | 'learner';

/** A linearizable read may be served once the applied index reaches `index`. */
export interface ReadReady {
  id: number;
  index: number;
}

/** Something a person must look at: the core refused to do it by itself. */
export interface Fault {
  kind: 'truncation-over-bound' | 'committed-entry-conflict';
  detail: string;
}

/**
 * What the caller must do, in this order: make `hardState` durable; truncate the log after
 * `truncateAfter` and append `append` (reporting durability with `persisted`); then send
 * `messages`; and apply entries up to `commitIndex` (they are durable locally).
 */
export interface Effects<P> {
  hardState: HardState | undefined;
  truncateAfter: number | undefined;
  /** What the truncation drops: the term runs of the removed indexes, up to `droppedLastIndex`. */
  dropped: { runs: TermRun[]; lastIndex: number } | undefined;
  append: Entry<P>[];
  messages: Envelope<P>[];
  commitIndex: number | undefined;
  readsReady: ReadReady[];
  /** Reads that can no longer be confirmed (leadership lost): retry elsewhere. */
  readsFailed: number[];
  /** Set when the role, term or known leader changed. */
  status: Status | undefined;
  faults: Fault[];
  /**
   * A leader batching appends (`batchAppends`) started holding new entries back while nothing is
   * in flight: call `releaseAppends` with this number after the batching delay.
   */
  appendHold: number | undefined;
}

export interface Status {
  id: NodeId;
  role: Role;
  term: number;
  leader: NodeId | undefined;
  commitIndex: number;
  lastIndex: number;
  /** A leader takes writes only once an entry of its own term is committed. */
  leaderReady: boolean;
}
