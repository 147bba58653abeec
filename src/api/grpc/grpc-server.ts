import type { Server as Http1Server } from 'node:http';
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SharedPort } from '../shared-port.js';
import { encodeGrpcMessage, FramingError, frameMessage, MessageDeframer, parseGrpcTimeoutMs } from './framing.js';
import { GrpcCallError, toGrpcError, type GrpcErrorReply } from './grpc-errors.js';

/**
 * A gRPC server on `node:http2`, without a gRPC library in between: the hot path is one
 * HTTP/2 stream, a deframer and a codec. grpc-js costs tens of microseconds per message before
 * any work is done (see ../shared/design.md), which an event store's append path cannot afford.
 */
export interface Codec<T> {
  decode(bytes: Uint8Array): T;
  encode(message: T): Uint8Array;
}

export interface CallContext {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** Aborted when the client cancels, the connection drops, the deadline passes or the server stops. */
  readonly signal: AbortSignal;
  /** The client's address and port, as the connection shows it. */
  readonly peer: string;
}

/** The sending side of a streaming response. */
export interface ResponseStream<Response> {
  /** Sends one message; resolves once the transport can take more (HTTP/2 flow control). */
  send(message: Response): Promise<void>;
  /** Sends the response headers now (some clients wait for them before sending more requests). */
  sendHeaders(): void;
}

export type MethodDefinition<Request, Response> =
  | {
      kind: 'unary';
      path: string;
      longLived?: false;
      request: Codec<Request>;
      response: Codec<Response>;
      handle(request: Request, context: CallContext): Promise<Response>;
    }
  | {
      kind: 'server-stream';
      path: string;
      /** Ends with UNAVAILABLE when the server stops (clients reconnect and resume), not OK. */
      longLived?: boolean;
      request: Codec<Request>;
      response: Codec<Response>;
      handle(request: Request, responses: ResponseStream<Response>, context: CallContext): Promise<void>;
    }
  | {
      kind: 'bidi';
      path: string;
      /** Ends with UNAVAILABLE when the server stops (clients reconnect and resume), not OK. */
      longLived?: boolean;
      request: Codec<Request>;
      response: Codec<Response>;
      handle(requests: AsyncIterable<Request>, responses: ResponseStream<Response>, context: CallContext): Promise<void>;
    };

export interface GrpcServerOptions {
  /** Largest request message accepted. */
  maxReceiveMessageBytes: number;
  /** Serve TLS (HTTP/2 negotiated by ALPN) with this PEM certificate chain and key; cleartext HTTP/2 without. */
  tls?: { certificate: Buffer; privateKey: Buffer };
  /** HTTP/2 requests that are not gRPC (the HTTP API) go here; without it they get 415. */
  fallback?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
  /** HTTP/1.1 connections on the same port go to this server (the HTTP API); without it they are closed. */
  http1?: Http1Server;
  /** Reports handler failures that are not the caller's fault. */
  onInternalError?: (error: unknown, path: string) => void;
  /** Decides, before a call runs, whether this node may serve it (throws the error to answer with). */
  admit?: (context: CallContext) => void;
}

const GRPC_CONTENT_TYPE = /^application\/grpc(\+proto)?(;.*)?$/;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long a stopping server waits for clients to close their connections before cutting them. */
const CLOSE_GRACE_MS = 2000;
/**
 * How much a client may send on one call, and on one connection, before the server has read it.
 * HTTP/2's default (64 KiB for both) lets a client with 64 appends of 100 events in flight on
 * its one BatchAppend stream send two of them, then wait for the node's busy event loop to read
 * and open the window again (64 × 100 events: 0.82–0.89 of the official client's rate against a
 * no-op stub on the default windows, 0.98–1.00 with these; 0.87–0.97 once the stub has them too).
 * Kestrel, which KurrentDB runs on, opens 768 KiB per stream and 1 MiB per connection.
 */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
export const CONNECTION_WINDOW_BYTES = 4 * 1024 * 1024;

export class GrpcServer {
  // Definitions are generic per method; the router only needs the shape.
  private readonly methods = new Map<string, MethodDefinition<unknown, unknown>>();
  private readonly server: Http2Server;
  private readonly port: SharedPort;
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly shutdown = new AbortController();

  constructor(private readonly options: GrpcServerOptions) {
    // Every open call listens for the shutdown; thousands of subscriptions are normal, not a leak.
    setMaxListeners(0, this.shutdown.signal);
    // The shared port does TLS (with ALPN) and hands over HTTP/2 connections, decrypted or not.
    this.server = http2.createServer({ maxSessionMemory: 64, settings: { initialWindowSize: STREAM_WINDOW_BYTES } });
    this.port = new SharedPort({ http2: this.server, http1: options.http1, ...(options.tls ? { tls: options.tls } : {}) });
    const server = this.server;
    server.on('stream', (stream, headers) => this.onStream(stream, headers));
    // A misbehaving peer must never take the node down.
    server.on('sessionError', () => undefined);
    server.on('session', (session) => {
      session.on('error', () => undefined);
      if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
    });
  }

