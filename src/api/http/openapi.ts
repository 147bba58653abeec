import type { RouteSpec } from './routes.js';

/**
 * The OpenAPI 3.1 document of the HTTP API, built from the route table: the same schemas fastify
 * enforces, so the description is exactly what is checked.
 */
type Schema = { properties?: Record<string, { description?: string } & Record<string, unknown>>; required?: readonly string[] };

const PROBLEM_SCHEMA = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', description: 'urn:chronicle:error:<code>' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', description: 'The stable code of the error registry (WRONG_EXPECTED_VERSION, STREAM_NOT_FOUND, ...)' },
    instance: { type: 'string' },
    currentRevision: { type: 'integer', description: 'WRONG_EXPECTED_VERSION: the revision of the stream now (-1: no stream)' },
  },
};

function parameters(schema: object | undefined, location: 'path' | 'query' | 'header'): object[] {
  const { properties = {}, required = [] } = (schema ?? {}) as Schema;
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    // Repeated query parameters (filters) are arrays: explode them, as a browser form would.
    const isArray = rest.type === 'array';
    return {
      name: location === 'header' ? headerName(name) : name,
      in: location,
      required: location === 'path' || required.includes(name),
      ...(description ? { description } : {}),
      schema: rest,
      ...(isArray ? { style: 'form', explode: true } : {}),
    };
  });
}

/** es-expectedversion → ES-ExpectedVersion, last-event-id → Last-Event-ID (as the headers are known). */
function headerName(name: string): string {
  const known: Record<string, string> = {
    'es-expectedversion': 'ES-ExpectedVersion',
    'es-eventtype': 'ES-EventType',
    'es-eventid': 'ES-EventId',
    'es-harddelete': 'ES-HardDelete',
    'es-requireleader': 'ES-RequireLeader',
    'es-requiremaster': 'ES-RequireMaster',
    'last-event-id': 'Last-Event-ID',
  };
  return known[name] ?? name;
}

function operation(route: RouteSpec): object {
  const body = route.schema.body ? { contentTypes: ['application/json'], schema: route.schema.body } : route.documentedBody;
  const responses: Record<string, object> = {};
  for (const [status, description] of Object.entries(route.responses)) {
    const success = Number(status) < 400;
    const contentType = success ? (route.successContentType ?? 'application/json') : 'application/problem+json';
    responses[status] = {
      description,
      content: { [contentType]: { schema: success ? {} : { $ref: '#/components/schemas/Problem' } } },
    };
  }
  return {
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: route.tags,
    operationId: `${route.method.toString().toLowerCase()}${route.url.replace(/[^A-Za-z0-9]+(.)?/g, (_, next: string | undefined) => (next ?? '').toUpperCase())}`,
    parameters: [...parameters(route.schema.params, 'path'), ...parameters(route.schema.querystring, 'query'), ...parameters(route.schema.headers, 'header')],
    ...(body ? { requestBody: { required: true, content: Object.fromEntries(body.contentTypes.map((type) => [type, { schema: body.schema }])) } } : {}),
    responses,
  };
}

export function openApiDocument(routes: readonly RouteSpec[], version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][route.method.toString().toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Chronicle HTTP API',
      version,
      description: 'Streams, live subscriptions (Server-Sent Events), health, gossip and metrics. Errors are application/problem+json with a stable code.',
    },
    paths,
    components: { schemas: { Problem: PROBLEM_SCHEMA } },
  };
}
