import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { SlowConsumerError } from '../../errors.js';

/**
 * One Server-Sent Events response. Writes wait for the socket to drain, so the subscription
 * behind it reads no further than the client takes (at most one page waits in memory); a client
 * that takes nothing for `drainTimeoutMs` while events are waiting is dropped with a final
 * `dropped` event that says why, because holding its backlog would grow without bound.
 */
export type RawResponse = ServerResponse | Http2ServerResponse;

/** What the channel writes to: the HTTP/1.1 response, or the HTTP/2 stream under the compatibility response. */
interface Outlet {
  write(chunk: string): boolean;
  end(): void;
  destroy(): void;
  readonly destroyed: boolean;
  readonly writableLength: number;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

export interface SseOptions {
  drainTimeoutMs: number;
  heartbeatMs: number;
}

/** How long a dropped client has to read its final event before the connection is cut. */
const DROP_GRACE_MS = 2000;
/** Tells EventSource clients how soon to reconnect (they resume with Last-Event-ID). */
const RECONNECT_MS = 1000;

export class SseChannel {
  private readonly heartbeat: NodeJS.Timeout;
  private ended = false;
  private readonly response: Outlet;

  constructor(
    raw: RawResponse,
    private readonly options: SseOptions,
  ) {
    const headers: Record<string, string> = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' };
    let response: Outlet;
    if ('stream' in raw) {
      raw.stream.respond({ ':status': 200, ...headers });
      response = raw.stream;
    } else {
      raw.writeHead(200, headers);
      raw.flushHeaders();
      response = raw;
    }
    this.response = response;
    response.write(`retry: ${RECONNECT_MS}\n\n`);
    // Comments keep proxies and load balancers from closing a quiet stream as idle.
    this.heartbeat = setInterval(() => {
      if (!this.ended && response.writableLength === 0) response.write(': keep-alive\n\n');
    }, options.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Sends one event; resolves once the transport takes more, throws SlowConsumerError if it does not in time. */
  send(event: { id?: string; event?: string; data: string }): Promise<void> {
    if (this.ended || this.response.destroyed) return Promise.resolve();
    let text = '';
    if (event.id !== undefined) text += `id: ${event.id}\n`;
    if (event.event !== undefined) text += `event: ${event.event}\n`;
    text += `data: ${event.data}\n\n`;
    if (this.response.write(text)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error): void => {
        clearTimeout(timer);
        this.response.off('drain', onDrain);
        this.response.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void => done();
      const timer = setTimeout(
        () => done(new SlowConsumerError(`the client took no data for ${this.options.drainTimeoutMs} ms while events were waiting; reconnect with Last-Event-ID to resume`)),
        this.options.drainTimeoutMs,
      );
      this.response.on('drain', onDrain);
      this.response.on('close', onClose);
    });
  }

  /** Ends the stream with a final `dropped` event naming the reason (its registry code and text). */
  drop(reason: { code: string; message: string }): void {
    if (this.ended || this.response.destroyed) return;
    this.response.write(`event: dropped\ndata: ${JSON.stringify({ code: reason.code, reason: reason.message })}\n\n`);
    this.end();
    // A client that stopped reading may never read the end either: its buffers go after a grace period.
    const cut = setTimeout(() => this.response.destroy(), DROP_GRACE_MS);
    cut.unref();
    this.response.once('close', () => clearTimeout(cut));
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
    if (!this.response.destroyed) this.response.end();
  }
}
