import type { Server as HttpServer } from 'node:http';
import type { Http2Server } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

/**
 * One listening port for gRPC (HTTP/2) and the HTTP API (HTTP/1.1 and HTTP/2). Each connection is
 * sorted once, when it opens, and then belongs to one protocol server for its life:
 * - TLS: ALPN decides (`h2` or `http/1.1`), as browsers and gRPC clients negotiate anyway;
 * - cleartext: the first bytes decide: an HTTP/2 connection starts with the fixed preface
 *   `PRI * HTTP/2.0`, and no HTTP/1.1 request line can.
 * The bytes read to decide are put back; the HTTP/2 session then reads the socket natively, so the
 * gRPC hot path costs nothing per stream for sharing the port.
 */
export interface SharedPortOptions {
  http2: Http2Server;
  /** Without it, HTTP/1.1 connections are closed at once (and TLS offers only `h2`). */
  http1: HttpServer | undefined;
  tls?: { certificate: Buffer; privateKey: Buffer };
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A client that sends nothing for this long after connecting is dropped: it holds a socket for nothing. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

export class SharedPort {
  private readonly server: NetServer;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly options: SharedPortOptions) {
    if (options.tls) {
      this.server = createTlsServer(
        { cert: options.tls.certificate, key: options.tls.privateKey, ALPNProtocols: options.http1 ? ['h2', 'http/1.1'] : ['h2'] },
        (socket) => this.onSecureConnection(socket),
      );
      // A failed TLS handshake (a client that does not trust the certificate) is the client's problem.
      this.server.on('tlsClientError', () => undefined);
    } else {
      this.server = createNetServer((socket) => this.onCleartextConnection(socket));
    }
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting connections; resolves once every connection it handed out has closed. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Cuts every connection still open (after the protocol servers had their grace period). */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
  }

  private onSecureConnection(socket: TLSSocket): void {
    this.track(socket);
    if (socket.alpnProtocol === 'h2') this.options.http2.emit('connection', socket);
    else if (this.options.http1) this.options.http1.emit('connection', socket);
    else socket.destroy();
  }

  private onCleartextConnection(socket: Socket): void {
    this.track(socket);
    const chunks: Buffer[] = [];
    let length = 0;
    const timer = setTimeout(() => socket.destroy(), FIRST_BYTES_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.byteLength;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
      const compared = Math.min(head.byteLength, HTTP2_PREFACE.byteLength);
      const isPrefaceSoFar = head.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
      // Too few bytes to tell yet: wait for more.
      if (isPrefaceSoFar && compared < HTTP2_PREFACE.byteLength) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      if (isPrefaceSoFar) {
        // The session reads what was put back on its first tick; resuming here would hand it to nobody.
        this.options.http2.emit('connection', socket);
      } else if (this.options.http1) {
        this.options.http1.emit('connection', socket);
        socket.resume();
      } else {
        socket.destroy();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => clearTimeout(timer));
  }
}
