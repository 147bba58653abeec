import type { Replica } from '../src/cluster/replica.js';
import { quorumSize } from '../src/consensus/quorum.js';
import type { Status, TermRun } from '../src/consensus/types.js';
import type { AppendOperation, History, ReadOperation } from './history.js';

export interface Violation {
  checker: string;
  detail: string;
  atMs: number;
}

/** An event of the final committed log. */
export interface FinalEvent {
  stream: string;
  revision: number;
  id: string;
  position: number;
}

/**
 * Raft's invariants, checked as the run goes: at most one leader per term, the applied index of
 * a node never goes back while it runs, and every node applies the same entry (term) at each index.
 */
export class RaftInvariants {
  readonly violations: Violation[] = [];
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly appliedOf = new Map<string, number>();
  /** The term of the entry committed at each index, as the first node to apply it saw it. */
  private readonly committedTerms: number[] = [];
  private readonly acknowledged = new Map<string, { term: number; index: number }>();
  /** term → voter → the candidate it voted for. */
  private readonly votes = new Map<number, Map<string, string>>();
  elections = 0;

  constructor(
    private readonly now: () => number,
    private readonly voters: readonly string[],
  ) {}

  onStatus(node: string, _incarnation: number, status: Status): void {
    if (status.role !== 'leader') return;
    const existing = this.leaderOfTerm.get(status.term);
    if (existing === undefined) {
      this.leaderOfTerm.set(status.term, node);
      this.elections++;
      // A leader holds a majority of the votes of its own term (its own among them).
      let votes = 1;
      for (const [voter, candidate] of this.votes.get(status.term) ?? []) if (candidate === node && voter !== node && this.voters.includes(voter)) votes++;
      if (votes < quorumSize(this.voters.length)) {
        this.violate('leader-has-votes-of-its-term', `${node} leads term ${status.term} with ${votes} vote(s) of that term; a majority of ${this.voters.length} is ${quorumSize(this.voters.length)}`);
      }
    } else if (existing !== node) {
      this.violate('one-leader-per-term', `${existing} and ${node} both lead term ${status.term}`);
    }
  }

  onApplied(node: string, incarnation: number, replica: Replica, index: number): void {
    const key = `${node}#${incarnation}`;
    const previous = this.appliedOf.get(key) ?? 0;
    if (index < previous) this.violate('commit-never-decreases', `${node} applied up to ${index} after ${previous}`);
    for (let i = Math.max(previous + 1, 1); i <= index; i++) {
      const term = replica.termAt(i);
      if (term === undefined) {
        this.violate('applied-entry-exists', `${node} applied index ${i} it does not hold (last ${replica.lastIndex})`);
        break;
      }
      const committed = this.committedTerms[i];
      if (committed === undefined) this.committedTerms[i] = term;
      else if (committed !== term) {
        this.violate('state-machine-safety', `${node} applied term ${term} at index ${i}, where term ${committed} was applied elsewhere`);
        break;
      }
    }
    this.appliedOf.set(key, Math.max(previous, index));
  }

  /**
   * No node ever drops a committed entry: the entries it drops must differ (in term) from the ones
   * committed at those indexes. Dropping its own stale, uncommitted entries is what Raft does.
   */
  /**
   * Notes the votes each node casts (at most one candidate per term) and what each node
   * acknowledged to the leader of a term.
   */
  onSend(node: string, to: string, message: { kind: string; term: number; success?: boolean; matchIndex?: number; granted?: boolean; preVote?: boolean }): void {
    if (message.kind === 'vote-response' && message.granted && !message.preVote) {
      const votes = this.votes.get(message.term) ?? new Map<string, string>();
      const earlier = votes.get(node);
      if (earlier !== undefined && earlier !== to) this.violate('one-vote-per-term', `${node} voted for ${earlier} and for ${to} in term ${message.term}`);
      votes.set(node, to);
      this.votes.set(message.term, votes);
      return;
    }
    if (message.kind !== 'append-response' || !message.success || message.matchIndex === undefined) return;
    const last = this.acknowledged.get(node);
    if (!last || last.term !== message.term || last.index < message.matchIndex) {
      this.acknowledged.set(node, { term: message.term, index: Math.max(message.matchIndex, last?.term === message.term ? last.index : 0) });
    }
  }

