import type { NodeMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import type { RouteTable } from './routes.js';

/**
 * Operations: liveness and readiness for orchestrators and load balancers, the old Event Store's
 * ping and gossip (tooling polls them), version and features, Prometheus metrics, the OpenAPI
 * document.
 */
export interface NodeStatus {
  /** Ready: this node can serve requests now (single node: the store is open; cluster: a leader is known and this node has caught up). */
  ready(): Promise<{ ready: boolean; reason: string; state: string }>;
  gossip(): GossipDocument;
  info(): object;
}

/** One member as `/gossip` shows it, with the field names the old Event Store's JSON used. */
export interface GossipMemberJson {
  instanceId: string;
  timeStamp: string;
  state: string;
  isAlive: boolean;
  isReadOnlyReplica: boolean;
  internalTcpIp: string;
  internalTcpPort: number;
  internalHttpIp: string;
  internalHttpPort: number;
  externalHttpIp: string;
  externalHttpPort: number;
  httpEndPointIp: string;
  httpEndPointPort: number;
  lastCommitPosition: number;
  writerCheckpoint: number;
  chaserCheckpoint: number;
  epochNumber: number;
  nodePriority: number;
}

export interface GossipDocument {
  members: GossipMemberJson[];
  serverIp: string;
  serverPort: number;
}


export function registerOperationRoutes(routes: RouteTable, status: NodeStatus, metrics: NodeMetrics, version: string): void {
  routes.add({
    method: 'GET',
    url: '/health/live',
    tags: ['operations'],
    summary: 'Liveness: the process is up and answering',
    schema: {},
    responses: { 200: 'Alive' },
    handler: async () => ({ status: 'live' }),
  });
  routes.add({
    method: 'GET',
    url: '/health/ready',
    tags: ['operations'],
    summary: 'Readiness: this node can serve requests (a leader is known and this node has caught up)',
    schema: {},
    responses: { 200: 'Ready', 503: 'Not ready, with the reason' },
    handler: async (_request, reply) => {
      const readiness = await status.ready();
      if (!readiness.ready) reply.code(503).header('retry-after', '1');
      return { status: readiness.ready ? 'ready' : 'not-ready', reason: readiness.reason, state: readiness.state };
    },
  });
  routes.add({
    method: 'GET',
    url: '/ping',
    tags: ['operations'],
    summary: 'Ping',
    schema: {},
    responses: { 200: 'Pong' },
    handler: async () => ({ text: 'Ping request successfully handled' }),
  });
  routes.add({
    method: 'GET',
    url: '/gossip',
    tags: ['operations'],
    summary: 'The cluster as this node sees it: members with state, liveness and endpoints',
    schema: {},
    responses: { 200: 'Members' },
    handler: async () => status.gossip(),
  });
  routes.add({
    method: 'GET',
    url: '/info',
    tags: ['operations'],
    summary: 'Version and features',
    schema: {},
    responses: { 200: 'Version, protocol version, features' },
    handler: async () => status.info(),
  });
  routes.add({
    method: 'GET',
    url: '/metrics',
    tags: ['operations'],
    summary: 'Prometheus metrics (text exposition format)',
    schema: {},
    responses: { 200: 'Metrics' },
    successContentType: 'text/plain',
    handler: async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()),
  });
  let document: string | undefined;
  routes.add({
    method: 'GET',
    url: '/openapi.json',
    tags: ['operations'],
    summary: 'This document',
    schema: {},
    responses: { 200: 'OpenAPI 3.1' },
    handler: async (_request, reply) => {
      document ??= JSON.stringify(openApiDocument(routes.routes, version));
      return reply.type('application/json; charset=utf-8').send(document);
    },
  });
}

