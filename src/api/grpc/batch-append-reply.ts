import type { Position } from '../../store/types.js';
import type { Codec } from './grpc-server.js';
import type { Message } from './protocol.js';

/**
 * The reply to a successful append on a BatchAppend call — one per acknowledged append, the
 * hottest message the node sends. Built as an object with spreads and encoded by protobufjs's
 * generic code, the reply took about 4.5 µs of the node's ≈ 30 µs of CPU per append (sampled,
 * 64 appends in flight), the object and its encoding 60 % of that; these few fields are written
 * by hand. Every other BatchAppendResp (the errors) still goes through protobufjs.
 */
export class BatchAppendSuccess {
  constructor(
    /** The request's correlation id, as decoded (`{ string }` or `{ structured }`); absent if the request had none. */
    readonly correlationId: Message | null | undefined,
    readonly stream: string,
    /** The request's expected state, echoed: one of `stream_position`, `no_stream`, `any`, `stream_exists`. */
    readonly expected: Message,
    /** The stream's revision after the append; -1 when the stream still has no event. */
    readonly currentRevision: number,
    readonly position: Position,
  ) {}
}

/** The BatchAppendResp codec: `generic` for every message but a `BatchAppendSuccess`. */
export function batchAppendResponseCodec(generic: Codec<Message>): Codec<Message> {
  return {
    decode: generic.decode,
    encode: (message) => (message instanceof BatchAppendSuccess ? encodeBatchAppendSuccess(message) : generic.encode(message)),
  };
}

// Field tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
const CORRELATION_ID = (1 << 3) | 2;
const SUCCESS = (3 << 3) | 2;
const STREAM_IDENTIFIER = (4 << 3) | 2;
const STREAM_POSITION = (5 << 3) | 0;
const EXPECTED_NO_STREAM = (6 << 3) | 2;
const EXPECTED_ANY = (7 << 3) | 2;
const EXPECTED_STREAM_EXISTS = (8 << 3) | 2;
const UUID_STRUCTURED = (1 << 3) | 2;
const UUID_STRING = (2 << 3) | 2;
const MOST_SIGNIFICANT_BITS = (1 << 3) | 0;
const LEAST_SIGNIFICANT_BITS = (2 << 3) | 0;
const STREAM_NAME = (3 << 3) | 2;
const CURRENT_REVISION = (1 << 3) | 0;
const CURRENT_NO_STREAM = (2 << 3) | 2;
const POSITION = (3 << 3) | 2;
const COMMIT_POSITION = (1 << 3) | 0;
const PREPARE_POSITION = (2 << 3) | 0;

/** The halves of a protobufjs int64 (a `Long`, or a number for small values). */
interface Int64Halves {
  low: number;
  high: number;
}

