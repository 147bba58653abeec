import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidArgumentError } from '../../errors.js';
import type { Direction } from '../../store/types.js';
import type { CommandRunner } from './command-runner.js';
import type { Command, EventInput, ExpectedVersion, FilterInput, Outcome } from './commands.js';
import { parsePosition } from './event-json.js';
import type { RouteTable } from './routes.js';
import { appendHeaders, deleteHeaders, eventsBody, metadataBody, metadataHeaders, readAllQuery, readHeaders, readStreamQuery, streamParams } from './schemas.js';

/** Streams: append, read (a stream or $all, page by page), delete, metadata. */
type Headers = Record<string, string | undefined>;

export function expectedVersionOf(headers: Headers): ExpectedVersion {
  const value = headers['es-expectedversion'];
  switch (value) {
    case undefined:
    case '-2':
    case 'any':
      return 'any';
    case '-1':
    case 'no_stream':
      return 'no_stream';
    case '-4':
    case 'stream_exists':
      return 'stream_exists';
    default:
      return Number(value);
  }
}

function isTrue(value: string | undefined): boolean {
  return value?.toLowerCase() === 'true';
}

export function requiresLeader(headers: Headers): boolean {
  return isTrue(headers['es-requireleader']) || isTrue(headers['es-requiremaster']);
}

export function sendOutcome(reply: FastifyReply, outcome: Outcome): FastifyReply {
  return reply.code(outcome.status).headers(outcome.headers).type('application/json; charset=utf-8').send(outcome.json);
}

export function filterOf(query: Record<string, unknown>): FilterInput {
  const filter: FilterInput = {};
  if (Array.isArray(query.streamPrefix)) filter.streamPrefixes = query.streamPrefix as string[];
  if (typeof query.streamRegex === 'string') filter.streamRegex = query.streamRegex;
  if (Array.isArray(query.eventTypePrefix)) filter.eventTypePrefixes = query.eventTypePrefix as string[];
  if (typeof query.eventTypeRegex === 'string') filter.eventTypeRegex = query.eventTypeRegex;
  if (query.excludeSystemEvents === true) filter.excludeSystemEvents = true;
  return filter;
}

interface EventBody {
  eventId?: string;
  eventType: string;
  data?: unknown;
  dataBase64?: string;
  metadata?: unknown;
}

/** The events of an append: a JSON array, or one event whose type and id are headers and whose data is the body. */
function eventsOf(request: FastifyRequest): EventInput[] {
  const headers = request.headers as Headers;
  const eventType = headers['es-eventtype'];
  if (eventType !== undefined) {
    const body = request.body;
    const data = Buffer.isBuffer(body) ? { base64: body.toString('base64') } : { json: body };
    return [{ eventId: headers['es-eventid'] ?? randomUUID(), eventType, data }];
  }
  if (Buffer.isBuffer(request.body)) {
    throw new InvalidArgumentError('a binary body is one event: name its type in the ES-EventType header (and its id in ES-EventId)');
  }
  if (!request.validateInput(request.body, eventsBody, 'body')) {
    const validate = request.getValidationFunction(eventsBody);
    const first = validate?.errors?.[0];
    throw new InvalidArgumentError(`invalid body: ${first ? `${first.instancePath || 'the body'} ${first.message ?? ''}`.trim() : 'not an array of events'}`);
  }
  return (request.body as EventBody[]).map((event) => {
    const input: EventInput = { eventId: event.eventId ?? randomUUID(), eventType: event.eventType };
    if (event.dataBase64 !== undefined) {
      if (event.data !== undefined) throw new InvalidArgumentError(`event ${input.eventId} has both data and dataBase64: one or the other`);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(event.dataBase64)) throw new InvalidArgumentError(`dataBase64 of event ${input.eventId} is not base64`);
      input.data = { base64: event.dataBase64 };
    } else if (event.data !== undefined) {
      input.data = { json: event.data };
    }
    if (event.metadata !== undefined) input.metadata = { json: event.metadata };
    return input;
  });
}

function revisionFrom(from: string | undefined): number | 'start' | 'end' | undefined {
  if (from === undefined || from === 'start' || from === 'end') return from;
  return Number(from);
}

/**
 * The request URL with a percent-encoded `$all` stream segment (`/streams/%24all…`) written as
 * `$all`: the router matches the literal route by the raw path, and without this the encoded
 * spelling of the same URL reached the per-stream routes, which refuse `$all`.
 */
