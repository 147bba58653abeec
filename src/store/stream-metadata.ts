import { InvalidArgumentError } from '../errors.js';

/**
 * Stream metadata, as KurrentDB defines it: a JSON object in the stream's `$$` stream with the
 * system keys below; any other key is the user's and is kept as is.
 */
export interface StreamMetadata {
  /** `$maxCount`: only the newest N events are readable. */
  maxCount?: number;
  /** `$maxAge`: events older than this many seconds are not readable. */
  maxAgeSeconds?: number;
  /** `$tb`: events before this revision are not readable. */
  truncateBefore?: number;
  /** `$cacheControl`, seconds (HTTP API). */
  cacheControlSeconds?: number;
  /** `$acl`, kept for the security layer. */
  acl?: Record<string, unknown>;
  /** Every other key, untouched. */
  custom: Record<string, unknown>;
}

/** The `$tb` a soft delete writes (the largest signed 64-bit integer, as KurrentDB writes it). */
export const SOFT_DELETED_TB_TEXT = '9223372036854775807';
/** Any `$tb` at or above this marks the stream soft-deleted (JSON parses the 64-bit value inexactly). */
const SOFT_DELETED_THRESHOLD = Number.MAX_SAFE_INTEGER;

export function isSoftDeleted(metadata: StreamMetadata | undefined): boolean {
  return metadata?.truncateBefore !== undefined && metadata.truncateBefore >= SOFT_DELETED_THRESHOLD;
}

function positiveInteger(value: unknown, key: string, allowZero: boolean): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new InvalidArgumentError(`stream metadata '${key}' must be a ${allowZero ? 'non-negative' : 'positive'} integer, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Builds metadata from a parsed JSON value, validating the system keys. */
export function metadataFromJson(value: unknown): StreamMetadata {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError('stream metadata must be a JSON object');
  }
  const metadata: StreamMetadata = { custom: {} };
  for (const [key, field] of Object.entries(value)) {
    switch (key) {
      case '$maxCount':
        metadata.maxCount = positiveInteger(field, key, false);
        break;
      case '$maxAge':
        metadata.maxAgeSeconds = positiveInteger(field, key, false);
        break;
      case '$tb':
        metadata.truncateBefore = positiveInteger(field, key, true);
        break;
      case '$cacheControl':
        metadata.cacheControlSeconds = positiveInteger(field, key, false);
        break;
      case '$acl':
        if (typeof field !== 'object' || field === null || Array.isArray(field)) throw new InvalidArgumentError(`stream metadata '$acl' must be an object`);
        metadata.acl = field as Record<string, unknown>;
        break;
      default:
        metadata.custom[key] = field;
    }
  }
  return metadata;
}

export function parseMetadataBytes(bytes: Uint8Array): StreamMetadata {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new InvalidArgumentError(`stream metadata is not valid JSON: ${(error as Error).message}`);
  }
  return metadataFromJson(value);
}

/** Metadata as stored by the index; never throws (the store only ever writes valid metadata). */
export function parseStoredMetadata(json: string | null): StreamMetadata | undefined {
  if (json === null) return undefined;
  try {
    return metadataFromJson(JSON.parse(json));
  } catch {
    return { custom: {} };
  }
}

/** Serialises metadata to JSON text, writing the soft-delete marker exactly as a 64-bit integer. */
export function metadataToJson(metadata: StreamMetadata): string {
  const object: Record<string, unknown> = { ...metadata.custom };
  if (metadata.maxCount !== undefined) object.$maxCount = metadata.maxCount;
  if (metadata.maxAgeSeconds !== undefined) object.$maxAge = metadata.maxAgeSeconds;
  if (metadata.cacheControlSeconds !== undefined) object.$cacheControl = metadata.cacheControlSeconds;
  if (metadata.acl !== undefined) object.$acl = metadata.acl;
  if (metadata.truncateBefore === undefined) return JSON.stringify(object);
  const softDeleted = isSoftDeleted(metadata);
  object.$tb = softDeleted ? 0 : metadata.truncateBefore;
  const json = JSON.stringify(object);
  // `$tb` is the last key written, so its text is the tail of the JSON.
  return softDeleted ? `${json.slice(0, -'0}'.length)}${SOFT_DELETED_TB_TEXT}}` : json;
}

/** The first revision a reader may see, given the metadata and the stream's last revision. */
export function firstVisibleRevision(metadata: StreamMetadata | undefined, lastRevision: number): number {
  if (!metadata) return 0;
  let first = 0;
  if (metadata.truncateBefore !== undefined) first = Math.max(first, metadata.truncateBefore);
  if (metadata.maxCount !== undefined) first = Math.max(first, lastRevision - metadata.maxCount + 1);
  return first;
}

/** Has the event, created at `createdMicros`, outlived the stream's `$maxAge` at time `nowMs`? */
export function isExpired(metadata: StreamMetadata | undefined, createdMicros: number, nowMs: number): boolean {
  if (metadata?.maxAgeSeconds === undefined) return false;
  return createdMicros < (nowMs - metadata.maxAgeSeconds * 1000) * 1000;
}