  addMethod<Request, Response>(method: MethodDefinition<Request, Response>): void {
    if (this.methods.has(method.path)) throw new Error(`gRPC method ${method.path} is registered twice`);
    this.methods.set(method.path, method as MethodDefinition<unknown, unknown>);
  }

  /** The HTTP/2 paths of every registered method, e.g. /event_store.client.streams.Streams/Read. */
  methodPaths(): string[] {
    return [...this.methods.keys()];
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return this.port.listen(host, port);
  }

  /**
   * Stops accepting connections and tells every open call to stop: writes in flight finish,
   * long-lived calls (subscriptions, BatchAppend) end with UNAVAILABLE. Then GOAWAY on every
   * connection; a client that keeps its connection open is cut off after a short grace period,
   * so a stop never hangs.
   */
  async close(): Promise<void> {
    this.shutdown.abort();
    const closed = this.port.close();
    // Calls saw the abort: they finish what is in flight and end with a status; then GOAWAY.
    for (const session of this.sessions) session.close();
    this.options.http1?.closeIdleConnections();
    const grace = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
      this.port.destroyAll();
    }, CLOSE_GRACE_MS);
    await closed;
    clearTimeout(grace);
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const contentType = String(headers['content-type'] ?? '');
    if (!GRPC_CONTENT_TYPE.test(contentType)) {
      if (this.options.fallback) this.options.fallback(stream, headers);
      else stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = String(headers[':path'] ?? '');
    const method = this.methods.get(path);
    if (!method) {
      respondTrailersOnly(stream, { grpcStatus: 12, message: `unknown method ${path}`, trailers: {} });
      return;
    }
    new ServerCall(stream, headers, method, this.options, this.shutdown.signal).run();
  }
}

function respondTrailersOnly(stream: ServerHttp2Stream, reply: GrpcErrorReply): void {
  if (stream.closed || stream.destroyed) return;
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(reply.grpcStatus),
      'grpc-message': encodeGrpcMessage(reply.message),
      ...reply.trailers,
    },
    { endStream: true },
  );
}

