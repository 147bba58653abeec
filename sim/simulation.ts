import type { ReplicaUnsafeVariants } from '../src/cluster/replica.js';
import type { Message } from '../src/consensus/types.js';
import type { RecordBody } from '../src/cluster/raft-log.js';
import { checkHistory, RaftInvariants, type FinalEvent, type Violation } from './checkers.js';
import { SimCluster } from './cluster.js';
import { History } from './history.js';
import { SimNetwork, type NetworkFaults } from './network.js';
import { SimRandom } from './random.js';
import { Scheduler } from './scheduler.js';
import { Workload } from './workload.js';
import { checkPersistentSubscriptions, PersistentConsumers, PersistentSubscriptionRecord } from './persistent-consumers.js';

/** Deliberate bugs, each of which the checkers must catch. */
export const BROKEN_VARIANTS = {
  'ack-before-quorum': { commitWithoutQuorum: true },
  'ignore-vote-terms': { ignoreVoteTerms: true },
  'skip-vote-fsync': { skipHardStateSync: true },
  'apply-uncommitted': { applyUncommitted: true },
  'follower-uncommitted-reads': { replayUncommittedOnOpen: true },
  'truncate-committed': { truncateCommitted: true },
} as const satisfies Record<string, ReplicaUnsafeVariants>;

export type BrokenVariant = keyof typeof BROKEN_VARIANTS;

export interface SimulationOptions {
  seed: number;
  variant?: BrokenVariant;
  /** How long clients run and faults are injected, in simulated milliseconds. */
  faultPhaseMs?: number;
  /** Keep a trace of this many last lines for the report. */
  traceLines?: number;
}

/** Which fault classes a seed turns on ("swarm testing": rare combinations get reached). */
export interface FaultClasses {
  drops: boolean;
  duplicates: boolean;
  reorder: boolean;
  partitions: boolean;
  crashes: boolean;
  tornWrites: boolean;
  clockSkew: boolean;
  bitFlips: boolean;
  slowDisk: boolean;
  /** Some messages are held up for seconds. */
  longDelays: boolean;
  /** Every message takes up to a good part of an election timeout: elections overlap, answers go stale. */
  slowNetwork: boolean;
  /** Election timeouts barely randomised: candidates collide and split the vote. */
  electionStorm: boolean;
  /** Nodes crash (and come back quickly) right as an election runs: what a lost vote needs. */
  electionCrashes: boolean;
  /** The leader hands leadership over (`ResignNode`), sometimes to go down right after, as a graceful stop does. */
  handovers: boolean;
}

export interface SimulationReport {
  seed: number;
  variant: BrokenVariant | undefined;
  nodes: number;
  learners: number;
  preVote: boolean;
  checkQuorum: boolean;
  faultClasses: FaultClasses;
  faultsInjected: Record<string, number>;
  simulatedMs: number;
  operations: Record<string, number>;
  elections: number;
  committedEntries: number;
  violations: Violation[];
  /** Scheduler events of the fault phase. */
  events: number;
  trace: string[];
}

const LIVENESS_BOUND_MS = 30_000;
const CONVERGENCE_BOUND_MS = 15_000;
const CONSUMERS_DRAIN_BOUND_MS = 20_000;
/** A healthy fault phase runs a few thousand events; this is a hundred times more. */
const MAX_EVENTS_PER_PHASE = 400_000;

