import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { CallContext } from '../api/grpc/grpc-server.js';
import type { ClusterMember, VNodeState } from '../api/grpc/node-services.js';
import { Gossip, newInstanceId, type KnownMember, type MemberInfo } from '../cluster/gossip.js';
import { resolveClusterLayout } from '../cluster/membership.js';
import { PeerTransport, type InternalTls } from '../cluster/peer-transport.js';
import { Replica, type ReplicaTimers } from '../cluster/replica.js';
import { NotLeaderError } from '../errors.js';
import { MemoryFileSystem } from '../storage/memory-file-system.js';
import { NodeFileSystem } from '../storage/node-file-system.js';
import type { ServerConfiguration } from './configuration.js';
import { createExternalInterface, loadTls } from './external-interface.js';
import { nodeHostEnvironment, PersistentSubscriptionHost } from '../subscriptions/persistent/host.js';
import { LeaderHosting } from '../subscriptions/persistent/leader-hosting.js';
import type { RunningNode } from './node.js';
import { PROTOCOL_COMPATIBILITY_VERSION } from './version.js';

const REAL_TIMERS: ReplicaTimers = {
  schedule: (delayMs, action) => {
    const timer = setTimeout(action, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
  soon: (action) => {
    setImmediate(action);
  },
};

const READ_PATH = '/event_store.client.streams.Streams/Read';
/** A node waits this many more ticks per live voter of higher priority before it campaigns. */
const ELECTION_PENALTY_TICKS_PER_HIGHER_NODE = 10;
const WRITE_PATHS = new Set([
  '/event_store.client.streams.Streams/Append',
  '/event_store.client.streams.Streams/BatchAppend',
  '/event_store.client.streams.Streams/Delete',
  '/event_store.client.streams.Streams/Tombstone',
  '/kurrentdb.protocol.v2.streams.StreamsService/AppendSession',
]);

/**
 * Starts one member of a cluster: the replica (Raft over the event log) with replication on the
 * internal TCP port, gossip on the internal HTTP port, and the KurrentDB gRPC services on the
 * external port. Writes reaching a follower fail with "not leader" and the leader's external
 * endpoint, so the clients reconnect there.
 */
export async function startClusterNode(configuration: ServerConfiguration, logger: Logger): Promise<RunningNode> {
  const tls = await loadTls(configuration);
  const layout = await resolveClusterLayout({
    intIp: configuration.intIp,
    intHttpPort: configuration.intHttpPort,
    clusterSize: configuration.clusterSize,
    gossipSeeds: configuration.gossipSeeds,
    discoverViaDns: configuration.discoverViaDns,
    clusterDns: configuration.clusterDns,
    clusterGossipPort: configuration.clusterGossipPort,
    clusterDnsServer: configuration.clusterDnsServer,
    readOnlyReplica: configuration.readOnlyReplica,
  });
  logger.info({ clusterId: layout.clusterId, voters: layout.voters, self: layout.selfId }, `cluster of ${layout.voters.length}: ${layout.voters.join(', ')}`);
  const internalTls = await loadInternalTls(configuration, tls);
  const instanceId = newInstanceId();
  const holder: { replica?: Replica; gossip?: Gossip } = {};
  const member = (id: string): KnownMember | undefined => holder.gossip?.member(id);
  const peers = new PeerTransport({
    selfId: layout.selfId,
    clusterId: layout.clusterId,
    ...(internalTls ? { tls: internalTls } : {}),
    listen: { host: configuration.intIp, port: configuration.intTcpPort },
    endpointOf: (id) => member(id)?.internalTcp,
    // Voters, and read-only replicas of this cluster (known from gossip or from the log).
    isMember: (id) =>
      layout.voters.includes(id) || layout.learners.includes(id) || holder.replica?.membership.learners.includes(id) === true || (holder.gossip?.replicas().some((replica) => replica.id === id) ?? false),
    onMessage: (from, message) => holder.replica?.receive(from, message),
    log: (message) => logger.warn(message),
  });
  await peers.start();
  let stopping: Promise<void> | undefined;
  let exitCode: number | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolveStopped) => (markStopped = resolveStopped));
  let replica: Replica;
  try {
    replica = await Replica.open({
      id: layout.selfId,
      membership: { voters: layout.voters, learners: layout.learners },
      directory: configuration.memDb ? '/chronicle' : resolve(configuration.db),
      fileSystem: configuration.memDb ? new MemoryFileSystem() : new NodeFileSystem(),
      transport: { send: (to, message) => peers.send(to, message) },
      timers: REAL_TIMERS,
      random: Math.random,
      writeTimeoutMs: configuration.writeTimeoutMs,
      appendBatchDelayMs: configuration.appendBatchDelayMs,
      store: { maxAppendSizeBytes: configuration.maxAppendSizeBytes, log: (message) => logger.info(message) },
      endpointOf: (id) => member(id)?.externalHttp,
      onStatus: (status) => logger.info({ role: status.role, term: status.term, leader: status.leader }, `raft: ${status.role} in term ${status.term}${status.leader ? `, leader ${status.leader}` : ''}`),
      onFault: (fault) => logger.error({ fault: fault.kind }, fault.detail),
      onFailure: (error) => {
        logger.fatal({ err: error }, 'the replica failed; stopping the node');
        exitCode = 1;
        void stop();
      },
    });
  } catch (error) {
    await peers.close();
    throw error;
  }
  holder.replica = replica;
  // A node that starts with nothing may be an in-memory node that restarted: it may have voted in
  // the current term and holds none of the committed entries, so it stays out of elections until
  // it has caught up — unless the whole cluster is new (a majority heard from, all empty).
  let votingBlocked = replica.startedEmpty;
  if (votingBlocked) replica.setVotingAllowed(false);
  let externalPort = configuration.extHttpPort;
  let nodePriority = 0;
  const gossip = new Gossip({
    self: (): MemberInfo => {
      const status = replica.raftStatus;
      return {
        id: layout.selfId,
        instanceId,
        clusterId: layout.clusterId,
        state: replica.nodeState,
        internalTcp: { host: peers.address.host, port: configuration.intTcpPortAdvertiseAs ?? peers.address.port },
        internalHttp: { host: configuration.intIp, port: holder.gossip?.port || configuration.intHttpPort },
        externalHttp: { host: configuration.extIp, port: externalPort },
        term: status.term,
        commitIndex: status.commitIndex,
        lastIndex: status.lastIndex,
        appliedPosition: replica.store.position,
        readOnlyReplica: configuration.readOnlyReplica,
        nodePriority,
      };
    },
    members: layout.voters,
    clusterId: layout.clusterId,
    ...(internalTls ? { tls: internalTls } : {}),
    listen: { host: configuration.intIp, port: configuration.intHttpPort },
    log: (level, message) => logger[level](message),
    onChange: () => followGossip(),
  });
  holder.gossip = gossip;
  // What gossip tells every node to do, on each change and each second: the leader adds read-only
  // replicas that announced themselves; every node lets live voters of a higher priority go first
  // in elections; a node that started empty joins elections once that is safe.
  const followGossip = (): void => {
    for (const candidate of gossip.replicas()) {
      if (replica.addLearner(candidate.id)) logger.info(`adding read-only replica ${candidate.id} to the cluster`);
    }
    const view = gossip.view();
    const higher = view.filter((member) => member.isAlive && member.id !== layout.selfId && layout.voters.includes(member.id) && member.nodePriority > nodePriority).length;
    replica.setElectionPenalty(higher * ELECTION_PENALTY_TICKS_PER_HIGHER_NODE);
    if (votingBlocked && (replica.isCaughtUp || newClusterForming(view, layout))) {
      votingBlocked = false;
      replica.setVotingAllowed(true);
      logger.info(replica.isCaughtUp ? 'caught up with the leader: taking part in elections again' : 'every node heard from is new: forming the cluster');
    }
  };
  const gossipFollower = setInterval(followGossip, 1000);
  const persistentSubscriptions = new PersistentSubscriptionHost(replica.store, { ...nodeHostEnvironment(logger), confirmLeadership: () => replica.linearizableReadBarrier() });
  const subscriptionHosting = new LeaderHosting(
    persistentSubscriptions,
    () => replica.writable,
    (error) => logger.warn({ err: error }, 'persistent subscriptions could not start; trying again'),
    () => replica.handingOver,
  );
  const subscriptionHostingJob = setInterval(() => subscriptionHosting.follow(), 100);
  const server = createExternalInterface(configuration, logger, replica.store, tls, {
    identity: {
      instanceId,
      advertisedHost: configuration.extIp,
      get advertisedPort() {
        return externalPort;
      },
      version: PROTOCOL_COMPATIBILITY_VERSION,
      members: () => clusterView(gossip.view(), replica),
      resign: () => subscriptionHosting.handOver(() => replica.resign()),
      setNodePriority: (priority) => {
        nodePriority = priority;
        logger.info(`node priority set to ${priority}`);
      },
    },
    requestShutdown: configuration.insecure ? () => void stop() : undefined,
    admit: (context) => admitCall(context, replica),
    persistentSubscriptions,
    cluster: { replica, gossip, selfId: layout.selfId, members: () => clusterView(gossip.view(), replica), internalTls, leaderWaitMs: configuration.writeTimeoutMs },
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // The groups are not hosted again from here on, whatever becomes of the handover.
      clearInterval(subscriptionHostingJob);
      // A node that failed (or never formed) has nothing to hand over.
      if (exitCode === undefined && !replica.failed) await handOverBeforeStopping(replica, subscriptionHosting, logger);
      logger.info('stopping: no new calls; writes in flight finish, then the store is flushed and closed');
      clearInterval(gossipFollower);
      await server.close();
      await persistentSubscriptions.stop(true, 'the node is shutting down');
      await gossip.close();
      await peers.close();
      await replica.close();
      logger.info('stopped');
      markStopped();
    })();
    return stopping;
  };
  try {
    await gossip.start();
    const address = await server.listen(configuration.extIp, configuration.extHttpPort);
    externalPort = address.port;
    logger.info(
      { replication: `${peers.address.host}:${peers.address.port}`, gossip: `${configuration.intIp}:${gossip.port}`, tls: tls !== undefined },
      `listening for clients on ${configuration.extIp}:${externalPort}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  void awaitFormation(replica, configuration, logger).then((formed) => {
    if (formed || !configuration.clusterFormMandatory) return;
    logger.fatal(`the cluster did not elect a leader within ${configuration.clusterFormTimeoutMs} ms and --cluster-form-mandatory is set: stopping`);
    exitCode = 1;
    void stop();
  });
  return {
    host: configuration.extIp,
    get port() {
      return externalPort;
    },
    stop,
    stopped,
    get exitCode() {
      return exitCode;
    },
  };
}

/** How long a stopping leader waits for a follower to take over before it stops anyway. */
const HANDOVER_BEFORE_STOP_MS = 2_000;

/**
 * A leader asked to stop hands leadership to a follower first, as `ResignNode` does: clients are
 * sent to the new leader at once instead of after an election timeout, and the persistent
 * subscriptions' acknowledgements are committed before it goes.
 */
async function handOverBeforeStopping(replica: Replica, hosting: LeaderHosting, logger: Logger): Promise<void> {
  if (replica.raftStatus.role !== 'leader') return;
  try {
    if (!(await hosting.handOver(() => replica.resign()))) {
      logger.info('stopping as the leader: no voter can take over now');
      return;
    }
  } catch (error) {
    logger.warn({ err: error }, 'stopping as the leader: handing leadership over failed');
    return;
  }
  const deadline = Date.now() + HANDOVER_BEFORE_STOP_MS;
  // Until this node follows the new leader (it steps down at the target's vote request and learns
  // who won from its first append), or the transfer gives up (its target did not catch up).
  const settled = (): boolean => (replica.raftStatus.role === 'leader' ? !replica.handingOver : replica.leaderId !== undefined);
  while (!settled() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  if (replica.raftStatus.role === 'leader') {
    logger.warn('no follower took over; stopping anyway (the others elect a leader after an election timeout)');
  } else {
    logger.info(`handed leadership to ${replica.leaderId ?? 'a follower'} before stopping`);
  }
}

/**
 * Without --insecure the internal interfaces use mutual TLS: each node presents its certificate
 * (the external one) and accepts only peers whose certificates the trusted root signed.
 */
async function loadInternalTls(configuration: ServerConfiguration, external: { certificate: Buffer; privateKey: Buffer } | undefined): Promise<InternalTls | undefined> {
  if (!external) return undefined;
  if (!configuration.trustedRootCertificateFile) {
    throw new Error('a cluster without --insecure needs --trusted-root-certificate-file: the CA that signed the nodes\u2019 certificates, to check peers on the internal interfaces');
  }
  return { ...external, trustedRoot: await readFile(configuration.trustedRootCertificateFile) };
}

/** A majority of the voters is heard from (this node included) and none of them holds anything yet. */
function newClusterForming(view: KnownMember[], layout: { selfId: string; voters: readonly string[] }): boolean {
  const live = view.filter((member) => member.isAlive && layout.voters.includes(member.id));
  const empty = live.every((member) => member.id === layout.selfId || (member.term === 0 && member.lastIndex === 0));
  return empty && live.length >= Math.floor(layout.voters.length / 2) + 1;
}

/** Waits (bounded) for a leader; warns if there is none by the formation timeout. */
async function awaitFormation(replica: Replica, configuration: ServerConfiguration, logger: Logger): Promise<boolean> {
  const deadline = Date.now() + configuration.clusterFormTimeoutMs;
  while (Date.now() < deadline) {
    if (replica.leaderId !== undefined) {
      logger.info(`the cluster formed: ${replica.leaderId} leads`);
      return true;
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  if (replica.leaderId !== undefined) return true;
  logger.warn(`no leader after ${configuration.clusterFormTimeoutMs} ms: fewer than a quorum of the ${configuration.clusterSize} nodes can reach each other; writes wait for one`);
  return false;
}

/**
 * Writes go to the leader: a follower that knows where it is refuses the whole call with "not
 * leader" and its endpoint, so the clients reconnect (a BatchAppend call cannot say "not leader"
 * per append). While no leader is known, writes are let in to wait, boundedly, in the store.
 * Reads are served by any node that is caught up, unless the client asks for the leader
 * (`requires-leader: true`, the clients' default node preference).
 */
const PERSISTENT_SUBSCRIPTIONS_PREFIX = '/event_store.client.persistent_subscriptions.PersistentSubscriptions/';

function admitCall(context: CallContext, replica: Replica): void {
  if (context.path.startsWith(PERSISTENT_SUBSCRIPTIONS_PREFIX)) {
    // A leader that cannot write yet (just elected) answers "unavailable": sending the client to itself helps no one.
    if (!replica.writable) throw new NotLeaderError('persistent subscriptions are served by the leader', replica.raftStatus.role === 'leader' ? undefined : replica.leaderEndpoint);
    return;
  }
  if (WRITE_PATHS.has(context.path)) {
    const leader = replica.leaderEndpoint;
    if (!replica.writable && leader) throw new NotLeaderError('this node is a follower; writes go to the leader', leader);
    return;
  }
  if (context.path !== READ_PATH) return;
  const requiresLeader = String(context.headers['requires-leader'] ?? '').toLowerCase() === 'true';
  if (requiresLeader ? replica.writable : replica.canServeReads) return;
  const leader = replica.leaderId;
  throw new NotLeaderError(
    requiresLeader ? 'this node is not the leader and the read requires the leader' : 'this node is catching up and cannot serve reads yet',
    leader !== undefined ? replica.leaderEndpoint : undefined,
  );
}

/**
 * The members as clients see them (Gossip.Read). Gossip answers are up to an interval old; who
 * leads is known sooner from Raft, so the leader this node follows is shown as Leader and a stale
 * "Leader" elsewhere as Unknown — a client discovering now goes straight to the right node.
 *
 * A live voter without a leader (an election, the cluster forming, a quorum lost) is shown as a
 * Follower, as Raft has it: the official clients' discovery skips Unknown members and gives up
 * after ten rounds, and the 1.x client then fails every later call at once, for good, even once
 * the cluster is back (it keeps the failed server-features lookup). A follower is where a client
 * should wait: it holds a write until a leader is known and then names it, or fails it as "no
 * quorum" after the write timeout, which sends the client back to discovery.
 */
function clusterView(members: KnownMember[], replica: Replica): ClusterMember[] {
  const leader = replica.leaderId;
  return members.map((member, i) => {
    let state: VNodeState = member.state;
    if (i > 0 && leader !== undefined) {
      if (member.id === leader && member.isAlive) state = 'Leader';
      else if (member.state === 'Leader' || member.state === 'PreLeader') state = 'Unknown';
    } else if (member.state === 'Unknown' && member.isAlive && !member.readOnlyReplica) {
      state = 'Follower';
    }
    return { instanceId: member.instanceId, state, isAlive: member.isAlive, host: member.externalHttp.host, port: member.externalHttp.port };
  });
}
