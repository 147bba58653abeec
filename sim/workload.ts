import { ChronicleError, NotLeaderError, WrongExpectedVersionError } from '../src/errors.js';
import type { SimCluster } from './cluster.js';
import type { AppendExpectation, AppendOperation, History, Outcome, ReadEvent } from './history.js';
import type { SimRandom } from './random.js';
import type { Scheduler } from './scheduler.js';

export interface WorkloadConfig {
  clients: number;
  streams: string[];
  /** Clients start no operation after this simulated time. */
  endMs: number;
  /** A client gives up waiting after this long; the operation's outcome is then unknown. */
  operationTimeoutMs: number;
  thinkMs: { min: number; max: number };
  /** Chances, per operation, of each kind (the rest are fresh appends). */
  retryChance: number;
  leaderReadChance: number;
  followerReadChance: number;
  /**
   * Chance, per operation, that a client instead sends a burst of fresh appends at once (they
   * reach the leader together, as a closed loop of writers does, and exercise its batching).
   */
  burstChance: number;
  burstSize: { min: number; max: number };
}

/** Errors after which the write certainly did not happen. */
const DEFINITE_FAILURES = new Set(['WRONG_EXPECTED_VERSION', 'STREAM_DELETED', 'EVENT_ID_CONFLICT', 'INVALID_ARGUMENT', 'STREAM_NOT_FOUND']);

type Settled<T> = { kind: 'value'; value: T } | { kind: 'error'; error: unknown } | { kind: 'timeout' };

/**
 * Simulated clients: appends with every expected-state variant, retries of earlier appends with
 * the same event ids, linearizable reads from the leader and plain reads from any caught-up node.
 */
export class Workload {
  private eventCounter = 0;
  private operationCounter = 0;
  private readonly retryable: AppendOperation[] = [];

  constructor(
    private readonly scheduler: Scheduler,
    private readonly cluster: SimCluster,
    private readonly random: SimRandom,
    private readonly history: History,
    private readonly config: WorkloadConfig,
  ) {}

  run(): Promise<void[]> {
    const clients: Promise<void>[] = [];
    for (let client = 0; client < this.config.clients; client++) clients.push(this.client(client, this.random.fork(`client/${client}`)));
    return Promise.all(clients);
  }

  private async client(client: number, random: SimRandom): Promise<void> {
    const state: ClientState = { leader: undefined, revisions: new Map() };
    // Its own stream: bursts leave the client's other choices as they were for recorded seeds.
    const bursts = random.fork('bursts');
    while (this.scheduler.now < this.config.endMs) {
      if (bursts.chance(this.config.burstChance)) {
        const size = bursts.between(this.config.burstSize.min, this.config.burstSize.max);
        await Promise.all(Array.from({ length: size }, () => this.freshAppend(client, bursts, state)));
        await this.sleep(bursts.between(this.config.thinkMs.min, this.config.thinkMs.max));
        continue;
      }
      const roll = random.next();
      if (roll < this.config.retryChance && this.retryable.length > 0) await this.retry(client, random, state);
      else if (roll < this.config.retryChance + this.config.leaderReadChance) await this.read(client, random, state, true);
      else if (roll < this.config.retryChance + this.config.leaderReadChance + this.config.followerReadChance) await this.read(client, random, state, false);
      else await this.freshAppend(client, random, state);
      await this.sleep(random.between(this.config.thinkMs.min, this.config.thinkMs.max));
    }
  }

  /** The liveness probe's client: it follows "not leader" answers from one probe to the next, as real clients do. */
  private readonly probeState: ClientState = { leader: undefined, revisions: new Map() };

  /** One acknowledged append after faults healed: the liveness probe. */
  async probeWrite(random: SimRandom): Promise<boolean> {
    const state = this.probeState;
    const operation = await this.append(-1, random, state, 'probe', 'any', [this.nextEventId(-1)], undefined);
    return operation.outcome === 'ok';
  }

  private async freshAppend(client: number, random: SimRandom, state: ClientState): Promise<void> {
    const stream = random.pick(this.config.streams);
    const expected = this.chooseExpectation(random, state, stream);
    const count = random.between(1, 3);
    const eventIds = Array.from({ length: count }, () => this.nextEventId(client));
    const operation = await this.append(client, random, state, stream, expected, eventIds, undefined);
    if (operation.outcome !== 'failed') this.retryable.push(operation);
  }

  private async retry(client: number, random: SimRandom, state: ClientState): Promise<void> {
    const original = random.pick(this.retryable);
    await this.append(client, random, state, original.stream, original.expected, original.eventIds, original.retryOf ?? original.id);
  }

  private chooseExpectation(random: SimRandom, state: ClientState, stream: string): AppendExpectation {
    const roll = random.next();
    if (roll < 0.3) return 'any';
    if (roll < 0.42) return 'no_stream';
    if (roll < 0.55) return 'stream_exists';
    const known = state.revisions.get(stream);
    if (known === undefined) return random.chance(0.5) ? 'no_stream' : 0;
    // Mostly what the client last saw; sometimes stale or ahead, to exercise the refusal.
    return Math.max(0, known + random.pick([0, 0, 0, 0, -1, 1]));
  }

