import type { StoredEvent } from './event-codec.js';
import type { RecordedEvent } from './types.js';
import { bytesToUuid } from './uuid.js';

export function toRecordedEvent(event: StoredEvent): RecordedEvent {
  return {
    streamId: event.stream,
    revision: event.revision,
    id: bytesToUuid(event.id),
    type: event.type,
    contentType: event.isJson ? 'application/json' : 'application/octet-stream',
    isJson: event.isJson,
    data: event.data,
    metadata: event.metadata,
    created: new Date(Math.floor(event.createdMicros / 1000)),
    createdMicros: event.createdMicros,
    position: { commit: event.commitPosition, prepare: event.preparePosition },
  };
}
