import assert from 'node:assert/strict';
import { createServer, globalAgent, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { internalRequest, NotDeliveredError } from '../../src/cluster/internal-http.js';

describe('internal HTTP requests', () => {
  let server: Server;
  let port = 0;

  before(async () => {
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => response.end(JSON.stringify({ path: request.url })));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends many requests over a kept-alive connection without adding a listener per request to it', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 50; i++) {
        const answer = await internalRequest({ to: `127.0.0.1:${port}`, method: 'GET', path: `/gossip/${i}`, tls: undefined, timeoutMs: 5000, maxAnswerBytes: 1024 });
        assert.equal(answer.status, 200);
        assert.deepEqual(JSON.parse(answer.text), { path: `/gossip/${i}` });
      }
      await new Promise((resolve) => setImmediate(resolve));
      const sockets = Object.values(globalAgent.freeSockets).flat() as Socket[];
      assert.ok(sockets.length >= 1, 'the agent kept the connection');
      for (const socket of sockets) assert.ok(socket.listenerCount('connect') <= 1, `${socket.listenerCount('connect')} connect listeners on one socket`);
      assert.deepEqual(warnings.map((warning) => warning.name), []);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('reports a request that could not reach the member as not delivered', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const unused = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(
      internalRequest({ to: `127.0.0.1:${unused}`, method: 'POST', path: '/x', body: '{}', tls: undefined, timeoutMs: 5000, maxAnswerBytes: 1024 }),
      NotDeliveredError,
    );
  });
});
