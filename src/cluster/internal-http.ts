import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { parseEndpointId } from './membership.js';
import type { InternalTls } from './peer-transport.js';

/**
 * Requests between nodes over the internal HTTP interface (gossip, forwarded HTTP API commands):
 * HTTPS with the node's certificate checked against the trusted root when the cluster runs TLS,
 * plain HTTP with --insecure; bounded in time and in the size of the answer.
 */
export interface InternalRequest {
  /** The member's id: its internal HTTP endpoint, `host:port`. */
  to: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  tls: InternalTls | undefined;
  timeoutMs: number;
  maxAnswerBytes: number;
}

export interface InternalAnswer {
  status: number;
  text: string;
}

/** Thrown when a request failed before the member could have received it (nothing was sent). */
export class NotDeliveredError extends Error {}

export function internalRequest(call: InternalRequest): Promise<InternalAnswer> {
  const { host, port } = parseEndpointId(call.to);
  return new Promise((resolve, reject) => {
    const headers = { ...call.headers, ...(call.body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(call.body)) } : {}) };
    const options = { host, port, path: call.path, method: call.method, headers, timeout: call.timeoutMs };
    const tls = call.tls;
    const request = tls
      ? httpsRequest({ ...options, cert: tls.certificate, key: tls.privateKey, ca: tls.trustedRoot, rejectUnauthorized: true, ...(isIP(host) === 0 ? { servername: host } : {}) })
      : httpRequest(options);
    let connected = false;
    request.on('socket', (socket) => {
      // The agent keeps connections alive: a reused socket is connected already and will never
      // emit 'connect' again (a listener added to it would stay, with this request, for good).
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    request.on('timeout', () => request.destroy(new Error(`${call.method} ${call.path} to ${call.to} timed out after ${call.timeoutMs} ms`)));
    request.on('error', (error) => reject(connected ? error : new NotDeliveredError(error.message)));
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.byteLength;
        if (bytes > call.maxAnswerBytes) request.destroy(new Error(`the answer of ${call.to} to ${call.path} is over ${call.maxAnswerBytes} bytes`));
        else chunks.push(chunk);
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.end(call.body);
  });
}

/** Reads a request body up to `maxBytes`; undefined (and the request answered 413) past it. */
export async function readBody(request: IncomingMessage, response: ServerResponse, maxBytes: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    bytes += chunk.byteLength;
    if (bytes > maxBytes) {
      response.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `the body is over ${maxBytes} bytes` }));
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
