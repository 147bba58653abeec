import { allocateFrame, FRAME_HEADER_BYTES, readUint64, writeUint64 } from '../storage/record-frame.js';

/**
 * The payload of an Events record: one atomic write of one or more events, possibly to several
 * streams (a soft-deleted stream's recreation writes its metadata and its events together).
 *
 *   payload header (8 bytes): u8 format version, u8 reserved, u16 reserved, u32 event count
 *   per event, a fixed 50-byte header then the variable parts:
 *     0  u32 entry length   4 u64 revision   12 16-byte id   28 f64 created (µs since the Unix epoch)
 *     36 u8 flags (bit 0: data is JSON)   37 u8 reserved   38 u16 stream bytes   40 u16 type bytes
 *     42 u32 metadata bytes   46 u32 data bytes
 *     then stream (UTF-8), type (UTF-8), metadata, data
 *
 * An event's position in the log (what clients see as its prepare position) is the position of
 * its entry: record position + frame header + offset of the entry in the payload.
 */
export const EVENTS_FORMAT_VERSION = 1;
const PAYLOAD_HEADER_BYTES = 8;
const ENTRY_HEADER_BYTES = 50;
const FLAG_JSON = 1;

export interface EventToEncode {
  stream: string;
  revision: number;
  /** 16 bytes, RFC 4122 byte order. */
  id: Uint8Array;
  type: string;
  isJson: boolean;
  createdMicros: number;
  metadata: Uint8Array;
  data: Uint8Array;
}

/** An event as stored, with where it lives. */
export interface StoredEvent {
  stream: string;
  revision: number;
  id: Uint8Array;
  type: string;
  isJson: boolean;
  createdMicros: number;
  metadata: Uint8Array;
  data: Uint8Array;
  /** Position of the record (the atomic write) that holds the event: its commit position. */
  commitPosition: number;
  /** Position of the event's own entry: its prepare position. */
  preparePosition: number;
  /** Offset of the entry within the record's payload. */
  entryOffset: number;
}

/** What the index needs of an event: no data, no metadata, no copies. */
export interface EventHeader {
  stream: string;
  revision: number;
  type: string;
  entryOffset: number;
  createdMicros: number;
}

export function encodedEventSize(event: EventToEncode, streamBytes: number, typeBytes: number): number {
  return ENTRY_HEADER_BYTES + streamBytes + typeBytes + event.metadata.byteLength + event.data.byteLength;
}

/**
 * Encodes one atomic write straight into a log frame (see `allocateFrame`): the returned `frame`
 * is what the log writes once sealed, `payload` is the view of it the index applies.
 */
export function encodeEvents(events: readonly EventToEncode[]): { frame: Uint8Array; payload: Uint8Array; entryOffsets: number[] } {
  // Names are measured, then written straight into the frame: no intermediate buffers.
  const streamBytes = new Array<number>(events.length);
  const typeBytes = new Array<number>(events.length);
  let total = PAYLOAD_HEADER_BYTES;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    // Consecutive events of one stream are the common case: measure its name once.
    streamBytes[i] = i > 0 && events[i - 1]!.stream === event.stream ? streamBytes[i - 1]! : Buffer.byteLength(event.stream, 'utf8');
    typeBytes[i] = Buffer.byteLength(event.type, 'utf8');
    total += encodedEventSize(event, streamBytes[i]!, typeBytes[i]!);
  }
  const { frame, payload } = allocateFrame(total);
  const view = new DataView(payload.buffer, payload.byteOffset, total);
  view.setUint8(0, EVENTS_FORMAT_VERSION);
  view.setUint8(1, 0);
  view.setUint16(2, 0, true);
  view.setUint32(4, events.length, true);
  let offset = PAYLOAD_HEADER_BYTES;
  const entryOffsets = new Array<number>(events.length);
  for (let i = 0; i < events.length; i++) {
    entryOffsets[i] = offset;
    const event = events[i]!;
    const length = encodedEventSize(event, streamBytes[i]!, typeBytes[i]!);
    view.setUint32(offset, length, true);
    writeUint64(view, offset + 4, event.revision);
    payload.set(event.id, eventIdOffset(offset));
    view.setFloat64(offset + 28, event.createdMicros, true);
    view.setUint8(offset + 36, event.isJson ? FLAG_JSON : 0);
    view.setUint8(offset + 37, 0);
    view.setUint16(offset + 38, streamBytes[i]!, true);
    view.setUint16(offset + 40, typeBytes[i]!, true);
    view.setUint32(offset + 42, event.metadata.byteLength, true);
    view.setUint32(offset + 46, event.data.byteLength, true);
    let cursor = offset + ENTRY_HEADER_BYTES;
    cursor += payload.write(event.stream, cursor, streamBytes[i]!, 'utf8');
    cursor += payload.write(event.type, cursor, typeBytes[i]!, 'utf8');
    payload.set(event.metadata, cursor);
    cursor += event.metadata.byteLength;
    payload.set(event.data, cursor);
    offset += length;
  }
  return { frame, payload, entryOffsets };
}

