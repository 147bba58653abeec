/**
 * The JSON schemas of the HTTP API: fastify validates every parameter, header and body against
 * them before a handler runs (a malformed request never reaches the store), and the OpenAPI
 * document is built from the same objects, so the description cannot drift from what is enforced.
 */
const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const MAX_PAGE_EVENTS = 4096;

export const streamParams = {
  type: 'object',
  required: ['stream'],
  properties: { stream: { type: 'string', minLength: 1, maxLength: 4096, description: 'The stream name, URL-encoded' } },
} as const;

const expectedVersionHeader = {
  type: 'string',
  pattern: '^(-[124]|[0-9]{1,16}|any|no_stream|stream_exists)$',
  description: 'The state the stream must be in: -2 any, -1 no stream, -4 the stream exists, or the revision of its last event',
} as const;
const booleanHeader = { type: 'string', enum: ['true', 'false', 'True', 'False', 'TRUE', 'FALSE'] } as const;
const requireLeaderHeaders = {
  'es-requireleader': { ...booleanHeader, description: 'true: served by the leader (forwarded to it), reads see every acknowledged write' },
  'es-requiremaster': { ...booleanHeader, description: 'The old name of ES-RequireLeader' },
} as const;

export const appendHeaders = {
  type: 'object',
  properties: {
    'es-expectedversion': expectedVersionHeader,
    'es-eventtype': { type: 'string', minLength: 1, maxLength: 1024, description: 'Single-event form: the body is the event data and this is its type' },
    'es-eventid': { type: 'string', pattern: UUID_PATTERN, description: 'Single-event form: the event id (generated when absent)' },
    ...requireLeaderHeaders,
  },
} as const;

const payloadSchema = { description: 'Any JSON value' } as const;

export const eventsBody = {
  type: 'array',
  minItems: 1,
  maxItems: 100_000,
  items: {
    type: 'object',
    required: ['eventType'],
    additionalProperties: false,
    properties: {
      eventId: { type: 'string', pattern: UUID_PATTERN, description: 'A UUID; retrying an append with the same ids writes nothing twice (generated when absent)' },
      eventType: { type: 'string', minLength: 1, maxLength: 1024 },
      data: payloadSchema,
      dataBase64: { type: 'string', contentEncoding: 'base64', description: 'Binary data, instead of `data`' },
      metadata: payloadSchema,
    },
  },
} as const;

export const deleteHeaders = {
  type: 'object',
  properties: {
    'es-expectedversion': expectedVersionHeader,
    'es-harddelete': { ...booleanHeader, description: 'true: tombstone the stream (final); otherwise a soft delete' },
    ...requireLeaderHeaders,
  },
} as const;

export const metadataHeaders = {
  type: 'object',
  properties: { 'es-expectedversion': { ...expectedVersionHeader, description: 'The expected state of the metadata stream ($$stream)' }, ...requireLeaderHeaders },
} as const;

export const readHeaders = { type: 'object', properties: { ...requireLeaderHeaders } } as const;

export const metadataBody = {
  type: 'object',
  description: 'Stream metadata: $maxCount, $maxAge, $tb, $cacheControl, $acl and custom keys',
  properties: {
    $maxCount: { type: 'integer', minimum: 1 },
    $maxAge: { type: 'integer', minimum: 1 },
    $tb: { type: 'integer', minimum: 0 },
    $cacheControl: { type: 'integer', minimum: 1 },
    $acl: { type: 'object' },
  },
} as const;

const countQuery = { type: 'integer', minimum: 1, maximum: MAX_PAGE_EVENTS, default: 20 } as const;
const directionQuery = { type: 'string', enum: ['forwards', 'backwards'], default: 'forwards' } as const;

export const readStreamQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { type: 'string', pattern: '^(start|end|[0-9]{1,16})$', description: 'A revision, start or end (default: start forwards, end backwards)' },
    count: countQuery,
    direction: directionQuery,
  },
} as const;

const filterProperties = {
  streamPrefix: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1 }, description: 'Events of streams starting with any of these (repeat the parameter)' },
  streamRegex: { type: 'string', minLength: 1, maxLength: 1024, description: 'Events of streams whose whole name matches' },
  eventTypePrefix: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1 }, description: 'Events whose type starts with any of these' },
  eventTypeRegex: { type: 'string', minLength: 1, maxLength: 1024, description: 'Events whose whole type matches' },
  excludeSystemEvents: { type: 'boolean', description: 'Skip events whose type starts with $' },
} as const;

const positionPattern = '^(start|end|[0-9]{1,16}(:[0-9]{1,16})?)$';

export const readAllQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { type: 'string', pattern: positionPattern, description: 'A position commit:prepare (or commit), start or end' },
    count: countQuery,
    direction: directionQuery,
    ...filterProperties,
  },
} as const;

export const liveStreamQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { from: { type: 'string', pattern: '^(start|end|[0-9]{1,16})$', description: 'The first revision delivered, start (default) or end (only new events)' } },
} as const;

export const liveAllQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { type: 'string', pattern: positionPattern, description: 'Deliver after this position, or from start (default), or end (only new events)' },
    checkpointEvery: { type: 'integer', minimum: 1, maximum: 100_000, default: 1000, description: 'With a filter: send a checkpoint after examining this many events' },
    ...filterProperties,
  },
} as const;

export const liveHeaders = {
  type: 'object',
  properties: { 'last-event-id': { type: 'string', maxLength: 64, description: 'Resume after this event (the id of the last event received)' } },
} as const;

export const MAX_PAGE = MAX_PAGE_EVENTS;
export { UUID_PATTERN };
