import { randomFillSync } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

/** The value of each hex digit by character code (either case); -1 for every other character. */
const HEX_DIGIT_VALUES = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let digit = 0; digit < 16; digit++) {
    const text = digit.toString(16);
    values[text.charCodeAt(0)] = digit;
    values[text.toUpperCase().charCodeAt(0)] = digit;
  }
  return values;
})();
const DASH = 0x2d;

function hexDigitAt(text: string, index: number): number {
  const code = text.charCodeAt(index);
  return code < 128 ? HEX_DIGIT_VALUES[code]! : -1;
}

/**
 * Parses a textual UUID (8-4-4-4-12 hex digits, either case) into its 16 bytes (RFC 4122 order).
 * Every event id of every append comes through here, hence a parser rather than a pattern and a
 * hex decode of a copy without dashes (a quarter of the time).
 */
export function uuidToBytes(uuid: string): Uint8Array {
  const bytes = Buffer.allocUnsafe(16);
  const wellFormed =
    typeof uuid === 'string' && uuid.length === 36 && uuid.charCodeAt(8) === DASH && uuid.charCodeAt(13) === DASH && uuid.charCodeAt(18) === DASH && uuid.charCodeAt(23) === DASH;
  let at = 0;
  for (let byte = 0; wellFormed && byte < 16; byte++) {
    // The groups have even lengths, so a byte's two digits never straddle a dash.
    if (at === 8 || at === 13 || at === 18 || at === 23) at++;
    const high = hexDigitAt(uuid, at);
    const low = hexDigitAt(uuid, at + 1);
    if (high < 0 || low < 0) break;
    bytes[byte] = (high << 4) | low;
    at += 2;
  }
  if (at !== 36) throw new InvalidArgumentError(`'${uuid}' is not a UUID (expected 8-4-4-4-12 hex digits)`);
  return bytes;
}

export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
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
