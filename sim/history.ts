/**
 * What the simulated clients did and saw, with simulated invoke and complete times: the input of
 * the history checkers.
 */

export type AppendExpectation = 'any' | 'no_stream' | 'stream_exists' | number;

/** How an operation ended: acknowledged, definitely not done, or unknown (timeout, lost leader). */
export type Outcome = 'ok' | 'failed' | 'unknown';

export interface AppendOperation {
  kind: 'append';
  id: number;
  client: number;
  node: string;
  stream: string;
  expected: AppendExpectation;
  eventIds: string[];
  /** Set when this is a retry of an earlier operation (same ids, same expectation). */
  retryOf: number | undefined;
  invokedMs: number;
  completedMs: number | undefined;
  outcome: Outcome | undefined;
  /** On success: the record's position and the revision of the last event. */
  position?: number;
  lastRevision?: number;
  error?: string;
}

export interface ReadEvent {
  revision: number;
  id: string;
  position: number;
}

export interface ReadOperation {
  kind: 'read';
  id: number;
  client: number;
  node: string;
  incarnation: number;
  /** Served after a read-index barrier on the leader (must see every earlier acknowledged write). */
  linearizable: boolean;
  stream: string;
  invokedMs: number;
  completedMs: number | undefined;
  outcome: Outcome | undefined;
  events?: ReadEvent[];
}

export type Operation = AppendOperation | ReadOperation;

export class History {
  readonly operations: Operation[] = [];

  add<T extends Operation>(operation: T): T {
    this.operations.push(operation);
    return operation;
  }

  get appends(): AppendOperation[] {
    return this.operations.filter((operation): operation is AppendOperation => operation.kind === 'append');
  }

  get reads(): ReadOperation[] {
    return this.operations.filter((operation): operation is ReadOperation => operation.kind === 'read');
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const operation of this.operations) {
      const key = `${operation.kind}:${operation.outcome ?? 'pending'}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }
}