  onTruncate(node: string, afterIndex: number, dropped: { runs: readonly TermRun[]; lastIndex: number }, term: number): void {
    // Within one term the leader's log only grows: what a follower acknowledged never conflicts.
    const acknowledged = this.acknowledged.get(node);
    if (acknowledged && acknowledged.term === term && acknowledged.index > afterIndex) {
      this.violate('acknowledged-entries-kept', `${node} drops entries after ${afterIndex} in term ${term}, having acknowledged up to ${acknowledged.index} to that term's leader`);
    }
    const upTo = Math.min(dropped.lastIndex, this.committedLength);
    for (let i = afterIndex + 1; i <= upTo; i++) {
      let term: number | undefined;
      for (const run of dropped.runs) if (run.startIndex <= i) term = run.term;
      if (term === this.committedTerms[i]) {
        this.violate('committed-never-truncated', `${node} drops entry ${i} (term ${term}), which is committed`);
        return;
      }
    }
  }

  get committedLength(): number {
    return this.committedTerms.length - 1;
  }

  private violate(checker: string, detail: string): void {
    this.violations.push({ checker, detail, atMs: this.now() });
  }
}

interface WriteGroup {
  operations: AppendOperation[];
  stream: string;
  eventIds: string[];
  /** The earliest invocation of the write (first attempt). */
  invokedMs: number;
  /** The earliest acknowledgement, if any. */
  acknowledgedMs: number | undefined;
}

/**
 * Checks what clients saw against the final committed log: acknowledged writes present once at
 * the position they were told, failed ones absent, unknown ones at most once and whole; revisions
 * contiguous; expected states honoured; real-time order; reads consistent with the log.
 */
export function checkHistory(history: History, finalEvents: readonly FinalEvent[], endMs: number): Violation[] {
  const violations: Violation[] = [];
  const violate = (checker: string, detail: string): void => {
    violations.push({ checker, detail, atMs: endMs });
  };
  const byId = new Map<string, FinalEvent[]>();
  const byStream = new Map<string, FinalEvent[]>();
  for (const event of finalEvents) {
    byId.set(event.id, [...(byId.get(event.id) ?? []), event]);
    const list = byStream.get(event.stream) ?? [];
    list.push(event);
    byStream.set(event.stream, list);
  }
  for (const [id, copies] of byId) if (copies.length > 1) violate('no-duplicates', `event ${id} is in the log ${copies.length} times`);
  for (const [stream, events] of byStream) {
    const sorted = [...events].sort((a, b) => a.revision - b.revision);
    sorted.forEach((event, i) => {
      if (event.revision !== i) violate('contiguous-revisions', `stream ${stream} has revision ${event.revision} where ${i} belongs`);
    });
  }

  const groups = new Map<number, WriteGroup>();
  for (const operation of history.appends) {
    const key = operation.retryOf ?? operation.id;
    const group = groups.get(key) ?? { operations: [], stream: operation.stream, eventIds: operation.eventIds, invokedMs: operation.invokedMs, acknowledgedMs: undefined };
    group.operations.push(operation);
    group.invokedMs = Math.min(group.invokedMs, operation.invokedMs);
    if (operation.outcome === 'ok') group.acknowledgedMs = Math.min(group.acknowledgedMs ?? Infinity, operation.completedMs!);
    groups.set(key, group);
  }

  const successesPerExpectation = new Map<string, number>();
  for (const [key, group] of groups) {
    const present = group.eventIds.map((id) => byId.get(id)?.[0]);
    const presentCount = present.filter((event) => event !== undefined).length;
    const acknowledged = group.operations.filter((operation) => operation.outcome === 'ok');
    const unknown = group.operations.some((operation) => operation.outcome === 'unknown' || operation.outcome === undefined);
    if (presentCount !== 0 && presentCount !== group.eventIds.length) {
      violate('atomic-append', `write #${key} to ${group.stream}: ${presentCount} of its ${group.eventIds.length} events are in the log`);
      continue;
    }
    if (acknowledged.length > 0) {
      if (presentCount === 0) {
        violate('acknowledged-write-durable', `write #${key} to ${group.stream} was acknowledged at ${acknowledged[0]!.completedMs} ms (position ${acknowledged[0]!.position}) and is not in the log`);
        continue;
      }
      const first = present[0]!;
      const last = present.at(-1)!;
      for (const operation of acknowledged) {
        if (operation.position !== first.position || operation.lastRevision !== last.revision) {
          violate(
            'acknowledged-position',
            `write #${key} (attempt #${operation.id}) was told position ${operation.position} revision ${operation.lastRevision}; the log has it at ${first.position} revision ${last.revision}`,
          );
        }
      }
      const expected = group.operations[0]!.expected;
      const firstRevision = first.revision;
      if (typeof expected === 'number') {
        if (firstRevision !== expected + 1) violate('expected-revision', `write #${key} expected revision ${expected} and starts at ${firstRevision}`);
        const slot = `${group.stream}@${expected}`;
        successesPerExpectation.set(slot, (successesPerExpectation.get(slot) ?? 0) + 1);
      } else if (expected === 'no_stream' && firstRevision !== 0) {
        violate('expected-no-stream', `write #${key} expected no stream and starts at revision ${firstRevision}`);
      } else if (expected === 'stream_exists' && firstRevision === 0) {
        violate('expected-stream-exists', `write #${key} expected the stream to exist and starts at revision 0`);
      }
    } else if (!unknown && presentCount > 0) {
      violate('failed-write-absent', `write #${key} to ${group.stream} failed (${group.operations.map((operation) => operation.error).join('; ')}) yet is in the log`);
    }
  }
  for (const [slot, count] of successesPerExpectation) if (count > 1) violate('one-success-per-expected-revision', `${count} writes succeeded expecting ${slot}`);

  // Real-time order: a write acknowledged before another was first sent is earlier in the log.
  const acknowledgedGroups = [...groups.values()]
    .filter((group) => group.acknowledgedMs !== undefined)
    .map((group) => ({ group, position: byId.get(group.eventIds[0]!)?.[0]?.position }))
    .filter((entry): entry is { group: WriteGroup; position: number } => entry.position !== undefined);
  const byAcknowledgement = [...acknowledgedGroups].sort((a, b) => a.group.acknowledgedMs! - b.group.acknowledgedMs!);
  const byInvocation = [...acknowledgedGroups].sort((a, b) => a.group.invokedMs - b.group.invokedMs);
  let cursor = 0;
  let highest: { position: number; group: WriteGroup } | undefined;
  for (const later of byInvocation) {
    while (cursor < byAcknowledgement.length && byAcknowledgement[cursor]!.group.acknowledgedMs! < later.group.invokedMs) {
      const candidate = byAcknowledgement[cursor]!;
      if (!highest || candidate.position > highest.position) highest = candidate;
      cursor++;
    }
    if (highest && highest.position >= later.position) {
      violate('real-time-order', `a write acknowledged at ${highest.group.acknowledgedMs} ms is at ${highest.position}, after a write first sent at ${later.group.invokedMs} ms at ${later.position}`);
    }
  }

  checkReads(history.reads, groups, byStream, violate);
  return violations;
}

