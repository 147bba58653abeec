import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { GrpcServer } from '../api/grpc/grpc-server.js';
import { newInstanceId, registerNodeServices } from '../api/grpc/node-services.js';
import { registerStreamsService } from '../api/grpc/streams-service.js';
import { registerStreamsV2Service } from '../api/grpc/streams-v2-service.js';
import { EventStore } from '../store/event-store.js';
import type { ServerConfiguration } from './configuration.js';
import { PROTOCOL_COMPATIBILITY_VERSION } from './version.js';

export interface RunningNode {
  /** The external interface's bound address (the port is real even when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Stops accepting, ends open calls, lets writes in flight finish and flushes, then closes the store. */
  stop(): Promise<void>;
  /** Resolves when the node has stopped, whoever asked it to. */
  readonly stopped: Promise<void>;
}

/**
 * The largest request message read. Independent of (and well above) the append limit, so that
 * an oversized append is read and refused with the error the clients map to "maximum append
 * size exceeded" instead of failing the whole BatchAppend stream it shares with other appends.
 */
const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Starts a single node: opens the store (on disk or in memory), serves the KurrentDB gRPC
 * protocol on the external interface, and stops cleanly when asked (or on Operations.Shutdown).
 */
export async function startNode(configuration: ServerConfiguration, logger: Logger): Promise<RunningNode> {
  const store = await EventStore.open(
    configuration.memDb
      ? { inMemory: true, maxAppendSizeBytes: configuration.maxAppendSizeBytes, log: (message) => logger.info(message) }
      : { directory: resolve(configuration.db), maxAppendSizeBytes: configuration.maxAppendSizeBytes, log: (message) => logger.info(message) },
  );
  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolveStopped) => (markStopped = resolveStopped));
  const tls =
    !configuration.insecure && configuration.certificateFile && configuration.certificatePrivateKeyFile
      ? { certificate: await readFile(configuration.certificateFile), privateKey: await readFile(configuration.certificatePrivateKeyFile) }
      : undefined;
  if (!configuration.insecure && !tls) {
    await store.close();
    throw new Error('TLS needs --certificate-file and --certificate-private-key-file (or run with --insecure)');
  }
  const server = new GrpcServer({
    ...(tls ? { tls } : {}),
    maxReceiveMessageBytes: Math.max(MAX_RECEIVE_MESSAGE_BYTES, configuration.maxAppendSizeBytes * 2),
    onInternalError: (error, path) => logger.error({ err: error, path }, 'a call failed with an internal error'),
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping: no new calls; writes in flight finish, then the store is flushed and closed');
      await server.close();
      await store.close();
      logger.info('stopped');
      markStopped();
    })();
    return stopping;
  };
  registerStreamsService(server, store, { maxAppendSizeBytes: configuration.maxAppendSizeBytes });
  registerStreamsV2Service(server, store);
  let port = configuration.extHttpPort;
  registerNodeServices(
    server,
    {
      instanceId: newInstanceId(),
      advertisedHost: configuration.extIp,
      get advertisedPort() {
        return port;
      },
      version: PROTOCOL_COMPATIBILITY_VERSION,
    },
    configuration.insecure ? () => void stop() : undefined,
  );
  try {
    const address = await server.listen(configuration.extIp, configuration.extHttpPort);
    port = address.port;
    logger.info({ host: configuration.extIp, port, tls: tls !== undefined }, `listening for clients on ${configuration.extIp}:${port}`);
    return { host: configuration.extIp, port, stop, stopped };
  } catch (error) {
    await store.close();
    throw error;
  }
}
