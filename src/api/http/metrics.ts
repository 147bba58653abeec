import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KnownMember } from '../../cluster/gossip.js';
import type { Replica } from '../../cluster/replica.js';
import type { EventStore, StoreObserver } from '../../store/event-store.js';
import type { RecordedEvent } from '../../store/types.js';
import type { SubscriptionTracker } from '../../subscriptions/subscription-tracker.js';
import { sourceName } from '../../subscriptions/persistent/durable-state.js';
import type { PersistentSubscriptionHost } from '../../subscriptions/persistent/host.js';

/**
 * The node's Prometheus metrics (`GET /metrics`). Counters on the hot path are fed by the store's
 * observer — one call per write, read or group commit — and everything that is a state rather than
 * an event (replication lag, the Raft term, open subscriptions) is read when scraped, so it costs
 * nothing between scrapes. Event-loop lag and the process figures come from prom-client's defaults.
 */
export interface MetricsSources {
  store: EventStore;
  subscriptions: SubscriptionTracker;
  persistentSubscriptions?: PersistentSubscriptionHost;
  cluster?: { replica: Replica; view: () => KnownMember[]; selfId: string };
}

export class NodeMetrics {
  readonly registry = new Registry();

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    const writes = new Counter({ name: 'chronicle_writes_total', help: 'Writes committed (appends, deletes, metadata; one log record each)', registers });
    const eventsWritten = new Counter({ name: 'chronicle_events_written_total', help: 'Events committed to the log', registers });
    const bytesWritten = new Counter({ name: 'chronicle_written_bytes_total', help: 'Bytes of event records committed', registers });
    const reads = new Counter({ name: 'chronicle_reads_total', help: 'Read operations served (stream and $all pages, subscriptions included)', registers });
    const eventsRead = new Counter({ name: 'chronicle_events_read_total', help: 'Events returned by reads', registers });
    const bytesRead = new Counter({ name: 'chronicle_read_bytes_total', help: 'Data and metadata bytes of the events returned by reads', registers });
    const fsync = new Histogram({
      name: 'chronicle_fsync_duration_seconds',
      help: 'Time of the fdatasync that makes a group commit durable',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    const batch = new Histogram({
      name: 'chronicle_group_commit_records',
      help: 'Log records made durable by one group commit (one write and one fdatasync)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    const observer: StoreObserver = {
      written: (events, bytes) => {
        writes.inc();
        eventsWritten.inc(events);
        bytesWritten.inc(bytes);
      },
      read: (events: readonly RecordedEvent[]) => {
        reads.inc();
        if (events.length === 0) return;
        let bytes = 0;
        for (const event of events) bytes += event.data.byteLength + event.metadata.byteLength;
        eventsRead.inc(events.length);
        bytesRead.inc(bytes);
      },
      flushed: (frames, _bytes, syncMs) => {
        batch.observe(frames);
        fsync.observe(syncMs / 1000);
      },
    };
    sources.store.observe(observer);

    new Gauge({
      name: 'chronicle_committed_position_bytes',
      help: 'Log position up to which writes are committed and readable here',
      registers,
      collect() {
        this.set(sources.store.position);
      },
    });
    new Gauge({
      name: 'chronicle_subscriptions',
      help: 'Live catch-up subscriptions, by transport (grpc, sse)',
      labelNames: ['transport'],
      registers,
      collect() {
        this.reset();
        for (const line of sources.subscriptions.snapshot()) this.set({ transport: line.transport }, line.open);
      },
    });
    new Gauge({
      name: 'chronicle_subscription_lag_bytes',
      help: 'How far the furthest-behind live subscription is from the committed position, by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        this.reset();
        for (const line of sources.subscriptions.snapshot()) this.set({ transport: line.transport }, line.maxLagBytes);
      },
    });
    if (sources.persistentSubscriptions) this.registerPersistentSubscriptions(sources.persistentSubscriptions, registers);
    if (sources.cluster) this.registerCluster(sources.cluster, registers);
  }

  /** Persistent subscription groups hosted here (the leader, in a cluster), read when scraped. */
  private registerPersistentSubscriptions(host: PersistentSubscriptionHost, registers: Registry[]): void {
    const labelNames = ['source', 'group'];
    const gauge = (name: string, help: string, value: (figures: ReturnType<PersistentSubscriptionHost['figures']>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const figures of host.figures()) this.set({ source: sourceName(figures.definition.source), group: figures.definition.group }, value(figures));
        },
      });
    gauge('chronicle_persistent_subscription_consumers', 'Consumers connected to each persistent subscription group', (figures) => figures.statistics.consumers.length);
    gauge('chronicle_persistent_subscription_in_flight', 'Messages delivered and not yet acknowledged, per group', (figures) => figures.statistics.inFlightCount);
    gauge('chronicle_persistent_subscription_outstanding', 'Messages read and not yet handled (buffered, in flight or waiting for a retry), per group: the group\u2019s lag behind its reader', (figures) => figures.statistics.outstandingCount);
    gauge('chronicle_persistent_subscription_live', '1 when the group has read everything there is (it waits for new events)', (figures) => (figures.statistics.caughtUp ? 1 : 0));
    gauge('chronicle_persistent_subscription_parked', 'Parked messages waiting for a replay, per group', (figures) => figures.parkedCount);
    gauge('chronicle_persistent_subscription_delivered', 'Deliveries since this node began hosting the group (retries included)', (figures) => figures.statistics.deliveredCount);
  }

  private registerCluster(cluster: NonNullable<MetricsSources['cluster']>, registers: Registry[]): void {
    const { replica } = cluster;
    let termSeen = replica.raftStatus.term;
    new Counter({
      name: 'chronicle_elections_total',
      help: 'Elections this node has seen since it started (Raft terms begun)',
      registers,
      collect() {
        const term = replica.raftStatus.term;
        if (term > termSeen) this.inc(term - termSeen);
        termSeen = Math.max(termSeen, term);
      },
    });
    new Gauge({
      name: 'chronicle_raft_term',
      help: 'Current Raft term',
      registers,
      collect() {
        this.set(replica.raftStatus.term);
      },
    });
    new Gauge({
      name: 'chronicle_is_leader',
      help: '1 while this node leads and takes writes',
      registers,
      collect() {
        this.set(replica.writable ? 1 : 0);
      },
    });
    new Gauge({
      name: 'chronicle_replication_lag_bytes',
      help: 'On the leader: how far each other member has applied behind the leader, from gossip (up to a gossip interval old)',
      labelNames: ['member'],
      registers,
      collect() {
        this.reset();
        if (!replica.writable) return;
        const position = replica.store.position;
        for (const member of cluster.view()) {
          if (member.id === cluster.selfId || !member.isAlive) continue;
          this.set({ member: member.id }, Math.max(0, position - member.appliedPosition));
        }
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
