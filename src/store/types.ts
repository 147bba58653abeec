import type { ExpectedState } from './expected-state.js';

export type { ExpectedState } from './expected-state.js';

export type ContentType = 'application/json' | 'application/octet-stream';

/** An event to append. */
export interface EventData {
  /** A UUID; one is generated when absent. Retrying an append with the same ids is idempotent. */
  id?: string;
  type: string;
  /** Bytes are stored as they are; anything else is stored as JSON. */
  data?: unknown;
  /** Bytes are stored as they are; anything else is stored as JSON. */
  metadata?: unknown;
  /** Defaults to JSON unless `data` is bytes. */
  contentType?: ContentType;
}

/** A position in the global log: the record (commit) and the event's own entry (prepare). */
export interface Position {
  commit: number;
  prepare: number;
}

export interface RecordedEvent {
  streamId: string;
  revision: number;
  id: string;
  type: string;
  contentType: ContentType;
  isJson: boolean;
  data: Uint8Array;
  metadata: Uint8Array;
  created: Date;
  /** Microseconds since the Unix epoch (the precision the store keeps). */
  createdMicros: number;
  position: Position;
}

export interface AppendOptions {
  expectedState?: ExpectedState;
}

export interface AppendResult {
  /** The revision of the last event now in the stream (-1 for an empty append to an empty stream). */
  nextExpectedRevision: number;
  /** Position of the write's last event. */
  position: Position;
}

export interface MultiStreamAppendResult {
  /** Position of the write (one record for all streams) and of its last event. */
  position: Position;
  /** Each stream's last revision after the write, in the order of the request. */
  streams: { stream: string; nextExpectedRevision: number }[];
}

export interface DeleteResult {
  position: Position;
}

export type Direction = 'forwards' | 'backwards';

export interface ReadStreamOptions {
  direction?: Direction;
  /** Defaults to 'start' forwards and 'end' backwards. */
  fromRevision?: number | bigint | 'start' | 'end';
  /** Defaults to all. */
  maxCount?: number;
}

/**
 * Server-side filter of `$all` reads. Prefixes match any of the list; a regex is tested on the
 * whole name. Stream and event type conditions combine with AND.
 */
export interface EventFilter {
  streamNamePrefixes?: string[];
  streamNameRegex?: string | RegExp;
  eventTypePrefixes?: string[];
  eventTypeRegex?: string | RegExp;
  /** Skip events whose type starts with `$` (system events). */
  excludeSystemEvents?: boolean;
}

export interface ReadAllOptions {
  direction?: Direction;
  /** Forwards includes the event at the position; backwards starts just before it. */
  fromPosition?: Position | 'start' | 'end';
  maxCount?: number;
  filter?: EventFilter;
  /**
   * Forwards only: stop after examining this many events, matching the filter or not, so that a
   * filtered reader can report progress (checkpoints) through long stretches of non-matching events.
   */
  scanLimit?: number;
}

export interface ReadAllResult {
  events: RecordedEvent[];
  /** Where the next read in the same direction continues. */
  nextPosition: Position;
  /** True when the read reached the end (forwards: the committed tail; backwards: the start). */
  isEnd: boolean;
  /** Forwards: the position of the last event examined, matching the filter or not (a filtered reader's checkpoint). */
  lastScannedPosition?: Position;
}

export interface StreamMetadataResult {
  /** The metadata as its JSON object (system keys `$maxCount`, `$maxAge`, `$tb`, `$acl`, ... and custom keys). */
  metadata: Record<string, unknown>;
  /** The metadata's exact JSON text (a soft delete's `$tb` is a 64-bit integer JSON numbers cannot hold exactly), or null. */
  metadataJson: string | null;
  /** Revision of the metadata stream's last event; -1 when the stream has never had metadata. */
  metastreamRevision: number;
}
