import type { KnownMember } from '../../cluster/gossip.js';
import type { EventStore } from '../../store/event-store.js';
import type { ClusterHttpAccess, NodeIdentityForHttp } from './http-api.js';
import type { GossipDocument, GossipMemberJson, NodeStatus } from './operation-routes.js';

/** Readiness, gossip and info of a single node, and of a cluster member. */
const FEATURES = ['streams', 'stream-metadata', 'live-sse', 'problem-json', 'gossip', 'metrics', 'openapi'];

function info(identity: NodeIdentityForHttp, extra: Record<string, unknown>): object {
  return { version: identity.version, protocolVersion: identity.protocolVersion, instanceId: identity.instanceId, ...extra };
}

export function singleNodeStatus(store: EventStore, identity: NodeIdentityForHttp): NodeStatus {
  return {
    async ready() {
      return store.usable ? { ready: true, reason: 'the store is open', state: 'Leader' } : { ready: false, reason: 'the store is closed or has failed', state: 'ShuttingDown' };
    },
    gossip(): GossipDocument {
      const host = identity.advertisedHost;
      const port = identity.advertisedPort;
      const position = store.position;
      const self: GossipMemberJson = {
        instanceId: identity.instanceId,
        timeStamp: new Date().toISOString(),
        state: 'Leader',
        isAlive: true,
        isReadOnlyReplica: false,
        internalTcpIp: host,
        internalTcpPort: 0,
        internalHttpIp: host,
        internalHttpPort: port,
        externalHttpIp: host,
        externalHttpPort: port,
        httpEndPointIp: host,
        httpEndPointPort: port,
        lastCommitPosition: position,
        writerCheckpoint: position,
        chaserCheckpoint: position,
        epochNumber: 0,
        nodePriority: 0,
      };
      return { members: [self], serverIp: host, serverPort: port };
    },
    info: () => info(identity, { clusterSize: 1, state: 'Leader', features: FEATURES }),
  };
}

function memberJson(member: KnownMember, state: string): GossipMemberJson {
  return {
    instanceId: member.instanceId,
    timeStamp: new Date(member.lastSeenMs || Date.now()).toISOString(),
    state,
    isAlive: member.isAlive,
    isReadOnlyReplica: member.readOnlyReplica,
    internalTcpIp: member.internalTcp.host,
    internalTcpPort: member.internalTcp.port,
    internalHttpIp: member.internalHttp.host,
    internalHttpPort: member.internalHttp.port,
    externalHttpIp: member.externalHttp.host,
    externalHttpPort: member.externalHttp.port,
    httpEndPointIp: member.externalHttp.host,
    httpEndPointPort: member.externalHttp.port,
    lastCommitPosition: member.appliedPosition,
    writerCheckpoint: member.appliedPosition,
    chaserCheckpoint: member.appliedPosition,
    epochNumber: member.term,
    nodePriority: member.nodePriority,
  };
}

export function clusterStatus(cluster: ClusterHttpAccess, identity: NodeIdentityForHttp): NodeStatus {
  const { replica } = cluster;
  return {
    async ready() {
      const state = replica.nodeState;
      if (replica.leaderId === undefined) return { ready: false, reason: 'no leader is known (an election, or no quorum)', state };
      if (!replica.canServeReads) return { ready: false, reason: 'this node is catching up with the leader', state };
      return { ready: true, reason: replica.writable ? 'this node leads' : `following ${replica.leaderId}`, state };
    },
    gossip(): GossipDocument {
      // The states clients are shown (Gossip.Read): who leads is known from Raft before gossip says so.
      const states = new Map(cluster.members().map((member) => [member.instanceId, member.state]));
      const members = cluster.gossip.view().map((member) => memberJson(member, states.get(member.instanceId) ?? member.state));
      return { members, serverIp: identity.advertisedHost, serverPort: identity.advertisedPort };
    },
    info: () =>
      info(identity, {
        clusterSize: replica.membership.voters.length,
        state: replica.nodeState,
        leader: replica.leaderId ?? null,
        features: [...FEATURES, 'forwarding'],
      }),
  };
}
