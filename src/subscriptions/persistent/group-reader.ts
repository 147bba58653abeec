import { StreamDeletedError, StreamNotFoundError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { EventFilter, Position, RecordedEvent } from '../../store/types.js';
import type { Checkpoint, GroupMessage } from '../core/persistent-group.js';
import { isSubscriptionStateStream, LINK_EVENT_TYPE, parseLink, type GroupDefinition, type GroupPosition } from './durable-state.js';

/** A message of a persistent subscription: the event, and the link it came through when links are resolved. */
export interface SubscriptionMessage extends GroupMessage<GroupPosition> {
  event: RecordedEvent;
  link?: RecordedEvent;
}

/** At most this many pages of a filtered `$all` are scanned per read before reporting back (progress stays visible). */
const MAX_EMPTY_PAGES_PER_READ = 64;

/**
 * Reads a group's source page by page after a position: one stream by revision, or `$all` by
 * position with the group's filter. The groups' own state streams never reach a `$all` group
 * (it would otherwise be fed its own acknowledgements).
 */
export class GroupReader {
  /** Where the last `$all` read stopped scanning, and after which message: filtered stretches are not scanned twice. */
  private scanned: { afterSequence: number | undefined; next: Position } | undefined;
  private readonly filter: EventFilter | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly definition: GroupDefinition,
  ) {
    this.filter = allFilter(definition);
  }

  async read(after: Checkpoint<GroupPosition> | undefined, maxCount: number): Promise<{ messages: SubscriptionMessage[]; reachedEnd: boolean }> {
    return this.definition.source.kind === 'stream' ? this.readStream(this.definition.source.stream, after, maxCount) : this.readAll(after, maxCount);
  }

  /** Turns a recorded event into a message, resolving a link when the group asks for it. */
  async toMessage(recorded: RecordedEvent, sequence: number, position: GroupPosition): Promise<SubscriptionMessage> {
    let event = recorded;
    let link: RecordedEvent | undefined;
    if (this.definition.settings.resolveLinks && recorded.type === LINK_EVENT_TYPE) {
      const target = await this.resolve(recorded);
      if (target) {
        event = target;
        link = recorded;
      }
    }
    const correlationId = correlationIdOf(event);
    return {
      sequence,
      position,
      id: (link ?? event).id,
      streamId: event.streamId,
      ...(correlationId !== undefined ? { correlationId } : {}),
      event,
      ...(link ? { link } : {}),
    };
  }

  /** The event a link points at, or undefined when it is gone (deleted, truncated) or the link is malformed. */
  async resolve(linkEvent: RecordedEvent): Promise<RecordedEvent | undefined> {
    const target = parseLink(linkEvent.data);
    if (!target) return undefined;
    try {
      const [event] = await this.store.readStream(target.stream, { fromRevision: target.revision, maxCount: 1 });
      return event && event.revision === target.revision ? event : undefined;
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return undefined;
      throw error;
    }
  }

  private async readStream(stream: string, after: Checkpoint<GroupPosition> | undefined, maxCount: number): Promise<{ messages: SubscriptionMessage[]; reachedEnd: boolean }> {
    const resolvedStart = (this.definition.resolvedStart as { revision: number }).revision;
    const from = after ? (after.position as number) + 1 : resolvedStart;
    let events: RecordedEvent[];
    try {
      events = await this.store.readStream(stream, { fromRevision: from, maxCount });
    } catch (error) {
      // A stream that does not exist (yet) or was deleted has nothing to deliver; the group waits.
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return { messages: [], reachedEnd: true };
      throw error;
    }
    const messages: SubscriptionMessage[] = [];
    for (const event of events) messages.push(await this.toMessage(event, event.revision, event.revision));
    return { messages, reachedEnd: events.length < maxCount };
  }

  private async readAll(after: Checkpoint<GroupPosition> | undefined, maxCount: number): Promise<{ messages: SubscriptionMessage[]; reachedEnd: boolean }> {
    const afterSequence = after?.sequence;
    let from: Position | 'start';
    if (this.scanned && this.scanned.afterSequence === afterSequence) from = this.scanned.next;
    else if (after) from = after.position as Position;
    else from = (this.definition.resolvedStart as { position: Position }).position;
    if (typeof from !== 'string' && from.commit === 0 && from.prepare === 0) from = 'start';
    for (let page = 0; page < MAX_EMPTY_PAGES_PER_READ; page++) {
      const result = await this.store.readAll({ fromPosition: from, maxCount, ...(this.filter ? { filter: this.filter } : {}) });
      const messages: SubscriptionMessage[] = [];
      for (const event of result.events) {
        // Reads are inclusive of their start: the message at `after` itself was read before.
        if (afterSequence !== undefined && event.position.prepare <= afterSequence) continue;
        if (isSubscriptionStateStream(event.streamId)) continue;
        messages.push(await this.toMessage(event, event.position.prepare, event.position));
      }
      const last = messages.at(-1);
      this.scanned = { afterSequence: last ? last.sequence : afterSequence, next: result.nextPosition };
      if (messages.length > 0 || result.isEnd) return { messages, reachedEnd: result.isEnd };
      from = result.nextPosition;
    }
    return { messages: [], reachedEnd: false };
  }
}

function allFilter(definition: GroupDefinition): EventFilter | undefined {
  const filter = definition.filter;
  if (!filter) return undefined;
  if (filter.on === 'stream') {
    return { ...(filter.prefixes.length > 0 ? { streamNamePrefixes: filter.prefixes } : {}), ...(filter.regex !== undefined ? { streamNameRegex: filter.regex } : {}) };
  }
  return { ...(filter.prefixes.length > 0 ? { eventTypePrefixes: filter.prefixes } : {}), ...(filter.regex !== undefined ? { eventTypeRegex: filter.regex } : {}) };
}

function correlationIdOf(event: RecordedEvent): string | undefined {
  if (event.metadata.byteLength === 0 || event.metadata[0] !== 0x7b) return undefined;
  try {
    const metadata = JSON.parse(Buffer.from(event.metadata).toString('utf8')) as Record<string, unknown>;
    const id = metadata.$correlationId;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
