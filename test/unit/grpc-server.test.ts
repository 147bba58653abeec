import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, describe, it } from 'node:test';
import { frameMessage, MessageDeframer } from '../../src/api/grpc/framing.js';
import { GrpcServer, type Codec } from '../../src/api/grpc/grpc-server.js';

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
