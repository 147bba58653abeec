import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { InternalTls } from './peer-transport.js';
import { randomUUID } from 'node:crypto';
import { internalRequest } from './internal-http.js';
import { listenOn } from './listen.js';
import type { NodeState } from './replica.js';

export interface Endpoint {
  host: string;
  port: number;
}

/** What a node says about itself in gossip. */
export interface MemberInfo {
  /** The node's id in the cluster: its internal gossip endpoint, `host:port`. */
  id: string;
  /** New on every start of the process. */
  instanceId: string;
  clusterId: string;
  state: NodeState;
  internalTcp: Endpoint;
  internalHttp: Endpoint;
  externalHttp: Endpoint;
  term: number;
  commitIndex: number;
  lastIndex: number;
  /** Position up to which the node applied the log: what clients see as its last commit position. */
  appliedPosition: number;
  /** A non-voting read-only replica (it announces itself to the voters when it asks for gossip). */
  readOnlyReplica: boolean;
  /** Set through the Operations service: in an election, nodes of higher priority go first. */
  nodePriority: number;
}

/** A member as this node knows it. */
export interface KnownMember extends MemberInfo {
  isAlive: boolean;
  /** When this node last heard from it (its own clock), or 0. */
  lastSeenMs: number;
}

export interface GossipOptions {
  self: () => MemberInfo;
  /** Every member's id (internal gossip endpoint), self included. */
  members: readonly string[];
  clusterId: string;
  listen: Endpoint;
  intervalMs?: number;
  /** A member not heard from for this long is reported dead. */
  deadAfterMs?: number;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  onChange?: () => void;
  /** Gossip over HTTPS with mutual TLS (the same material as replication); HTTP without. */
  tls?: InternalTls;
}

const DEFAULT_INTERVAL_MS = 500;
const DEFAULT_DEAD_AFTER_MS = 2500;
const REQUEST_TIMEOUT_MS = 1000;
const MAX_BODY_BYTES = 1024 * 1024;
const ANNOUNCE_HEADER = 'x-chronicle-member';
const MAX_ANNOUNCEMENT_BYTES = 4096;

/**
 * Gossip over the internal HTTP interface: each node serves `GET /gossip` (its view, as JSON) and
 * asks every other member for theirs. Members are known from the configuration (gossip seeds or
 * DNS), so asking each directly is enough; what travels is who is alive, where each member's
 * interfaces are, and its Raft state. A member of another cluster (a wrong seed, a typo in a DNS
 * record) answers with another cluster id: it is refused and never merged.
 */
export class Gossip {
  private readonly known = new Map<string, KnownMember>();
  /** Read-only replicas that announced themselves when asking this node for gossip. */
  private readonly announced = new Map<string, KnownMember>();
  private readonly refusedLogged = new Set<string>();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private boundPort = 0;
  private otherRoutes: ((request: IncomingMessage, response: ServerResponse) => boolean) | undefined;

  constructor(private readonly options: GossipOptions) {}

  async start(): Promise<Endpoint> {
    const tls = this.options.tls;
    const handler = (request: IncomingMessage, response: ServerResponse): void => this.serve(request, response);
    const server = tls
      ? createHttpsServer({ cert: tls.certificate, key: tls.privateKey, ca: tls.trustedRoot, requestCert: true, rejectUnauthorized: true }, handler)
      : createServer(handler);
    this.server = server;
    this.boundPort = await listenOn(server, this.options.listen);
    this.schedule(0);
    return { host: this.options.listen.host, port: this.boundPort };
  }

  get port(): number {
    return this.boundPort;
  }

  /** Everyone this node knows, itself first, with liveness as this node sees it. */
  view(): KnownMember[] {
    const self = this.options.self();
    const now = Date.now();
    const deadAfterMs = this.options.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS;
    const others = [...this.known.values(), ...this.announced.values()]
      .filter((member) => member.id !== self.id)
      .map((member) => ({ ...member, isAlive: member.lastSeenMs > 0 && now - member.lastSeenMs <= deadAfterMs }));
    return [{ ...self, isAlive: true, lastSeenMs: now }, ...others];
  }

  member(id: string): KnownMember | undefined {
    return this.view().find((member) => member.id === id);
  }

  /** Read-only replicas heard from recently. */
  replicas(): KnownMember[] {
    return this.view().filter((member) => member.readOnlyReplica && member.isAlive && this.announced.has(member.id));
  }

