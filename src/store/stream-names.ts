import { InvalidArgumentError } from '../errors.js';

export const MAX_STREAM_NAME_BYTES = 1024;
export const MAX_EVENT_TYPE_BYTES = 1024;
export const ALL_STREAM = '$all';
export const METADATA_EVENT_TYPE = '$metadata';
export const TOMBSTONE_EVENT_TYPE = '$streamDeleted';

/** `$$name` holds the metadata of `name`. */
export function isMetastream(stream: string): boolean {
  return stream.startsWith('$$');
}

export function metastreamOf(stream: string): string {
  return `$$${stream}`;
}

export function streamOfMetastream(metastream: string): string {
  return metastream.slice(2);
}

export function isSystemStream(stream: string): boolean {
  return stream.startsWith('$');
}

export function validateStreamName(stream: unknown): asserts stream is string {
  if (typeof stream !== 'string' || stream.length === 0) {
    throw new InvalidArgumentError('a stream name must be a non-empty string', { stream });
  }
  const bytes = Buffer.byteLength(stream, 'utf8');
  if (bytes > MAX_STREAM_NAME_BYTES) {
    throw new InvalidArgumentError(`stream name is ${bytes} bytes long; the limit is ${MAX_STREAM_NAME_BYTES} bytes`, { stream: stream.slice(0, 64) });
  }
  if (stream === ALL_STREAM) throw new InvalidArgumentError(`'${ALL_STREAM}' is the global log; it can be read, not written or deleted`);
  if (stream === '$$') throw new InvalidArgumentError(`'$$' is not a stream: a metadata stream is '$$' followed by a stream name`);
}

/** Checks that a caller (not the store itself) may write to `stream`. */
export function validateUserWritableStream(stream: string): void {
  if (isSystemStream(stream) && !isMetastream(stream)) {
    throw new InvalidArgumentError(
      `stream names starting with '$' are reserved for the system ('${stream}'); metadata is written to '$$<stream>' or with setStreamMetadata`,
      { stream },
    );
  }
}

export function validateEventType(type: unknown, stream: string): asserts type is string {
  if (typeof type !== 'string' || type.length === 0) throw new InvalidArgumentError('an event type must be a non-empty string', { stream });
  const bytes = Buffer.byteLength(type, 'utf8');
  if (bytes > MAX_EVENT_TYPE_BYTES) {
    throw new InvalidArgumentError(`event type is ${bytes} bytes long; the limit is ${MAX_EVENT_TYPE_BYTES} bytes`, { stream });
  }
  if (type === TOMBSTONE_EVENT_TYPE) {
    throw new InvalidArgumentError(`'${TOMBSTONE_EVENT_TYPE}' is written by the store when a stream is tombstoned; use tombstoneStream`, { stream });
  }
  if (isMetastream(stream) !== (type === METADATA_EVENT_TYPE)) {
    throw new InvalidArgumentError(
      isMetastream(stream)
        ? `a metadata stream ('${stream}') only takes '${METADATA_EVENT_TYPE}' events`
        : `'${METADATA_EVENT_TYPE}' events belong in the metadata stream '$$${stream}'`,
      { stream },
    );
  }
}
