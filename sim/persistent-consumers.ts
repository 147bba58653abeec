import { DEFAULT_GROUP_SETTINGS, type ConsumerStrategy } from '../src/subscriptions/core/group-settings.js';
import type { AckStateSnapshot } from '../src/subscriptions/core/persistent-group.js';
import type { GroupPosition, GroupSource } from '../src/subscriptions/persistent/durable-state.js';
import type { SubscriptionMessage } from '../src/subscriptions/persistent/group-reader.js';
import type { ConsumerHandle } from '../src/subscriptions/persistent/group-runtime.js';
import type { Violation } from './checkers.js';
import type { SimCluster } from './cluster.js';
import type { SimRandom } from './random.js';
import type { Scheduler } from './scheduler.js';

/**
 * Persistent-subscription consumers in the simulation: they find whichever node hosts the groups
 * (the leader), connect, and acknowledge what they receive after a short think — sometimes asking
 * for a retry, sometimes going away — while nodes crash and the network splits. Everything they
 * see is recorded for the checkers: nothing in the stream is lost, and no host delivers a message
 * whose acknowledgement was committed before it (or by itself).
 */
export const SIM_GROUP = 'sim-group';

/** Which host delivered: a node's incarnation and its hosting epoch. */
interface HostIdentity {
  node: string;
  incarnation: number;
  epoch: number;
}

export interface DeliveryRecord extends HostIdentity {
  consumer: number;
  id: string;
  sequence: number;
  atMs: number;
  /** When this host began loading the groups' state. */
  hostStartedMs: number;
}

export interface CommitRecord extends HostIdentity {
  atMs: number;
  checkpoint: number | undefined;
  handledBeyond: Set<number>;
}

export class PersistentSubscriptionRecord {
  readonly deliveries: DeliveryRecord[] = [];
  readonly commits: CommitRecord[] = [];
  /** Ids a consumer acknowledged (the host may not have received every one). */
  readonly ackedIds = new Set<string>();
  acks = 0;
  nacks = 0;

  commit(node: string, incarnation: number, epoch: number, atMs: number, snapshot: AckStateSnapshot<SubscriptionMessage, GroupPosition>): void {
    this.commits.push({ node, incarnation, epoch, atMs, checkpoint: snapshot.checkpoint?.sequence, handledBeyond: new Set(snapshot.handledBeyond) });
  }
}

export interface PersistentConsumersConfig {
  consumers: number;
  /** The group reads this stream, directly or through `$all` with a stream-name filter. */
  stream: string;
  throughAll: boolean;
  strategy: ConsumerStrategy;
  bufferSize: number;
}

