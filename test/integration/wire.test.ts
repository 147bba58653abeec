import assert from 'node:assert/strict';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { after, before, test } from 'node:test';
import { forEachClient, withServerLog } from './client-matrix.js';
import type { ClientKit, TestClient } from './clients.js';
import { ServerProcess, freePort } from './server-process.js';
import { closeAfterTests, describe, seededBytes, seededRandom, uniqueStream, withTimeout } from './support.js';

/**
 * The gRPC surface on the wire: raw node:http2 requests that a client library would never send
 * (unknown methods, garbage, truncated frames, huge headers, a seeded fuzz loop) must each get
 * a gRPC answer and never take the node down; then the clients' own use of ServerFeatures and
 * Gossip (discovery) against the same node. Runs once per official client, so each checks with
 * its own client that the node still serves appends after the abuse.
 */
const CALL_MS = 10_000;
const TEST_OPTIONS = { timeout: 30_000 };

const STREAMS = '/event_store.client.streams.Streams';
const FUZZ_PATHS = [
  `${STREAMS}/Read`,
  `${STREAMS}/Append`,
  `${STREAMS}/BatchAppend`,
  `${STREAMS}/Delete`,
  `${STREAMS}/Tombstone`,
  '/event_store.client.server_features.ServerFeatures/GetSupportedMethods',
  '/event_store.client.gossip.Gossip/Read',
];

interface RawAnswer {
  /** HTTP :status of the response headers, if any came. */
  httpStatus: number | undefined;
  /** grpc-status from the trailers (or from a trailers-only response). */
  grpcStatus: number | undefined;
  grpcMessage: string | undefined;
  /** Response body bytes (framed gRPC messages). */
  body: Buffer;
  /** The RST_STREAM code if the stream was reset, else 0. */
  rstCode: number;
  /** Neither an answer nor a reset within the time limit (the request was then cancelled). */
  timedOut: boolean;
  /** A session or stream error seen by the client. */
  error: string | undefined;
}

function frame(message: Buffer, compressed = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed;
  prefix.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([prefix, message]);
}

/** A raw HTTP/2 session to the node; reopened if the node closed it. */
class RawConnection {
  private session: ClientHttp2Session | undefined;
  sessionsOpened = 0;
  sessionErrors: string[] = [];

  constructor(private readonly port: number) {}

  private current(): ClientHttp2Session {
    if (!this.session || this.session.closed || this.session.destroyed) {
      const session = http2.connect(`http://127.0.0.1:${this.port}`);
      session.on('error', (error) => this.sessionErrors.push(error.message));
      session.on('goaway', () => undefined);
      this.session = session;
      this.sessionsOpened++;
    }
    return this.session;
  }

  /** Sends one request (the given body chunks, then end of stream unless `end: false`) and collects the answer; cancels it after `timeoutMs`. */
  request(
    path: string,
    chunks: readonly Buffer[],
    options: { headers?: Record<string, string | string[]>; timeoutMs?: number; contentType?: string; end?: boolean } = {},
  ): Promise<RawAnswer> {
    const timeoutMs = options.timeoutMs ?? 3_000;
    return new Promise<RawAnswer>((resolve) => {
      const answer: RawAnswer = { httpStatus: undefined, grpcStatus: undefined, grpcMessage: undefined, body: Buffer.alloc(0), rstCode: 0, timedOut: false, error: undefined };
      const parts: Buffer[] = [];
      let settled = false;
      const readGrpc = (headers: IncomingHttpHeaders) => {
        if (headers['grpc-status'] !== undefined) answer.grpcStatus = Number(headers['grpc-status']);
        if (headers['grpc-message'] !== undefined) answer.grpcMessage = decodeURIComponent(String(headers['grpc-message']));
      };
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.current().request({
          ':method': 'POST',
          ':path': path,
          'content-type': options.contentType ?? 'application/grpc',
          te: 'trailers',
          ...options.headers,
        });
      } catch (error) {
        answer.error = (error as Error).message;
        resolve(answer);
        return;
      }
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        answer.body = Buffer.concat(parts);
        answer.rstCode = stream.rstCode ?? 0;
        resolve(answer);
      };
      const timer = setTimeout(() => {
        answer.timedOut = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish();
      }, timeoutMs);
      stream.on('response', (headers) => {
        answer.httpStatus = Number(headers[':status']);
        readGrpc(headers);
      });
      stream.on('trailers', (trailers) => readGrpc(trailers));
      stream.on('data', (chunk: Buffer) => parts.push(chunk));
      stream.on('error', (error) => (answer.error ??= error.message));
      stream.on('close', finish);
      for (const chunk of chunks) stream.write(chunk);
      if (options.end !== false) stream.end();
    });
  }

  close(): void {
    this.session?.close();
  }
}

