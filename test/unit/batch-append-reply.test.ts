import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import Long from 'long';
import { BatchAppendSuccess, batchAppendResponseCodec, encodeBatchAppendSuccess } from '../../src/api/grpc/batch-append-reply.js';
import { codecOf, streamIdentifier, type Message } from '../../src/api/grpc/protocol.js';

const generic = codecOf('event_store.client.streams.BatchAppendResp');

/** The same reply as the message protobufjs would have encoded before the hand-written encoder. */
function asMessage(reply: BatchAppendSuccess): Message {
  return {
    ...(reply.correlationId ? { correlation_id: reply.correlationId } : {}),
    stream_identifier: streamIdentifier(reply.stream),
    ...reply.expected,
    success: {
      ...(reply.currentRevision >= 0 ? { current_revision: reply.currentRevision } : { no_stream: {} }),
      position: { commit_position: reply.position.commit, prepare_position: reply.position.prepare },
    },
  };
}

/** Decoded into plain JSON (Longs as strings, bytes as base64) so that both encodings compare field by field. */
function decoded(bytes: Uint8Array): unknown {
  const type = generic.decode(bytes);
  return JSON.parse(JSON.stringify(type, (_key, value: unknown) => (Long.isLong(value) ? (value as Long).toString() : value)));
}

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((value) => Long.fromString(value.toString(), false));
const correlationId = fc.oneof(
  fc.constant(undefined),
  fc.uuid().map((uuid) => ({ string: uuid })),
  fc.record({ most_significant_bits: int64, least_significant_bits: int64 }).map((structured) => ({ structured })),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((value) => ({ structured: { most_significant_bits: value, least_significant_bits: -value } })),
);
const expected = fc.oneof(
  fc.maxSafeNat().map((position) => ({ stream_position: position })),
  fc.constant({ no_stream: {} }),
  fc.constant({ any: {} }),
  fc.constant({ stream_exists: {} }),
);
const reply = fc
  .record({
    correlationId,
    stream: fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 300 })),
    expected,
    currentRevision: fc.oneof(fc.constant(-1), fc.constant(0), fc.maxSafeNat()),
    commit: fc.maxSafeNat(),
    prepare: fc.maxSafeNat(),
  })
  .map((fields) => new BatchAppendSuccess(fields.correlationId, fields.stream, fields.expected, fields.currentRevision, { commit: fields.commit, prepare: fields.prepare }));

describe('BatchAppend success reply, encoded by hand', () => {
  it('decodes to the same message as protobufjs encodes, for any ids, names, revisions and positions', () => {
    fc.assert(
      fc.property(reply, (success) => {
        assert.deepEqual(decoded(encodeBatchAppendSuccess(success)), decoded(generic.encode(asMessage(success))));
      }),
      { numRuns: 2000 },
    );
  });

  it('is the same bytes as protobufjs writes for what the official clients send', () => {
    const success = new BatchAppendSuccess({ string: randomUUID() }, 'orders-17', { any: {} }, 41, { commit: 123_456_789_012, prepare: 123_456_789_012 });
    // protobufjs writes fields in declaration order: correlation_id, success, stream_identifier, the expectation.
    assert.deepEqual(Buffer.from(encodeBatchAppendSuccess(success)), Buffer.from(generic.encode(asMessage(success))));
  });

  it('leaves every other reply to the generic codec', () => {
    const codec = batchAppendResponseCodec(generic);
    const error = { correlation_id: { string: randomUUID() }, stream_identifier: streamIdentifier('s'), error: { code: 9, message: 'wrong expected version' } };
    assert.deepEqual(Buffer.from(codec.encode(error)), Buffer.from(generic.encode(error)));
  });
});
