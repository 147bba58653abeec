import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type * as KurrentLib from '@kurrent/kurrentdb-client';
import { append, call, connectH2, http2Call, parsePrometheus, type JsonResponse } from './http-support.js';
import { ServerProcess, stopAllServers } from './server-process.js';
import { uniqueStream } from './support.js';

/**
 * The HTTP API of a single node, over real sockets: every endpoint and every error it answers,
 * over HTTP/1.1 (fetch) and HTTP/2 (h2c), on the same port as gRPC with the official client
 * working at the same time. Errors are problem+json with the registry's code, and a request the
 * API refuses leaves the store untouched.
 */
const MAX_APPEND_SIZE = 64 * 1024;

interface EventJson {
  eventId: string;
  eventType: string;
  streamId: string;
  revision: number;
  position: { commit: number; prepare: number };
  created: string;
  contentType: string;
  data?: unknown;
  dataBase64?: string;
  metadata?: unknown;
}

interface Page {
  events: EventJson[];
  isEnd: boolean;
  links: { next?: string };
  nextPosition?: string;
}

function assertProblem(response: JsonResponse, status: number, code: string): Record<string, unknown> {
  assert.equal(response.status, status, `expected ${status} ${code}, got ${response.status}: ${response.text}`);
  assert.match(response.headers['content-type'] ?? '', /^application\/problem\+json/);
  const problem = response.body as Record<string, unknown>;
  assert.equal(problem.code, code);
  assert.equal(problem.status, status);
  assert.equal(typeof problem.detail, 'string');
  assert.equal(problem.type, `urn:chronicle:error:${code.toLowerCase().replaceAll('_', '-')}`);
  return problem;
}

