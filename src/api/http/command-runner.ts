import type { Replica } from '../../cluster/replica.js';
import { ChronicleError, NoQuorumError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import { executeCommand, isIdempotent, isWrite, type Command, type Outcome } from './commands.js';
import { forwardCommand, type ForwarderOptions, type ForwardResult } from './forwarding.js';

/**
 * Where a command runs. A single node runs everything itself. In a cluster any node answers:
 * writes (and reads that ask for the leader, or reach a node still catching up) run on the
 * leader — here if this node leads, else forwarded to it over the internal interface. While there
 * is no leader to run it (an election), a request waits up to a bound and then fails with a
 * retryable 503; it is sent again after a leader change only when that cannot run it twice.
 */
export interface CommandRunner {
  run(command: Command, options: { requireLeader: boolean }): Promise<Outcome>;
  /** Resolves once this node may serve reads itself (subscriptions); throws a 503 error after the bound. */
  admitLocalReads(): Promise<void>;
}

export class LocalCommandRunner implements CommandRunner {
  constructor(private readonly store: EventStore) {}

  run(command: Command): Promise<Outcome> {
    return executeCommand(this.store, command);
  }

  async admitLocalReads(): Promise<void> {}
}

const LEADER_POLL_MS = 25;
const ASK_SAME_LEADER_AGAIN_MS = 200;

export interface ClusterRunnerOptions {
  replica: Replica;
  selfId: string;
  /** How long a request waits for a leader before its 503. */
  leaderWaitMs: number;
  forwarding: ForwarderOptions;
}

export class ClusterCommandRunner implements CommandRunner {
  constructor(private readonly options: ClusterRunnerOptions) {}

  async run(command: Command, { requireLeader }: { requireLeader: boolean }): Promise<Outcome> {
    const replica = this.options.replica;
    const needsLeader = isWrite(command) || requireLeader;
    const deadline = Date.now() + this.options.leaderWaitMs;
    let lastProblem = 'no leader is known';
    for (;;) {
      if (!needsLeader && replica.canServeReads) return executeCommand(replica.store, command);
      const leader = replica.leaderId;
      if (replica.writable) {
        try {
          if (!isWrite(command)) await replica.linearizableReadBarrier();
          return await executeCommand(replica.store, command);
        } catch (error) {
          // Leadership moved while the command ran: the next leader can take it, if running it again is harmless.
          if (!(error instanceof ChronicleError && error.code === 'NOT_LEADER' && isIdempotent(command))) throw error;
          lastProblem = error.message;
        }
      } else if (leader !== undefined && leader !== this.options.selfId) {
        const result = await forwardCommand(leader, command, this.options.forwarding);
        const settled = this.settle(result, command);
        if (settled) return settled;
        lastProblem = describe(result);
        // Usually a new leader is known soon; a leader still taking over (or briefly unreachable) gets asked again.
        await this.waitForLeaderChange(leader, Math.min(deadline, Date.now() + ASK_SAME_LEADER_AGAIN_MS));
      } else {
        await this.waitForLeaderChange(leader, deadline);
      }
      if (Date.now() >= deadline) {
        throw new NoQuorumError(`no leader could take the request within ${this.options.leaderWaitMs} ms (${lastProblem}): an election is under way or fewer than a quorum of the nodes can reach each other; retry it`);
      }
    }
  }

  /** The outcome to give the client, or undefined to try again once the leader changed. */
  private settle(result: ForwardResult, command: Command): Outcome | undefined {
    switch (result.kind) {
      case 'answer':
        return result.outcome;
      case 'error':
        if (result.error.code === 'NOT_LEADER' && isIdempotent(command)) return undefined;
        throw result.error;
      case 'refused':
      case 'not-delivered':
        return undefined;
      case 'no-answer':
        if (isIdempotent(command)) return undefined;
        throw new NoQuorumError(`the leader did not answer (${result.reason}); whether the ${command.kind} happened is unknown: read the stream before retrying`);
    }
  }

  /** Waits until a leader other than `previous` is known, or this node takes writes, or `until`. */
  private async waitForLeaderChange(previous: string | undefined, until: number): Promise<void> {
    const replica = this.options.replica;
    while (Date.now() < until) {
      const leader = replica.leaderId;
      if (replica.writable || (leader !== undefined && leader !== previous && leader !== this.options.selfId)) return;
      await new Promise((resolve) => setTimeout(resolve, LEADER_POLL_MS));
    }
  }

  async admitLocalReads(): Promise<void> {
    const replica = this.options.replica;
    const deadline = Date.now() + this.options.leaderWaitMs;
    while (!replica.canServeReads) {
      if (Date.now() >= deadline) throw new NoQuorumError(`this node has not caught up with the leader within ${this.options.leaderWaitMs} ms; retry, or ask another node`);
      await new Promise((resolve) => setTimeout(resolve, LEADER_POLL_MS));
    }
  }
}

function describe(result: ForwardResult): string {
  switch (result.kind) {
    case 'refused':
      return 'the node believed to lead no longer does';
    case 'not-delivered':
    case 'no-answer':
      return `the leader could not be reached: ${result.reason}`;
    default:
      return result.kind;
  }
}