  /**
   * Serves more on the internal HTTP interface (the HTTP API's forwarded commands), behind the
   * same mutual TLS as gossip. The handler answers what it knows and returns false otherwise.
   */
  serveAlso(handler: (request: IncomingMessage, response: ServerResponse) => boolean): void {
    this.otherRoutes = handler;
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    if (this.otherRoutes?.(request, response)) return;
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/gossip') {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found: the internal interface serves GET /gossip' }));
      return;
    }
    this.noteAnnouncement(request.headers[ANNOUNCE_HEADER]);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ clusterId: this.options.clusterId, members: this.view() }));
  }

  /** A read-only replica of this cluster says who it is when it asks: the voters learn of it. */
  private noteAnnouncement(header: string | string[] | undefined): void {
    if (typeof header !== 'string' || header.length > MAX_ANNOUNCEMENT_BYTES) return;
    let member: MemberInfo | undefined;
    try {
      member = parseMember(JSON.parse(decodeURIComponent(header)));
    } catch {
      return;
    }
    if (!member || !member.readOnlyReplica || member.clusterId !== this.options.clusterId || this.options.members.includes(member.id)) return;
    const isNew = !this.announced.has(member.id);
    this.announced.set(member.id, { ...member, isAlive: true, lastSeenMs: Date.now() });
    if (isNew) {
      this.options.log('info', `read-only replica ${member.id} announced itself`);
      this.options.onChange?.();
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.round().finally(() => this.schedule(this.options.intervalMs ?? DEFAULT_INTERVAL_MS));
    }, delayMs);
  }

  private async round(): Promise<void> {
    const selfId = this.options.self().id;
    await Promise.all(this.options.members.filter((id) => id !== selfId).map((id) => this.ask(id)));
  }

  private async ask(id: string): Promise<void> {
    let body: unknown;
    try {
      const self = this.options.self();
      const headers: Record<string, string> = self.readOnlyReplica ? { [ANNOUNCE_HEADER]: encodeURIComponent(JSON.stringify(self)) } : {};
      const text = await getText(id, headers, this.options.tls);
      if (text === undefined) return;
      body = JSON.parse(text);
    } catch {
      return; // Unreachable or not answering: it goes dead by silence.
    }
    const parsed = parseGossip(body);
    if (!parsed) {
      this.logOnce(id, `gossip from ${id} is not a Chronicle gossip answer; ignoring it`);
      return;
    }
    if (parsed.clusterId !== this.options.clusterId) {
      this.logOnce(id, `refusing gossip from ${id}: it belongs to cluster ${parsed.clusterId}, this node to ${this.options.clusterId} (check the gossip seeds or DNS records)`);
      return;
    }
    this.refusedLogged.delete(id);
    const self = parsed.members.find((member) => member.id === id);
    if (!self) return;
    const previous = this.known.get(id);
    this.known.set(id, { ...self, isAlive: true, lastSeenMs: Date.now() });
    if (!previous || previous.state !== self.state || previous.instanceId !== self.instanceId) {
      if (previous && previous.instanceId !== self.instanceId) this.options.log('info', `${id} restarted (instance ${self.instanceId})`);
      this.options.onChange?.();
    }
  }

  private logOnce(id: string, message: string): void {
    if (this.refusedLogged.has(id)) return;
    this.refusedLogged.add(id);
    this.options.log('error', message);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** GET /gossip from a member (`host:port`), bounded in time and size; undefined unless 200. */
async function getText(id: string, headers: Record<string, string>, tls: InternalTls | undefined): Promise<string | undefined> {
  const answer = await internalRequest({ to: id, method: 'GET', path: '/gossip', headers, tls, timeoutMs: REQUEST_TIMEOUT_MS, maxAnswerBytes: MAX_BODY_BYTES });
  return answer.status === 200 ? answer.text : undefined;
}

export function newInstanceId(): string {
  return randomUUID();
}

function parseGossip(body: unknown): { clusterId: string; members: MemberInfo[] } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { clusterId, members } = body as { clusterId?: unknown; members?: unknown };
  if (typeof clusterId !== 'string' || !Array.isArray(members)) return undefined;
  const parsed: MemberInfo[] = [];
  for (const member of members) {
    const info = parseMember(member);
    if (info) parsed.push(info);
  }
  return { clusterId, members: parsed };
}

function parseMember(value: unknown): MemberInfo | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const member = value as Record<string, unknown>;
  const endpoint = (candidate: unknown): Endpoint | undefined => {
    if (typeof candidate !== 'object' || candidate === null) return undefined;
    const { host, port } = candidate as { host?: unknown; port?: unknown };
    return typeof host === 'string' && typeof port === 'number' && Number.isInteger(port) ? { host, port } : undefined;
  };
  const number = (candidate: unknown): number | undefined => (typeof candidate === 'number' && Number.isSafeInteger(candidate) && candidate >= 0 ? candidate : undefined);
  const internalTcp = endpoint(member.internalTcp);
  const internalHttp = endpoint(member.internalHttp);
  const externalHttp = endpoint(member.externalHttp);
  const term = number(member.term);
  const commitIndex = number(member.commitIndex);
  const lastIndex = number(member.lastIndex);
  const appliedPosition = number(member.appliedPosition);
  if (
    typeof member.id !== 'string' ||
    typeof member.instanceId !== 'string' ||
    typeof member.clusterId !== 'string' ||
    typeof member.state !== 'string' ||
    !internalTcp ||
    !internalHttp ||
    !externalHttp ||
    term === undefined ||
    commitIndex === undefined ||
    lastIndex === undefined ||
    appliedPosition === undefined
  ) {
    return undefined;
  }
  return {
    id: member.id,
    instanceId: member.instanceId,
    clusterId: member.clusterId,
    state: member.state as NodeState,
    internalTcp,
    internalHttp,
    externalHttp,
    term,
    commitIndex,
    lastIndex,
    appliedPosition,
    readOnlyReplica: member.readOnlyReplica === true,
    nodePriority: typeof member.nodePriority === 'number' && Number.isSafeInteger(member.nodePriority) ? member.nodePriority : 0,
  };
}