export function withLiteralAllStream(url: string): string {
  return url.replace(/^\/streams\/%24all(?=[/?#]|$)/i, '/streams/$all');
}

export function registerStreamRoutes(routes: RouteTable, runner: CommandRunner): void {
  const run = async (request: FastifyRequest, reply: FastifyReply, command: Command) =>
    sendOutcome(reply, await runner.run(command, { requireLeader: requiresLeader(request.headers as Headers) }));
  const streamOf = (request: FastifyRequest) => (request.params as { stream: string }).stream;

  routes.add({
    method: 'POST',
    url: '/streams/:stream',
    tags: ['streams'],
    summary: 'Append events to a stream',
    description:
      'A JSON array of events, or one event: its data as the body (JSON, or raw bytes as application/octet-stream) with ES-EventType (and ES-EventId). ' +
      'Atomic: all events or none. Retrying with the same event ids writes nothing twice and answers as the first time.',
    schema: { params: streamParams, headers: appendHeaders },
    documentedBody: { contentTypes: ['application/json', 'application/vnd.eventstore.events+json'], schema: eventsBody },
    responses: { 201: 'Appended; Location names the first new event', 400: 'Malformed request', 409: 'Wrong expected version (currentRevision says where the stream is)', 410: 'The stream is tombstoned', 413: 'The append is too large', 415: 'Unsupported content type', 503: 'No leader (an election): retry after Retry-After' },
    handler: (request, reply) => run(request, reply, { kind: 'append', stream: streamOf(request), expected: expectedVersionOf(request.headers as Headers), events: eventsOf(request) }),
  });

  routes.add({
    method: 'GET',
    url: '/streams/$all',
    tags: ['streams'],
    summary: 'Read the global log ($all), one page',
    schema: { querystring: readAllQuery, headers: readHeaders },
    responses: { 200: 'A page of events, with the position and link of the next page', 400: 'Malformed request or position' },
    handler: (request, reply) => {
      const query = request.query as { from?: string; count: number; direction: Direction } & Record<string, unknown>;
      const from = query.from === undefined || query.from === 'start' || query.from === 'end' ? query.from ?? (query.direction === 'forwards' ? 'start' : 'end') : parsePosition(query.from);
      if (from === undefined) throw new InvalidArgumentError(`from must be start, end or a position commit:prepare with prepare ≥ commit, not '${query.from}'`);
      return run(request, reply, { kind: 'read-all', from, count: query.count, direction: query.direction, filter: filterOf(query) });
    },
  });

  routes.add({
    method: 'GET',
    url: '/streams/:stream',
    tags: ['streams'],
    summary: 'Read a stream, one page',
    schema: { params: streamParams, querystring: readStreamQuery, headers: readHeaders },
    responses: { 200: 'A page of events with the link of the next page', 404: 'No such stream', 410: 'The stream is tombstoned' },
    handler: (request, reply) => {
      const query = request.query as { from?: string; count: number; direction: Direction };
      const from = revisionFrom(query.from) ?? (query.direction === 'forwards' ? 'start' : 'end');
      return run(request, reply, { kind: 'read-stream', stream: streamOf(request), from, count: query.count, direction: query.direction });
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/streams/:stream',
    tags: ['streams'],
    summary: 'Delete a stream (soft; ES-HardDelete: true tombstones it)',
    description: 'A soft-deleted stream reads as not found and a later append recreates it; a tombstoned stream can never be written or read again.',
    schema: { params: streamParams, headers: deleteHeaders },
    responses: { 200: 'Deleted', 409: 'Wrong expected version', 410: 'Already tombstoned', 503: 'No leader: retry after Retry-After' },
    handler: (request, reply) => {
      const headers = request.headers as Headers;
      return run(request, reply, { kind: 'delete', stream: streamOf(request), expected: expectedVersionOf(headers), hard: isTrue(headers['es-harddelete']) });
    },
  });

  routes.add({
    method: 'GET',
    url: '/streams/:stream/metadata',
    tags: ['streams'],
    summary: "Read a stream's metadata",
    schema: { params: streamParams, headers: readHeaders },
    responses: { 200: 'The metadata and the revision of the metadata stream (-1: never set)', 410: 'The stream is tombstoned' },
    handler: (request, reply) => run(request, reply, { kind: 'get-metadata', stream: streamOf(request) }),
  });

  routes.add({
    method: 'PUT',
    url: '/streams/:stream/metadata',
    tags: ['streams'],
    summary: "Replace a stream's metadata",
    schema: { params: streamParams, headers: metadataHeaders, body: metadataBody },
    responses: { 200: 'Written', 400: 'Malformed metadata', 409: 'Wrong expected version of the metadata stream', 410: 'The stream is tombstoned' },
    handler: (request, reply) =>
      run(request, reply, { kind: 'set-metadata', stream: streamOf(request), expected: expectedVersionOf(request.headers as Headers), metadata: request.body as Record<string, unknown> }),
  });
}
