import type { Position, RecordedEvent } from '../../store/types.js';

/**
 * Events as the HTTP API shows them. JSON data and metadata are embedded as JSON; anything else
 * (binary events, or bytes that do not parse) travels base64-encoded in `dataBase64` /
 * `metadataBase64`, so every event round-trips exactly.
 */
export interface EventJson {
  eventId: string;
  eventType: string;
  streamId: string;
  revision: number;
  position: Position;
  created: string;
  contentType: string;
  data?: unknown;
  dataBase64?: string;
  metadata?: unknown;
  metadataBase64?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function jsonOrUndefined(bytes: Uint8Array): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(decoder.decode(bytes)) };
  } catch {
    return undefined;
  }
}

export function eventJson(event: RecordedEvent): EventJson {
  const json: EventJson = {
    eventId: event.id,
    eventType: event.type,
    streamId: event.streamId,
    revision: event.revision,
    position: event.position,
    created: event.created.toISOString(),
    contentType: event.contentType,
  };
  // An event without data shows neither field.
  if (event.data.byteLength > 0) {
    const data = event.isJson ? jsonOrUndefined(event.data) : undefined;
    if (data) json.data = data.value;
    else json.dataBase64 = Buffer.from(event.data).toString('base64');
  }
  if (event.metadata.byteLength > 0) {
    const metadata = jsonOrUndefined(event.metadata);
    if (metadata) json.metadata = metadata.value;
    else json.metadataBase64 = Buffer.from(event.metadata).toString('base64');
  }
  return json;
}

/** `$all` positions in URLs and SSE ids: `commit:prepare` (or a bare commit, meaning both). */
export function formatPosition(position: Position): string {
  return `${position.commit}:${position.prepare}`;
}

export function parsePosition(text: string): Position | undefined {
  const match = /^(\d{1,16})(?::(\d{1,16}))?$/.exec(text);
  if (!match) return undefined;
  const commit = Number(match[1]);
  const prepare = match[2] !== undefined ? Number(match[2]) : commit;
  if (!Number.isSafeInteger(commit) || !Number.isSafeInteger(prepare) || prepare < commit) return undefined;
  return { commit, prepare };
}
