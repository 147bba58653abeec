import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as connectHttp2, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { request as httpsRequest } from 'node:https';

/**
 * Clients for the HTTP API tests, over real sockets: `fetch` (undici, HTTP/1.1), `node:http` where
 * a test needs to pause reading, `node:http2` for HTTP/2 (cleartext h2c or TLS), and a parser of
 * Server-Sent Events and of the Prometheus text format.
 */

export interface JsonResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  text: string;
}

/** A request with `fetch`, bounded in time; the body parsed as JSON when it is JSON. */
export async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {}, timeoutMs = 15_000): Promise<JsonResponse> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) } as RequestInit);
  const text = await response.text();
  const headers = Object.fromEntries(response.headers.entries());
  let body: unknown = text;
  if (/json/.test(headers['content-type'] ?? '')) body = JSON.parse(text);
  return { status: response.status, headers, body, text };
}

/** POSTs a JSON array of events. */
export function append(base: string, stream: string, events: unknown[], headers: Record<string, string> = {}): Promise<JsonResponse> {
  return call(`${base}/streams/${encodeURIComponent(stream)}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(events) });
}

/** An HTTP/2 request on a session; the answer with its status and headers. */
export function http2Call(session: ClientHttp2Session, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<JsonResponse> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': init.method ?? 'GET', ...init.headers });
    const chunks: Buffer[] = [];
    let headers: Record<string, string> = {};
    stream.on('response', (received) => {
      headers = Object.fromEntries(Object.entries(received).map(([name, value]) => [name, String(value)]));
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.setTimeout(15_000, () => stream.close());
    stream.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ status: Number(headers[':status']), headers, text, body: /json/.test(headers['content-type'] ?? '') ? JSON.parse(text) : text });
    });
    stream.end(init.body);
  });
}

export function connectH2(origin: string, options: SecureClientSessionOptions = {}): ClientHttp2Session {
  const session = connectHttp2(origin, options);
  session.on('error', () => undefined);
  return session;
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * An SSE client on `node:http` (or `node:https`): collects parsed events; `pause()` stops reading
 * from the socket (a slow consumer), `close()` disconnects.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  status = 0;
  ended = false;
  private response: IncomingMessage | undefined;
  private buffer = '';
  private readonly request;
  readonly opened: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}, tls?: { ca: Buffer }) {
    const target = new URL(url);
    const options = { host: target.hostname, port: Number(target.port), path: target.pathname + target.search, headers: { accept: 'text/event-stream', ...headers } };
    this.request = tls ? httpsRequest({ ...options, ca: tls.ca }) : httpRequest(options);
    this.opened = new Promise((resolve, reject) => {
      this.request.on('error', (error) => {
        this.ended = true;
        reject(error);
      });
      this.request.on('response', (response) => {
        this.response = response;
        this.status = response.statusCode ?? 0;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => this.push(chunk));
        response.on('end', () => (this.ended = true));
        response.on('close', () => (this.ended = true));
        response.on('error', () => (this.ended = true));
        resolve();
      });
    });
    this.request.end();
  }

  private push(chunk: string): void {
    this.buffer += chunk;
    let boundary: number;
    while ((boundary = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, boundary);
      this.buffer = this.buffer.slice(boundary + 2);
      const event: SseEvent = { event: 'message', data: '' };
      let hasData = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon >= 0 ? line.slice(0, colon) : line;
        const value = colon >= 0 ? line.slice(colon + 1).replace(/^ /, '') : '';
        if (field === 'id') event.id = value;
        else if (field === 'event') event.event = value;
        else if (field === 'data') {
          event.data += (hasData ? '\n' : '') + value;
          hasData = true;
        }
      }
      if (hasData) this.events.push(event);
    }
  }

  /** Events of the default type (the stream's events), parsed. */
  messages<T = { eventId: string; revision: number; eventType: string; position: { commit: number; prepare: number } }>(): T[] {
    return this.events.filter((event) => event.event === 'message').map((event) => JSON.parse(event.data) as T);
  }

  pause(): void {
    this.response?.pause();
  }

  resume(): void {
    this.response?.resume();
  }

  close(): void {
    this.request.destroy();
    this.ended = true;
  }

  async waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (status ${this.status}, ${this.events.length} events, last ${JSON.stringify(this.events.at(-1))})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Parses the Prometheus text format strictly enough to fail on malformed lines; samples by name and labels. */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?\d+)?$/;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = sample.exec(line);
    if (!match) throw new Error(`not a Prometheus text line: ${JSON.stringify(line)}`);
    samples.set(`${match[1]}${match[2] ?? ''}`, Number(match[3]));
  }
  return samples;
}
