import { randomUUID } from 'node:crypto';
import { ChronicleError, InvalidArgumentError, MaximumAppendSizeExceededError, StreamNotFoundError, WrongExpectedVersionError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { ExpectedState } from '../../store/expected-state.js';
import type { EventData, EventFilter, Position, RecordedEvent } from '../../store/types.js';
import { BatchAppendSuccess, batchAppendResponseCodec } from './batch-append-reply.js';
import { CallInterrupt } from './call-interrupt.js';
import { GrpcCallError } from './grpc-errors.js';
import type { CallContext, GrpcServer, ResponseStream } from './grpc-server.js';
import { codecOf, createdTicks, streamIdentifier, streamNameOf, toNumber, uuidFromMessage, uuidToMessage, type Message } from './protocol.js';
import { runAllSubscription, runStreamSubscription } from './subscription-runner.js';
import type { SubscriptionTracker } from '../../subscriptions/subscription-tracker.js';

const SERVICE = 'event_store.client.streams.Streams';
const READ_PAGE_EVENTS = 500;

export interface StreamsServiceOptions {
  maxAppendSizeBytes: number;
  /** Where catch-up subscriptions report themselves (metrics). */
  subscriptions?: SubscriptionTracker;
}

/** `event_store.client.streams.Streams`: Read (reads and catch-up subscriptions), Append, BatchAppend, Delete, Tombstone. */
export function registerStreamsService(server: GrpcServer, store: EventStore, options: StreamsServiceOptions): void {
  server.addMethod({
    kind: 'server-stream',
    path: `/${SERVICE}/Read`,
    longLived: true,
    request: codecOf('event_store.client.streams.ReadReq'),
    response: codecOf('event_store.client.streams.ReadResp'),
    handle: (request, responses, context) => read(store, request, responses, context, options.subscriptions),
  });
  server.addMethod({
    kind: 'bidi',
    path: `/${SERVICE}/Append`,
    request: codecOf('event_store.client.streams.AppendReq'),
    response: codecOf('event_store.client.streams.AppendResp'),
    handle: (requests, responses) => append(store, requests, responses, options),
  });
  server.addMethod({
    kind: 'bidi',
    path: `/${SERVICE}/BatchAppend`,
    longLived: true,
    request: codecOf('event_store.client.streams.BatchAppendReq'),
    response: batchAppendResponseCodec(codecOf('event_store.client.streams.BatchAppendResp')),
    handle: (requests, responses) => batchAppend(store, requests, responses, options),
  });
  server.addMethod({
    kind: 'unary',
    path: `/${SERVICE}/Delete`,
    request: codecOf('event_store.client.streams.DeleteReq'),
    response: codecOf('event_store.client.streams.DeleteResp'),
    handle: async (request) => {
      const { stream, expectedState } = writeTarget(request.options);
      const result = await store.deleteStream(stream, { expectedState });
      return { position: positionMessage(result.position) };
    },
  });
  server.addMethod({
    kind: 'unary',
    path: `/${SERVICE}/Tombstone`,
    request: codecOf('event_store.client.streams.TombstoneReq'),
    response: codecOf('event_store.client.streams.TombstoneResp'),
    handle: async (request) => {
      const { stream, expectedState } = writeTarget(request.options);
      const result = await store.tombstoneStream(stream, { expectedState });
      return { position: positionMessage(result.position) };
    },
  });
}

export function positionMessage(position: Position): Message {
  return { commit_position: position.commit, prepare_position: position.prepare };
}

/** The expected state of Append/Delete/Tombstone options (`expected_stream_revision` oneof). */
function expectedStateOf(options: Message, oneofName: string, revisionField: string): ExpectedState {
  switch (options[oneofName]) {
    case revisionField:
      return toNumber(options[revisionField]);
    case 'no_stream':
      return 'no_stream';
    case 'stream_exists':
      return 'stream_exists';
    case 'any':
    case undefined:
      return 'any';
    default:
      throw new InvalidArgumentError(`unknown expected stream revision '${String(options[oneofName])}'`);
  }
}

function writeTarget(options: Message | null | undefined): { stream: string; expectedState: ExpectedState } {
  if (!options) throw new InvalidArgumentError('the request has no options');
  return { stream: streamNameOf(options.stream_identifier), expectedState: expectedStateOf(options, 'expected_stream_revision', 'revision') };
}

/** A proposed message (Append or BatchAppend) as the store's event. */
function eventFromProposed(proposed: Message): EventData {
  const id = uuidFromMessage(proposed.id);
  if (!id) throw new InvalidArgumentError('a proposed event has no id');
  const metadata = (proposed.metadata ?? {}) as Record<string, string>;
  const type = metadata.type;
  if (!type) throw new InvalidArgumentError(`event ${id} has no 'type' in its metadata`);
  return {
    id,
    type,
    contentType: metadata['content-type'] === 'application/json' ? 'application/json' : 'application/octet-stream',
    data: bytesOf(proposed.data),
    metadata: bytesOf(proposed.custom_metadata),
  };
}

/** A bytes field as bytes: protobufjs leaves an absent one as its default (an empty array). */
function bytesOf(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? value : EMPTY_BYTES;
}

const EMPTY_BYTES = new Uint8Array(0);

function proposedSize(proposed: Message): number {
  return bytesOf(proposed.data).byteLength + bytesOf(proposed.custom_metadata).byteLength;
}

async function append(store: EventStore, requests: AsyncIterable<Message>, responses: ResponseStream<Message>, options: StreamsServiceOptions): Promise<void> {
  let target: { stream: string; expectedState: ExpectedState } | undefined;
  const events: EventData[] = [];
  let size = 0;
  for await (const request of requests) {
    if (request.content === 'options') {
      if (target) throw new InvalidArgumentError('an append sends its options once, first');
      target = writeTarget(request.options);
    } else if (request.content === 'proposed_message') {
      if (!target) throw new InvalidArgumentError('an append sends its options before its events');
      size += proposedSize(request.proposed_message);
      // Refuse as soon as the limit is passed, before buffering the rest of an oversized append.
      if (size > options.maxAppendSizeBytes) throw new MaximumAppendSizeExceededError(size, options.maxAppendSizeBytes, `the append to '${target.stream}'`);
      events.push(eventFromProposed(request.proposed_message));
    }
  }
  if (!target) throw new InvalidArgumentError('an append needs an options message');
  try {
    const result = await store.appendToStream(target.stream, events, { expectedState: target.expectedState });
    await responses.send({
      success: {
        ...(result.nextExpectedRevision >= 0 ? { current_revision: result.nextExpectedRevision } : { no_stream: {} }),
        position: positionMessage(result.position),
      },
    });
  } catch (error) {
    if (!(error instanceof WrongExpectedVersionError)) throw error;
    // The clients expect this one in-band, not as a status.
    await responses.send({ wrong_expected_version: wrongExpectedVersionMessage(error, target.expectedState) });
  }
}

function wrongExpectedVersionMessage(error: WrongExpectedVersionError, expected: ExpectedState): Message {
  const message: Message = {};
  if (error.actual.kind === 'revision') {
    message.current_revision = error.actual.revision;
    message.current_revision_20_6_0 = error.actual.revision;
  } else {
    message.current_no_stream = {};
    message.no_stream_20_6_0 = {};
  }
  if (typeof expected === 'number' || typeof expected === 'bigint') {
    message.expected_revision = Number(expected);
    message.expected_revision_20_6_0 = Number(expected);
  } else if (expected === 'any') {
    message.expected_any = {};
    message.any_20_6_0 = {};
  } else if (expected === 'stream_exists') {
    message.expected_stream_exists = {};
    message.stream_exists_20_6_0 = {};
  } else {
    message.expected_no_stream = {};
  }
  return message;
}

/**
 * BatchAppend: appends multiplexed by correlation id on one long-lived stream. Chunks of one
 * append accumulate until `is_final`; each append is answered as soon as it is done, in any order.
 */
/** Bounds per BatchAppend call, so that a client cannot make the node hold unbounded state. */
const BATCH_MAX_OPEN_APPENDS = 1024;
const BATCH_MAX_OPEN_BYTES = 256 * 1024 * 1024;
const BATCH_MAX_IN_FLIGHT = 1024;

async function batchAppend(store: EventStore, requests: AsyncIterable<Message>, responses: ResponseStream<Message>, options: StreamsServiceOptions): Promise<void> {
  type Target = { stream: string; expectedState: ExpectedState; expectedMessage: Message };
  const open = new Map<string, { target: Target; events: EventData[]; size: number }>();
  // Appends that failed before their last chunk: later chunks are dropped, answered only once.
  const failed = new Map<string, Target | undefined>();
  let openBytes = 0;
  // Counted rather than kept in a set: one add and one delete per append churned the set's table.
  let inFlight = 0;
  let wakeWhenIdle: (() => void) | undefined;
  // "Not leader" and "no quorum" end the whole call: the clients only reconnect or rediscover on
  // a call's status, never on an in-band reply.
  const fatal = new CallInterrupt();
  // Woken when an append in flight completes, for a loop waiting at the in-flight bound.
  let wakeOnSlot: (() => void) | undefined;
  const iterator = requests[Symbol.asyncIterator]();
  responses.sendHeaders();
  while (true) {
    const next = await fatal.waitFor(iterator.next());
    if (fatal.isRaised) throw fatal.raisedReason;
    if (!next || next.done) break;
    const request = next.value;
    const correlationId = uuidFromMessage(request.correlation_id) ?? '';
    const reply = (result: Message) => responses.send({ correlation_id: request.correlation_id, ...result }).catch(() => undefined);
    if (failed.has(correlationId)) {
      if (request.is_final) failed.delete(correlationId);
      continue;
    }
    let entry = open.get(correlationId);
    const wasOpen = entry !== undefined;
    try {
      if (!entry) {
        if (!request.options) throw new InvalidArgumentError('the first chunk of a batch append carries its options');
        if (open.size >= BATCH_MAX_OPEN_APPENDS) throw new InvalidArgumentError(`more than ${BATCH_MAX_OPEN_APPENDS} unfinished appends on one BatchAppend call`);
        const { stream_identifier: identifier } = request.options;
        const expectedState = expectedStateOf(request.options, 'expected_stream_position', 'stream_position');
        entry = { target: { stream: streamNameOf(identifier), expectedState, expectedMessage: expectedEcho(request.options) }, events: [], size: 0 };
        // An append in one chunk (what clients send) is never looked up again: it stays out of the map.
        if (!request.is_final) open.set(correlationId, entry);
      }
      for (const proposed of request.proposed_messages ?? []) {
        const size = proposedSize(proposed);
        entry.size += size;
        openBytes += size;
        if (entry.size > options.maxAppendSizeBytes) {
          throw new MaximumAppendSizeExceededError(entry.size, options.maxAppendSizeBytes, `the append to '${entry.target.stream}'`);
        }
        if (openBytes > BATCH_MAX_OPEN_BYTES) throw new InvalidArgumentError(`unfinished appends on one BatchAppend call hold more than ${BATCH_MAX_OPEN_BYTES} bytes`);
        entry.events.push(eventFromProposed(proposed));
      }
    } catch (error) {
      if (entry) {
        if (wasOpen || !request.is_final) open.delete(correlationId);
        openBytes -= entry.size;
      }
      if (!request.is_final) failed.set(correlationId, entry?.target);
      void reply(batchError(error, entry?.target ?? targetOf(request.options)));
      continue;
    }
    if (!request.is_final) continue;
    if (wasOpen) open.delete(correlationId);
    openBytes -= entry.size;
    const { target, events } = entry;
    inFlight++;
    void store
      .appendToStream(target.stream, events, { expectedState: target.expectedState })
      .then(
        (result) =>
          responses
            .send(new BatchAppendSuccess(request.correlation_id, target.stream, target.expectedMessage, result.nextExpectedRevision, result.position))
            .catch(() => undefined),
        (error: unknown) => {
          if (endsTheCall(error)) {
            fatal.raise(error);
            return;
          }
          return reply(batchError(error, target));
        },
      )
      .finally(() => {
        inFlight--;
        const wake = wakeOnSlot;
        wakeOnSlot = undefined;
        wake?.();
        if (inFlight === 0) wakeWhenIdle?.();
      })
      // Only a bug gets here (both outcomes are answered above): it ends the call with its error.
      .catch((error: unknown) => fatal.raise(error));
    // A client that writes faster than appends complete waits here (and, through HTTP/2 flow
    // control, in its own sends) instead of growing the node's queue.
    while (inFlight >= BATCH_MAX_IN_FLIGHT && !fatal.isRaised) await fatal.waitFor(new Promise<void>((resolve) => (wakeOnSlot = resolve)));
  }
  if (inFlight > 0) await new Promise<void>((resolve) => (wakeWhenIdle = resolve));
  if (fatal.isRaised) throw fatal.raisedReason;
}

function endsTheCall(error: unknown): boolean {
  return error instanceof ChronicleError && (error.code === 'NOT_LEADER' || error.code === 'NO_QUORUM');
}

/** The stream an error reply names, from a chunk's options when the append never got further. */
function targetOf(options: Message | null | undefined): { stream: string; expectedMessage: Message } | undefined {
  if (!options) return undefined;
  return { stream: streamNameOf(options.stream_identifier), expectedMessage: expectedEcho(options) };
}

function expectedEcho(options: Message): Message {
  switch (options.expected_stream_position) {
    case 'stream_position':
      return { stream_position: toNumber(options.stream_position) };
    case 'no_stream':
      return { no_stream: {} };
    case 'stream_exists':
      return { stream_exists: {} };
    default:
      return { any: {} };
  }
}

/** A failed batch append as a google.rpc.Status inside the response (BatchAppend reports errors in-band). */
function batchError(error: unknown, target: { stream: string; expectedMessage: Message } | undefined): Message {
  // The clients read stream_identifier on every error reply: always set it.
  const common = target ? { stream_identifier: streamIdentifier(target.stream), ...target.expectedMessage } : { stream_identifier: streamIdentifier('') };
  return { ...common, error: statusOf(error) };
}

function statusOf(error: unknown): Message {
  if (error instanceof WrongExpectedVersionError) {
    return { code: 9, message: error.message, details: [wrongExpectedVersionDetails(error)] };
  }
  // The clients unpack the detail of every in-band error without checking that there is one:
  // a reply without it crashes them, so each carries one (Unknown when nothing more fits).
  if (error instanceof GrpcCallError) return { code: error.grpcStatus, message: error.message, details: [emptyDetail('Unknown')] };
  if (error && typeof error === 'object' && 'mapping' in error) {
    const mapped = error as { mapping: { grpcStatus: number }; message: string };
    return { code: mapped.mapping.grpcStatus, message: mapped.message, details: [detailsFor(error) ?? emptyDetail('Unknown')] };
  }
  return { code: 13, message: 'internal error', details: [emptyDetail('Unknown')] };
}

function emptyDetail(type: 'Unknown' | 'Timeout'): Message {
  return { type_url: `type.googleapis.com/event_store.client.${type}`, value: new Uint8Array(0) };
}

function wrongExpectedVersionDetails(error: WrongExpectedVersionError): Message {
  const shared = codecOf('event_store.client.WrongExpectedVersion');
  const body: Message = {};
  if (error.actual.kind === 'revision') body.current_stream_revision = error.actual.revision;
  else body.current_no_stream = {};
  const expected = error.expectedState;
  if (typeof expected === 'number' || typeof expected === 'bigint') body.expected_stream_position = Number(expected);
  else if (expected === 'any') body.expected_any = {};
  else if (expected === 'stream_exists') body.expected_stream_exists = {};
  else body.expected_no_stream = {};
  return { type_url: 'type.googleapis.com/event_store.client.WrongExpectedVersion', value: shared.encode(body) };
}

function detailsFor(error: unknown): Message | undefined {
  if (error instanceof MaximumAppendSizeExceededError) {
    const codec = codecOf('event_store.client.MaximumAppendSizeExceeded');
    return { type_url: 'type.googleapis.com/event_store.client.MaximumAppendSizeExceeded', value: codec.encode({ maxAppendSize: error.maxAppendSizeBytes }) };
  }
  // No quorum in time: the write's outcome is unknown, as after a deadline.
  if (error && typeof error === 'object' && (error as { code?: string }).code === 'NO_QUORUM') return emptyDetail('Timeout');
  if (error && typeof error === 'object' && (error as { code?: string }).code === 'STREAM_DELETED') {
    const codec = codecOf('event_store.client.StreamDeleted');
    const stream = (error as { stream: string }).stream;
    return { type_url: 'type.googleapis.com/event_store.client.StreamDeleted', value: codec.encode({ stream_identifier: streamIdentifier(stream) }) };
  }
  return undefined;
}

// ------------------------------------------------------------------------------------- reads

export interface ReadShape {
  structuredIds: boolean;
}

/** Every event Chronicle returns is committed, so its commit position is always known and always sent. */
export function readEventMessage(event: RecordedEvent, shape: ReadShape): Message {
  return { event: { event: recordedEventMessage(event, shape), commit_position: event.position.commit } };
}

/** A recorded event as `RecordedEvent` of the streams and persistent-subscriptions protocols (the same fields). */
export function recordedEventMessage(event: RecordedEvent, shape: ReadShape): Message {
  return {
    id: uuidToMessage(event.id, shape.structuredIds),
    stream_identifier: streamIdentifier(event.streamId),
    stream_revision: event.revision,
    prepare_position: event.position.prepare,
    commit_position: event.position.commit,
    metadata: { type: event.type, 'content-type': event.contentType, created: createdTicks(event.createdMicros) },
    custom_metadata: event.metadata,
    data: event.data,
  };
}

function filterOf(options: Message): { filter: EventFilter | undefined; checkpointEveryEvents: number } {
  if (options.filter_option !== 'filter' || !options.filter) return { filter: undefined, checkpointEveryEvents: 0 };
  const filter = options.filter;
  const expression = filter.filter === 'stream_identifier' ? filter.stream_identifier : filter.event_type;
  const regex: string = expression?.regex ?? '';
  const prefixes: string[] = expression?.prefix ?? [];
  const eventFilter: EventFilter = {};
  if (filter.filter === 'stream_identifier') {
    if (regex) eventFilter.streamNameRegex = regex;
    else eventFilter.streamNamePrefixes = prefixes;
  } else {
    if (regex) eventFilter.eventTypeRegex = regex;
    else eventFilter.eventTypePrefixes = prefixes;
  }
  const window = filter.window === 'max' ? Math.max(1, Number(filter.max)) : 32;
  const multiplier = Math.max(1, Number(filter.checkpointIntervalMultiplier ?? 1));
  return { filter: eventFilter, checkpointEveryEvents: window * multiplier };
}

async function read(store: EventStore, request: Message, responses: ResponseStream<Message>, context: CallContext, subscriptions: SubscriptionTracker | undefined): Promise<void> {
  const options = request.options;
  if (!options) throw new InvalidArgumentError('a read needs options');
  const shape: ReadShape = { structuredIds: options.uuid_option?.content === 'structured' };
  const backwards = options.read_direction === 1;
  const { filter, checkpointEveryEvents } = filterOf(options);
  if (options.count_option === 'subscription') {
    if (backwards) throw new InvalidArgumentError('subscriptions read forwards');
    await responses.send({ confirmation: { subscription_id: randomUUID() } });
    if (options.stream_option === 'stream') {
      const streamOptions = options.stream;
      const stream = streamNameOf(streamOptions.stream_identifier);
      const after = streamOptions.revision_option === 'revision' ? toNumber(streamOptions.revision) : streamOptions.revision_option === 'end' ? 'end' : 'start';
      await runStreamSubscription(store, stream, after, shape, responses, context.signal, subscriptions);
    } else {
      const allOptions = options.all;
      const after: Position | 'start' | 'end' =
        allOptions?.all_option === 'position'
          ? { commit: toNumber(allOptions.position.commit_position), prepare: toNumber(allOptions.position.prepare_position) }
          : allOptions?.all_option === 'end'
            ? 'end'
            : 'start';
      await runAllSubscription(store, after, filter, checkpointEveryEvents, shape, responses, context.signal, subscriptions);
    }
    return;
  }
  const maxCount = options.count_option === 'count' ? toNumber(options.count) : Number.MAX_SAFE_INTEGER;
  const direction = backwards ? 'backwards' : 'forwards';
  if (options.stream_option === 'stream') {
    const streamOptions = options.stream;
    const stream = streamNameOf(streamOptions.stream_identifier);
    let from: number | 'start' | 'end' = streamOptions.revision_option === 'revision' ? toNumber(streamOptions.revision) : streamOptions.revision_option === 'end' ? 'end' : 'start';
    let remaining = maxCount;
    try {
      while (remaining > 0 && !context.signal.aborted) {
        const page = await store.readStream(stream, { direction, fromRevision: from, maxCount: Math.min(remaining, READ_PAGE_EVENTS) });
        for (const event of page) await responses.send(readEventMessage(event, shape));
        remaining -= page.length;
        if (page.length < READ_PAGE_EVENTS) break;
        from = backwards ? page.at(-1)!.revision - 1 : page.at(-1)!.revision + 1;
        if (from < 0) break;
      }
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
      await responses.send({ stream_not_found: { stream_identifier: streamIdentifier(stream) } });
    }
    return;
  }
  const allOptions = options.all;
  let from: Position | 'start' | 'end' =
    allOptions?.all_option === 'position'
      ? { commit: toNumber(allOptions.position.commit_position), prepare: toNumber(allOptions.position.prepare_position) }
      : allOptions?.all_option === 'end'
        ? 'end'
        : 'start';
  let remaining = maxCount;
  while (remaining > 0 && !context.signal.aborted) {
    const page = await store.readAll({ direction, fromPosition: from, maxCount: Math.min(remaining, READ_PAGE_EVENTS), ...(filter ? { filter } : {}) });
    for (const event of page.events) await responses.send(readEventMessage(event, shape));
    remaining -= page.events.length;
    if (page.isEnd || page.events.length === 0) break;
    from = page.nextPosition;
  }
}
