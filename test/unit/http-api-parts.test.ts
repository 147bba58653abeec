import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventJson, formatPosition, parsePosition } from '../../src/api/http/event-json.js';
import { openApiDocument } from '../../src/api/http/openapi.js';
import { asChronicleError, problemHeaders, problemOf } from '../../src/api/http/problem.js';
import { expectedVersionOf, requiresLeader, withLiteralAllStream } from '../../src/api/http/stream-routes.js';
import { ChronicleError, NotLeaderError, StreamNotFoundError, WrongExpectedVersionError } from '../../src/errors.js';
import type { RecordedEvent } from '../../src/store/types.js';

/** The HTTP API's pure pieces, from tables: header conventions, positions, problems, event JSON, OpenAPI paths. */
describe('HTTP API parts', () => {
  it('reads ES-ExpectedVersion as the old Event Store did', () => {
    const table: [string | undefined, unknown][] = [
      [undefined, 'any'],
      ['-2', 'any'],
      ['any', 'any'],
      ['-1', 'no_stream'],
      ['no_stream', 'no_stream'],
      ['-4', 'stream_exists'],
      ['stream_exists', 'stream_exists'],
      ['0', 0],
      ['41', 41],
    ];
    for (const [header, expected] of table) assert.deepEqual(expectedVersionOf({ 'es-expectedversion': header }), expected, String(header));
    assert.equal(requiresLeader({ 'es-requireleader': 'True' }), true);
    assert.equal(requiresLeader({ 'es-requiremaster': 'true' }), true);
    assert.equal(requiresLeader({ 'es-requireleader': 'false' }), false);
    assert.equal(requiresLeader({}), false);
  });

  it('routes a percent-encoded $all like the literal one, and touches no other stream', () => {
    assert.equal(withLiteralAllStream('/streams/%24all?count=1'), '/streams/$all?count=1');
    assert.equal(withLiteralAllStream('/streams/%24ALL/live'), '/streams/$all/live');
    assert.equal(withLiteralAllStream('/streams/%24all'), '/streams/$all');
    for (const url of ['/streams/%24allowed', '/streams/orders/%24all', '/streams/$all?x=%24all', '/metrics']) assert.equal(withLiteralAllStream(url), url);
  });

  it('parses positions commit:prepare (or a bare commit) and refuses the rest', () => {
    assert.deepEqual(parsePosition('10:20'), { commit: 10, prepare: 20 });
    assert.deepEqual(parsePosition('7'), { commit: 7, prepare: 7 });
    for (const bad of ['', '10:5', '-1', 'a:b', '1:2:3', '99999999999999999']) assert.equal(parsePosition(bad), undefined, bad);
    assert.equal(formatPosition({ commit: 3, prepare: 9 }), '3:9');
  });

  it('renders errors as problems from the registry, with their facts and the headers that go with them', () => {
    const conflict = problemOf(new WrongExpectedVersionError('s', 'no stream', { kind: 'revision', revision: 4 }, 'no_stream'), '/streams/s');
    assert.equal(conflict.status, 409);
    assert.equal(conflict.code, 'WRONG_EXPECTED_VERSION');
    assert.equal(conflict.type, 'urn:chronicle:error:wrong-expected-version');
    assert.equal(conflict.title, 'Wrong expected version');
    assert.equal(conflict.currentRevision, 4);
    assert.equal(conflict.instance, '/streams/s');
    assert.equal(problemHeaders(conflict)['es-currentversion'], '4');
    assert.equal(problemOf(new WrongExpectedVersionError('s', 'revision 1', { kind: 'no-stream' }, 1)).currentRevision, -1);
    const notLeader = problemOf(new NotLeaderError('follower', { host: '10.0.0.2', port: 2113 }));
    assert.equal(notLeader.status, 503);
    assert.equal(notLeader.leaderHost, '10.0.0.2');
    assert.equal(problemHeaders(notLeader)['retry-after'], '1');
    assert.equal(problemHeaders(problemOf(new StreamNotFoundError('s')))['retry-after'], undefined);
    const withTrailers = problemOf(new ChronicleError('STREAM_NOT_FOUND', 'gone', { stream: 's', 'trailer:stream-name': 's' }));
    assert.equal(withTrailers['trailer:stream-name'], undefined);
    assert.equal(withTrailers.stream, 's');
  });

  it('turns the framework’s refusals into registry errors, and anything unknown into an internal error', () => {
    const code = (error: unknown) => asChronicleError(error, 1000).code;
    assert.equal(code({ validation: [{}], validationContext: 'body', message: 'body/0 must be object', statusCode: 400 }), 'INVALID_ARGUMENT');
    assert.equal(code({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'too large' }), 'MAXIMUM_APPEND_SIZE_EXCEEDED');
    assert.equal(code({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415, message: 'Unsupported Media Type' }), 'UNSUPPORTED_MEDIA_TYPE');
    assert.equal(code(Object.assign(new SyntaxError('Unexpected token'), { statusCode: 400 })), 'INVALID_ARGUMENT');
    assert.equal(code(new TypeError('x is not a function')), 'INTERNAL_ERROR');
    assert.equal(asChronicleError(new TypeError('secret detail'), 1000).message.includes('secret'), false);
    const store = new StreamNotFoundError('s');
    assert.equal(asChronicleError(store, 1000), store);
  });

  it('shows JSON as JSON, bytes as base64, and no data as nothing', () => {
    const base: RecordedEvent = {
      streamId: 's', revision: 0, id: '6f8c0d36-2a39-4f7e-9b6e-9c0a4c1e2d3f', type: 'T', contentType: 'application/json', isJson: true,
      data: new TextEncoder().encode('{"a":1}'), metadata: new Uint8Array(0), created: new Date(0), createdMicros: 0, position: { commit: 0, prepare: 36 },
    };
    assert.deepEqual(eventJson(base).data, { a: 1 });
    assert.equal(eventJson(base).metadata, undefined);
    const binary = eventJson({ ...base, isJson: false, contentType: 'application/octet-stream', data: Uint8Array.from([0, 255]) });
    assert.equal(binary.dataBase64, 'AP8=');
    assert.equal(binary.data, undefined);
    assert.equal(eventJson({ ...base, data: new TextEncoder().encode('{not json') }).dataBase64, Buffer.from('{not json').toString('base64'));
    const empty = eventJson({ ...base, data: new Uint8Array(0) });
    assert.equal('data' in empty || 'dataBase64' in empty, false);
    assert.equal(eventJson({ ...base, metadata: Uint8Array.from([1]) }).metadataBase64, 'AQ==');
    assert.equal(eventJson(base).created, '1970-01-01T00:00:00.000Z');
  });

  it('names OpenAPI paths and parameters as clients know them', () => {
    const document = openApiDocument(
      [
        {
          method: 'GET',
          url: '/streams/:stream',
          summary: 'read',
          tags: ['streams'],
          schema: { params: { type: 'object', properties: { stream: { type: 'string' } } }, headers: { type: 'object', properties: { 'es-requireleader': { type: 'string' } } } },
          responses: { 200: 'ok', 404: 'missing' },
          handler: async () => undefined,
        },
      ],
      '1.0.0',
    ) as { paths: Record<string, { get: { parameters: { name: string; in: string }[]; responses: Record<string, { content: Record<string, unknown> }> } }> };
    const get = document.paths['/streams/{stream}']!.get;
    assert.deepEqual(get.parameters.map((parameter) => [parameter.name, parameter.in]), [['stream', 'path'], ['ES-RequireLeader', 'header']]);
    assert.ok('application/problem+json' in get.responses['404']!.content);
    assert.ok('application/json' in get.responses['200']!.content);
  });
});