/**
 * Random bytes rarely decode as protobuf; these do: random fields (numbers 1-12) of valid wire
 * types, length-delimited ones holding nested random messages, so the handlers see well-formed
 * requests with nonsense in them.
 */
function randomProtobuf(random: () => number, depth: number): Buffer {
  const parts: Buffer[] = [];
  const fields = Math.floor(random() * 5);
  const varint = (value: number) => {
    const bytes: number[] = [];
    let rest = value;
    while (rest > 0x7f) {
      bytes.push((rest & 0x7f) | 0x80);
      rest = Math.floor(rest / 128);
    }
    bytes.push(rest);
    return Buffer.from(bytes);
  };
  for (let i = 0; i < fields; i++) {
    const field = 1 + Math.floor(random() * 12);
    const kind = random();
    if (kind < 0.35) {
      const value = random() < 0.5 ? Math.floor(random() * 4) : Math.floor(random() * 2 ** 40);
      parts.push(varint(field * 8), varint(value));
    } else if (kind < 0.45) {
      parts.push(varint(field * 8 + 1), seededBytes(random, 8));
    } else {
      const body = depth > 0 && random() < 0.7 ? randomProtobuf(random, depth - 1) : seededBytes(random, Math.floor(random() * 40));
      parts.push(varint(field * 8 + 2), varint(body.byteLength), body);
    }
  }
  return Buffer.concat(parts);
}

function answered(answer: RawAnswer): boolean {
  return answer.grpcStatus !== undefined || answer.rstCode !== 0 || answer.httpStatus !== undefined;
}

function describeAnswer(answer: RawAnswer): string {
  return `http ${answer.httpStatus}, grpc-status ${answer.grpcStatus} (${answer.grpcMessage ?? ''}), rst ${answer.rstCode}, ${answer.body.byteLength} body bytes${answer.timedOut ? ', timed out' : ''}${answer.error ? `, error ${answer.error}` : ''}`;
}

