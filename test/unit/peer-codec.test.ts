/**
 * The replication wire format: every message kind survives a round trip exactly, and no input a
 * peer can send makes the decoder do anything but return a checked frame or throw a
 * PeerProtocolError. A failing property prints its seed; see test/property/support.ts to replay.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePeerFrame,
  decodePeerMessage,
  encodePeerControlFrame,
  encodePeerMessage,
  encodePeerMessageFrame,
  PEER_FRAME_HEADER_BYTES,
  PEER_PROTOCOL_VERSION,
  PeerFrameReader,
  PeerProtocolError,
  type PeerControlFrame,
} from '../../src/cluster/peer-codec.js';
import type { RecordBody } from '../../src/cluster/raft-log.js';
import type { AppendRequest, Entry, Membership, Message } from '../../src/consensus/types.js';
import { RecordType } from '../../src/storage/record-frame.js';
import { propertyParameters } from '../property/support.js';

// ------------------------------------------------------------------ generators

const safeNat = fc.maxSafeNat();
/** Records with ordinary prototypes, as decoded messages have (fast-check's default is a null prototype). */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }, requiredKeys?: (keyof T)[]): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true, ...(requiredKeys ? { requiredKeys } : {}) }) as fc.Arbitrary<T>;
}
/** Leaves room above for `count` entries, so every index stays a safe integer. */
const indexBase = fc.nat({ max: Number.MAX_SAFE_INTEGER - 1000 });
const nodeId = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 });
const membership: fc.Arbitrary<Membership> = record({ voters: fc.array(nodeId, { maxLength: 5 }), learners: fc.array(nodeId, { maxLength: 3 }) });
const dataRecordType = fc.integer({ min: 0, max: 255 }).filter((type) => type !== RecordType.NoOp && type !== RecordType.Configuration);

type EntryShape = { kind: 'noop' } | { kind: 'config'; membership: Membership } | { kind: 'data'; type: number };
const entryShape: fc.Arbitrary<EntryShape> = fc.oneof(
  fc.constant({ kind: 'noop' as const }),
  membership.map((value) => ({ kind: 'config' as const, membership: value })),
  dataRecordType.map((type) => ({ kind: 'data' as const, type })),
);

