import { LogCorruptionError } from './errors.js';
import { checkFrame, FRAME_OVERHEAD_BYTES, type FrameCheck } from './record-frame.js';
import type { Segment } from './segments.js';

const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;

export interface RecoveryLimits {
  maxFrameBytes: number;
  /** The most bytes one unsynced flush can hold: a torn tail longer than this is not a torn write. */
  maxTornTailBytes: number;
}

export interface ScanResult {
  /** Position just past the last valid record. */
  validEnd: number;
  /** Number of records verified. */
  recordsVerified: number;
  /** Bytes after `validEnd` that are a torn write and must be cut off. */
  tornBytes: number;
}

/**
 * Verifies every frame of the last segments from `fromPosition` to the end of the data and decides
 * what an invalid frame means. A crash can only damage the last, unsynced flush, and only by losing
 * or cutting short some of its bytes. So an invalid frame at the tail with nothing valid after it
 * is a torn write (cut off); an invalid frame followed by a valid one, a frame whose framing is
 * intact but whose CRC fails, or damage in a sealed segment is corruption of durable data (refuse).
 */
export async function scanTail(segments: readonly Segment[], fromPosition: number, limits: RecoveryLimits): Promise<ScanResult> {
  let recordsVerified = 0;
  for (let index = 0; index < segments.length; index++) {
    const segment = segments[index]!;
    const segmentEnd = segment.basePosition + segment.sizeBytes;
    if (segmentEnd <= fromPosition && index < segments.length - 1) continue;
    const isLast = index === segments.length - 1;
    let offset = Math.max(0, fromPosition - segment.basePosition);
    while (offset < segment.sizeBytes) {
      const windowBytes = Math.min(SCAN_CHUNK_BYTES, segment.sizeBytes - offset);
      let window = await readExactly(segment, offset, windowBytes);
      let cursor = 0;
      while (cursor < window.byteLength) {
        let check = checkFrame(window, cursor, limits.maxFrameBytes);
        if (!check.ok && check.reason === 'incomplete' && offset + window.byteLength < segment.sizeBytes) {
          // The frame continues past this window: read a window that starts at the frame.
          offset += cursor;
          const needed = Math.max(frameLengthHint(window, cursor), SCAN_CHUNK_BYTES);
          window = await readExactly(segment, offset, Math.min(needed, segment.sizeBytes - offset));
          cursor = 0;
          check = checkFrame(window, cursor, limits.maxFrameBytes);
        }
        if (!check.ok) {
          const badOffset = offset + cursor;
          await judgeInvalidFrame(segment, badOffset, check, isLast, limits);
          return { validEnd: segment.basePosition + badOffset, recordsVerified, tornBytes: segment.sizeBytes - badOffset };
        }
        cursor += check.length;
        recordsVerified++;
      }
      offset += window.byteLength;
    }
  }
  const last = segments.at(-1);
  return { validEnd: last ? last.basePosition + last.sizeBytes : 0, recordsVerified, tornBytes: 0 };
}

function frameLengthHint(window: Uint8Array, cursor: number): number {
  if (window.byteLength - cursor < 4) return FRAME_OVERHEAD_BYTES;
  return new DataView(window.buffer, window.byteOffset + cursor, 4).getUint32(0, true);
}

async function judgeInvalidFrame(
  segment: Segment,
  badOffset: number,
  check: Exclude<FrameCheck, { ok: true }>,
  isLast: boolean,
  limits: RecoveryLimits,
): Promise<void> {
  const corrupt = (detail: string) =>
    new LogCorruptionError(segment.file.path, badOffset, segment.basePosition + badOffset, detail);
  if (!isLast) throw corrupt(`${check.detail} (in a sealed segment)`);
  if (check.reason === 'bad-crc') throw corrupt(`${check.detail}; the frame is complete, so this is not a torn write`);
  const tailBytes = segment.sizeBytes - badOffset;
  if (tailBytes > limits.maxTornTailBytes) {
    throw corrupt(`${check.detail}; ${tailBytes} bytes follow, more than one unsynced flush can hold (${limits.maxTornTailBytes})`);
  }
  const rest = await readExactly(segment, badOffset, tailBytes);
  const validAfter = findValidFrame(rest, 1, limits.maxFrameBytes);
  if (validAfter !== undefined) {
    throw corrupt(`${check.detail}; a valid record follows at file offset ${badOffset + validAfter}, so the damage is not at the tail`);
  }
}

/** The first offset ≥ `from` where a complete, valid frame starts, if any. */
export function findValidFrame(bytes: Uint8Array, from: number, maxFrameBytes: number): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = from; offset + FRAME_OVERHEAD_BYTES <= bytes.byteLength; offset++) {
    const length = view.getUint32(offset, true);
    // Cheap filters first: a plausible length that fits and a matching trailer, then the CRC.
    if (length < FRAME_OVERHEAD_BYTES || length > maxFrameBytes || offset + length > bytes.byteLength) continue;
    if (view.getUint32(offset + length - 4, true) !== length) continue;
    if (checkFrame(bytes, offset, maxFrameBytes).ok) return offset;
  }
  return undefined;
}

async function readExactly(segment: Segment, offset: number, length: number): Promise<Uint8Array> {
  const bytes = Buffer.allocUnsafe(length);
  const read = await segment.file.read(bytes, 0, length, offset);
  return bytes.subarray(0, read);
}

const DAMAGE_SCAN_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * Walks the frames of one segment forwards from `fromOffset` (a frame boundary) and returns the
 * first invalid one before `toOffset`, with the number of valid frames before it. Used to name
 * damage exactly (a backwards read cannot trust a damaged trailing length) and by `verify`.
 */
export async function findFirstDamage(
  segment: Segment,
  fromOffset: number,
  toOffset: number,
  maxFrameBytes: number,
): Promise<{ validFrames: number; validEndOffset: number; damage?: { offset: number; detail: string } }> {
  let validFrames = 0;
  let offset = fromOffset;
  while (offset < toOffset) {
    let bytes = await readExactly(segment, offset, Math.min(DAMAGE_SCAN_CHUNK_BYTES, toOffset - offset));
    let cursor = 0;
    while (cursor < bytes.byteLength) {
      let check = checkFrame(bytes, cursor, maxFrameBytes);
      if (!check.ok && check.reason === 'incomplete' && offset + bytes.byteLength < toOffset) {
        if (cursor > 0) break;
        bytes = await readExactly(segment, offset, Math.min(Math.max(frameLengthHint(bytes, 0), FRAME_OVERHEAD_BYTES), toOffset - offset));
        check = checkFrame(bytes, 0, maxFrameBytes);
      }
      if (!check.ok) return { validFrames, validEndOffset: offset + cursor, damage: { offset: offset + cursor, detail: check.detail } };
      cursor += check.length;
      validFrames++;
    }
    if (cursor === 0) break;
    offset += cursor;
  }
  return { validFrames, validEndOffset: offset };
}
