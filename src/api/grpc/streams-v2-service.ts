import {
  InvalidArgumentError,
  MaximumAppendSizeExceededError,
  StreamDeletedError,
  WrongExpectedVersionError,
} from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { ExpectedState } from '../../store/expected-state.js';
import type { EventData } from '../../store/types.js';
import { GrpcCallError } from './grpc-errors.js';
import type { GrpcServer, ResponseStream } from './grpc-server.js';
import { codecOf, toNumber, typeOf, type Message } from './protocol.js';

/**
 * `kurrentdb.protocol.v2.streams.StreamsService/AppendSession`: the multi-stream append of the
 * 1.x client (`multiStreamAppend`). Every request of a session names one stream and its expected
 * revision; the whole session is one atomic write (one log record) — all streams or none.
 */
const SERVICE = 'kurrentdb.protocol.v2.streams.StreamsService';
const ERRORS = 'kurrentdb.protocol.v2.streams.errors';
/** The v2 protocol's expected-revision constants (sint64). */
const NO_STREAM = -1;
const ANY = -2;
const STREAM_EXISTS = -4;
/** SchemaFormat.JSON */
const SCHEMA_FORMAT_JSON = 1;

export function registerStreamsV2Service(server: GrpcServer, store: EventStore): void {
  server.addMethod({
    kind: 'bidi',
    path: `/${SERVICE}/AppendSession`,
    request: codecOf('kurrentdb.protocol.v2.streams.AppendRequest'),
    response: codecOf('kurrentdb.protocol.v2.streams.AppendSessionResponse'),
    handle: (requests, responses) => appendSession(store, requests, responses),
  });
}

async function appendSession(store: EventStore, requests: AsyncIterable<Message>, responses: ResponseStream<Message>): Promise<void> {
  const streams: { stream: string; events: EventData[]; expectedState: ExpectedState }[] = [];
  const named = new Set<string>();
  for await (const request of requests) {
    const stream = String(request.stream ?? '');
    if (named.has(stream)) {
      throw v2Error(10, `stream '${stream}' appears more than once in the append session`, 'STREAM_ALREADY_IN_APPEND_SESSION', 'StreamAlreadyInAppendSessionErrorDetails', { stream });
    }
    named.add(stream);
    streams.push({ stream, events: (request.records ?? []).map(eventFromRecord), expectedState: expectedStateOf(request) });
  }
  if (streams.length === 0) throw v2Error(9, 'the append session has no requests', 'APPEND_SESSION_NO_REQUESTS');
  try {
    const result = await store.appendToStreams(streams);
    await responses.send({
      output: result.streams.map(({ stream, nextExpectedRevision }) => ({ stream, stream_revision: nextExpectedRevision })),
      position: result.position.commit,
    });
  } catch (error) {
    throw asV2Error(error);
  }
}

function expectedStateOf(request: Message): ExpectedState {
  // `expected_revision` is optional: absent means any.
  if (request.expected_revision === undefined || request.expected_revision === null) return 'any';
  const value = toNumber(request.expected_revision);
  if (value === ANY) return 'any';
  if (value === NO_STREAM) return 'no_stream';
  if (value === STREAM_EXISTS) return 'stream_exists';
  if (value >= 0) return value;
  throw new InvalidArgumentError(`expected revision ${value} is not a revision or one of -1 (no stream), -2 (any), -4 (stream exists)`);
}

function eventFromRecord(record: Message): EventData {
  const type = record.schema?.name;
  if (!type) throw new InvalidArgumentError('a record has no schema name (its event type)');
  const properties = record.properties as Record<string, Message> | undefined;
  const metadata = properties && Object.keys(properties).length > 0 ? Buffer.from(JSON.stringify(plainValues(properties)), 'utf8') : new Uint8Array(0);
  return {
    ...(record.record_id ? { id: String(record.record_id) } : {}),
    type: String(type),
    contentType: record.schema?.format === SCHEMA_FORMAT_JSON ? 'application/json' : 'application/octet-stream',
    data: record.data instanceof Uint8Array ? record.data : new Uint8Array(0),
    metadata,
  };
}

/** google.protobuf.Value → plain JSON. */
function plainValues(values: Record<string, Message>): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) plain[key] = plainValue(value);
  return plain;
}

/** protobufjs defines google.protobuf.Value itself, with camelCase names (our keepCase does not apply). */
function plainValue(value: Message | undefined): unknown {
  switch (value?.kind) {
    case 'stringValue':
      return value.stringValue;
    case 'numberValue':
      return value.numberValue;
    case 'boolValue':
      return value.boolValue;
    case 'structValue':
      return plainValues(value.structValue?.fields ?? {});
    case 'listValue':
      return (value.listValue?.values ?? []).map(plainValue);
    default:
      return null;
  }
}

/**
 * A v2 failure: the status, and a `grpc-status-details-bin` trailer holding a google.rpc.Status
 * whose details are an ErrorInfo and then the typed detail (the client reads the last one).
 */
function v2Error(grpcStatus: number, message: string, reason: string, detailType?: string, detail?: Message): GrpcCallError {
  const details: Message[] = [{ type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: typeOf('google.rpc.ErrorInfo').encode({ reason: `STREAMS_ERROR_${reason}`, domain: 'streams' }).finish() }];
  if (detailType) {
    details.push({ type_url: `type.googleapis.com/${ERRORS}.${detailType}`, value: typeOf(`${ERRORS}.${detailType}`).encode(detail ?? {}).finish() });
  }
  const status = typeOf('google.rpc.Status').encode({ code: grpcStatus, message, details }).finish();
  return new GrpcCallError(grpcStatus, message, { 'grpc-status-details-bin': Buffer.from(status).toString('base64') });
}

function asV2Error(error: unknown): unknown {
  if (error instanceof WrongExpectedVersionError) {
    const expected = error.expectedState;
    const expectedRevision = expected === 'any' ? ANY : expected === 'no_stream' ? NO_STREAM : expected === 'stream_exists' ? STREAM_EXISTS : Number(expected);
    const actualRevision = error.actual.kind === 'revision' ? error.actual.revision : NO_STREAM;
    return v2Error(9, error.message, 'STREAM_REVISION_CONFLICT', 'StreamRevisionConflictErrorDetails', { stream: error.stream, expected_revision: expectedRevision, actual_revision: actualRevision });
  }
  if (error instanceof StreamDeletedError) {
    return v2Error(9, error.message, 'STREAM_TOMBSTONED', 'StreamTombstonedErrorDetails', { stream: error.stream });
  }
  if (error instanceof MaximumAppendSizeExceededError) {
    return error.scope === 'event'
      ? v2Error(3, error.message, 'APPEND_RECORD_SIZE_EXCEEDED', 'AppendRecordSizeExceededErrorDetails', { size: error.sizeBytes, max_size: error.maxAppendSizeBytes })
      : v2Error(10, error.message, 'APPEND_TRANSACTION_SIZE_EXCEEDED', 'AppendTransactionSizeExceededErrorDetails', { size: error.sizeBytes, max_size: error.maxAppendSizeBytes });
  }
  // Anything else keeps its v1 mapping (status and exception trailer).
  return error;
}