describe('the HTTP API of a single node', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let base: string;

  before(async () => {
    server = await ServerProcess.start({ extraArgs: ['--max-append-size', String(MAX_APPEND_SIZE)] });
    base = `http://127.0.0.1:${server.port}`;
  });

  after(async () => {
    await stopAllServers();
  });

  const page = async (path: string): Promise<Page> => {
    const response = await call(`${base}${path}`);
    assert.equal(response.status, 200, response.text);
    return response.body as Page;
  };

  it('appends a JSON array atomically and reads it forwards and backwards with page links', async () => {
    const stream = uniqueStream('http-orders');
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const appended = await append(base, stream, [
      { eventId: ids[0], eventType: 'Placed', data: { total: 5 } },
      { eventId: ids[1], eventType: 'Paid', data: { amount: 5 }, metadata: { by: 'card' } },
      { eventId: ids[2], eventType: 'Shipped' },
    ], { 'ES-ExpectedVersion': '-1' });
    assert.equal(appended.status, 201, appended.text);
    assert.deepEqual((appended.body as { nextExpectedRevision: number }).nextExpectedRevision, 2);
    assert.equal(appended.headers.location, `/streams/${stream}?from=0&count=3`);

    const forwards = await page(`/streams/${stream}?count=2`);
    assert.deepEqual(forwards.events.map((event) => [event.revision, event.eventId, event.eventType]), [[0, ids[0], 'Placed'], [1, ids[1], 'Paid']]);
    assert.deepEqual(forwards.events[0]!.data, { total: 5 });
    assert.deepEqual(forwards.events[1]!.metadata, { by: 'card' });
    assert.equal(forwards.events[0]!.streamId, stream);
    assert.ok(Math.abs(Date.parse(forwards.events[0]!.created) - Date.now()) < 60_000);
    assert.ok(forwards.events[1]!.position.prepare > forwards.events[0]!.position.prepare);
    assert.equal(forwards.isEnd, false);
    const rest = await page(forwards.links.next!);
    assert.deepEqual(rest.events.map((event) => event.revision), [2]);
    assert.equal(rest.isEnd, true);
    assert.equal(rest.events[0]!.data, undefined);

    const backwards = await page(`/streams/${stream}?direction=backwards&count=2`);
    assert.deepEqual(backwards.events.map((event) => event.revision), [2, 1]);
    const older = await page(backwards.links.next!);
    assert.deepEqual(older.events.map((event) => event.revision), [0]);
    const fromEnd = await page(`/streams/${stream}?from=1&direction=backwards`);
    assert.deepEqual(fromEnd.events.map((event) => event.revision), [1, 0]);
  });

  it('follows the old Event Store expected-version conventions: -2 any, -1 no stream, -4 exists, a revision', async () => {
    const stream = uniqueStream('http-expected');
    const event = () => [{ eventType: 'E', data: {} }];
    const missing = assertProblem(await append(base, stream, event(), { 'ES-ExpectedVersion': '-4' }), 409, 'WRONG_EXPECTED_VERSION');
    assert.equal(missing.currentRevision, -1);
    assert.equal((await append(base, stream, event(), { 'ES-ExpectedVersion': '-1' })).status, 201);
    const conflict = await append(base, stream, event(), { 'ES-ExpectedVersion': '-1' });
    assert.equal(assertProblem(conflict, 409, 'WRONG_EXPECTED_VERSION').currentRevision, 0);
    assert.equal(conflict.headers['es-currentversion'], '0');
    assert.equal((await append(base, stream, event(), { 'ES-ExpectedVersion': '-4' })).status, 201);
    assert.equal((await append(base, stream, event(), { 'ES-ExpectedVersion': '1' })).status, 201);
    assert.equal(assertProblem(await append(base, stream, event(), { 'ES-ExpectedVersion': '1' }), 409, 'WRONG_EXPECTED_VERSION').currentRevision, 2);
    assert.equal((await append(base, stream, event(), { 'ES-ExpectedVersion': '-2' })).status, 201);
    assert.equal((await append(base, stream, event())).status, 201);
    assert.equal((await page(`/streams/${stream}`)).events.length, 5);
  });

  it('takes one event by ES-EventType and ES-EventId, JSON or raw bytes, and a retry writes nothing twice', async () => {
    const stream = uniqueStream('http-single');
    const id = randomUUID();
    const headers = { 'content-type': 'application/json', 'ES-EventType': 'Registered', 'ES-EventId': id };
    const first = await call(`${base}/streams/${stream}`, { method: 'POST', headers, body: JSON.stringify({ name: 'ada' }) });
    assert.equal(first.status, 201, first.text);
    const retry = await call(`${base}/streams/${stream}`, { method: 'POST', headers, body: JSON.stringify({ name: 'ada' }) });
    assert.equal(retry.status, 201);
    assert.deepEqual(retry.body, first.body);
    const bytes = Uint8Array.from([0, 1, 2, 250, 255]);
    const binary = await call(`${base}/streams/${stream}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'ES-EventType': 'Blob' }, body: bytes });
    assert.equal(binary.status, 201, binary.text);
    const events = (await page(`/streams/${stream}`)).events;
    assert.deepEqual(events.map((event) => [event.eventId === id, event.eventType]), [[true, 'Registered'], [false, 'Blob']]);
    assert.deepEqual(events[0]!.data, { name: 'ada' });
    assert.equal(events[1]!.contentType, 'application/octet-stream');
    assert.deepEqual([...Buffer.from(events[1]!.dataBase64!, 'base64')], [...bytes]);

    const arrayRetry = [{ eventId: randomUUID(), eventType: 'A' }, { eventId: randomUUID(), eventType: 'B', dataBase64: Buffer.from('hi').toString('base64') }];
    const once = await append(base, stream, arrayRetry);
    const twice = await append(base, stream, arrayRetry);
    assert.deepEqual(twice.body, once.body);
    const all = (await page(`/streams/${stream}`)).events;
    assert.equal(all.length, 4);
    assert.equal(Buffer.from(all[3]!.dataBase64!, 'base64').toString(), 'hi');
  });

  it('refuses malformed requests with a 4xx problem, and none of them reaches the store', async () => {
    const stream = uniqueStream('http-bad');
    assert.equal((await append(base, stream, [{ eventType: 'Kept' }])).status, 201);
    const post = (body: string | Uint8Array, headers: Record<string, string>) => call(`${base}/streams/${stream}`, { method: 'POST', headers, body });
    const json = { 'content-type': 'application/json' };
    assertProblem(await post('[{"eventType": "A"', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"data": {}}]', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"eventType": "A", "colour": "red"}]', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"eventType": "A", "eventId": "not-a-uuid"}]', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[]', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"eventType": "A", "data": 1, "dataBase64": "AA=="}]', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"eventType": "A", "dataBase64": "!!"}]', json), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"eventType": "A"}]', { ...json, 'ES-ExpectedVersion': 'seven' }), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('[{"eventType": "A"}]', { ...json, 'ES-ExpectedVersion': '-3' }), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('{}', { ...json, 'ES-EventType': 'A', 'ES-EventId': 'nope' }), 400, 'INVALID_ARGUMENT');
    assertProblem(await post('hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertProblem(await post(Uint8Array.from([1, 2]), { 'content-type': 'application/octet-stream' }), 400, 'INVALID_ARGUMENT');
    const big = JSON.stringify([{ eventType: 'Big', data: { text: 'x'.repeat(MAX_APPEND_SIZE + 10) } }]);
    const tooLarge = assertProblem(await post(big, json), 413, 'MAXIMUM_APPEND_SIZE_EXCEEDED');
    assert.equal(tooLarge.maxAppendSizeBytes, MAX_APPEND_SIZE);
    assertProblem(await post(JSON.stringify([{ eventType: 'Huge', data: 'y'.repeat(4 * MAX_APPEND_SIZE + 2 * 1024 * 1024) }]), json), 413, 'MAXIMUM_APPEND_SIZE_EXCEEDED');
    assertProblem(await call(`${base}/streams/%24system-thing`, { method: 'POST', headers: json, body: '[{"eventType":"A"}]' }), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/${stream}?count=0`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/${stream}?count=5000`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/${stream}?direction=sideways`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/${stream}?colour=red`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/$all?from=10:5`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/$all?from=3`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/$all?streamRegex=(`), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/${stream}/metadata`, { method: 'PUT', headers: json, body: '{"$maxCount": -1}' }), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/streams/${stream}/metadata`, { method: 'PUT', headers: json, body: '[1]' }), 400, 'INVALID_ARGUMENT');
    assertProblem(await call(`${base}/no/such/route`), 404, 'ROUTE_NOT_FOUND');
    assertProblem(await call(`${base}/streams/${uniqueStream('never')}`), 404, 'STREAM_NOT_FOUND');
    // The store saw only the first, valid append.
    const events = (await page(`/streams/${stream}`)).events;
    assert.deepEqual(events.map((event) => event.eventType), ['Kept']);
  });

  it('soft-deletes (reads say 404, an append recreates), hard-deletes (410 for ever), with expected versions', async () => {
    const stream = uniqueStream('http-delete');
    await append(base, stream, [{ eventType: 'A' }, { eventType: 'B' }]);
    assertProblem(await call(`${base}/streams/${stream}`, { method: 'DELETE', headers: { 'ES-ExpectedVersion': '0' } }), 409, 'WRONG_EXPECTED_VERSION');
    const deleted = await call(`${base}/streams/${stream}`, { method: 'DELETE', headers: { 'ES-ExpectedVersion': '1' } });
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal((deleted.body as { hardDeleted: boolean }).hardDeleted, false);
    assertProblem(await call(`${base}/streams/${stream}`), 404, 'STREAM_NOT_FOUND');
    assert.equal((await append(base, stream, [{ eventType: 'C' }])).status, 201);
    assert.deepEqual((await page(`/streams/${stream}`)).events.map((event) => [event.revision, event.eventType]), [[2, 'C']]);
    const hard = await call(`${base}/streams/${stream}`, { method: 'DELETE', headers: { 'ES-HardDelete': 'true' } });
    assert.equal(hard.status, 200, hard.text);
    assertProblem(await call(`${base}/streams/${stream}`), 410, 'STREAM_DELETED');
    assertProblem(await append(base, stream, [{ eventType: 'D' }]), 410, 'STREAM_DELETED');
    assertProblem(await call(`${base}/streams/${stream}`, { method: 'DELETE', headers: { 'ES-HardDelete': 'true' } }), 410, 'STREAM_DELETED');
    assertProblem(await call(`${base}/streams/${stream}/metadata`), 410, 'STREAM_DELETED');
    assertProblem(await call(`${base}/streams/${stream}`, { method: 'DELETE', headers: { 'ES-HardDelete': 'maybe' } }), 400, 'INVALID_ARGUMENT');
  });

  it('reads and writes stream metadata, with the expected version of the metadata stream', async () => {
    const stream = uniqueStream('http-meta');
    await append(base, stream, [{ eventType: 'A' }, { eventType: 'B' }, { eventType: 'C' }]);
    const none = await call(`${base}/streams/${stream}/metadata`);
    assert.deepEqual(none.body, { stream, metastreamRevision: -1, metadata: {} });
    const put = (body: object, expected?: string) =>
      call(`${base}/streams/${stream}/metadata`, { method: 'PUT', headers: { 'content-type': 'application/json', ...(expected ? { 'ES-ExpectedVersion': expected } : {}) }, body: JSON.stringify(body) });
    assert.equal((await put({ $maxCount: 2, owner: 'billing' }, '-1')).status, 200);
    assertProblem(await put({ $maxCount: 1 }, '-1'), 409, 'WRONG_EXPECTED_VERSION');
    const read = await call(`${base}/streams/${stream}/metadata`);
    assert.deepEqual(read.body, { stream, metastreamRevision: 0, metadata: { $maxCount: 2, owner: 'billing' } });
    assert.deepEqual((await page(`/streams/${stream}`)).events.map((event) => event.eventType), ['B', 'C']);
  });

  it('reads $all with filters, following the next-page links to the end', async () => {
    const prefix = `http-all-${randomUUID().slice(0, 8)}-`;
    for (let i = 0; i < 5; i++) await append(base, `${prefix}${i}`, [{ eventType: i % 2 === 0 ? 'Even' : 'Odd', data: { i } }]);
    const seen: number[] = [];
    let path: string | undefined = `/streams/$all?count=2&streamPrefix=${prefix}`;
    for (let pages = 0; path && pages < 50; pages++) {
      const current: Page = await page(path);
      for (const event of current.events) seen.push((event.data as { i: number }).i);
      path = current.isEnd ? undefined : current.links.next;
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    const odd = await page(`/streams/$all?count=100&streamPrefix=${prefix}&eventTypePrefix=Od`);
    assert.deepEqual(odd.events.map((event) => (event.data as { i: number }).i), [1, 3]);
    const regex = await page(`/streams/$all?count=100&streamRegex=${encodeURIComponent(`^${prefix}[34]$`)}`);
    assert.deepEqual(regex.events.map((event) => event.streamId), [`${prefix}3`, `${prefix}4`]);
    const encoded = await page(`/streams/%24all?count=100&streamPrefix=${prefix}&eventTypePrefix=Od`);
    assert.deepEqual(encoded.events.map((event) => (event.data as { i: number }).i), [1, 3], 'a percent-encoded $all reads the global log too');
    const backwards = await page(`/streams/$all?direction=backwards&count=3`);
    assert.equal(backwards.events.length, 3);
    assert.ok(backwards.events[0]!.position.commit >= backwards.events[2]!.position.commit);
    const older = await page(backwards.links.next!);
    assert.ok(older.events.every((event) => event.position.prepare < backwards.events[2]!.position.prepare));
  });

  it('serves HTTP/2 (cleartext, prior knowledge) on the same port', async () => {
    const session = connectH2(base);
    try {
      const stream = uniqueStream('http2');
      const appended = await http2Call(session, `/streams/${stream}`, { method: 'POST', headers: { 'content-type': 'application/json', 'es-expectedversion': '-1' }, body: '[{"eventType":"OverH2","data":{"ok":true}}]' });
      assert.equal(appended.status, 201, appended.text);
      const read = await http2Call(session, `/streams/${stream}`);
      assert.deepEqual((read.body as Page).events.map((event) => event.data), [{ ok: true }]);
      const conflict = await http2Call(session, `/streams/${stream}`, { method: 'POST', headers: { 'content-type': 'application/json', 'es-expectedversion': '-1' }, body: '[{"eventType":"Again"}]' });
      assertProblem(conflict, 409, 'WRONG_EXPECTED_VERSION');
      assert.equal((await http2Call(session, '/ping')).status, 200);
    } finally {
      session.close();
    }
  });

  it('serves the official gRPC client on the same port while HTTP/1.1 and HTTP/2 requests run', async () => {
    const kurrent: typeof KurrentLib = await import('@kurrent/kurrentdb-client');
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${server.port}?tls=false`);
    const session = connectH2(base);
    const stream = uniqueStream('http-and-grpc');
    try {
      await Promise.all([
        ...Array.from({ length: 30 }, (_, i) => client.appendToStream(stream, [kurrent.jsonEvent({ type: 'ByGrpc', data: { i } })])),
        ...Array.from({ length: 30 }, (_, i) => append(base, stream, [{ eventType: 'ByHttp1', data: { i } }]).then((response) => assert.equal(response.status, 201))),
        ...Array.from({ length: 30 }, (_, i) =>
          http2Call(session, `/streams/${stream}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ eventType: 'ByHttp2', data: { i } }]) }).then((response) => assert.equal(response.status, 201)),
        ),
      ]);
      const types: string[] = [];
      for await (const resolved of client.readStream(stream)) types.push(resolved.event!.type);
      assert.equal(types.length, 90);
      const viaHttp = await page(`/streams/${stream}?count=100`);
      assert.deepEqual(viaHttp.events.map((event) => event.eventType), types);
      for (const type of ['ByGrpc', 'ByHttp1', 'ByHttp2']) assert.equal(types.filter((each) => each === type).length, 30);
    } finally {
      session.close();
      await client.dispose();
    }
  });

  it('answers ping, liveness, readiness, gossip and info', async () => {
    assert.deepEqual((await call(`${base}/ping`)).body, { text: 'Ping request successfully handled' });
    assert.deepEqual((await call(`${base}/health/live`)).body, { status: 'live' });
    const ready = await call(`${base}/health/ready`);
    assert.equal(ready.status, 200);
    assert.equal((ready.body as { status: string }).status, 'ready');
    const gossip = (await call(`${base}/gossip`)).body as { members: Record<string, unknown>[]; serverPort: number };
    assert.equal(gossip.members.length, 1);
    assert.equal(gossip.members[0]!.state, 'Leader');
    assert.equal(gossip.members[0]!.isAlive, true);
    assert.equal(gossip.members[0]!.externalHttpPort, server.port);
    assert.equal(gossip.serverPort, server.port);
    const info = (await call(`${base}/info`)).body as { version: string; features: string[] };
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.ok(info.features.includes('live-sse'));
  });

  it('describes every route in /openapi.json', async () => {
    const document = (await call(`${base}/openapi.json`)).body as { openapi: string; paths: Record<string, Record<string, { responses: object; parameters: { name: string }[] }>> };
    assert.equal(document.openapi, '3.1.0');
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    assert.deepEqual(operations.sort(), [
      'DELETE /streams/{stream}',
      'GET /gossip',
      'GET /health/live',
      'GET /health/ready',
      'GET /info',
      'GET /metrics',
      'GET /openapi.json',
      'GET /ping',
      'GET /streams/$all',
      'GET /streams/$all/live',
      'GET /streams/{stream}',
      'GET /streams/{stream}/live',
      'GET /streams/{stream}/metadata',
      'POST /streams/{stream}',
      'PUT /streams/{stream}/metadata',
    ]);
    const appendParameters = document.paths['/streams/{stream}']!.post!.parameters.map((parameter) => parameter.name);
    for (const header of ['stream', 'ES-ExpectedVersion', 'ES-EventType', 'ES-EventId', 'ES-RequireLeader']) assert.ok(appendParameters.includes(header), header);
  });

  it('exposes Prometheus metrics that parse and move under load', async () => {
    const before = parsePrometheus((await call(`${base}/metrics`)).text);
    const stream = uniqueStream('http-metrics');
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => append(base, stream, [{ eventType: 'Load', data: { round, i } }])));
    }
    await page(`/streams/${stream}?count=500`);
    const after = parsePrometheus((await call(`${base}/metrics`)).text);
    const grew = (name: string, by: number) => assert.ok((after.get(name) ?? 0) - (before.get(name) ?? 0) >= by, `${name}: ${before.get(name)} → ${after.get(name)}`);
    grew('chronicle_writes_total', 200);
    grew('chronicle_events_written_total', 200);
    grew('chronicle_written_bytes_total', 200 * 20);
    grew('chronicle_reads_total', 1);
    grew('chronicle_events_read_total', 200);
    grew('chronicle_fsync_duration_seconds_count', 1);
    grew('chronicle_group_commit_records_count', 1);
    grew('chronicle_group_commit_records_sum', 200);
    assert.ok((after.get('chronicle_committed_position_bytes') ?? 0) > (before.get('chronicle_committed_position_bytes') ?? 0));
    assert.ok(after.has('nodejs_eventloop_lag_seconds'));
    assert.ok(after.has('process_resident_memory_bytes'));
  });
});
