import { randomUUID } from 'node:crypto';
import type { GrpcServer } from './grpc-server.js';
import Long from 'long';
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
}

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
    handle: async () => ({
      members: [
        {
          instance_id: uuidToMessage(identity.instanceId, true),
          time_stamp: Long.fromString(createdTicks(Date.now() * 1000)),
          state: LEADER,
          is_alive: true,
          http_end_point: { address: identity.advertisedHost, port: identity.advertisedPort },
        },
      ],
    }),
  });
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

/** VNodeState.Leader in the gossip protocol. */
const LEADER = 8;

function supportedMethods(server: GrpcServer): Message[] {
  return server.methodPaths().map((path) => {
    const [, service, method] = path.split('/');
    return { service_name: service!.toLowerCase(), method_name: method!.toLowerCase(), features: FEATURES[path] ?? [] };
  });
}

/** Per-method feature flags the clients look for. */
const FEATURES: Record<string, string[]> = {
  '/event_store.client.streams.Streams/Read': ['position', 'events', 'all'],
};
