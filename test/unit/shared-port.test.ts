import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttp1Server } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SharedPort } from '../../src/api/shared-port.js';

/**
 * The shared port sorts cleartext connections by their first bytes, however they are split
 * across packets: an HTTP/2 preface that arrives in pieces still reaches the HTTP/2 server (which
 * answers with its SETTINGS), an HTTP/1.1 request line that arrives a byte at a time reaches the
 * HTTP/1.1 server.
 */
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

async function readUntil(socket: Socket, check: (received: Buffer) => boolean): Promise<Buffer> {
  let received = Buffer.alloc(0);
  const deadline = setTimeout(() => socket.destroy(new Error(`no expected answer; got ${JSON.stringify(received.toString('latin1'))}`)), 5000);
  try {
    for await (const chunk of socket) {
      received = Buffer.concat([received, chunk as Buffer]);
      if (check(received)) return received;
    }
    throw new Error(`the connection closed; got ${JSON.stringify(received.toString('latin1'))}`);
  } finally {
    clearTimeout(deadline);
  }
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('the shared port', () => {
  const http2 = createHttp2Server();
  const http1 = createHttp1Server((_request, response) => response.end('h1 answered'));
  const port = new SharedPort({ http2, http1 });
  let address = 0;

  before(async () => {
    http2.on('session', (session) => session.on('error', () => undefined));
    address = (await port.listen('127.0.0.1', 0)).port;
  });

  after(async () => {
    port.destroyAll();
    await port.close();
  });

  it('hands a connection whose HTTP/2 preface arrives in pieces to the HTTP/2 server', async () => {
    const socket = connect(address, '127.0.0.1');
    await once(socket, 'connect');
    socket.setNoDelay(true);
    socket.write(PREFACE.slice(0, 3));
    await pause();
    socket.write(PREFACE.slice(3, 16));
    await pause();
    socket.write(Buffer.concat([Buffer.from(PREFACE.slice(16), 'latin1'), EMPTY_SETTINGS_FRAME]));
    // The server's first frame is its SETTINGS (type 4).
    const answer = await readUntil(socket, (received) => received.length >= 9);
    assert.equal(answer[3], 4);
    socket.destroy();
  });

  it('hands a connection whose HTTP/1.1 request arrives a byte at a time to the HTTP/1.1 server', async () => {
    const socket = connect(address, '127.0.0.1');
    await once(socket, 'connect');
    socket.setNoDelay(true);
    for (const byte of 'GET / HTTP/1.1\r\n') {
      socket.write(byte);
      await pause();
    }
    socket.write('Host: test\r\nConnection: close\r\n\r\n');
    const answer = (await readUntil(socket, (received) => received.toString('latin1').includes('h1 answered'))).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 200/);
    socket.destroy();
  });

  it('closes a connection that starts with neither when there is no HTTP/1.1 server', async () => {
    const lone = new SharedPort({ http2: createHttp2Server(), http1: undefined });
    const lonePort = (await lone.listen('127.0.0.1', 0)).port;
    try {
      const socket = connect(lonePort, '127.0.0.1');
      await once(socket, 'connect');
      socket.write('GET / HTTP/1.1\r\n\r\n');
      await once(socket, 'close');
    } finally {
      await lone.close();
    }
  });
});
