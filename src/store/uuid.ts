import { randomFillSync } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Parses a textual UUID into its 16 bytes (RFC 4122 order). */
export function uuidToBytes(uuid: string): Uint8Array {
  if (!UUID_PATTERN.test(uuid)) throw new InvalidArgumentError(`'${uuid}' is not a UUID (expected 8-4-4-4-12 hex digits)`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The compact map key the idempotency window uses for an id. */
export function idKeyOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('latin1');
}

const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let poolOffset = 0;

/** A random (version 4) UUID as bytes, drawn from a pool refilled 4 KiB at a time: no string round trip. */
export function randomUuidBytes(): Uint8Array {
  if (poolOffset >= pool.byteLength) {
    pool = randomFillSync(Buffer.allocUnsafe(16 * POOL_IDS));
    poolOffset = 0;
  }
  const id = pool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return id;
}