/** Runs one seeded simulation of a cluster under faults and checks everything it can. */
export async function runSimulation(options: SimulationOptions): Promise<SimulationReport> {
  const random = new SimRandom(options.seed);
  const setup = random.fork('setup');
  const batching = random.fork('append-batching');
  const faultPhaseMs = options.faultPhaseMs ?? 20_000;
  const classes: FaultClasses = {
    drops: setup.chance(0.5),
    duplicates: setup.chance(0.4),
    reorder: setup.chance(0.5),
    partitions: setup.chance(0.6),
    crashes: setup.chance(0.6),
    tornWrites: setup.chance(0.5),
    clockSkew: setup.chance(0.5),
    bitFlips: setup.chance(0.15),
    slowDisk: setup.chance(0.4),
    longDelays: setup.chance(0.4),
    slowNetwork: setup.chance(0.25),
    electionStorm: setup.chance(0.25),
    electionCrashes: setup.chance(0.4),
    // Its own stream, so that the recorded seeds draw everything else as before it existed.
    handovers: random.fork('handovers').chance(0.3),
  };
  const voterCount = setup.chance(0.2) ? 5 : 3;
  // Raft's optional protections are settings: some seeds run without them, as a user may.
  const preVote = setup.chance(0.75);
  const checkQuorum = setup.chance(0.75);
  const learnerCount = setup.chance(0.25) ? 1 : 0;
  // Half the time a read-only replica joins mid-run, through a configuration entry.
  const lateLearners = learnerCount > 0 && setup.chance(0.5);
  const voters = Array.from({ length: voterCount }, (_, i) => `n${i + 1}`);
  const learners = Array.from({ length: learnerCount }, (_, i) => `r${i + 1}`);
  const traceLimit = options.traceLines ?? 60;
  const trace: string[] = [];
  const scheduler = new Scheduler();
  const note = (line: string): void => {
    trace.push(`${String(scheduler.now).padStart(7)} ms  ${line}`);
    if (trace.length > traceLimit) trace.shift();
  };
  const networkFaults: NetworkFaults = {
    delayMsMin: classes.slowNetwork ? 20 : 1,
    delayMsMax: classes.slowNetwork ? 700 : classes.reorder ? 40 : 10,
    dropProbability: classes.drops ? setup.between(1, 15) / 100 : 0,
    duplicateProbability: classes.duplicates ? setup.between(1, 10) / 100 : 0,
    reorder: classes.reorder,
    longDelayProbability: classes.longDelays ? setup.between(1, 20) / 1000 : 0,
    longDelayMsMax: 4000,
    ...(classes.duplicates && setup.chance(0.5) ? { staleDuplicateMsMax: 3000 } : {}),
  };
  const network = new SimNetwork<Message<RecordBody>>(scheduler, random.fork('network'), networkFaults);
  const clockRates = new Map<string, number>();
  for (const id of [...voters, ...learners]) clockRates.set(id, classes.clockSkew ? setup.between(80, 125) / 100 : 1);
  const invariants = new RaftInvariants(() => scheduler.now, voters);
  const nodeFailures: Violation[] = [];
  const corrupted = new Set<string>();
  const subscriptionRecord = new PersistentSubscriptionRecord();
  const cluster = new SimCluster(
    scheduler,
    network,
    random.fork('cluster'),
    {
      voters,
      learners,
      tickMs: 100,
      raft: { preVote, checkQuorum },
      electionStorm: classes.electionStorm,
      lateLearners,
      writeTimeoutMs: 3000,
      // Its own stream, so the draw leaves every recorded seed's other choices as they were.
      appendBatchDelayMs: batching.chance(0.25) ? 0 : batching.between(1, 20),
      clockRates,
      diskLatencyMs: classes.slowDisk ? { min: 1, max: 30 } : { min: 0, max: 2 },
      unsafe: options.variant ? BROKEN_VARIANTS[options.variant] : undefined,
    },
    {
      onStatus: (node, incarnation, status) => {
        invariants.onStatus(node, incarnation, status);
        if (classes.electionCrashes && status.role === 'candidate' && scheduler.now < faultPhaseMs) crashDuringElection();
        note(`${node} ${status.role} term ${status.term}${status.leader ? ` leader ${status.leader}` : ''}${status.leaderReady ? ' ready' : ''}`);
      },
      onTruncate: (node, afterIndex, dropped, term) => {
        note(`${node} truncates after ${afterIndex}`);
        invariants.onTruncate(node, afterIndex, dropped, term);
      },
      onSend: (node, to, message) => invariants.onSend(node, to, message),
      onAckStateCommitted: (node, incarnation, epoch, _group, snapshot) => subscriptionRecord.commit(node, incarnation, epoch, scheduler.now, snapshot),
      onApplied: (node, incarnation, replica, index) => invariants.onApplied(node, incarnation, replica, index),
      onNodeFailure: (node, error) => {
        note(`${node} FAILED: ${error.message}`);
        if (!corrupted.has(node)) nodeFailures.push({ checker: 'node-assertions', detail: `${node} stopped: ${error.message}`, atMs: scheduler.now });
      },
      onStartFailure: (node, error) => {
        note(`${node} cannot start: ${error.message}`);
        // Only a disk the simulator corrupted may keep a node from starting: its CRCs caught it.
        if (!corrupted.has(node)) nodeFailures.push({ checker: 'node-starts', detail: `${node} cannot start: ${error.message}`, atMs: scheduler.now });
      },
      onFault: (node, detail) => {
        note(`${node} fault: ${detail}`);
        if (detail.startsWith('committed-entry-conflict')) nodeFailures.push({ checker: 'node-assertions', detail: `${node}: ${detail}`, atMs: scheduler.now });
      },
    },
  );
  const history = new History();
  const workload = new Workload(scheduler, cluster, random.fork('workload'), history, {
    clients: 3,
    streams: ['s-a', 's-b', 's-c', 's-d'],
    endMs: faultPhaseMs,
    operationTimeoutMs: 5000,
    thinkMs: { min: 5, max: 150 },
    retryChance: 0.15,
    leaderReadChance: 0.15,
    followerReadChance: 0.15,
    burstChance: batching.chance(0.5) ? batching.between(5, 20) / 100 : 0,
    burstSize: { min: 4, max: 12 },
  });
  // Persistent-subscription consumers on one of the streams, with a strategy and buffer per seed.
  const subscriptionSetup = random.fork('persistent-subscriptions');
  const persistentStream = 's-a';
  const consumers = new PersistentConsumers(scheduler, cluster, subscriptionSetup.fork('consumers'), subscriptionRecord, {
    consumers: subscriptionSetup.between(1, 3),
    stream: persistentStream,
    throughAll: subscriptionSetup.chance(0.5),
    strategy: subscriptionSetup.pick(['RoundRobin', 'DispatchToSingle', 'Pinned', 'PinnedByCorrelation'] as const),
    bufferSize: subscriptionSetup.between(1, 10),
  });
  const faultsInjected: Record<string, number> = {};
  const count = (kind: string): void => {
    faultsInjected[kind] = (faultsInjected[kind] ?? 0) + 1;
  };

  // A voter crashes a few milliseconds into an election and restarts soon after, while the
  // election may still be running: a vote it cast must survive that.
  const electionFaults = random.fork('election-faults');
  function crashDuringElection(): void {
    if (!electionFaults.chance(0.3)) return;
    const victim = electionFaults.pick(voters);
    scheduler.after(electionFaults.between(1, 15), () => {
      if (!cluster.isUp(victim)) return;
      cluster.crash(victim, undefined);
      count('crash-in-election');
      note(`FAULT crash ${victim} during an election`);
      scheduler.after(electionFaults.between(20, 400), () => {
        void cluster.start(victim);
      });
    });
  }

  if (lateLearners) {
    // As a server's gossip does each second: whoever leads adds the read-only replicas it lacks,
    // again after a new leader's log dropped an uncommitted configuration entry that added them.
    const joinAtMs = random.fork('late-learners').between(500, faultPhaseMs / 2);
    let added = false;
    const tryToAdd = (): void => {
      const members = cluster.addLateLearners();
      if (members && !added) note('the leader added the read-only replica');
      added = members;
      scheduler.after(500, tryToAdd);
    };
    scheduler.at(joinAtMs, tryToAdd);
  }

  for (const id of cluster.ids) await cluster.start(id);
  const clientsDone = workload.run();
  const consumersDone = consumers.run();

  // Faults, at random moments of the fault phase.
  const faults = random.fork('faults');
  const injectFault = async (): Promise<void> => {
    const actions: (() => Promise<void> | void)[] = [];
    const up = cluster.ids.filter((id) => cluster.isUp(id));
    const down = cluster.ids.filter((id) => !cluster.isUp(id) && !corrupted.has(id));
    if (classes.crashes && up.length > 0) {
      actions.push(() => {
        const victim = faults.pick(up);
        const tear = classes.tornWrites && faults.chance(0.5) ? faults.between(1, 99) / 100 : undefined;
        cluster.crash(victim, tear);
        count(tear === undefined ? 'crash' : 'crash-torn-write');
        note(`FAULT crash ${victim}${tear === undefined ? '' : ` tearing the last write at ${tear}`}`);
      });
    }
    if (down.length > 0) {
      actions.push(async () => {
        const node = faults.pick(down);
        if (classes.bitFlips && corrupted.size === 0 && faults.chance(0.3)) {
          const where = await cluster.flipBitInLog(node, faults);
          if (where) {
            corrupted.add(node);
            count('bit-flip');
            note(`FAULT bit flip in ${where}`);
          }
        }
        count('restart');
        note(`restart ${node}`);
        await cluster.start(node);
      });
    }
    if (classes.partitions) {
      const everyone = cluster.ids;
      actions.push(() => {
        const shuffled = faults.shuffle([...everyone]);
        const cut = faults.between(1, shuffled.length - 1);
        network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
        count('partition');
        note(`FAULT partition ${shuffled.slice(0, cut).join(',')} | ${shuffled.slice(cut).join(',')}`);
      });
      actions.push(() => {
        const from = faults.pick(everyone);
        const to = faults.pick(everyone.filter((id) => id !== from));
        network.cutLink(from, to);
        count('asymmetric-cut');
        note(`FAULT cut link ${from} -> ${to}`);
      });
      if (everyone.length >= 3) {
        actions.push(() => {
          const shuffled = faults.shuffle([...everyone]);
          const bridgeNode = shuffled[0]!;
          const rest = shuffled.slice(1);
          const cut = faults.between(1, rest.length - 1);
          network.bridge(rest.slice(0, cut), rest.slice(cut), bridgeNode);
          count('bridge');
          note(`FAULT bridge via ${bridgeNode}: ${rest.slice(0, cut).join(',')} | ${rest.slice(cut).join(',')}`);
        });
      }
      actions.push(() => {
        network.heal();
        count('heal');
        note('heal network');
      });
    }
    if (actions.length > 0) await faults.pick(actions)();
  };
  const scheduleFault = (): void => {
    const delay = faults.between(200, 2500);
    if (scheduler.now + delay >= faultPhaseMs) return;
    scheduler.after(delay, () => {
      void injectFault().then(scheduleFault);
    });
  };
  if (Object.values(classes).some(Boolean)) scheduleFault();

  // Operators hand leadership over (`ResignNode`, or a graceful stop, which hands over and then
  // goes — here as abruptly as a crash), on their own stream and schedule.
  const handovers = random.fork('handover-times');
  const scheduleHandover = (): void => {
    const delay = handovers.between(1000, 4000);
    if (scheduler.now + delay >= faultPhaseMs) return;
    scheduler.after(delay, () => {
      const leader = cluster.ids.find((id) => cluster.replicaOf(id)?.writable);
      if (!leader) return scheduleHandover();
      void cluster.handOver(leader).then((handed) => {
        count(handed ? 'handover' : 'handover-refused');
        note(`${leader} hands leadership over${handed ? '' : ' (refused)'}`);
        if (handed && handovers.chance(0.5)) {
          scheduler.after(handovers.between(0, 300), () => {
            // Faults end with the fault phase: from then on every node is up and stays up.
            if (!cluster.isUp(leader) || scheduler.now >= faultPhaseMs) return;
            cluster.crash(leader, undefined);
            count('crash-after-handover');
            note(`FAULT crash ${leader} after handing over`);
          });
        }
        scheduleHandover();
      }, scheduleHandover);
    });
  };
  if (classes.handovers) scheduleHandover();
  const violations: Violation[] = [];
  let events = 0;
  try {
    events += await scheduler.runUntil(faultPhaseMs, { maxEvents: MAX_EVENTS_PER_PHASE });

    // Heal: everything connected and running, messages no longer lost.
    network.heal();
    network.setFaults({ dropProbability: 0, duplicateProbability: 0, longDelayProbability: 0 });
    cluster.electionStorm = false;
    for (const id of cluster.ids) if (!cluster.isUp(id) && !corrupted.has(id)) await cluster.start(id);
    note('healed: network whole, every node restarted');
    let clientsFinished = false;
    void clientsDone.then(() => {
      clientsFinished = true;
    });
    await scheduler.runWhile(() => !clientsFinished, scheduler.now + 10_000);

    // Liveness: a leader and an acknowledged write within the bound.
    const probeRandom = random.fork('probe');
    const livenessDeadline = scheduler.now + LIVENESS_BOUND_MS;
    let progressed = false;
    while (!progressed && scheduler.now < livenessDeadline) {
      let finished = false;
      void workload.probeWrite(probeRandom).then((ok) => {
        progressed = ok;
        finished = true;
      });
      await scheduler.runWhile(() => !finished, Math.min(livenessDeadline, scheduler.now + 6000));
      if (!progressed) await scheduler.runUntil(Math.min(livenessDeadline, scheduler.now + 300));
    }
    if (!progressed) violations.push({ checker: 'liveness', detail: `no write succeeded within ${LIVENESS_BOUND_MS} ms after the faults healed`, atMs: scheduler.now });

    // Convergence: every running node applies what the leader committed.
    // The newest term's leader: a deposed one that has not heard of that term yet (check-quorum
    // off, its peers' messages still late) still thinks it leads, and its log lacks the new term.
    const termOf = (id: string) => cluster.replicaOf(id)?.raftStatus.term ?? -1;
    const leaderId = cluster.ids.filter((id) => cluster.replicaOf(id)?.writable).sort((a, b) => termOf(b) - termOf(a))[0];
    const finalEvents: FinalEvent[] = [];
    if (leaderId) {
      const leader = cluster.replicaOf(leaderId)!;
      const target = leader.applied;
      await scheduler.runWhile(
        () => cluster.ids.some((id) => cluster.isUp(id) && (cluster.replicaOf(id)?.applied ?? 0) < target),
        scheduler.now + CONVERGENCE_BOUND_MS,
      );
      const read = leader.store.readAll({ maxCount: 10_000_000 });
      let result: Awaited<typeof read> | undefined;
      void read.then((value) => (result = value));
      await scheduler.runWhile(() => result === undefined, scheduler.now + 1000);
      for (const event of result?.events ?? []) {
        if (event.streamId.startsWith('$')) continue;
        finalEvents.push({ stream: event.streamId, revision: event.revision, id: event.id, position: event.position.commit });
      }
      violations.push(...(await compareReplicas(cluster, scheduler, leaderId)));
      // Nothing lost: the consumers process every event of their stream, within a bound once healed.
      const streamIds = finalEvents.filter((event) => event.stream === persistentStream).map((event) => event.id);
      await scheduler.runWhile(() => streamIds.some((id) => !subscriptionRecord.ackedIds.has(id)), scheduler.now + CONSUMERS_DRAIN_BOUND_MS);
      violations.push(...checkPersistentSubscriptions(subscriptionRecord, streamIds, scheduler.now));
    }
    // Without a leader there is no final log to check the history against (liveness reported it).
    if (leaderId) violations.push(...checkHistory(history, finalEvents, scheduler.now));
  } catch (error) {
    // The scheduler's guard: far too many events for the simulated time (a livelock), or a throw
    // out of the code under test.
    violations.push({ checker: 'simulation-completes', detail: (error as Error).message, atMs: scheduler.now });
  }
  consumers.stop();
  void consumersDone;
  violations.unshift(...invariants.violations, ...nodeFailures);
  const simulatedMs = scheduler.now;
  // Closing flushes through the simulated disk, whose completions are scheduler events: keep
  // the scheduler running until every node is closed.
  let closed = false;
  void cluster.stopAll().finally(() => (closed = true));
  try {
    await scheduler.runWhile(() => !closed, scheduler.now + 60_000, { maxEvents: MAX_EVENTS_PER_PHASE });
  } catch {
    // A livelocked run may not close cleanly; its report already says why.
  }
  return {
    seed: options.seed,
    variant: options.variant,
    nodes: voterCount,
    preVote,
    checkQuorum,
    learners: learnerCount,
    faultClasses: classes,
    faultsInjected,
    simulatedMs,
    operations: { ...history.counts(), 'persistent:delivered': subscriptionRecord.deliveries.length, 'persistent:acked': subscriptionRecord.acks, 'persistent:ack-commits': subscriptionRecord.commits.length },
    elections: invariants.elections,
    committedEntries: invariants.committedLength,
    violations,
    events,
    trace,
  };
}

