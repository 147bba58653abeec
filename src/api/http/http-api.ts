import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Http2ServerRequest, Http2ServerResponse, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gossip } from '../../cluster/gossip.js';
import type { InternalTls } from '../../cluster/peer-transport.js';
import type { Replica } from '../../cluster/replica.js';
import { ChronicleError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { SubscriptionTracker } from '../../subscriptions/subscription-tracker.js';
import type { ClusterMember } from '../grpc/node-services.js';
import { ClusterCommandRunner, LocalCommandRunner, type CommandRunner } from './command-runner.js';
import { forwardedCommandHandler } from './forwarding.js';
import { registerLiveRoutes } from './live-routes.js';
import { NodeMetrics } from './metrics.js';
import { clusterStatus, singleNodeStatus } from './node-status.js';
import { registerOperationRoutes } from './operation-routes.js';
import { asChronicleError, problemHeaders, problemOf } from './problem.js';
import { RouteTable } from './routes.js';
import type { SseOptions } from './sse.js';
import { registerStreamRoutes, withLiteralAllStream } from './stream-routes.js';
import type { PersistentSubscriptionHost } from '../../subscriptions/persistent/host.js';

/**
 * The HTTP API of a node: fastify routes (every parameter, header and body validated by JSON
 * schema) served on the external port beside gRPC — HTTP/1.1 connections through `http1`, and
 * HTTP/2 requests that are not gRPC through `handleHttp2Stream` — with errors as problem+json.
 */
export interface NodeIdentityForHttp {
  instanceId: string;
  advertisedHost: string;
  readonly advertisedPort: number;
  /** The KurrentDB protocol version clients see. */
  protocolVersion: string;
  /** Chronicle's own version. */
  version: string;
}

/** What a cluster member gives its HTTP API. */
export interface ClusterHttpAccess {
  replica: Replica;
  gossip: Gossip;
  selfId: string;
  /** The members as clients see them (Gossip.Read's view): the state names are taken from it. */
  members: () => ClusterMember[];
  internalTls: InternalTls | undefined;
  /** How long a request waits for a leader (an election) before its 503. */
  leaderWaitMs: number;
}

export interface HttpApiOptions {
  store: EventStore;
  logger: Logger;
  maxAppendSizeBytes: number;
  identity: NodeIdentityForHttp;
  subscriptions: SubscriptionTracker;
  persistentSubscriptions?: PersistentSubscriptionHost;
  cluster?: ClusterHttpAccess;
  sse?: Partial<SseOptions>;
}

const DEFAULT_SSE: SseOptions = { drainTimeoutMs: 5000, heartbeatMs: 15_000 };
/** JSON and base64 take more room than the events' bytes; the store checks the real limit. */
const BODY_OVERHEAD_FACTOR = 3;
const BODY_OVERHEAD_BYTES = 1024 * 1024;

export class HttpApi {
  readonly http1: Server;
  private readonly app: FastifyInstance;
  private readonly shutdown = new AbortController();
  private handler: ((request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse) => void) | undefined;

  constructor(options: HttpApiOptions) {
    const maxBodyBytes = options.maxAppendSizeBytes * BODY_OVERHEAD_FACTOR + BODY_OVERHEAD_BYTES;
    let http1: Server | undefined;
    this.app = Fastify({
      serverFactory: (handler) => {
        this.handler = handler as typeof this.handler;
        http1 = createServer(handler);
        return http1;
      },
      bodyLimit: maxBodyBytes,
      rewriteUrl: (request) => withLiteralAllStream(request.url ?? '/'),
      // A HEAD of a live endpoint would start a subscription nobody reads.
      exposeHeadRoutes: false,
      return503OnClosing: false,
      // Unknown fields are refused, not silently dropped: a typo must not pass as a valid event.
      ajv: { customOptions: { removeAdditional: false } },
    });
    this.http1 = http1!;
    this.http1.keepAliveTimeout = 5000;
    // This server never listens (the shared port hands it connections), and Node starts tracking a
    // server's connections — what lets a stop close idle keep-alive connections at once, and what
    // enforces the request and header timeouts against slow clients — on 'listening'.
    this.http1.emit('listening');
    const app = this.app;
    // Bodies are JSON or raw bytes; plain text is refused (415) rather than guessed at.
    app.removeContentTypeParser('text/plain');
    const eventsJson = app.getDefaultJsonParser('error', 'error');
    app.addContentTypeParser('application/vnd.eventstore.events+json', { parseAs: 'string' }, eventsJson);
    app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    app.setErrorHandler((error, request, reply) => {
      const failure = asChronicleError(error, maxBodyBytes);
      if (failure.code === 'INTERNAL_ERROR') options.logger.error({ err: error, url: request.url }, 'an HTTP request failed with an internal error');
      const problem = problemOf(failure, request.url);
      return reply.code(problem.status).headers(problemHeaders(problem)).send(JSON.stringify(problem));
    });
    app.setNotFoundHandler((request, reply) => {
      const problem = problemOf(new ChronicleError('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}; GET /openapi.json lists the API`), request.url);
      return reply.code(problem.status).headers(problemHeaders(problem)).send(JSON.stringify(problem));
    });

    const cluster = options.cluster;
    const runner: CommandRunner = cluster
      ? new ClusterCommandRunner({
          replica: cluster.replica,
          selfId: cluster.selfId,
          leaderWaitMs: cluster.leaderWaitMs,
          forwarding: { tls: cluster.internalTls, timeoutMs: cluster.leaderWaitMs + 5000, maxAnswerBytes: maxBodyBytes * 2 },
        })
      : new LocalCommandRunner(options.store);
    if (cluster) cluster.gossip.serveAlso(forwardedCommandHandler(cluster.replica, maxBodyBytes));
    const metrics = new NodeMetrics({
      store: options.store,
      subscriptions: options.subscriptions,
      ...(options.persistentSubscriptions ? { persistentSubscriptions: options.persistentSubscriptions } : {}),
      ...(cluster ? { cluster: { replica: cluster.replica, view: () => cluster.gossip.view(), selfId: cluster.selfId } } : {}),
    });
    const status = cluster ? clusterStatus(cluster, options.identity) : singleNodeStatus(options.store, options.identity);
    const routes = new RouteTable(app);
    registerStreamRoutes(routes, runner);
    registerLiveRoutes(routes, {
      store: options.store,
      runner,
      subscriptions: options.subscriptions,
      sse: { ...DEFAULT_SSE, ...options.sse },
      shutdown: this.shutdown.signal,
    });
    registerOperationRoutes(routes, status, metrics, options.identity.version);
  }

  /** Compiles the routes and their schemas; call before serving. */
  async ready(): Promise<void> {
    await this.app.ready();
  }

  /** An HTTP/2 request that is not gRPC: served through Node's HTTP/2 compatibility objects, like an HTTP/1.1 one. */
  handleHttp2Stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const rawHeaders: string[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (typeof value === 'string') rawHeaders.push(name, value);
      else if (Array.isArray(value)) for (const item of value) rawHeaders.push(name, item);
    }
    const request = new Http2ServerRequest(stream, headers, {}, rawHeaders);
    const response = new Http2ServerResponse(stream);
    this.handler!(request, response);
  }

  /** Ends live streams (with a `dropped` event) and stops taking requests. */
  async close(): Promise<void> {
    this.shutdown.abort();
    await this.app.close();
  }
}
