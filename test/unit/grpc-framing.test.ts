import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeGrpcMessage, FramingError, frameMessage, MessageDeframer, parseGrpcTimeoutMs } from '../../src/api/grpc/framing.js';

describe('gRPC framing', () => {
  it('reassembles messages split across chunks and several in one chunk', () => {
    const messages = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
    const stream = Buffer.concat(messages.map((message) => frameMessage(message)));
    for (const chunkSize of [1, 2, 5, 6, 1000, stream.byteLength]) {
      const deframer = new MessageDeframer(1 << 20);
      const received: Buffer[] = [];
      for (let offset = 0; offset < stream.byteLength; offset += chunkSize) received.push(...deframer.push(stream.subarray(offset, offset + chunkSize)));
      assert.deepEqual(received.map((message) => message.byteLength), messages.map((message) => message.byteLength), `chunks of ${chunkSize}`);
      assert.equal(deframer.hasPartialMessage, false);
    }
  });

  it('knows when a body ended in the middle of a message', () => {
    const deframer = new MessageDeframer(1 << 20);
    deframer.push(frameMessage(Buffer.from('abcdef')).subarray(0, 7));
    assert.equal(deframer.hasPartialMessage, true);
  });

  it('refuses compressed messages and messages over the limit with the right status', () => {
    const compressed = frameMessage(Buffer.from('x'));
    compressed[0] = 1;
    assert.throws(() => new MessageDeframer(100).push(compressed), (error: unknown) => error instanceof FramingError && error.grpcStatus === 12);
    assert.throws(() => new MessageDeframer(3).push(frameMessage(Buffer.from('toolong'))), (error: unknown) => error instanceof FramingError && error.grpcStatus === 8);
  });

  it('parses grpc-timeout and encodes grpc-message', () => {
    assert.equal(parseGrpcTimeoutMs('100m'), 100);
    assert.equal(parseGrpcTimeoutMs('2S'), 2000);
    assert.equal(parseGrpcTimeoutMs('1H'), 3_600_000);
    assert.equal(parseGrpcTimeoutMs('oops'), undefined);
    assert.equal(parseGrpcTimeoutMs(undefined), undefined);
    assert.equal(encodeGrpcMessage('stream "a" 100% gone'), 'stream "a" 100%25 gone');
    assert.equal(encodeGrpcMessage('dropped: a, b; c/d?'), 'dropped: a, b; c/d?', 'printable ASCII passes as it is');
    assert.equal(decodeURIComponent(encodeGrpcMessage('flux \u00e9\n')), 'flux \u00e9\n');
    assert.equal(encodeGrpcMessage('\u00e9'), '%C3%A9');
  });
});
