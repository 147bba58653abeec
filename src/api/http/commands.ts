import type { EventStore } from '../../store/event-store.js';
import type { Direction, EventData, EventFilter, Position } from '../../store/types.js';
import { eventJson, formatPosition } from './event-json.js';

/**
 * What an HTTP request asks of the store, once parsed and validated: a plain JSON value, so that
 * a follower can hand it to the leader over the internal interface and render the leader's
 * answer exactly as the leader would have. Every event carries its id by then (the node that
 * received the request generated missing ones), which makes retrying a forwarded append safe.
 */
export type ExpectedVersion = 'any' | 'no_stream' | 'stream_exists' | number;

/** Event data or metadata: JSON, or raw bytes in base64. */
export type Payload = { json: unknown } | { base64: string };

export interface EventInput {
  eventId: string;
  eventType: string;
  data?: Payload;
  metadata?: Payload;
}

export interface FilterInput {
  streamPrefixes?: string[];
  streamRegex?: string;
  eventTypePrefixes?: string[];
  eventTypeRegex?: string;
  excludeSystemEvents?: boolean;
}

export type Command =
  | { kind: 'append'; stream: string; expected: ExpectedVersion; events: EventInput[] }
  | { kind: 'delete'; stream: string; expected: ExpectedVersion; hard: boolean }
  | { kind: 'set-metadata'; stream: string; expected: ExpectedVersion; metadata: Record<string, unknown> }
  | { kind: 'read-stream'; stream: string; from: number | 'start' | 'end'; count: number; direction: Direction }
  | { kind: 'read-all'; from: Position | 'start' | 'end'; count: number; direction: Direction; filter: FilterInput }
  | { kind: 'get-metadata'; stream: string };

/** The HTTP answer to a command: status, JSON body (already serialized) and extra headers. */
export interface Outcome {
  status: number;
  json: string;
  headers: Record<string, string>;
}

export function isWrite(command: Command): boolean {
  return command.kind === 'append' || command.kind === 'delete' || command.kind === 'set-metadata';
}

/**
 * Whether running the command twice is the same as once. Appends are, by their event ids (the
 * store's idempotency window answers a retry with the original result); reads are. A delete or a
 * metadata write is a new event each time, so it is retried only when it surely never arrived.
 */
export function isIdempotent(command: Command): boolean {
  return command.kind !== 'delete' && command.kind !== 'set-metadata';
}

export function streamPath(stream: string): string {
  return `/streams/${encodeURIComponent(stream)}`;
}

function outcome(status: number, body: unknown, headers: Record<string, string> = {}): Outcome {
  return { status, json: JSON.stringify(body), headers };
}

function payloadValue(payload: Payload | undefined): unknown {
  if (!payload) return undefined;
  return 'base64' in payload ? Buffer.from(payload.base64, 'base64') : payload.json;
}

function eventData(input: EventInput): EventData {
  const binary = input.data !== undefined && 'base64' in input.data;
  const event: EventData = { id: input.eventId, type: input.eventType, contentType: binary ? 'application/octet-stream' : 'application/json' };
  const data = payloadValue(input.data);
  if (data !== undefined) event.data = data;
  const metadata = payloadValue(input.metadata);
  if (metadata !== undefined) event.metadata = metadata;
  return event;
}

export function eventFilter(filter: FilterInput): EventFilter | undefined {
  const result: EventFilter = {};
  if (filter.streamPrefixes?.length) result.streamNamePrefixes = filter.streamPrefixes;
  if (filter.streamRegex !== undefined) result.streamNameRegex = filter.streamRegex;
  if (filter.eventTypePrefixes?.length) result.eventTypePrefixes = filter.eventTypePrefixes;
  if (filter.eventTypeRegex !== undefined) result.eventTypeRegex = filter.eventTypeRegex;
  if (filter.excludeSystemEvents) result.excludeSystemEvents = true;
  return Object.keys(result).length > 0 ? result : undefined;
}

