import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AddressInfo } from 'node:net';
import { GrpcServer, type CallContext } from '../api/grpc/grpc-server.js';
import { HttpApi, type ClusterHttpAccess } from '../api/http/http-api.js';
import { registerNodeServices, type NodeIdentity } from '../api/grpc/node-services.js';
import { registerPersistentSubscriptionsService } from '../api/grpc/persistent-subscriptions-service.js';
import { registerStreamsService } from '../api/grpc/streams-service.js';
import { registerStreamsV2Service } from '../api/grpc/streams-v2-service.js';
import type { EventStore } from '../store/event-store.js';
import type { PersistentSubscriptionHost } from '../subscriptions/persistent/host.js';
import { SubscriptionTracker } from '../subscriptions/subscription-tracker.js';
import type { ServerConfiguration } from './configuration.js';
import { CHRONICLE_VERSION } from './version.js';

/**
 * The largest request message read. Independent of (and well above) the append limit, so that
 * an oversized append is read and refused with the error the clients map to "maximum append
 * size exceeded" instead of failing the whole BatchAppend stream it shares with other appends.
 */
const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface ExternalInterfaceOptions {
  identity: NodeIdentity;
  /** Given only where anyone who reaches the node may stop it (see `registerNodeServices`). */
  requestShutdown: (() => void) | undefined;
  /** Refuses calls this node must not serve (a follower asked for the leader's data). */
  admit?: (context: CallContext) => void;
  persistentSubscriptions: PersistentSubscriptionHost;
  /** A cluster member's HTTP API forwards to the leader and reports the cluster. */
  cluster?: ClusterHttpAccess;
}

/** The external port: gRPC and the HTTP API. */
export interface ExternalInterface {
  listen(host: string, port: number): Promise<AddressInfo>;
  /** Ends live streams and calls (writes in flight finish), then closes every connection. */
  close(): Promise<void>;
}

/** Reads the TLS material, or undefined with --insecure; throws when neither is configured. */
export async function loadTls(configuration: ServerConfiguration): Promise<{ certificate: Buffer; privateKey: Buffer } | undefined> {
  if (configuration.insecure) return undefined;
  if (!configuration.certificateFile || !configuration.certificatePrivateKeyFile) {
    throw new Error('TLS needs --certificate-file and --certificate-private-key-file (or run with --insecure)');
  }
  return { certificate: await readFile(configuration.certificateFile), privateKey: await readFile(configuration.certificatePrivateKeyFile) };
}

/** The external interface: the KurrentDB gRPC services over `store`, and the HTTP API on the same port. */
export function createExternalInterface(
  configuration: ServerConfiguration,
  logger: Logger,
  store: EventStore,
  tls: { certificate: Buffer; privateKey: Buffer } | undefined,
  options: ExternalInterfaceOptions,
): ExternalInterface {
  const subscriptions = new SubscriptionTracker(() => store.position);
  const identity = options.identity;
  const http = new HttpApi({
    store,
    logger,
    maxAppendSizeBytes: configuration.maxAppendSizeBytes,
    identity: {
      instanceId: identity.instanceId,
      advertisedHost: identity.advertisedHost,
      get advertisedPort() {
        return identity.advertisedPort;
      },
      protocolVersion: identity.version,
      version: CHRONICLE_VERSION,
    },
    subscriptions,
    persistentSubscriptions: options.persistentSubscriptions,
    ...(options.cluster ? { cluster: options.cluster } : {}),
  });
  const server = new GrpcServer({
    ...(tls ? { tls } : {}),
    maxReceiveMessageBytes: Math.max(MAX_RECEIVE_MESSAGE_BYTES, configuration.maxAppendSizeBytes * 2),
    onInternalError: (error, path) => logger.error({ err: error, path }, 'a call failed with an internal error'),
    ...(options.admit ? { admit: options.admit } : {}),
    fallback: (stream, headers) => http.handleHttp2Stream(stream, headers),
    http1: http.http1,
  });
  registerStreamsService(server, store, { maxAppendSizeBytes: configuration.maxAppendSizeBytes, subscriptions });
  registerStreamsV2Service(server, store);
  registerPersistentSubscriptionsService(server, options.persistentSubscriptions);
  registerNodeServices(server, options.identity, options.requestShutdown);
  return {
    listen: async (host, port) => {
      await http.ready();
      return server.listen(host, port);
    },
    close: async () => {
      await http.close();
      await server.close();
    },
  };
}