function checkReads(
  reads: readonly ReadOperation[],
  groups: Map<number, WriteGroup>,
  byStream: Map<string, FinalEvent[]>,
  violate: (checker: string, detail: string) => void,
): void {
  const lastSeen = new Map<string, number>();
  for (const read of reads) {
    if (read.outcome !== 'ok' || !read.events) continue;
    const log = byStream.get(read.stream) ?? [];
    const atRevision = new Map(log.map((event) => [event.revision, event]));
    for (const event of read.events) {
      const committed = atRevision.get(event.revision);
      if (!committed || committed.id !== event.id || committed.position !== event.position) {
        violate('reads-show-committed-data', `read #${read.id} on ${read.node} showed ${read.stream}@${event.revision} (${event.id}) which the committed log does not have there`);
        break;
      }
    }
    const maxRevision = read.events.at(-1)?.revision ?? -1;
    if (read.linearizable) {
      for (const [key, group] of groups) {
        if (group.stream !== read.stream || group.acknowledgedMs === undefined || group.acknowledgedMs >= read.invokedMs) continue;
        const revision = group.operations.find((operation) => operation.outcome === 'ok')!.lastRevision!;
        if (revision > maxRevision) {
          violate('leader-reads-linearizable', `read #${read.id} on leader ${read.node} saw ${read.stream} up to ${maxRevision}, but write #${key} to revision ${revision} was acknowledged at ${group.acknowledgedMs} ms, before the read`);
        }
      }
    } else {
      const session = `${read.client}/${read.node}#${read.incarnation}/${read.stream}`;
      const previous = lastSeen.get(session) ?? -1;
      if (maxRevision < previous) violate('follower-reads-monotonic', `client ${read.client} read ${read.stream} up to ${maxRevision} from ${read.node} after seeing ${previous} there`);
      lastSeen.set(session, Math.max(previous, maxRevision));
    }
  }
}
