import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { newInstanceId } from '../api/grpc/node-services.js';
import { EventStore } from '../store/event-store.js';
import { nodeHostEnvironment, PersistentSubscriptionHost } from '../subscriptions/persistent/host.js';
import type { ServerConfiguration } from './configuration.js';
import { createExternalInterface, loadTls } from './external-interface.js';
import { PROTOCOL_COMPATIBILITY_VERSION } from './version.js';

export interface RunningNode {
  /** The external interface's bound address (the port is real even when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Stops accepting, ends open calls, lets writes in flight finish and flushes, then closes the store. */
  stop(): Promise<void>;
  /** Resolves when the node has stopped, whoever asked it to. */
  readonly stopped: Promise<void>;
  /** Set when the node stopped because of a failure: the process exits with it. */
  readonly exitCode?: number;
}

/**
 * Starts a single node: opens the store (on disk or in memory), serves the KurrentDB gRPC
 * protocol on the external interface, and stops cleanly when asked (or on Operations.Shutdown).
 */
export async function startNode(configuration: ServerConfiguration, logger: Logger): Promise<RunningNode> {
  const tls = await loadTls(configuration);
  const store = await EventStore.open(
    configuration.memDb
      ? { inMemory: true, maxAppendSizeBytes: configuration.maxAppendSizeBytes, log: (message) => logger.info(message) }
      : { directory: resolve(configuration.db), maxAppendSizeBytes: configuration.maxAppendSizeBytes, log: (message) => logger.info(message) },
  );
  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolveStopped) => (markStopped = resolveStopped));
  let port = configuration.extHttpPort;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping: no new calls; writes in flight finish, then the store is flushed and closed');
      // Calls end first (no acknowledgement arrives after this), then the groups commit the
      // acknowledgements they received, then the store closes.
      await server.close();
      await persistentSubscriptions.stop(true, 'the node is shutting down');
      await store.close();
      logger.info('stopped');
      markStopped();
    })();
    return stopping;
  };
  const persistentSubscriptions = new PersistentSubscriptionHost(store, nodeHostEnvironment(logger));
  const server = createExternalInterface(configuration, logger, store, tls, {
    persistentSubscriptions,
    identity: {
      instanceId: newInstanceId(),
      advertisedHost: configuration.extIp,
      get advertisedPort() {
        return port;
      },
      version: PROTOCOL_COMPATIBILITY_VERSION,
    },
    requestShutdown: configuration.insecure ? () => void stop() : undefined,
  });
  try {
    await persistentSubscriptions.start();
    const address = await server.listen(configuration.extIp, configuration.extHttpPort);
    port = address.port;
    logger.info({ host: configuration.extIp, port, tls: tls !== undefined }, `listening for clients on ${configuration.extIp}:${port}`);
    return { host: configuration.extIp, port, stop, stopped };
  } catch (error) {
    await persistentSubscriptions.stop(false, 'the node failed to start');
    await store.close();
    throw error;
  }
}
