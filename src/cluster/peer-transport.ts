import { createConnection, createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import type { AppendRequest, Message, NodeId } from '../consensus/types.js';
import { listenOn } from './listen.js';
import { decodePeerFrame, encodePeerControlFrame, encodePeerMessageFrame, PeerFrameReader, type PeerFrame } from './peer-codec.js';
import type { RecordBody } from './raft-log.js';
import type { ReplicaTransport } from './replica.js';

export interface PeerEndpoint {
  host: string;
  port: number;
}

/** Mutual TLS between the nodes: each presents its certificate and checks the other's against the trusted root. */
export interface InternalTls {
  certificate: Buffer;
  privateKey: Buffer;
  trustedRoot: Buffer;
}

export interface PeerTransportOptions {
  selfId: NodeId;
  clusterId: string;
  /** Replication over mutual TLS; cleartext without. */
  tls?: InternalTls;
  listen: PeerEndpoint;
  /** Where a peer's replication endpoint is (learned from gossip); undefined while unknown. */
  endpointOf: (id: NodeId) => PeerEndpoint | undefined;
  /** Asked when a peer says hello: only members may deliver messages. */
  isMember: (id: NodeId) => boolean;
  onMessage: (from: NodeId, message: Message<RecordBody>) => void;
  log?: (message: string) => void;
  /** Past this many bytes waiting for a peer, new messages to it are dropped. Default 64 MiB. */
  maxQueuedBytesPerPeer?: number;
  /** A connection whose hello (or welcome) has not arrived by then is closed. Default 5000. */
  handshakeTimeoutMs?: number;
  /** How often each side of a connection proves it is alive. Default 1000. */
  keepaliveIntervalMs?: number;
  /** A connection silent this long is closed (and redialled by the side that dialled). Default 5000. */
  silenceTimeoutMs?: number;
}

export interface PeerTransportStats {
  /** Messages written to an outbound connection the peer accepted. */
  sent: number;
  /** Messages delivered to `onMessage`. */
  received: number;
  /**
   * Messages `send` was given but never wrote: endpoint unknown, peer unreachable (waiting to
   * redial), too much already waiting, not encodable, or queued on a connection that failed
   * before its handshake completed.
   */
  dropped: number;
  /** Hellos this node refused (another cluster, not a member, malformed, not addressed to it). */
  refusedHandshakes: number;
  /** Outbound connections that completed their handshake. */
  connects: number;
}

const DEFAULT_MAX_QUEUED_BYTES_PER_PEER = 64 * 1024 * 1024;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
const DEFAULT_KEEPALIVE_INTERVAL_MS = 1000;
const DEFAULT_SILENCE_TIMEOUT_MS = 5000;
const RECONNECT_BACKOFF_MIN_MS = 100;
const RECONNECT_BACKOFF_MAX_MS = 2000;
/** Distinct refusal reasons remembered so each is logged once; forgotten all at once past this. */
const LOGGED_REFUSALS_MAX = 1000;

const KEEPALIVE_FRAME = encodePeerControlFrame({ type: 'keepalive' });
const WELCOME_FRAME = encodePeerControlFrame({ type: 'welcome' });

/**
 * An outbound connection's life: `idle` until a message needs it, `dialling` until the peer
 * welcomes us, `ready` while it carries messages, `waiting` out the backoff after a failure.
 */
type OutboundState = 'idle' | 'dialling' | 'ready' | 'waiting';

interface OutboundPeer {
  readonly id: NodeId;
  state: OutboundState;
  socket: Socket | undefined;
  /** `host:port` of the current or last connection, for the log. */
  address: string;
  /** Frames sent during the handshake, written in order once the peer welcomes us. */
  pending: Buffer[];
  pendingBytes: number;
  handshakeDeadlineMs: number;
  lastHeardMs: number;
  backoffMs: number;
  retryTimer: NodeJS.Timeout | undefined;
  /** The last problem logged, so a peer that stays down is reported once rather than on every retry. */
  lastProblem: string | undefined;
}

interface InboundConnection {
  readonly socket: Socket;
  readonly reader: PeerFrameReader;
  readonly remote: string;
  /** The peer's id, once its hello was accepted. */
  from: NodeId | undefined;
  refused: boolean;
  handshakeDeadlineMs: number;
  lastHeardMs: number;
}

/**
 * Carries Raft messages between Chronicle nodes over TCP on the replication interface.
 *
 * Each node dials one connection to each peer it sends to and writes its messages there in
 * order; a connection carries messages one way only, from the node that dialled. The dialler
 * opens with a hello (protocol version, cluster id, its own id and the id it wants); the acceptor
 * answers with a welcome or with a refusal that says why, so a misconfigured node learns what is
 * wrong. Raft tolerates loss, so nothing here retries a message: while a peer is unknown or
 * unreachable its messages are dropped and counted, and only the bytes waiting on a live
 * connection are kept, up to a bound.
 */
export class PeerTransport implements ReplicaTransport {
  readonly stats: PeerTransportStats = { sent: 0, received: 0, dropped: 0, refusedHandshakes: 0, connects: 0 };
  private readonly options: PeerTransportOptions;
  private readonly maxQueuedBytesPerPeer: number;
  private readonly handshakeTimeoutMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly silenceTimeoutMs: number;
  private readonly peers = new Map<NodeId, OutboundPeer>();
  private readonly inbound = new Set<InboundConnection>();
  private readonly inboundByPeer = new Map<NodeId, InboundConnection>();
  private readonly loggedRefusals = new Set<string>();
  private server: Server | undefined;
  private boundAddress: PeerEndpoint | undefined;
  private housekeepingTimer: NodeJS.Timeout | undefined;
  private lastHousekeepingMs = 0;
  /** Set as soon as close() is called, before any of it runs. */
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The last append with entries that was encoded, and its frame (see `frameOf`). */
  private lastAppend: { message: AppendRequest<RecordBody>; frame: Buffer } | undefined;

  constructor(options: PeerTransportOptions) {
    this.options = options;
    this.maxQueuedBytesPerPeer = options.maxQueuedBytesPerPeer ?? DEFAULT_MAX_QUEUED_BYTES_PER_PEER;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS;
    this.silenceTimeoutMs = options.silenceTimeoutMs ?? DEFAULT_SILENCE_TIMEOUT_MS;
  }

  /** Listens on `listen`; resolves once bound (see `address` for the port when it was 0). */
  async start(): Promise<void> {
    if (this.server || this.closed) throw new Error('the peer transport was already started');
    const tls = this.options.tls;
    const server = tls
      ? createTlsServer({ cert: tls.certificate, key: tls.privateKey, ca: tls.trustedRoot, requestCert: true, rejectUnauthorized: true }, (socket) => this.onInboundConnection(socket))
      : createServer((socket) => this.onInboundConnection(socket));
    // A peer whose certificate the trusted root does not vouch for never gets as far as a hello.
    server.on('tlsClientError', (error) => this.log(`refused a replication connection: ${error.message}`));
    this.server = server;
    const port = await listenOn(server, this.options.listen);
    server.on('error', (error) => this.log(`the replication listener failed: ${error.message}`));
    this.boundAddress = { host: (server.address() as AddressInfo).address, port };
    this.startHousekeeping();
  }

  get address(): PeerEndpoint {
    if (!this.boundAddress) throw new Error('the peer transport is not listening yet: await start() first');
    return { ...this.boundAddress };
  }

  /** Queues `message` for `to`, or drops it (counted). Never throws, never blocks. */
  send(to: NodeId, message: Message<RecordBody>): void {
    try {
      this.trySend(to, message);
    } catch (error) {
      // Only an unencodable message (a bug of the sender) gets here: report it, lose the message.
      this.stats.dropped++;
      const problem = `cannot send a ${String(message?.kind)} message to ${to}: ${errorText(error)}`;
      const peer = this.peers.get(to);
      if (peer) this.notePeerProblem(peer, problem);
      else this.log(problem);
    }
  }

  /** Closes the listener and every connection and cancels every timer. */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= this.closeEverything();
    return this.closing;
  }

  // ------------------------------------------------------------------ outbound

  private trySend(to: NodeId, message: Message<RecordBody>): void {
    if (this.closed) {
      this.stats.dropped++;
      return;
    }
    const peer = this.peerFor(to);
    if (peer.state === 'waiting' || (peer.state === 'idle' && !this.dial(peer))) {
      this.stats.dropped++;
      return;
    }
    const socket = peer.socket!;
    const waitingBytes = peer.state === 'ready' ? socket.writableLength : peer.pendingBytes;
    if (waitingBytes >= this.maxQueuedBytesPerPeer) {
      this.stats.dropped++;
      this.notePeerProblem(peer, `more than ${this.maxQueuedBytesPerPeer} bytes wait for ${peer.id} at ${peer.address}: dropping messages to it until it catches up`);
      return;
    }
    const frame = this.frameOf(message);
    if (peer.state === 'ready') {
      // Everything sent to a peer in one turn leaves in one writev, not one syscall per message.
      if (socket.writableCorked === 0) {
        socket.cork();
        process.nextTick(() => socket.uncork());
      }
      socket.write(frame);
      this.stats.sent++;
    } else {
      peer.pending.push(frame);
      peer.pendingBytes += frame.byteLength;
    }
  }

  /**
   * A leader usually sends each follower the same entries in the same turn: the second of two
   * identical appends reuses the first one's frame instead of copying the entries again.
   */
  private frameOf(message: Message<RecordBody>): Buffer {
    if (message.kind !== 'append' || !message.entries || message.entries.length === 0) return encodePeerMessageFrame(message);
    const last = this.lastAppend;
    if (last && sameAppend(last.message, message)) return last.frame;
    const frame = encodePeerMessageFrame(message);
    this.lastAppend = { message, frame };
    return frame;
  }

  private peerFor(id: NodeId): OutboundPeer {
    let peer = this.peers.get(id);
    if (!peer) {
      peer = {
        id,
        state: 'idle',
        socket: undefined,
        address: 'an unknown endpoint',
        pending: [],
        pendingBytes: 0,
        handshakeDeadlineMs: 0,
        lastHeardMs: 0,
        backoffMs: RECONNECT_BACKOFF_MIN_MS,
        retryTimer: undefined,
        lastProblem: undefined,
      };
      this.peers.set(id, peer);
    }
    return peer;
  }

  /** Opens a connection to `peer` and says hello; false when its endpoint is not known. */
  private dial(peer: OutboundPeer): boolean {
    let endpoint: PeerEndpoint | undefined;
    let socket: Socket;
    let hello: Buffer;
    try {
      endpoint = this.options.endpointOf(peer.id);
      if (!endpoint) {
        this.notePeerProblem(peer, `no replication endpoint is known for ${peer.id} yet: dropping messages to it`);
        return false;
      }
      hello = encodePeerControlFrame({ type: 'hello', clusterId: this.options.clusterId, from: this.options.selfId, to: peer.id });
      const tls = this.options.tls;
      socket = tls
        ? connectTls({
            host: endpoint.host,
            port: endpoint.port,
            cert: tls.certificate,
            key: tls.privateKey,
            ca: tls.trustedRoot,
            rejectUnauthorized: true,
            // SNI takes names only; an IP address is checked against the certificate's IP entries.
            ...(isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
          })
        : createConnection({ host: endpoint.host, port: endpoint.port });
    } catch (error) {
      this.notePeerProblem(peer, `cannot dial ${peer.id} at ${endpoint ? `${endpoint.host}:${endpoint.port}` : 'its endpoint'}: ${errorText(error)}`);
      return false;
    }
    const reader = new PeerFrameReader();
    peer.state = 'dialling';
    peer.socket = socket;
    peer.address = `${endpoint.host}:${endpoint.port}`;
    peer.handshakeDeadlineMs = performance.now() + this.handshakeTimeoutMs;
    socket.on('error', (error) => {
      if (peer.socket === socket) this.closeOutbound(peer, `cannot reach ${peer.id} at ${peer.address}: ${error.message}`);
    });
    socket.on('close', () => {
      if (peer.socket !== socket) return;
      const wasReady = peer.state === 'ready';
      this.closeOutbound(peer, wasReady ? `lost the connection to ${peer.id} at ${peer.address}` : `${peer.id} at ${peer.address} closed the connection during the handshake`);
    });
    socket.on('data', (chunk: Buffer) => this.onOutboundData(peer, socket, reader, chunk));
    socket.setNoDelay(true);
    socket.write(hello);
    this.startHousekeeping();
    return true;
  }

  /** What the acceptor says on our outbound connection: a welcome or a refusal, then keepalives. */
  private onOutboundData(peer: OutboundPeer, socket: Socket, reader: PeerFrameReader, chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = reader.push(chunk);
    } catch (error) {
      this.closeOutbound(peer, `${peer.id} at ${peer.address} sent a bad frame: ${errorText(error)}`);
      return;
    }
    for (const bytes of frames) {
      if (peer.socket !== socket) return;
      let frame: PeerFrame;
      try {
        frame = decodePeerFrame(bytes);
      } catch (error) {
        this.closeOutbound(peer, `${peer.id} at ${peer.address} sent a bad frame: ${errorText(error)}`);
        return;
      }
      peer.lastHeardMs = performance.now();
      if (frame.type === 'welcome' && peer.state === 'dialling') this.onWelcome(peer, socket);
      else if (frame.type === 'refusal') this.closeOutbound(peer, `${peer.id} at ${peer.address} refused this node: ${frame.reason}`);
      else if (frame.type !== 'keepalive') this.closeOutbound(peer, `${peer.id} at ${peer.address} sent an unexpected ${frame.type} frame`);
    }
  }

  private onWelcome(peer: OutboundPeer, socket: Socket): void {
    peer.state = 'ready';
    peer.backoffMs = RECONNECT_BACKOFF_MIN_MS;
    this.stats.connects++;
    if (peer.lastProblem !== undefined) this.log(`connected to ${peer.id} at ${peer.address}`);
    peer.lastProblem = undefined;
    for (const frame of peer.pending) socket.write(frame);
    this.stats.sent += peer.pending.length;
    peer.pending = [];
    peer.pendingBytes = 0;
  }

  /**
   * Ends the current outbound connection to `peer` (its unsent messages are dropped) and waits
   * out the backoff; the next message after it dials again.
   */
  private closeOutbound(peer: OutboundPeer, problem: string | undefined): void {
    const wasReady = peer.state === 'ready';
    peer.socket?.destroy();
    peer.socket = undefined;
    this.stats.dropped += peer.pending.length;
    peer.pending = [];
    peer.pendingBytes = 0;
    if (problem !== undefined) this.notePeerProblem(peer, problem);
    if (this.closed) {
      peer.state = 'idle';
      return;
    }
    // A connection that worked is redialled quickly; one that never did, ever more slowly.
    if (wasReady) peer.backoffMs = RECONNECT_BACKOFF_MIN_MS;
    const delayMs = peer.backoffMs;
    peer.backoffMs = Math.min(delayMs * 2, RECONNECT_BACKOFF_MAX_MS);
    peer.state = 'waiting';
    clearTimeout(peer.retryTimer);
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = undefined;
      if (peer.state === 'waiting') peer.state = 'idle';
    }, delayMs);
  }

  private notePeerProblem(peer: OutboundPeer, problem: string): void {
    if (peer.lastProblem === problem) return;
    peer.lastProblem = problem;
    this.log(problem);
  }

  // ------------------------------------------------------------------ inbound

  private onInboundConnection(socket: Socket): void {
    // Errors on an inbound connection (a reset when the peer restarts) need no report of their
    // own: the close that follows cleans up, and the peer's side reports its reachability.
    socket.on('error', () => undefined);
    if (this.closed) {
      socket.destroy();
      return;
    }
    const now = performance.now();
    const connection: InboundConnection = {
      socket,
      reader: new PeerFrameReader(),
      remote: `${socket.remoteAddress ?? 'an unknown address'}:${socket.remotePort ?? '?'}`,
      from: undefined,
      refused: false,
      handshakeDeadlineMs: now + this.handshakeTimeoutMs,
      lastHeardMs: now,
    };
    this.inbound.add(connection);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onInboundData(connection, chunk));
    socket.on('close', () => {
      this.inbound.delete(connection);
      if (connection.from !== undefined && this.inboundByPeer.get(connection.from) === connection) this.inboundByPeer.delete(connection.from);
    });
  }

  private onInboundData(connection: InboundConnection, chunk: Buffer): void {
    if (connection.refused || connection.socket.destroyed) return;
    let frames: Buffer[];
    try {
      frames = connection.reader.push(chunk);
    } catch (error) {
      this.rejectInbound(connection, errorText(error));
      return;
    }
    for (const bytes of frames) {
      if (connection.refused || connection.socket.destroyed) return;
      let frame: PeerFrame;
      try {
        frame = decodePeerFrame(bytes);
      } catch (error) {
        this.rejectInbound(connection, errorText(error));
        return;
      }
      connection.lastHeardMs = performance.now();
      if (connection.from === undefined) this.onHello(connection, frame);
      else if (frame.type === 'message') this.deliver(connection.from, frame.message);
      else if (frame.type !== 'keepalive') this.rejectInbound(connection, `an unexpected ${frame.type} frame`);
    }
  }

  private onHello(connection: InboundConnection, frame: PeerFrame): void {
    if (frame.type !== 'hello') {
      this.refuse(connection, `expected a hello frame first, got a ${frame.type === 'message' ? frame.message.kind : frame.type} frame`);
      return;
    }
    const reason = this.refusalReason(frame.clusterId, frame.from, frame.to);
    if (reason !== undefined) {
      this.refuse(connection, reason);
      return;
    }
    // A peer keeps one connection to us. An older one is left over from before it restarted or
    // reconnected, and its last messages must not interleave with the new connection's.
    this.inboundByPeer.get(frame.from)?.socket.destroy();
    connection.from = frame.from;
    this.inboundByPeer.set(frame.from, connection);
    connection.socket.write(WELCOME_FRAME);
  }

  private refusalReason(clusterId: string, from: NodeId, to: NodeId): string | undefined {
    const ours = this.options.clusterId;
    if (clusterId !== ours) return `cluster id ${clusterId} does not match ours ${ours}: this node belongs to another cluster`;
    // Without this check a stale endpoint would deliver votes meant for one node to another.
    if (to !== this.options.selfId) return `this is node ${this.options.selfId}, not ${to}: the endpoint ${from} knows for ${to} is stale or wrong`;
    try {
      if (!this.options.isMember(from)) return `${from} is not a member of cluster ${ours}`;
    } catch (error) {
      return `cannot tell whether ${from} is a member: ${errorText(error)}`;
    }
    return undefined;
  }

  /** Answers the handshake with the reason it failed, then closes once the answer is out. */
  private refuse(connection: InboundConnection, reason: string): void {
    this.stats.refusedHandshakes++;
    connection.refused = true;
    if (!this.loggedRefusals.has(reason)) {
      if (this.loggedRefusals.size >= LOGGED_REFUSALS_MAX) this.loggedRefusals.clear();
      this.loggedRefusals.add(reason);
      this.log(`refused a replication connection from ${connection.socket.remoteAddress ?? 'an unknown address'}: ${reason}`);
    }
    // end(), not destroy(): the refusal must reach the peer rather than be cut off by a reset.
    connection.socket.end(encodePeerControlFrame({ type: 'refusal', reason }));
  }

  /** A bad frame: refused during the handshake, closed after it. */
  private rejectInbound(connection: InboundConnection, problem: string): void {
    if (connection.from === undefined) {
      this.refuse(connection, problem);
      return;
    }
    this.log(`closing the replication connection from ${connection.from} (${connection.remote}): ${problem}`);
    connection.socket.destroy();
  }

  private deliver(from: NodeId, message: Message<RecordBody>): void {
    this.stats.received++;
    try {
      this.options.onMessage(from, message);
    } catch (error) {
      this.log(`handling a ${message.kind} message from ${from} failed: ${errorText(error)}`);
    }
  }

  // ------------------------------------------------------------------ timers

  private startHousekeeping(): void {
    if (this.housekeepingTimer || this.closed) return;
    this.lastHousekeepingMs = performance.now();
    this.housekeepingTimer = setInterval(() => this.housekeep(), this.keepaliveIntervalMs);
  }

  /** Sends keepalives and closes connections whose handshake or peer went silent. */
  private housekeep(): void {
    const now = performance.now();
    // Timers run before I/O in a turn of the event loop: after the loop was blocked, what the
    // peers sent meanwhile is still unread, so silence is judged only on a punctual tick.
    const punctual = now - this.lastHousekeepingMs <= 2 * this.keepaliveIntervalMs;
    this.lastHousekeepingMs = now;
    for (const peer of this.peers.values()) {
      if (peer.state === 'dialling' && punctual && now > peer.handshakeDeadlineMs) {
        this.closeOutbound(peer, `${peer.id} at ${peer.address} did not complete the handshake within ${this.handshakeTimeoutMs} ms`);
      } else if (peer.state === 'ready') {
        if (punctual && now - peer.lastHeardMs > this.silenceTimeoutMs) {
          this.closeOutbound(peer, `heard nothing from ${peer.id} at ${peer.address} for ${this.silenceTimeoutMs} ms: reconnecting`);
        } else if (peer.socket!.writableLength < this.maxQueuedBytesPerPeer) {
          peer.socket!.write(KEEPALIVE_FRAME);
        }
      }
    }
    for (const connection of this.inbound) {
      if (connection.from === undefined) {
        if (punctual && now > connection.handshakeDeadlineMs) connection.socket.destroy();
      } else if (punctual && now - connection.lastHeardMs > this.silenceTimeoutMs) {
        this.log(`heard nothing from ${connection.from} (${connection.remote}) for ${this.silenceTimeoutMs} ms: closing its connection`);
        connection.socket.destroy();
      } else if (connection.socket.writableLength < this.maxQueuedBytesPerPeer) {
        connection.socket.write(KEEPALIVE_FRAME);
      }
    }
  }

  private async closeEverything(): Promise<void> {
    clearInterval(this.housekeepingTimer);
    this.housekeepingTimer = undefined;
    for (const peer of this.peers.values()) {
      clearTimeout(peer.retryTimer);
      peer.retryTimer = undefined;
      this.closeOutbound(peer, undefined);
    }
    for (const connection of this.inbound) connection.socket.destroy();
    this.inbound.clear();
    this.inboundByPeer.clear();
    const server = this.server;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private log(message: string): void {
    try {
      this.options.log?.(message);
    } catch {
      // A failing logger must not take the transport down with it.
    }
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether two appends carry the same fields and the very same entry objects, so encode to the same bytes. */
function sameAppend(a: AppendRequest<RecordBody>, b: AppendRequest<RecordBody>): boolean {
  if (a.term !== b.term || a.prevIndex !== b.prevIndex || a.prevTerm !== b.prevTerm || a.commit !== b.commit || a.count !== b.count) return false;
  const x = a.entries!;
  const y = b.entries!;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