  private async append(
    client: number,
    random: SimRandom,
    state: ClientState,
    stream: string,
    expected: AppendExpectation,
    eventIds: string[],
    retryOf: number | undefined,
  ): Promise<AppendOperation> {
    const node = this.target(random, state, true);
    const operation = this.history.add<AppendOperation>({
      kind: 'append',
      id: ++this.operationCounter,
      client,
      node: node ?? '-',
      stream,
      expected,
      eventIds,
      retryOf,
      invokedMs: this.scheduler.now,
      completedMs: undefined,
      outcome: undefined,
    });
    const replica = node ? this.cluster.replicaOf(node) : undefined;
    if (!replica) {
      // Nothing was sent: the connection was refused.
      this.complete(operation, 'failed', 'no node reachable');
      return operation;
    }
    const events = eventIds.map((id, i) => ({ id, type: 'sim-event', data: { client, op: operation.id, i } }));
    const settled = await this.withTimeout(replica.store.appendToStream(stream, events, { expectedState: expected }));
    if (settled.kind === 'value') {
      operation.position = settled.value.position.commit;
      operation.lastRevision = settled.value.nextExpectedRevision;
      state.revisions.set(stream, settled.value.nextExpectedRevision);
      state.leader = node;
      this.complete(operation, 'ok');
    } else if (settled.kind === 'timeout') {
      state.leader = undefined;
      this.complete(operation, 'unknown', 'timed out');
    } else {
      this.learnLeader(state, settled.error);
      const code = settled.error instanceof ChronicleError ? settled.error.code : 'UNEXPECTED';
      if (settled.error instanceof WrongExpectedVersionError && settled.error.actual.kind === 'revision') state.revisions.set(stream, settled.error.actual.revision);
      this.complete(operation, DEFINITE_FAILURES.has(code) ? 'failed' : 'unknown', `${code}: ${(settled.error as Error).message}`);
    }
    return operation;
  }

  private async read(client: number, random: SimRandom, state: ClientState, linearizable: boolean): Promise<void> {
    const node = this.target(random, state, linearizable);
    const replica = node ? this.cluster.replicaOf(node) : undefined;
    if (!node || !replica) return;
    if (!linearizable && !replica.canServeReads) return;
    const stream = random.pick(this.config.streams);
    const operation = this.history.add({
      kind: 'read' as const,
      id: ++this.operationCounter,
      client,
      node,
      incarnation: this.cluster.incarnationOf(node),
      linearizable,
      stream,
      invokedMs: this.scheduler.now,
      completedMs: undefined as number | undefined,
      outcome: undefined as Outcome | undefined,
      events: undefined as ReadEvent[] | undefined,
    });
    const settled = await this.withTimeout(
      (async () => {
        if (linearizable) await replica.linearizableReadBarrier();
        try {
          return await replica.store.readStream(stream, { maxCount: 1_000_000 });
        } catch (error) {
          if (error instanceof ChronicleError && error.code === 'STREAM_NOT_FOUND') return [];
          throw error;
        }
      })(),
    );
    operation.completedMs = this.scheduler.now;
    if (settled.kind !== 'value') {
      if (settled.kind === 'error') this.learnLeader(state, settled.error);
      operation.outcome = 'unknown';
      return;
    }
    operation.outcome = 'ok';
    operation.events = settled.value.map((event) => ({ revision: event.revision, id: event.id, position: event.position.commit }));
    const last = operation.events.at(-1);
    if (last) state.revisions.set(stream, last.revision);
  }

  private target(random: SimRandom, state: ClientState, preferLeader: boolean): string | undefined {
    if (preferLeader && state.leader !== undefined && this.cluster.isUp(state.leader)) return state.leader;
    const up = this.cluster.ids.filter((id) => this.cluster.isUp(id));
    return up.length === 0 ? undefined : random.pick(up);
  }

  private learnLeader(state: ClientState, error: unknown): void {
    if (error instanceof NotLeaderError) state.leader = error.leader?.host;
  }

  private complete(operation: AppendOperation, outcome: Outcome, error?: string): void {
    operation.outcome = outcome;
    operation.completedMs = this.scheduler.now;
    if (error !== undefined) operation.error = error;
  }

  private withTimeout<T>(promise: Promise<T>): Promise<Settled<T>> {
    return new Promise((resolve) => {
      let done = false;
      const timer = this.scheduler.after(this.config.operationTimeoutMs, () => {
        if (done) return;
        done = true;
        resolve({ kind: 'timeout' });
      });
      promise.then(
        (value) => {
          if (done) return;
          done = true;
          this.scheduler.cancel(timer);
          resolve({ kind: 'value', value });
        },
        (error: unknown) => {
          if (done) return;
          done = true;
          this.scheduler.cancel(timer);
          resolve({ kind: 'error', error });
        },
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.scheduler.after(ms, resolve));
  }

  private nextEventId(client: number): string {
    this.eventCounter++;
    const clientHex = (client + 1).toString(16).padStart(3, '0');
    return `00000000-0000-4000-a${clientHex}-${this.eventCounter.toString(16).padStart(12, '0')}`;
  }
}

interface ClientState {
  leader: string | undefined;
  /** The last revision this client saw per stream. */
  revisions: Map<string, number>;
}
