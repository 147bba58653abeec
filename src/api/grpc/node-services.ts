import { randomUUID } from 'node:crypto';
import type { GrpcServer } from './grpc-server.js';
import Long from 'long';
import { InvalidArgumentError } from '../../errors.js';
import { codecOf, createdTicks, uuidToMessage, type Message } from './protocol.js';

/**
 * What a single node tells clients about itself: the methods it serves (the clients switch
 * features on by this list — BatchAppend among them), its version, and a gossip view in which it
 * is the leader. The cluster replaces the gossip view with the real one.
 */
export interface NodeIdentity {
  instanceId: string;
  /** The address and port clients should use to reach this node. */
  advertisedHost: string;
  advertisedPort: number;
  /** A semver string: the clients compare it with `semver.lt`. */
  version: string;
  /** The cluster as this node sees it; a single node reports itself as the leader. */
  members?: () => ClusterMember[];
  /** Hands leadership to another node (Operations.ResignNode); false when this node does not lead. */
  resign?: () => boolean | Promise<boolean>;
  /** Sets this node's priority in elections (Operations.SetNodePriority). */
  setNodePriority?: (priority: number) => void;
}

/** One member as the clients' gossip shows it. */
export interface ClusterMember {
  instanceId: string;
  state: VNodeState;
  isAlive: boolean;
  host: string;
  port: number;
}

/** The node states of KurrentDB's gossip protocol, by name. */
export const VNODE_STATES = {
  Initializing: 0,
  DiscoverLeader: 1,
  Unknown: 2,
  PreReplica: 3,
  CatchingUp: 4,
  Clone: 5,
  Follower: 6,
  PreLeader: 7,
  Leader: 8,
  Manager: 9,
  ShuttingDown: 10,
  Shutdown: 11,
  ReadOnlyLeaderless: 12,
  PreReadOnlyReplica: 13,
  ReadOnlyReplica: 14,
  ResigningLeader: 15,
} as const;

export type VNodeState = keyof typeof VNODE_STATES;

export function newInstanceId(): string {
  return randomUUID();
}

/**
 * `requestShutdown` is given only where anyone who reaches the node may stop it: without
 * authentication (which the security work brings) that is a node run with --insecure.
 */
export function registerNodeServices(server: GrpcServer, identity: NodeIdentity, requestShutdown: (() => void) | undefined): void {
  server.addMethod({
    kind: 'unary',
    path: '/event_store.client.server_features.ServerFeatures/GetSupportedMethods',
    request: codecOf('event_store.client.Empty'),
    response: codecOf('event_store.client.server_features.SupportedMethods'),
    handle: async () => ({ methods: supportedMethods(server), event_store_server_version: identity.version }),
  });
  server.addMethod({
    kind: 'unary',
    path: '/event_store.client.gossip.Gossip/Read',
    request: codecOf('event_store.client.Empty'),
    response: codecOf('event_store.client.gossip.ClusterInfo'),
    handle: async () => {
      const members = identity.members?.() ?? [
        { instanceId: identity.instanceId, state: 'Leader' as const, isAlive: true, host: identity.advertisedHost, port: identity.advertisedPort },
      ];
      const timeStamp = Long.fromString(createdTicks(Date.now() * 1000));
      return {
        members: members.map((member) => ({
          instance_id: uuidToMessage(member.instanceId, true),
          time_stamp: timeStamp,
          state: VNODE_STATES[member.state],
          is_alive: member.isAlive,
          http_end_point: { address: member.host, port: member.port },
        })),
      };
    },
  });
  if (identity.resign) {
    const resign = identity.resign;
    server.addMethod({
      kind: 'unary',
      path: '/event_store.client.operations.Operations/ResignNode',
      request: codecOf('event_store.client.Empty'),
      response: codecOf('event_store.client.Empty'),
      handle: async () => {
        if (!(await resign())) throw new InvalidArgumentError('this node is not the leader, or no other voter can take over: nothing to resign');
        return {};
      },
    });
  }
  if (identity.setNodePriority) {
    const setNodePriority = identity.setNodePriority;
    server.addMethod({
      kind: 'unary',
      path: '/event_store.client.operations.Operations/SetNodePriority',
      request: codecOf('event_store.client.operations.SetNodePriorityReq'),
      response: codecOf('event_store.client.Empty'),
      handle: async (request) => {
        const priority = Number(request.priority ?? 0);
        if (!Number.isInteger(priority)) throw new InvalidArgumentError(`a node priority is an integer, got ${String(request.priority)}`);
        setNodePriority(priority);
        return {};
      },
    });
  }
  if (requestShutdown) {
    server.addMethod({
      kind: 'unary',
      path: '/event_store.client.operations.Operations/Shutdown',
      request: codecOf('event_store.client.Empty'),
      response: codecOf('event_store.client.Empty'),
      handle: async () => {
        // Answer first; the node then stops as on SIGTERM (finishing writes in flight).
        setImmediate(requestShutdown);
        return {};
      },
    });
  }
  server.addMethod({
    kind: 'unary',
    path: '/event_store.client.operations.Operations/MergeIndexes',
    request: codecOf('event_store.client.Empty'),
    response: codecOf('event_store.client.Empty'),
    // The index is one LMDB database kept merged by construction: there are no index tables to merge.
    handle: async () => ({}),
  });
}

function supportedMethods(server: GrpcServer): Message[] {
  return server.methodPaths().map((path) => {
    const [, service, method] = path.split('/');
    return { service_name: service!.toLowerCase(), method_name: method!.toLowerCase(), features: FEATURES[path] ?? [] };
  });
}

/** Per-method feature flags the clients look for. */
const PERSISTENT_SUBSCRIPTIONS = '/event_store.client.persistent_subscriptions.PersistentSubscriptions';
const FEATURES: Record<string, string[]> = {
  '/event_store.client.streams.Streams/Read': ['position', 'events', 'all'],
  // Groups on a stream and on $all, for every call (the clients fall back or refuse without these).
  ...Object.fromEntries(['Create', 'Update', 'Delete', 'Read', 'GetInfo', 'List', 'ReplayParked', 'RestartSubsystem'].map((method) => [`${PERSISTENT_SUBSCRIPTIONS}/${method}`, ['stream', 'all']])),
};
