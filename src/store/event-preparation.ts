import { InvalidArgumentError, MaximumAppendSizeExceededError } from '../errors.js';
import type { EventToEncode } from './event-codec.js';
import { parseMetadataBytes } from './stream-metadata.js';
import { isMetastream, validateEventType } from './stream-names.js';
import type { EventData } from './types.js';
import { IdTable } from './id-table.js';
import { bytesToUuid, randomUuidBytes, uuidToBytes } from './uuid.js';

export interface SizeLimits {
  /** Largest single event (data + metadata + type + stream name). */
  maxEventSizeBytes: number;
  /** Largest append (all its events together). */
  maxAppendSizeBytes: number;
}

export const DEFAULT_MAX_EVENT_SIZE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_APPEND_SIZE_BYTES = 32 * 1024 * 1024;

/** An event validated and turned into bytes, waiting for its revision. */
export type PreparedEvent = Omit<EventToEncode, 'revision' | 'createdMicros'>;

/** The ids of one append, to find an id given twice; emptied after each use. Bigger appends get their own. */
const appendIds = new IdTable(256);
const APPEND_IDS_MAX_EVENTS = 4096;

const EMPTY = new Uint8Array(0);

/** Bytes as given, or JSON text; `undefined` is no bytes. */
function toBytes(value: unknown, what: string): Uint8Array {
  if (value === undefined) return EMPTY;
  if (value instanceof Uint8Array) return value;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new InvalidArgumentError(`event ${what} cannot be serialised as JSON: ${(error as Error).message}`);
  }
  if (json === undefined) throw new InvalidArgumentError(`event ${what} cannot be serialised as JSON`);
  return Buffer.from(json, 'utf8');
}

/**
 * Validates the events of one append and turns them into bytes: types, ids (generated when
 * absent, never repeated within the append), content, metadata JSON for `$$` streams, and sizes.
 */
export function prepareEvents(stream: string, events: readonly EventData[], limits: SizeLimits, newUuid?: () => string): PreparedEvent[] {
  if (!Array.isArray(events)) throw new InvalidArgumentError('events must be an array');
  const prepared: PreparedEvent[] = [];
  const ids = events.length < 2 ? undefined : events.length > APPEND_IDS_MAX_EVENTS ? new IdTable(events.length * 2) : appendIds;
  const streamBytes = Buffer.byteLength(stream, 'utf8');
  let total = 0;
  const inserted: Uint8Array[] = [];
  try {
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      if (typeof event !== 'object' || event === null) throw new InvalidArgumentError(`event ${i} is not an object`);
      validateEventType(event.type, stream);
      const id = event.id !== undefined ? uuidToBytes(event.id) : newUuid ? uuidToBytes(newUuid()) : randomUuidBytes();
      if (ids) {
        if (ids.set(id, 0, 1, i) !== 0) throw new InvalidArgumentError(`event id ${bytesToUuid(id)} appears twice in one append`, { stream });
        inserted.push(id);
      }
      if (event.contentType !== undefined && event.contentType !== 'application/json' && event.contentType !== 'application/octet-stream') {
        throw new InvalidArgumentError(`content type must be 'application/json' or 'application/octet-stream', not '${String(event.contentType)}'`);
      }
      const data = toBytes(event.data, 'data');
      const metadata = toBytes(event.metadata, 'metadata');
      const isJson = event.contentType ? event.contentType === 'application/json' : !(event.data instanceof Uint8Array);
      if (isMetastream(stream)) parseMetadataBytes(data);
      const size = data.byteLength + metadata.byteLength + Buffer.byteLength(event.type, 'utf8') + streamBytes;
      if (size > limits.maxEventSizeBytes) {
        throw new MaximumAppendSizeExceededError(size, limits.maxEventSizeBytes, `event ${i} of the append to '${stream}'`, 'event');
      }
      total += size;
      prepared.push({ stream, id, type: event.type, isJson, data, metadata });
    }
  } finally {
    if (ids === appendIds) {
      for (const id of inserted) {
        const slot = ids.find(id, 0);
        if (slot >= 0) ids.removeAt(slot);
      }
    }
  }
  if (total > limits.maxAppendSizeBytes) {
    throw new MaximumAppendSizeExceededError(total, limits.maxAppendSizeBytes, `the append to '${stream}'`);
  }
  return prepared;
}