/** Every running node holds, byte for byte, the entries the leader holds up to what it applied. */
async function compareReplicas(cluster: SimCluster, scheduler: Scheduler, leaderId: string): Promise<Violation[]> {
  const violations: Violation[] = [];
  const leader = cluster.replicaOf(leaderId)!;
  for (const id of cluster.ids) {
    const replica = cluster.replicaOf(id);
    if (!replica || id === leaderId) continue;
    const upTo = Math.min(replica.applied, leader.applied);
    if (upTo === 0) continue;
    let pair: [Awaited<ReturnType<typeof leader.entries>>, Awaited<ReturnType<typeof leader.entries>>] | undefined;
    void Promise.all([leader.entries(1, upTo), replica.entries(1, upTo)]).then((value) => (pair = value));
    await scheduler.runWhile(() => pair === undefined, scheduler.now + 1000);
    if (!pair) continue;
    const [ours, theirs] = pair;
    for (let i = 0; i < upTo; i++) {
      const a = ours[i]!;
      const b = theirs[i]!;
      if (a.term !== b.term || a.payload.type !== b.payload.type || !bytesEqual(a.payload.payload, b.payload.payload)) {
        violations.push({ checker: 'replicas-identical', detail: `${id} differs from leader ${leaderId} at index ${i + 1}`, atMs: scheduler.now });
        break;
      }
    }
  }
  return violations;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