export class PersistentConsumers {
  private stopped = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly cluster: SimCluster,
    private readonly random: SimRandom,
    readonly record: PersistentSubscriptionRecord,
    private readonly config: PersistentConsumersConfig,
  ) {}

  private get source(): GroupSource {
    return this.config.throughAll ? { kind: 'all' } : { kind: 'stream', stream: this.config.stream };
  }

  run(): Promise<void[]> {
    const runs = [this.createGroup(this.random.fork('create'))];
    for (let consumer = 0; consumer < this.config.consumers; consumer++) runs.push(this.consume(consumer, this.random.fork(`consumer/${consumer}`)));
    return Promise.all(runs);
  }

  stop(): void {
    this.stopped = true;
  }


  private hostingNode(random: SimRandom): string | undefined {
    const hosting = this.cluster.ids.filter((id) => this.cluster.subscriptionsOf(id)?.running);
    return hosting.length === 0 ? undefined : random.pick(hosting);
  }

  /** Creates the group on whichever node hosts, until it exists. */
  private async createGroup(random: SimRandom): Promise<void> {
    while (!this.stopped) {
      const node = this.hostingNode(random);
      const host = node ? this.cluster.subscriptionsOf(node) : undefined;
      if (host) {
        const outcome = await this.bounded(
          host.create({
            source: this.source,
            ...(this.config.throughAll ? { filter: { on: 'stream' as const, prefixes: [], regex: `^${this.config.stream}$` } } : {}),
            group: SIM_GROUP,
            startFrom: { kind: 'start' },
            settings: { ...DEFAULT_GROUP_SETTINGS, messageTimeoutMs: 1_500, maxRetryCount: 1_000_000, readBatchSize: 10, historyBufferSize: 50, liveBufferSize: 50, strategy: this.config.strategy },
          }),
          5_000,
        );
        if (outcome === 'ok' || (outcome instanceof Error && outcome.name === 'PersistentSubscriptionExistsError')) return;
      }
      await this.sleep(random.between(100, 400));
    }
  }

  private async consume(consumer: number, random: SimRandom): Promise<void> {
    while (!this.stopped) {
      const node = this.hostingNode(random);
      const host = node ? this.cluster.subscriptionsOf(node) : undefined;
      if (!node || !host) {
        await this.sleep(random.between(50, 300));
        continue;
      }
      const incarnation = this.cluster.incarnationOf(node);
      const { number: epoch, startedAt } = host.epoch;
      const queue: SubscriptionMessage[] = [];
      let connected = true;
      let handle: ConsumerHandle;
      try {
        handle = host.connect(this.source, SIM_GROUP, this.config.bufferSize, { from: `consumer-${consumer}`, connectionName: `c${consumer}`, username: '' }, {
          deliver: (message) => {
            this.record.deliveries.push({ consumer, node, incarnation, epoch, id: message.id, sequence: message.sequence, atMs: this.scheduler.now, hostStartedMs: startedAt });
            queue.push(message);
          },
          end: () => {
            connected = false;
          },
        });
      } catch {
        // Not created yet, or the host is between states: try again shortly.
        await this.sleep(random.between(50, 300));
        continue;
      }
      const stillThere = () => connected && !this.stopped && this.cluster.isUp(node) && this.cluster.incarnationOf(node) === incarnation && host.running && host.epoch.number === epoch;
      while (stillThere()) {
        const message = queue.shift();
        if (!message) {
          await this.sleep(10);
          continue;
        }
        await this.sleep(random.between(0, 40));
        if (!stillThere()) break;
        const roll = random.next();
        if (roll < 0.03) {
          this.record.nacks++;
          handle.nack([message.id], 'retry', 'simulated failure');
        } else if (roll < 0.04) {
          // Goes away holding what it has: the group hands those to the others.
          handle.leave();
          connected = false;
        } else {
          this.record.acks++;
          this.record.ackedIds.add(message.id);
          handle.ack([message.id]);
        }
      }
      if (this.cluster.isUp(node) && this.cluster.incarnationOf(node) === incarnation) handle.leave();
      await this.sleep(random.between(20, 200));
    }
  }

  private bounded(promise: Promise<unknown>, ms: number): Promise<'ok' | 'timeout' | Error> {
    return new Promise((resolve) => {
      let done = false;
      const timer = this.scheduler.after(ms, () => {
        if (!done) {
          done = true;
          resolve('timeout');
        }
      });
      promise.then(
        () => {
          if (done) return;
          done = true;
          this.scheduler.cancel(timer);
          resolve('ok');
        },
        (error: unknown) => {
          if (done) return;
          done = true;
          this.scheduler.cancel(timer);
          resolve(error as Error);
        },
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.scheduler.after(ms, resolve));
  }
}

/**
 * - Nothing lost: every event of the stream in the final log was processed (acknowledged by a
 *   consumer) at least once — a message a consumer dropped, or acked to a node that then died,
 *   comes back until one acknowledges it.
 * - No redelivery of a committed acknowledgement: a host never delivers a message covered by an
 *   ack state committed before it started loading, or committed by itself.
 */
export function checkPersistentSubscriptions(record: PersistentSubscriptionRecord, streamEventIds: readonly string[], atMs: number): Violation[] {
  const violations: Violation[] = [];
  const missing = streamEventIds.filter((id) => !record.ackedIds.has(id));
  if (missing.length > 0) {
    violations.push({ checker: 'persistent-nothing-lost', detail: `${missing.length} of ${streamEventIds.length} events were never acknowledged by a consumer (first: ${missing[0]})`, atMs });
  }
  const covers = (commit: CommitRecord, sequence: number) => (commit.checkpoint !== undefined && sequence <= commit.checkpoint) || commit.handledBeyond.has(sequence);
  for (const delivery of record.deliveries) {
    for (const commit of record.commits) {
      if (commit.atMs >= delivery.atMs) break;
      const sameHost = commit.node === delivery.node && commit.incarnation === delivery.incarnation && commit.epoch === delivery.epoch;
      if (!sameHost && commit.atMs >= delivery.hostStartedMs) continue;
      if (!covers(commit, delivery.sequence)) continue;
      violations.push({
        checker: 'persistent-no-redelivery-of-committed-acks',
        detail: `message ${delivery.sequence} was delivered by ${delivery.node}#${delivery.incarnation}/${delivery.epoch} at ${delivery.atMs} ms after an ack state covering it was committed by ${commit.node}#${commit.incarnation}/${commit.epoch} at ${commit.atMs} ms`,
        atMs: delivery.atMs,
      });
      return violations;
    }
  }
  return violations;
}