/** One call: reads requests off the stream, runs the handler, writes responses and the status. */
class ServerCall<Request, Response> implements ResponseStream<Response> {
  private readonly abort = new AbortController();
  private readonly deframer: MessageDeframer;
  private headersSent = false;
  private finished = false;
  /** Settles at the stream's next 'drain' (or its close): what every send that found the buffer full waits for. */
  private drained: Promise<void> | undefined;
  /** Set when the server stops: long-lived calls then end with UNAVAILABLE, which clients retry elsewhere or later. */
  private shuttingDown = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly method: MethodDefinition<Request, Response>,
    private readonly options: GrpcServerOptions,
    shutdown: AbortSignal,
  ) {
    this.deframer = new MessageDeframer(options.maxReceiveMessageBytes);
    const cancel = () => this.abort.abort();
    const onShutdown = () => {
      this.shuttingDown = true;
      cancel();
    };
    shutdown.addEventListener('abort', onShutdown, { once: true });
    stream.once('close', () => {
      shutdown.removeEventListener('abort', onShutdown);
      cancel();
    });
    const timeoutMs = parseGrpcTimeoutMs(headers['grpc-timeout'] as string | undefined);
    // Beyond setTimeout's range (about 24.8 days) a deadline is as good as none.
    if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) {
      const timer = setTimeout(() => this.fail(new GrpcCallError(4, 'deadline exceeded')), Math.max(timeoutMs, 1));
      timer.unref();
      stream.once('close', () => clearTimeout(timer));
    }
  }

  get context(): CallContext {
    const socket = this.stream.session?.socket;
    const peer = socket?.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort ?? 0}` : '';
    return { path: this.method.path, headers: this.headers, signal: this.abort.signal, peer };
  }

  run(): void {
    const method = this.method;
    try {
      this.options.admit?.(this.context);
    } catch (error) {
      this.fail(error);
      return;
    }
    let done: Promise<void>;
    if (method.kind === 'bidi') {
      done = method.handle(this.requests(), this, this.context);
    } else {
      done = this.singleRequest().then((request) =>
        method.kind === 'unary'
          ? method.handle(request, this.context).then((response) => this.send(response))
          : method.handle(request, this, this.context),
      );
    }
    done.then(
      () => this.finish(),
      (error: unknown) => this.fail(error),
    );
  }

  /** Reads the single request of a unary or server-streaming call. */
  private singleRequest(): Promise<Request> {
    return new Promise<Request>((resolve, reject) => {
      let request: Request | undefined;
      let count = 0;
      this.stream.on('data', (chunk: Buffer) => {
        try {
          for (const bytes of this.deframer.push(chunk)) {
            count++;
            if (count === 1) request = this.method.request.decode(bytes);
          }
        } catch (error) {
          reject(asCallError(error));
        }
      });
      this.stream.once('end', () => {
        if (this.deframer.hasPartialMessage) reject(new GrpcCallError(3, 'the request ended in the middle of a message'));
        else if (count !== 1) reject(new GrpcCallError(12, `expected exactly one request message, received ${count}`));
        else resolve(request as Request);
      });
      this.stream.once('close', () => reject(new GrpcCallError(1, 'cancelled by the client')));
    });
  }

  /** The requests of a bidirectional call, with backpressure: the stream pauses while the handler is behind. */
  private async *requests(): AsyncGenerator<Request> {
    const queue: Request[] = [];
    let ended = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = () => {
      const resume = wake;
      wake = undefined;
      resume?.();
    };
    this.stream.on('data', (chunk: Buffer) => {
      try {
        for (const bytes of this.deframer.push(chunk)) queue.push(this.method.request.decode(bytes));
      } catch (error) {
        failure = asCallError(error);
      }
      if (queue.length >= 64) this.stream.pause();
      notify();
    });
    let endedCleanly = false;
    // A dropped connection aborts the stream and then ends its readable side: that is no half-close.
    this.stream.once('aborted', () => {
      failure ??= new GrpcCallError(1, 'the connection was lost before the request was complete');
      notify();
    });
    this.stream.once('end', () => {
      if (this.deframer.hasPartialMessage) failure ??= new GrpcCallError(3, 'the request stream ended in the middle of a message');
      if (this.stream.aborted) failure ??= new GrpcCallError(1, 'the connection was lost before the request was complete');
      else endedCleanly = true;
      ended = true;
      notify();
    });
    // Only a half-close ends the requests normally. A stream that closes first (the client
    // cancelled, the connection dropped) or a call that is aborted (deadline, server stopping)
    // did not finish sending: the handler must not act on a partial request (an Append would
    // otherwise commit the events received so far).
    this.stream.once('close', () => {
      if (!endedCleanly) failure ??= new GrpcCallError(1, 'the client cancelled the call before it finished sending');
      ended = true;
      notify();
    });
    this.abort.signal.addEventListener('abort', () => {
      if (!endedCleanly) failure ??= this.shuttingDown ? new GrpcCallError(14, 'the node is shutting down') : new GrpcCallError(1, 'the call was cancelled');
      ended = true;
      notify();
    });
    for (;;) {
      if (failure) throw failure;
      const next = queue.shift();
      if (next !== undefined) {
        if (queue.length < 16 && this.stream.isPaused()) this.stream.resume();
        yield next;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }

  sendHeaders(): void {
    if (this.headersSent || this.stream.closed || this.stream.destroyed) return;
    this.headersSent = true;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  }

  send(message: Response): Promise<void> {
    if (this.finished || this.stream.closed || this.stream.destroyed) return Promise.reject(new GrpcCallError(1, 'the call is over'));
    this.sendHeaders();
    const writable = this.stream.write(frameMessage(this.method.response.encode(message)));
    if (writable) return Promise.resolve();
    // Every send that finds the buffer full waits for the same 'drain': a handler that does not
    // await its sends (BatchAppend answers appends as they complete) adds no listener per message.
    this.drained ??= new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.stream.off('close', onClose);
        this.drained = undefined;
        resolve();
      };
      const onClose = () => {
        this.stream.off('drain', onDrain);
        this.drained = undefined;
        reject(new GrpcCallError(1, 'the call is over'));
      };
      this.stream.once('drain', onDrain);
      this.stream.once('close', onClose);
    });
    return this.drained;
  }

  private finish(): void {
    if (this.shuttingDown && this.method.longLived) {
      this.end({ grpcStatus: 14, message: 'the node is shutting down', trailers: {} });
      return;
    }
    this.end({ grpcStatus: 0, message: '', trailers: {} });
  }

  private fail(error: unknown): void {
    const reply = toGrpcError(error);
    if (reply.grpcStatus === 13) this.options.onInternalError?.(error, this.method.path);
    this.end(reply);
  }

  private end(reply: GrpcErrorReply): void {
    if (this.finished) return;
    this.finished = true;
    this.abort.abort();
    if (this.stream.closed || this.stream.destroyed) return;
    if (!this.headersSent) {
      respondTrailersOnly(this.stream, reply);
      return;
    }
    this.stream.once('wantTrailers', () => {
      this.stream.sendTrailers({ 'grpc-status': String(reply.grpcStatus), 'grpc-message': encodeGrpcMessage(reply.message), ...reply.trailers });
    });
    this.stream.end();
  }
}

function asCallError(error: unknown): GrpcCallError {
  if (error instanceof GrpcCallError) return error;
  if (error instanceof FramingError) return new GrpcCallError(error.grpcStatus, error.message);
  return new GrpcCallError(3, `the request could not be decoded: ${(error as Error).message}`);
}
