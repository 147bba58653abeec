import type { StoredEvent } from './event-codec.js';
import type { RecordedEvent } from './types.js';
import { bytesToUuid } from './uuid.js';

/** `copy` gives the event its own data and metadata bytes instead of views into a shared buffer. */
export function toRecordedEvent(event: StoredEvent, copy = false): RecordedEvent {
  return {
    streamId: event.stream,
    revision: event.revision,
    id: bytesToUuid(event.id),
    type: event.type,
    contentType: event.isJson ? 'application/json' : 'application/octet-stream',
    isJson: event.isJson,
    data: copy ? Buffer.from(event.data) : event.data,
    metadata: copy ? Buffer.from(event.metadata) : event.metadata,
    created: new Date(Math.floor(event.createdMicros / 1000)),
    createdMicros: event.createdMicros,
    position: { commit: event.commitPosition, prepare: event.preparePosition },
  };
}