function payloadView(payload: Uint8Array): DataView {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const version = view.getUint8(0);
  if (version !== EVENTS_FORMAT_VERSION) throw new Error(`unknown events record format version ${version}`);
  return view;
}

function bufferOf(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** The header of the event whose entry starts at `entryOffset`, and the entry's length. */
export function eventHeaderAt(payload: Uint8Array, entryOffset: number): EventHeader & { entryLength: number } {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const bytes = bufferOf(payload);
  const streamBytes = view.getUint16(entryOffset + 38, true);
  const typeBytes = view.getUint16(entryOffset + 40, true);
  const streamStart = entryOffset + ENTRY_HEADER_BYTES;
  return {
    stream: bytes.toString('utf8', streamStart, streamStart + streamBytes),
    revision: readUint64(view, entryOffset + 4),
    type: bytes.toString('utf8', streamStart + streamBytes, streamStart + streamBytes + typeBytes),
    entryOffset,
    createdMicros: view.getFloat64(entryOffset + 28, true),
    entryLength: view.getUint32(entryOffset, true),
  };
}

/** Calls `visit` with the header of each event, in order, without copying data. */
export function forEachEventHeader(payload: Uint8Array, visit: (header: EventHeader) => void): void {
  const count = payloadView(payload).getUint32(4, true);
  let offset = PAYLOAD_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const header = eventHeaderAt(payload, offset);
    visit(header);
    offset += header.entryLength;
  }
}

/** Offsets of every entry of a record, in order. */
export function entryOffsetsOf(payload: Uint8Array): number[] {
  const view = payloadView(payload);
  const count = view.getUint32(4, true);
  const offsets = new Array<number>(count);
  let offset = PAYLOAD_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    offsets[i] = offset;
    offset += view.getUint32(offset, true);
  }
  return offsets;
}

export function eventCount(payload: Uint8Array): number {
  return payloadView(payload).getUint32(4, true);
}

/** Decodes the event whose entry starts at `entryOffset`. Data, metadata and id are views into `payload`. */
export function decodeEventAt(payload: Uint8Array, entryOffset: number, commitPosition: number): StoredEvent {
  const view = payloadView(payload);
  const bytes = bufferOf(payload);
  const streamBytes = view.getUint16(entryOffset + 38, true);
  const typeBytes = view.getUint16(entryOffset + 40, true);
  const metadataBytes = view.getUint32(entryOffset + 42, true);
  const dataBytes = view.getUint32(entryOffset + 46, true);
  let cursor = entryOffset + ENTRY_HEADER_BYTES;
  const stream = bytes.toString('utf8', cursor, cursor + streamBytes);
  cursor += streamBytes;
  const type = bytes.toString('utf8', cursor, cursor + typeBytes);
  cursor += typeBytes;
  const metadata = bytes.subarray(cursor, cursor + metadataBytes);
  cursor += metadataBytes;
  const data = bytes.subarray(cursor, cursor + dataBytes);
  return {
    stream,
    revision: readUint64(view, entryOffset + 4),
    id: bytes.subarray(eventIdOffset(entryOffset), eventIdOffset(entryOffset) + EVENT_ID_BYTES),
    type,
    isJson: (view.getUint8(entryOffset + 36) & FLAG_JSON) !== 0,
    createdMicros: view.getFloat64(entryOffset + 28, true),
    metadata,
    data,
    commitPosition,
    preparePosition: preparePositionOf(commitPosition, entryOffset),
    entryOffset,
  };
}

/** Decodes every event of a record, in order. */
export function decodeEvents(payload: Uint8Array, commitPosition: number): StoredEvent[] {
  return entryOffsetsOf(payload).map((offset) => decodeEventAt(payload, offset, commitPosition));
}

/** The length of an event id (a UUID's 16 bytes). */
export const EVENT_ID_BYTES = 16;

/** Where the bytes of an event's id start, given where its entry starts. */
export function eventIdOffset(entryOffset: number): number {
  return entryOffset + 12;
}

/** The prepare position of the entry at `entryOffset` of the record at `commitPosition`. */
export function preparePositionOf(commitPosition: number, entryOffset: number): number {
  return commitPosition + FRAME_HEADER_BYTES + entryOffset;
}
