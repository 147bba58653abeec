import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { GrpcServer, type CallContext } from '../api/grpc/grpc-server.js';
import { registerNodeServices, type NodeIdentity } from '../api/grpc/node-services.js';
import { registerPersistentSubscriptionsService } from '../api/grpc/persistent-subscriptions-service.js';
import { registerStreamsService } from '../api/grpc/streams-service.js';
import { registerStreamsV2Service } from '../api/grpc/streams-v2-service.js';
import type { EventStore } from '../store/event-store.js';
import type { PersistentSubscriptionHost } from '../subscriptions/persistent/host.js';
import type { ServerConfiguration } from './configuration.js';

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
}

/** Reads the TLS material, or undefined with --insecure; throws when neither is configured. */
export async function loadTls(configuration: ServerConfiguration): Promise<{ certificate: Buffer; privateKey: Buffer } | undefined> {
  if (configuration.insecure) return undefined;
  if (!configuration.certificateFile || !configuration.certificatePrivateKeyFile) {
    throw new Error('TLS needs --certificate-file and --certificate-private-key-file (or run with --insecure)');
  }
  return { certificate: await readFile(configuration.certificateFile), privateKey: await readFile(configuration.certificatePrivateKeyFile) };
}

/** The gRPC server of the external interface with the KurrentDB services over `store`. */
export function createExternalInterface(
  configuration: ServerConfiguration,
  logger: Logger,
  store: EventStore,
  tls: { certificate: Buffer; privateKey: Buffer } | undefined,
  options: ExternalInterfaceOptions,
): GrpcServer {
  const server = new GrpcServer({
    ...(tls ? { tls } : {}),
    maxReceiveMessageBytes: Math.max(MAX_RECEIVE_MESSAGE_BYTES, configuration.maxAppendSizeBytes * 2),
    onInternalError: (error, path) => logger.error({ err: error, path }, 'a call failed with an internal error'),
    ...(options.admit ? { admit: options.admit } : {}),
  });
  registerStreamsService(server, store, { maxAppendSizeBytes: configuration.maxAppendSizeBytes });
  registerStreamsV2Service(server, store);
  registerPersistentSubscriptionsService(server, options.persistentSubscriptions);
  registerNodeServices(server, options.identity, options.requestShutdown);
  return server;
}
