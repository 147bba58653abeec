import type { Log } from '../storage/log.js';

/** A record handed to the commit pipeline, with where it went. */
export interface Proposal {
  position: number;
  end: number;
  term: number;
  index: number;
  /** Resolves once the record is committed: durable on a quorum (on a single node, on its disk). */
  committed: Promise<void>;
}

/**
 * What stands between "validated" and "durable" on the write path. On a single node that is the
 * local log's group commit; in a cluster it is the replication core, which commits on a quorum.
 * The event store is written against this and does not know which one it has.
 */
export interface Committer {
  /**
   * Proposes a record. `frame` comes from `allocateFrame` with its payload in place; the committer
   * seals it with the term and index it assigns. Proposals commit in the order they are made.
   */
  propose(type: number, frame: Uint8Array): Proposal;
  /**
   * `undefined` when this node may decide a write now (the common case, which then costs no
   * promise and no turn of the event loop); otherwise a promise that resolves once it may, or
   * rejects (not leader, no quorum). A cluster waits there, boundedly, while a new leader
   * finishes taking over.
   */
  admitWrite?(): Promise<void> | undefined;
}

/** A cluster of one: a record is committed when the local log has it durably. */
export class LocalCommitter implements Committer {
  /** A single node never changes term; the cluster's consensus core assigns real terms. */
  static readonly TERM = 1;

  constructor(private readonly log: Log) {}

  propose(type: number, frame: Uint8Array): Proposal {
    const index = (this.log.lastRecord?.index ?? 0) + 1;
    const ticket = this.log.appendFrame(frame, type, LocalCommitter.TERM, index);
    return { position: ticket.position, end: ticket.end, term: LocalCommitter.TERM, index, committed: ticket.durable };
  }
}
