import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Long from 'long';
import protobuf from 'protobufjs';
import type { Codec } from './grpc-server.js';

/**
 * The KurrentDB wire protocol, from our own .proto files in `proto/`, compiled at start-up by
 * protobufjs (which generates its encoders and decoders as code on first use). Field names stay
 * as written in the .proto files (snake_case). 64-bit integers decode as `Long` (exact: UUIDs
 * travel as two int64s); `toNumber` turns positions and revisions into numbers.
 */
const PROTO_DIRECTORY = fileURLToPath(new URL('../../../../proto/', import.meta.url));

/** protobufjs ships the well-known types; descriptor.proto (used by our error options) is a file in its package. */
const PROTOBUFJS_DIRECTORY = dirname(createRequire(import.meta.url).resolve('protobufjs'));

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => {
  if (target === 'google/protobuf/descriptor.proto') return join(PROTOBUFJS_DIRECTORY, target);
  return target.startsWith('google/protobuf/') ? target : PROTO_DIRECTORY + target;
};
root.loadSync(
  [
    'event_store/client/shared.proto',
    'event_store/client/streams.proto',
    'event_store/client/persistent_subscriptions.proto',
    'event_store/client/server_features.proto',
    'event_store/client/gossip.proto',
    'event_store/client/operations.proto',
    'kurrentdb/protocol/v2/streams/streams.proto',
    'kurrentdb/protocol/v2/streams/errors.proto',
    'google/rpc/status.proto',
    'google/rpc/error_details.proto',
  ],
  { keepCase: true },
);

/** A protobufjs-decoded message: fields by their .proto names, a oneof's case by its name. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = Record<string, any>;

export function codecOf(typeName: string): Codec<Message> {
  const type = root.lookupType(typeName);
  return {
    decode: (bytes) => type.decode(bytes) as unknown as Message,
    encode: (message) => type.encode(message).finish(),
  };
}

export function typeOf(typeName: string): protobuf.Type {
  return root.lookupType(typeName);
}

/** A uint64/int64 field as a number (exact below 2^53, which positions and revisions stay under). */
export function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value && typeof value === 'object' && 'toNumber' in value) return (value as { toNumber(): number }).toNumber();
  return Number(value ?? 0);
}

/** UUIDs travel either as a string or as two big-endian int64 halves ("structured"). */
export function uuidFromMessage(uuid: Message | null | undefined): string | undefined {
  if (!uuid) return undefined;
  if (typeof uuid.string === 'string' && uuid.string.length > 0) return uuid.string;
  if (uuid.structured) {
    const bytes = Buffer.alloc(16);
    writeInt64(bytes, 0, uuid.structured.most_significant_bits);
    writeInt64(bytes, 8, uuid.structured.least_significant_bits);
    const hex = bytes.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  return undefined;
}

function writeInt64(bytes: Buffer, offset: number, value: unknown): void {
  const long = typeof value === 'number' ? Long.fromNumber(value) : (value as { high: number; low: number });
  bytes.writeInt32BE(long.high | 0, offset);
  bytes.writeInt32BE(long.low | 0, offset + 4);
}

export function uuidToMessage(uuid: string, structured: boolean): Message {
  if (!structured) return { string: uuid };
  const bytes = Buffer.from(uuid.replaceAll('-', ''), 'hex');
  return {
    structured: {
      most_significant_bits: Long.fromBits(bytes.readInt32BE(4), bytes.readInt32BE(0), false),
      least_significant_bits: Long.fromBits(bytes.readInt32BE(12), bytes.readInt32BE(8), false),
    },
  };
}

/**
 * The `created` event property: 100-nanosecond ticks since the Unix epoch (the servers write it
 * that way and both clients decode it so; see docs/protocol-notes.md), as a decimal string.
 */
export function createdTicks(createdMicros: number): string {
  return (BigInt(Math.round(createdMicros)) * 10n).toString();
}

export function streamNameOf(identifier: Message | null | undefined): string {
  const name = identifier?.stream_name;
  return name ? Buffer.from(name).toString('utf8') : '';
}

export function streamIdentifier(stream: string): Message {
  return { stream_name: Buffer.from(stream, 'utf8') };
}