const append: fc.Arbitrary<AppendRequest<RecordBody>> = fc
  .record({
    prevIndex: indexBase,
    prevTerm: fc.nat({ max: Number.MAX_SAFE_INTEGER - 1000 }),
    commit: safeNat,
    entries: fc.array(record({ shape: entryShape, termStep: fc.nat({ max: 2 }), payload: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 8 }),
    termAbove: fc.nat({ max: 3 }),
  })
  .map(({ prevIndex, prevTerm, commit, entries, termAbove }) => {
    let term = prevTerm;
    const built: Entry<RecordBody>[] = entries.map(({ shape, termStep, payload }, i) => {
      term += termStep;
      const type = shape.kind === 'noop' ? RecordType.NoOp : shape.kind === 'config' ? RecordType.Configuration : shape.type;
      const entry: Entry<RecordBody> = { index: prevIndex + 1 + i, term, kind: shape.kind, payload: { type, payload } };
      if (shape.kind === 'config') entry.membership = shape.membership;
      return entry;
    });
    const message: AppendRequest<RecordBody> = { kind: 'append', term: term + termAbove, prevIndex, prevTerm, commit, count: built.length };
    if (built.length > 0) message.entries = built;
    return message;
  });

const rejectHint = record({ rejectedIndex: safeNat, lastIndex: safeNat, conflictTerm: safeNat, conflictIndex: safeNat });

const anyMessage: fc.Arbitrary<Message<RecordBody>> = fc.oneof(
  record({ kind: fc.constant('pre-vote' as const), term: safeNat, lastIndex: safeNat, lastTerm: safeNat }),
  record({ kind: fc.constant('vote' as const), term: safeNat, lastIndex: safeNat, lastTerm: safeNat, transfer: fc.boolean() }),
  record({ kind: fc.constant('vote-response' as const), term: safeNat, preVote: fc.boolean(), granted: fc.boolean() }),
  append,
  record(
    { kind: fc.constant('append-response' as const), term: safeNat, success: fc.boolean(), matchIndex: safeNat, rejectHint },
    ['kind', 'term', 'success', 'matchIndex'],
  ),
  record({ kind: fc.constant('heartbeat' as const), term: safeNat, commit: safeNat, readRound: safeNat }),
  record({ kind: fc.constant('heartbeat-response' as const), term: safeNat, readRound: safeNat, matchIndex: safeNat }),
  record({ kind: fc.constant('timeout-now' as const), term: safeNat }),
);

const controlFrame: fc.Arbitrary<PeerControlFrame> = fc.oneof(
  record({ type: fc.constant('hello' as const), clusterId: nodeId, from: nodeId, to: nodeId }),
  fc.constant({ type: 'welcome' as const }),
  record({ type: fc.constant('refusal' as const), reason: fc.string({ unit: 'grapheme', maxLength: 80 }) }),
  fc.constant({ type: 'keepalive' as const }),
);

/** Whatever a decoder does with `bytes`, it returns or throws a PeerProtocolError. */
function decodesOrRefuses(bytes: Uint8Array): ReturnType<typeof decodePeerFrame> | undefined {
  try {
    return decodePeerFrame(bytes);
  } catch (error) {
    assert.ok(error instanceof PeerProtocolError, `expected a PeerProtocolError, got ${String(error)}`);
    assert.ok(error.message.length > 0);
    return undefined;
  }
}

function body(frame: Buffer): Buffer {
  return frame.subarray(PEER_FRAME_HEADER_BYTES);
}

// ------------------------------------------------------------------ sample messages

const sampleAppend: AppendRequest<RecordBody> = {
  kind: 'append',
  term: 7,
  prevIndex: 10,
  prevTerm: 6,
  commit: 9,
  count: 3,
  entries: [
    { index: 11, term: 6, kind: 'data', payload: { type: RecordType.Events, payload: Uint8Array.from([1, 2, 3]) } },
    { index: 12, term: 7, kind: 'noop', payload: { type: RecordType.NoOp, payload: new Uint8Array(0) } },
    { index: 13, term: 7, kind: 'config', membership: { voters: ['a', 'b'], learners: ['c'] }, payload: { type: RecordType.Configuration, payload: Uint8Array.from([9]) } },
  ],
};

/** Offsets into the body of an append: kind, term, prevIndex, prevTerm, commit, count, then entries. */
const APPEND_COUNT_OFFSET = 1 + 8 * 4;
const FIRST_ENTRY_OFFSET = APPEND_COUNT_OFFSET + 4;

function patched(bytes: Uint8Array, patch: (view: DataView) => void): Uint8Array {
  const copy = Uint8Array.from(bytes);
  patch(new DataView(copy.buffer));
  return copy;
}

// ------------------------------------------------------------------ tests

describe('peer codec', () => {
  it('round-trips every message kind exactly (the record frame is never sent)', () => {
    fc.assert(
      fc.property(anyMessage, fc.boolean(), (message, asBuffer) => {
        const withFrames: Message<RecordBody> =
          message.kind === 'append' && message.entries
            ? { ...message, entries: message.entries.map((entry) => ({ ...entry, payload: { ...entry.payload, frame: Uint8Array.from([0xee]) } })) }
            : message;
        const encoded = encodePeerMessage(withFrames);
        const input = asBuffer ? encoded : new Uint8Array(encoded);
        assert.deepEqual(decodePeerMessage(input), message);
      }),
      propertyParameters(500),
    );
  });

  it('round-trips every control frame', () => {
    fc.assert(
      fc.property(controlFrame, (control) => {
        assert.deepEqual(decodePeerFrame(body(encodePeerControlFrame(control))), control);
      }),
      propertyParameters(200),
    );
  });

  it('decodes payloads as views of the frame, without copying them', () => {
    const frame = body(encodePeerMessageFrame(sampleAppend));
    const decoded = decodePeerMessage(frame) as AppendRequest<RecordBody>;
    const payload = decoded.entries![0]!.payload.payload;
    assert.equal(payload.buffer, frame.buffer);
    assert.equal(Object.getPrototypeOf(payload), Uint8Array.prototype);
  });

  it('prefixes whole frames with their body length', () => {
    const frame = encodePeerMessageFrame(sampleAppend);
    assert.equal(frame.readUInt32BE(0), frame.byteLength - PEER_FRAME_HEADER_BYTES);
    assert.deepEqual(encodePeerMessage(sampleAppend), body(frame));
  });

  it('re-encodes any frame it accepts to the same bytes, even after corruption', () => {
    fc.assert(
      fc.property(anyMessage, fc.nat(), fc.integer({ min: 0, max: 255 }), (message, at, value) => {
        const bytes = encodePeerMessage(message);
        const corrupted = Uint8Array.from(bytes);
        corrupted[at % corrupted.byteLength] = value;
        const decoded = decodesOrRefuses(corrupted);
        if (decoded?.type === 'message') assert.deepEqual(new Uint8Array(encodePeerMessage(decoded.message)), corrupted);
      }),
      propertyParameters(2000),
    );
  });

  it('refuses every truncation of a valid frame', () => {
    fc.assert(
      fc.property(fc.oneof(anyMessage.map(encodePeerMessage), controlFrame.map((control) => body(encodePeerControlFrame(control)))), (bytes) => {
        for (let length = 0; length < bytes.byteLength; length++) {
          assert.throws(() => decodePeerFrame(bytes.subarray(0, length)), PeerProtocolError, `prefix of ${length} bytes`);
        }
        assert.throws(() => decodePeerFrame(Buffer.concat([bytes, Buffer.from([0])])), PeerProtocolError, 'a trailing byte');
      }),
      propertyParameters(300),
    );
  });

  it('returns or throws a PeerProtocolError on arbitrary bytes, never anything else', () => {
    const kindFirst = fc.tuple(fc.integer({ min: 0, max: 0x50 }), fc.uint8Array({ maxLength: 120 })).map(([kind, rest]) => Uint8Array.from([kind, ...rest]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), kindFirst), (bytes) => {
        decodesOrRefuses(bytes);
      }),
      propertyParameters(3000),
    );
  });

  it('refuses malformed frames with a reason', () => {
    const appendBytes = encodePeerMessage(sampleAppend);
    const cases: [string, Uint8Array, RegExp][] = [
      ['an empty frame', new Uint8Array(0), /ends inside frame kind/],
      ['an unknown kind', Uint8Array.from([0x99]), /unknown frame kind 153/],
      ['a control frame where a message is expected', body(encodePeerControlFrame({ type: 'welcome' })), /expected a Raft message/],
      ['a term above 2^53', patched(encodePeerMessage({ kind: 'timeout-now', term: 1 }), (view) => view.setUint32(1, 0x0020_0000)), /larger than the largest safe integer/],
      ['unknown flag bits', patched(encodePeerMessage({ kind: 'vote-response', term: 1, preVote: false, granted: true }), (view) => view.setUint8(1, 0b100)), /unknown bits/],
      ['more entries announced than carried', patched(appendBytes, (view) => view.setUint32(APPEND_COUNT_OFFSET, 4)), /announces 4 entries/],
      ['a huge announced count', patched(appendBytes, (view) => view.setUint32(APPEND_COUNT_OFFSET, 0xffff_ffff)), /announces 4294967295 entries/],
      ['fewer entries announced than carried', patched(appendBytes, (view) => view.setUint32(APPEND_COUNT_OFFSET, 2)), /./],
      ['entries that are not contiguous', patched(appendBytes, (view) => view.setUint32(FIRST_ENTRY_OFFSET + 4, 12)), /must be contiguous/],
      ['an entry of a term before prevTerm', patched(appendBytes, (view) => view.setUint32(FIRST_ENTRY_OFFSET + 12, 5)), /terms must not fall/],
      ['an entry of a term after the leader', patched(appendBytes, (view) => view.setUint32(FIRST_ENTRY_OFFSET + 12, 8)), /terms must not fall nor pass/],
      ['an unknown entry kind', patched(appendBytes, (view) => view.setUint8(FIRST_ENTRY_OFFSET + 16, 7)), /unknown kind 7/],
      ['a data entry with the no-op record type', patched(appendBytes, (view) => view.setUint8(FIRST_ENTRY_OFFSET + 17, RecordType.NoOp)), /makes a noop entry/],
      ['a payload longer than the frame', patched(appendBytes, (view) => view.setUint32(FIRST_ENTRY_OFFSET + 18, 1000)), /ends inside payload/],
      ['a hello of another protocol version', patched(body(encodePeerControlFrame({ type: 'hello', clusterId: 'c', from: 'a', to: 'b' })), (view) => view.setUint16(1, 99)), /version 99, this node speaks version 1/],
      ['a hello with an empty id', Uint8Array.from([0x40, 0, PEER_PROTOCOL_VERSION, 0, 1, 0x63, 0, 0, 0, 1, 0x62]), /hello.from is empty/],
      ['a string that is not UTF-8', Uint8Array.from([0x40, 0, PEER_PROTOCOL_VERSION, 0, 1, 0xff, 0, 1, 0x61, 0, 1, 0x62]), /not valid UTF-8/],
    ];
    for (const [name, bytes, reason] of cases) {
      assert.throws(() => decodePeerMessage(bytes), (error: unknown) => error instanceof PeerProtocolError && reason.test(error.message), name);
    }
  });

  it('refuses to encode what it would refuse to decode', () => {
    const cases: [string, Message<RecordBody>][] = [
      ['a negative term', { kind: 'timeout-now', term: -1 }],
      ['a fractional index', { kind: 'heartbeat', term: 1, commit: 1.5, readRound: 0 }],
      ['an unsafe integer', { kind: 'pre-vote', term: 2 ** 53, lastIndex: 0, lastTerm: 0 }],
      ['NaN', { kind: 'heartbeat-response', term: 1, readRound: Number.NaN, matchIndex: 0 }],
      ['an append without its entries', { kind: 'append', term: 1, prevIndex: 0, prevTerm: 0, commit: 0, count: 2 }],
      ['entries out of order', { ...sampleAppend, entries: [sampleAppend.entries![1]!, sampleAppend.entries![0]!, sampleAppend.entries![2]!] }],
      ['a config entry without membership', { ...sampleAppend, count: 1, entries: [{ ...sampleAppend.entries![2]!, membership: undefined }] } as Message<RecordBody>],
      ['a member id with a lone surrogate', { ...sampleAppend, count: 1, entries: [{ ...sampleAppend.entries![0]!, kind: 'config', payload: { type: RecordType.Configuration, payload: new Uint8Array(0) }, membership: { voters: ['\ud800'], learners: [] } }] }],
      ['a record type that is not a byte', { ...sampleAppend, count: 1, entries: [{ ...sampleAppend.entries![0]!, payload: { type: 256, payload: new Uint8Array(0) } }] }],
    ];
    for (const [name, message] of cases) assert.throws(() => encodePeerMessage(message), PeerProtocolError, name);
  });

  it('cuts a byte stream into frames wherever the chunks break', () => {
    fc.assert(
      fc.property(fc.array(anyMessage, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (messages, cuts) => {
        const frames = messages.map(encodePeerMessageFrame);
        const stream = Buffer.concat(frames);
        const points = [...new Set(cuts.map((cut) => cut % stream.byteLength))].sort((a, b) => a - b);
        const reader = new PeerFrameReader();
        const received: Buffer[] = [];
        let start = 0;
        for (const point of [...points, stream.byteLength]) {
          received.push(...reader.push(stream.subarray(start, point)));
          start = point;
        }
        assert.deepEqual(received.map((frame) => decodePeerMessage(frame)), messages);
        assert.equal(reader.partialBytes, 0);
      }),
      propertyParameters(300),
    );
  });

  it('refuses an announced length over the limit before buffering it', () => {
    const reader = new PeerFrameReader(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1025);
    assert.throws(() => reader.push(header), (error: unknown) => error instanceof PeerProtocolError && /1025 bytes, over the limit of 1024/.test(error.message));
    assert.throws(() => new PeerFrameReader().push(Buffer.from('GET / HTTP/1.1\r\n')), PeerProtocolError);
  });
});
