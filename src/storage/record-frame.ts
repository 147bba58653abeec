import { crc32c } from '@node-rs/crc32';

/**
 * The frame of one log record:
 *
 *   offset  size  field
 *   0       4     length of the whole frame, header and trailer included (u32 LE)
 *   4       4     CRC32C of bytes [8, length - 4): type, flags, term, index, payload
 *   8       1     record type
 *   9       1     flags (reserved, zero)
 *   10      2     reserved, zero
 *   12      8     term (u64 LE)
 *   20      8     index (u64 LE)
 *   28      n     payload
 *   28+n    4     length again, so the log can be walked backwards
 */
export const FRAME_HEADER_BYTES = 28;
export const FRAME_TRAILER_BYTES = 4;
export const FRAME_OVERHEAD_BYTES = FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES;

export const RecordType = {
  /** A batch of events (one atomic write, possibly to several streams). */
  Events: 1,
  /** An empty entry a new leader writes at the start of its term. */
  NoOp: 2,
  /** The voter set of the cluster. */
  Configuration: 3,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export interface LogRecord {
  /** Byte offset of the frame in the logical log. */
  position: number;
  /** Byte offset just past the frame: the next record's position. */
  end: number;
  type: number;
  term: number;
  index: number;
  payload: Uint8Array;
}

const TWO_TO_32 = 0x1_0000_0000;

export function writeUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % TWO_TO_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_TO_32), true);
}

export function readUint64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * TWO_TO_32;
}

/**
 * A frame with room for `payloadBytes` of payload, which the caller fills in place through
 * `payload` before `sealFrame`: encoders write once into the buffer the log will write.
 */
export function allocateFrame(payloadBytes: number): { frame: Buffer; payload: Buffer } {
  const frame = Buffer.allocUnsafe(FRAME_OVERHEAD_BYTES + payloadBytes);
  return { frame, payload: frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadBytes) };
}

/** Writes the header, the trailer and the CRC of a frame whose payload is already in place. */
export function sealFrame(frame: Uint8Array, type: number, term: number, index: number): void {
  const length = frame.byteLength;
  const view = new DataView(frame.buffer, frame.byteOffset, length);
  view.setUint32(0, length, true);
  view.setUint8(8, type);
  view.setUint8(9, 0);
  view.setUint16(10, 0, true);
  writeUint64(view, 12, term);
  writeUint64(view, 20, index);
  view.setUint32(length - 4, length, true);
  view.setUint32(4, crc32c(frame.subarray(8, length - 4)), true);
}

export function encodeFrame(type: number, term: number, index: number, payload: Uint8Array): Uint8Array {
  const { frame, payload: room } = allocateFrame(payload.byteLength);
  room.set(payload);
  sealFrame(frame, type, term, index);
  return frame;
}

/** The payload of a frame (a view). */
export function framePayload(frame: Uint8Array): Uint8Array {
  return frame.subarray(FRAME_HEADER_BYTES, frame.byteLength - FRAME_TRAILER_BYTES);
}

export type FrameCheck =
  | { ok: true; length: number }
  /** Not enough bytes to hold the frame its header announces. */
  | { ok: false; reason: 'incomplete' | 'bad-length' | 'bad-trailer' | 'bad-crc'; detail: string };

/**
 * Checks the frame that starts at `offset` of `bytes` (which end where the available data ends).
 * `maxFrameBytes` rejects lengths no writer could have produced.
 */
export function checkFrame(bytes: Uint8Array, offset: number, maxFrameBytes: number): FrameCheck {
  const available = bytes.byteLength - offset;
  if (available < FRAME_OVERHEAD_BYTES) {
    return { ok: false, reason: 'incomplete', detail: `only ${available} bytes left, a frame needs at least ${FRAME_OVERHEAD_BYTES}` };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, available);
  const length = view.getUint32(0, true);
  if (length < FRAME_OVERHEAD_BYTES || length > maxFrameBytes) {
    return { ok: false, reason: 'bad-length', detail: `frame length ${length} is outside [${FRAME_OVERHEAD_BYTES}, ${maxFrameBytes}]` };
  }
  if (length > available) {
    return { ok: false, reason: 'incomplete', detail: `frame length ${length} runs past the end of the data (${available} bytes left)` };
  }
  const trailer = view.getUint32(length - 4, true);
  if (trailer !== length) {
    return { ok: false, reason: 'bad-trailer', detail: `trailing length ${trailer} does not match the header's ${length}` };
  }
  const stored = view.getUint32(4, true);
  const actual = crc32c(bytes.subarray(offset + 8, offset + length - 4));
  if (stored !== actual) {
    return { ok: false, reason: 'bad-crc', detail: `CRC32C is ${actual.toString(16)}, the frame says ${stored.toString(16)}` };
  }
  return { ok: true, length };
}

/** Decodes a frame already checked with `checkFrame`. The payload is a view, not a copy. */
export function decodeFrame(bytes: Uint8Array, offset: number, length: number, position: number): LogRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, length);
  return {
    position,
    end: position + length,
    type: view.getUint8(8),
    term: readUint64(view, 12),
    index: readUint64(view, 20),
    payload: bytes.subarray(offset + FRAME_HEADER_BYTES, offset + length - FRAME_TRAILER_BYTES),
  };
}