forEachClient(import.meta.url, { timeoutMs: 45_000 }, (kitPromise) => {
  let kit: ClientKit;
  let server: ServerProcess;
  let client: TestClient;
  let raw: RawConnection;
  const clients: TestClient[] = [];

  before(async () => {
    kit = await kitPromise;
    server = await ServerProcess.start();
    client = kit.connect(server.port);
    clients.push(client);
    raw = new RawConnection(server.port);
  });

  after(async () => {
    raw?.close();
    await closeAfterTests([], clients);
  });

  const check = <T>(body: () => Promise<T>) => withServerLog(server, body);
  const call = <T>(promise: Promise<T>, what: string) => withTimeout(promise, CALL_MS, what);

  async function assertNodeServes(what: string): Promise<void> {
    assert.ok(server.isRunning, `the node is running after ${what} (exit: ${describe(server.exitStatus)})`);
    const stream = uniqueStream('still-up');
    const result = await call(client.append(stream, [{ type: 'StillUp', data: { after: what } }]), `an append after ${what}`);
    assert.equal(result.success, true);
    const events = await call(client.readStream(stream), `a read after ${what}`);
    assert.equal(events.length, 1);
  }

  test('raw: an unknown method or service gets grpc-status 12 (UNIMPLEMENTED); a non-gRPC request goes to the HTTP API (no such route: 404)', TEST_OPTIONS, () =>
    check(async () => {
      for (const path of [`${STREAMS}/NoSuchMethod`, '/no.such.Service/Read', '/', `${STREAMS.toLowerCase()}/read`]) {
        const answer = await raw.request(path, [frame(Buffer.alloc(0))]);
        assert.equal(answer.grpcStatus, 12, `${path}: ${describeAnswer(answer)}`);
        assert.equal(answer.httpStatus, 200, `${path}: gRPC errors travel with HTTP 200`);
      }
      const notGrpc = await raw.request(`${STREAMS}/Read`, [Buffer.from('{}')], { contentType: 'application/json' });
      assert.equal(notGrpc.httpStatus, 404, describeAnswer(notGrpc));
      assert.equal(notGrpc.grpcStatus, undefined, describeAnswer(notGrpc));
    }),
  );

  test('raw: garbage as the gRPC message of Read, Append, BatchAppend and Delete gets a non-OK grpc-status', TEST_OPTIONS, () =>
    check(async () => {
      // Field 1 with wire type 7 (which does not exist), then junk: no protobuf decoder accepts it.
      const garbage = Buffer.from([0x0f, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37, 0xde, 0xad]);
      for (const method of ['Read', 'Append', 'BatchAppend', 'Delete', 'Tombstone']) {
        const answer = await raw.request(`${STREAMS}/${method}`, [frame(garbage)]);
        assert.ok(answer.grpcStatus !== undefined && answer.grpcStatus !== 0, `${method} with garbage: ${describeAnswer(answer)}`);
        assert.ok(!answer.timedOut, `${method} with garbage was answered`);
      }
      await assertNodeServes('garbage messages');
    }),
  );

  test('raw: a truncated length prefix, a short message body and a compressed flag get a non-OK grpc-status', TEST_OPTIONS, () =>
    check(async () => {
      const cases: [string, Buffer[]][] = [
        ['three bytes of a five-byte prefix', [Buffer.from([0, 0, 0])]],
        ['a prefix announcing 100 bytes, then 10', [Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.alloc(10, 1)])]],
        ['a prefix announcing 4 GiB - 1', [Buffer.from([0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])]],
        ['a compressed message (none was negotiated)', [frame(Buffer.from([0x0a, 0x00]), 1)]],
        ['a valid empty message then a truncated one', [frame(Buffer.alloc(0)), Buffer.from([0, 0])]],
      ];
      for (const method of ['Read', 'Append', 'Delete']) {
        for (const [what, chunks] of cases) {
          const answer = await raw.request(`${STREAMS}/${method}`, chunks);
          assert.ok(answer.grpcStatus !== undefined && answer.grpcStatus !== 0, `${method}, ${what}: ${describeAnswer(answer)}`);
        }
      }
      // Requests whose bodies never end, cancelled by the client after a while: the node lets them go.
      for (const method of ['Read', 'Append', 'BatchAppend', 'Delete']) {
        const open = await raw.request(`${STREAMS}/${method}`, [Buffer.from([0, 0, 0, 0, 50, 1, 2])], { timeoutMs: 300, end: false });
        assert.ok(open.timedOut || answered(open), `${method} with an open body: ${describeAnswer(open)}`);
      }
      await assertNodeServes('truncated and compressed messages');
    }),
  );

  test('raw: a 100 KB header and thousands of headers are refused or answered; the node stays up', TEST_OPTIONS, (t) =>
    check(async () => {
      const big = { 'x-huge': 'h'.repeat(100 * 1024) };
      const many: Record<string, string> = {};
      for (let i = 0; i < 3_000; i++) many[`x-many-${i}`] = String(i);
      const outcomes: string[] = [];
      for (const [what, headers] of [['one 100 KB header', big], ['3000 headers', many]] as const) {
        const answer = await raw.request(`${STREAMS}/Read`, [frame(Buffer.alloc(0))], { headers, timeoutMs: 5_000 });
        outcomes.push(`${what}: ${describeAnswer(answer)}`);
        assert.ok(answered(answer) || answer.error !== undefined, `${what}: neither answered nor refused: ${describeAnswer(answer)}`);
        assert.notEqual(answer.grpcStatus, 0, `${what} was served as if it were fine`);
        assert.ok(server.isRunning, `the node survived ${what}`);
      }
      for (const outcome of outcomes) t.diagnostic(outcome);
      // A fresh raw connection still works.
      const fresh = new RawConnection(server.port);
      try {
        const answer = await fresh.request(`${STREAMS}/NoSuchMethod`, [frame(Buffer.alloc(0))]);
        assert.equal(answer.grpcStatus, 12, `a new connection after the huge headers: ${describeAnswer(answer)} (${outcomes.join('; ')})`);
      } finally {
        fresh.close();
      }
      await assertNodeServes('huge headers');
    }),
  );

  test('raw: a seeded fuzz loop (200 random requests to every method) never crashes the node; a client append works after it', TEST_OPTIONS, (t) =>
    check(async () => {
      const random = seededRandom(20_240_601);
      const ITERATIONS = 200;
      const BUDGET_MS = 20_000;
      const startedAt = Date.now();
      const statuses = new Map<string, number>();
      const unanswered: string[] = [];
      const internal: string[] = [];
      let sent = 0;
      const one = async (i: number) => {
        const path = FUZZ_PATHS[Math.floor(random() * FUZZ_PATHS.length)]!;
        const length = Math.floor(random() * (random() < 0.8 ? 64 : 4096));
        const payload = seededBytes(random, length);
        const mode = Math.floor(random() * 6);
        const chunks =
          mode === 0
            ? [frame(payload)] // well framed, random message
            : mode === 1
              ? [payload] // not framed at all
              : mode === 2
                ? [frame(payload), frame(seededBytes(random, Math.floor(random() * 32)))] // two messages
                : mode === 3
                  ? [frame(payload).subarray(0, Math.max(1, Math.floor(random() * (length + 5))))] // cut short
                  : [frame(randomProtobuf(random, 3))]; // well-formed protobuf, nonsense fields (modes 4 and 5)
        const answer = await raw.request(path, chunks, { timeoutMs: 1_500 });
        sent++;
        const key = `${path.split('.').pop()}:${answer.grpcStatus ?? (answer.rstCode ? `rst${answer.rstCode}` : answer.timedOut ? 'timeout' : 'none')}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        const isSubscriptionRead = path.endsWith('/Read') && answer.body.byteLength > 0;
        if (!answered(answer) && !isSubscriptionRead) unanswered.push(`#${i} ${path} mode ${mode}, ${length} bytes ${payload.subarray(0, 24).toString('hex')}: ${describeAnswer(answer)}`);
        if (answer.grpcStatus === 13) internal.push(`#${i} ${path} mode ${mode}: ${answer.grpcMessage ?? ''} (${payload.subarray(0, 24).toString('hex')})`);
      };
      for (let i = 0; i < ITERATIONS && Date.now() - startedAt < BUDGET_MS; i += 8) {
        await Promise.all(Array.from({ length: Math.min(8, ITERATIONS - i) }, (_, k) => one(i + k)));
        assert.ok(server.isRunning, `the node died during the fuzz loop, around request ${i} (exit ${describe(server.exitStatus)})`);
      }
      const summary = [...statuses].sort().map(([key, count]) => `${key}=${count}`).join(' ');
      t.diagnostic(`${sent} fuzz requests in ${Date.now() - startedAt} ms over ${raw.sessionsOpened} sessions; method:grpc-status counts: ${summary}`);
      assert.ok(sent >= 100, `only ${sent} fuzz requests in ${BUDGET_MS} ms`);
      await assertNodeServes(`${sent} fuzz requests`);
      assert.deepEqual(unanswered.slice(0, 5), [], `${unanswered.length} fuzz requests got no answer at all (outcomes: ${summary})`);
      const unexpectedInternal = internal.filter((line) => !/ended in the middle of a message/.test(line));
      assert.deepEqual(unexpectedInternal.slice(0, 5), [], `${unexpectedInternal.length} fuzz requests failed with INTERNAL (outcomes: ${summary})`);
    }),
  );

  test('ServerFeatures.GetSupportedMethods: the client sees BatchAppend advertised, and appends work', TEST_OPTIONS, () =>
    check(async () => {
      const fresh = kit.connect(server.port);
      clients.push(fresh);
      const stream = uniqueStream('features');
      const appended = await call(fresh.append(stream, [{ type: 'Featured' }], 'no_stream'), 'append');
      assert.equal(appended.nextExpectedRevision, 0n);
      const supported = await call(fresh.supportsBatchAppend(), 'supports(BatchAppend)');
      assert.equal(supported, true, 'the client sees streams.batchappend in GetSupportedMethods');
      const answer = await raw.request('/event_store.client.server_features.ServerFeatures/GetSupportedMethods', [frame(Buffer.alloc(0))]);
      assert.equal(answer.grpcStatus, 0, describeAnswer(answer));
      assert.ok(answer.body.includes(Buffer.from('batchappend')), 'the raw answer lists batchappend');
      assert.equal((await call(fresh.readStream(stream), 'read')).length, 1);
    }),
  );

  test('Gossip.Read: clients discover the node (+discover, nodePreference=leader, several seeds one of them dead)', TEST_OPTIONS, () =>
    check(async () => {
      const deadPort = await freePort();
      const variants = [
        { discover: true },
        { discover: true, query: 'nodePreference=leader' },
        { query: 'nodePreference=leader' },
        { seeds: [`127.0.0.1:${deadPort}`, `127.0.0.1:${server.port}`], query: 'nodePreference=leader' },
      ];
      const failures: string[] = [];
      for (const variant of variants) {
        const discovering = kit.connect(server.port, variant);
        clients.push(discovering);
        const stream = uniqueStream('gossip');
        try {
          const appended = await call(discovering.append(stream, [{ type: 'Discovered', data: { how: discovering.connectionString } }], 'no_stream'), `append via ${discovering.connectionString}`);
          assert.equal(appended.nextExpectedRevision, 0n);
          const events = await call(discovering.readStream(stream), `read via ${discovering.connectionString}`);
          assert.equal(events.length, 1);
          assert.equal(events[0]!.type, 'Discovered');
        } catch (error) {
          failures.push(`${discovering.connectionString}: ${describe(error)}`);
        }
      }
      const answer = await raw.request('/event_store.client.gossip.Gossip/Read', [frame(Buffer.alloc(0))]);
      assert.equal(answer.grpcStatus, 0, describeAnswer(answer));
      assert.ok(answer.body.includes(Buffer.from('127.0.0.1')), 'the raw gossip answer names the advertised address');
      assert.deepEqual(failures, []);
    }),
  );
});
