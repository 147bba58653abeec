import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, describe, it } from 'node:test';
import { frameMessage, MessageDeframer } from '../../src/api/grpc/framing.js';
import { CONNECTION_WINDOW_BYTES, GrpcServer, STREAM_WINDOW_BYTES, type Codec } from '../../src/api/grpc/grpc-server.js';

const bytes: Codec<Buffer> = { decode: (message) => Buffer.from(message), encode: (message) => message };

describe('gRPC server: answers a client that does not read', () => {
  const server = new GrpcServer({ maxReceiveMessageBytes: 1024 * 1024 });
  const sends: Promise<void>[] = [];
  const ANSWERS = 400;
  server.addMethod({
    kind: 'bidi',
    path: '/test.Echo/Burst',
    request: bytes,
    response: bytes,
    handle: async (requests, responses) => {
      responses.sendHeaders();
      // Like BatchAppend: answers are sent as they are ready, without waiting for each one.
      for await (const request of requests) {
        for (let i = 0; i < ANSWERS; i++) sends.push(responses.send(Buffer.alloc(1024, request[0])));
      }
      await Promise.all(sends);
    },
  });
  after(() => server.close());

  it('waits for the client with one drain listener, however many answers are queued', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const { port } = await server.listen('127.0.0.1', 0);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const call = session.request({ ':method': 'POST', ':path': '/test.Echo/Burst', 'content-type': 'application/grpc', te: 'trailers' });
      call.pause();
      call.end(frameMessage(Buffer.from([7])));
      // The answers outgrow the HTTP/2 window and the stream's buffer while nobody reads them.
      const deadline = Date.now() + 5_000;
      while (sends.length < ANSWERS && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(sends.length, ANSWERS);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const deframer = new MessageDeframer(1024 * 1024);
      let received = 0;
      call.on('data', (chunk: Buffer) => (received += deframer.push(chunk).length));
      call.resume();
      await new Promise<void>((resolve, reject) => {
        call.once('end', resolve);
        call.once('error', reject);
      });
      assert.equal(received, ANSWERS, 'every answer arrives once the client reads');
      await Promise.all(sends);
      // Node warns once an emitter holds more than 10 listeners for one event.
      assert.deepEqual(
        warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning').map((warning) => warning.message),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      session.close();
    }
  });
});

describe('gRPC server: flow control', () => {
  const server = new GrpcServer({ maxReceiveMessageBytes: 4 * 1024 * 1024 });
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  server.addMethod({
    kind: 'bidi',
    path: '/test.Echo/Slow',
    request: bytes,
    response: bytes,
    handle: async (requests, responses) => {
      responses.sendHeaders();
      // A handler busy with something else: nothing is read until it is released.
      await released;
      let total = 0;
      for await (const request of requests) total += request.byteLength;
      await responses.send(Buffer.from(String(total)));
    },
  });
  after(() => server.close());

  it('lets a client send a megabyte on one call, and more on its connection, before anything is read', async () => {
    const { port } = await server.listen('127.0.0.1', 0);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('remoteSettings', () => resolve());
        session.once('error', reject);
      });
      assert.equal(session.remoteSettings.initialWindowSize, STREAM_WINDOW_BYTES);
      const call = session.request({ ':method': 'POST', ':path': '/test.Echo/Slow', 'content-type': 'application/grpc', te: 'trailers' });
      // 15 messages of 64 KiB: more than HTTP/2's default 64 KiB window, less than the call's.
      const message = frameMessage(Buffer.alloc(64 * 1024, 1));
      for (let i = 0; i < 15; i++) call.write(message);
      const deadline = Date.now() + 5_000;
      while (call.bufferSize > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(call.bufferSize, 0, 'everything written went out unread');
      assert.ok(session.state.remoteWindowSize! >= CONNECTION_WINDOW_BYTES - 15 * message.byteLength, `connection window ${session.state.remoteWindowSize}`);
      release();
      call.end();
      const deframer = new MessageDeframer(1024);
      const answers: Buffer[] = [];
      call.on('data', (chunk: Buffer) => answers.push(...deframer.push(chunk)));
      await new Promise<void>((resolve, reject) => {
        call.once('end', resolve);
        call.once('error', reject);
      });
      assert.equal(answers.map((answer) => answer.toString()).join(), String(15 * 64 * 1024));
    } finally {
      session.close();
    }
  });
});