/** The query string that selects the same filter again (in page links). */
export function filterQuery(filter: FilterInput): string {
  const parts: string[] = [];
  for (const prefix of filter.streamPrefixes ?? []) parts.push(`streamPrefix=${encodeURIComponent(prefix)}`);
  if (filter.streamRegex !== undefined) parts.push(`streamRegex=${encodeURIComponent(filter.streamRegex)}`);
  for (const prefix of filter.eventTypePrefixes ?? []) parts.push(`eventTypePrefix=${encodeURIComponent(prefix)}`);
  if (filter.eventTypeRegex !== undefined) parts.push(`eventTypeRegex=${encodeURIComponent(filter.eventTypeRegex)}`);
  if (filter.excludeSystemEvents) parts.push('excludeSystemEvents=true');
  return parts.map((part) => `&${part}`).join('');
}

/** Runs a command against this node's store (a single node, or the leader, or a follower's local read). */
export async function executeCommand(store: EventStore, command: Command): Promise<Outcome> {
  switch (command.kind) {
    case 'append': {
      const result = await store.appendToStream(command.stream, command.events.map(eventData), { expectedState: command.expected });
      const first = result.nextExpectedRevision - command.events.length + 1;
      return outcome(
        201,
        { stream: command.stream, firstRevision: first, nextExpectedRevision: result.nextExpectedRevision, position: result.position },
        { location: `${streamPath(command.stream)}?from=${first}&count=${command.events.length}` },
      );
    }
    case 'delete': {
      const options = { expectedState: command.expected };
      const result = command.hard ? await store.tombstoneStream(command.stream, options) : await store.deleteStream(command.stream, options);
      return outcome(200, { stream: command.stream, hardDeleted: command.hard, position: result.position });
    }
    case 'set-metadata': {
      const result = await store.setStreamMetadata(command.stream, command.metadata, { expectedState: command.expected });
      return outcome(200, { stream: command.stream, metastreamRevision: result.nextExpectedRevision, position: result.position });
    }
    case 'get-metadata': {
      const result = await store.getStreamMetadata(command.stream);
      // The stored text as it is: a soft delete's `$tb` is a 64-bit integer that a JSON number would round.
      const json = `{"stream":${JSON.stringify(command.stream)},"metastreamRevision":${result.metastreamRevision},"metadata":${result.metadataJson ?? '{}'}}`;
      return { status: 200, json, headers: {} };
    }
    case 'read-stream':
      return readStreamPage(store, command);
    case 'read-all':
      return readAllPage(store, command);
  }
}

async function readStreamPage(store: EventStore, command: Extract<Command, { kind: 'read-stream' }>): Promise<Outcome> {
  const events = await store.readStream(command.stream, { fromRevision: command.from, maxCount: command.count, direction: command.direction });
  const last = events.at(-1);
  const link = (from: number) => `${streamPath(command.stream)}?from=${from}&count=${command.count}&direction=${command.direction}`;
  let next: number | undefined;
  if (command.direction === 'forwards') {
    // Forwards there is always a next page to poll: where this one stopped (new events land there).
    next = last ? last.revision + 1 : typeof command.from === 'number' ? command.from : undefined;
  } else if (last && last.revision > 0 && events.length === command.count) {
    next = last.revision - 1;
  }
  const isEnd = events.length < command.count;
  return outcome(200, {
    stream: command.stream,
    direction: command.direction,
    isEnd,
    events: events.map(eventJson),
    links: { ...(next !== undefined ? { next: link(next) } : {}) },
  });
}

async function readAllPage(store: EventStore, command: Extract<Command, { kind: 'read-all' }>): Promise<Outcome> {
  const filter = eventFilter(command.filter);
  const page = await store.readAll({ fromPosition: command.from, maxCount: command.count, direction: command.direction, ...(filter ? { filter } : {}) });
  const next = formatPosition(page.nextPosition);
  return outcome(200, {
    direction: command.direction,
    isEnd: page.isEnd,
    nextPosition: next,
    events: page.events.map(eventJson),
    links: command.direction === 'backwards' && page.isEnd ? {} : { next: `/streams/$all?from=${next}&count=${command.count}&direction=${command.direction}${filterQuery(command.filter)}` },
  });
}