export function encodeBatchAppendSuccess(reply: BatchAppendSuccess): Uint8Array {
  const correlation = reply.correlationId;
  const structured = (correlation?.structured ?? undefined) as Message | undefined;
  const uuidString: string | undefined = correlation && !structured ? (correlation.string ?? '') : undefined;
  const mostSignificant = structured ? int64Halves(structured.most_significant_bits) : undefined;
  const leastSignificant = structured ? int64Halves(structured.least_significant_bits) : undefined;
  const uuidStringBytes = uuidString === undefined ? 0 : Buffer.byteLength(uuidString, 'utf8');
  const uuidBytes = !correlation
    ? 0
    : uuidString !== undefined
      ? 1 + varintSize(uuidStringBytes) + uuidStringBytes
      : 1 + varintSize(structuredSize(mostSignificant!, leastSignificant!)) + structuredSize(mostSignificant!, leastSignificant!);
  const nameBytes = Buffer.byteLength(reply.stream, 'utf8');
  const identifierBytes = 1 + varintSize(nameBytes) + nameBytes;
  const expected = reply.expected;
  const expectedPosition = expected.stream_position === undefined || expected.stream_position === null ? undefined : Number(expected.stream_position);
  const expectedBytes = expectedPosition !== undefined ? 1 + varintSize(expectedPosition) : expected.no_stream || expected.any || expected.stream_exists ? 2 : 0;
  const positionBytes = 1 + varintSize(reply.position.commit) + 1 + varintSize(reply.position.prepare);
  const revisionBytes = reply.currentRevision >= 0 ? 1 + varintSize(reply.currentRevision) : 2;
  const successBytes = revisionBytes + 1 + varintSize(positionBytes) + positionBytes;
  const total =
    (correlation ? 1 + varintSize(uuidBytes) + uuidBytes : 0) +
    1 + varintSize(successBytes) + successBytes + 1 + varintSize(identifierBytes) + identifierBytes + expectedBytes;

  const out = Buffer.allocUnsafe(total);
  let at = 0;
  if (correlation) {
    out[at++] = CORRELATION_ID;
    at = writeVarint(out, at, uuidBytes);
    if (uuidString !== undefined) {
      out[at++] = UUID_STRING;
      at = writeVarint(out, at, uuidStringBytes);
      at += out.write(uuidString, at, 'utf8');
    } else {
      out[at++] = UUID_STRUCTURED;
      at = writeVarint(out, at, structuredSize(mostSignificant!, leastSignificant!));
      out[at++] = MOST_SIGNIFICANT_BITS;
      at = writeVarint64(out, at, mostSignificant!);
      out[at++] = LEAST_SIGNIFICANT_BITS;
      at = writeVarint64(out, at, leastSignificant!);
    }
  }
  out[at++] = SUCCESS;
  at = writeVarint(out, at, successBytes);
  if (reply.currentRevision >= 0) {
    out[at++] = CURRENT_REVISION;
    at = writeVarint(out, at, reply.currentRevision);
  } else {
    out[at++] = CURRENT_NO_STREAM;
    out[at++] = 0;
  }
  out[at++] = POSITION;
  at = writeVarint(out, at, positionBytes);
  out[at++] = COMMIT_POSITION;
  at = writeVarint(out, at, reply.position.commit);
  out[at++] = PREPARE_POSITION;
  at = writeVarint(out, at, reply.position.prepare);
  out[at++] = STREAM_IDENTIFIER;
  at = writeVarint(out, at, identifierBytes);
  out[at++] = STREAM_NAME;
  at = writeVarint(out, at, nameBytes);
  at += out.write(reply.stream, at, 'utf8');
  if (expectedPosition !== undefined) {
    out[at++] = STREAM_POSITION;
    at = writeVarint(out, at, expectedPosition);
  } else if (expectedBytes > 0) {
    out[at++] = expected.no_stream ? EXPECTED_NO_STREAM : expected.any ? EXPECTED_ANY : EXPECTED_STREAM_EXISTS;
    out[at++] = 0;
  }
  return out;
}

function int64Halves(value: unknown): Int64Halves {
  if (typeof value === 'number') return { low: value >>> 0, high: Math.floor(value / 0x1_0000_0000) | 0 };
  const long = value as Int64Halves | null | undefined;
  return { low: (long?.low ?? 0) >>> 0, high: (long?.high ?? 0) >>> 0 };
}

function structuredSize(most: Int64Halves, least: Int64Halves): number {
  return 1 + varint64Size(most) + 1 + varint64Size(least);
}

/** Bytes of a non-negative integer below 2^53 as a varint. */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/** A 64-bit two's-complement value as a varint: negative int64s take all ten bytes. */
function varint64Size({ low, high }: Int64Halves): number {
  let size = 1;
  let lo = low >>> 0;
  let hi = high >>> 0;
  while (hi !== 0 || lo >= 0x80) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
    size++;
  }
  return size;
}

function writeVarint64(out: Buffer, at: number, { low, high }: Int64Halves): number {
  let lo = low >>> 0;
  let hi = high >>> 0;
  while (hi !== 0 || lo >= 0x80) {
    out[at++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  out[at++] = lo;
  return at;
}
