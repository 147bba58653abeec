import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { after, before, test } from 'node:test';
import { forEachClient, withServerLog } from './client-matrix.js';
import type { ClientKit, Position, ReadEvent, TestClient } from './clients.js';
import { ServerProcess } from './server-process.js';
import { assertErrorType, caught, closeAfterTests, describe, seededBytes, seededRandom, uniqueStream, withTimeout } from './support.js';

/**
 * The Streams service through both official clients: appends with every expected state,
 * idempotent retries, reads in every direction, $all, delete/tombstone, metadata, racing
 * writers and the append size limit.
 */
const CALL_MS = 10_000;
/** For calls that should be answered at once (the clients' own deadline is 10 s). */
const SHORT_CALL_MS = 4_000;
const TEST_OPTIONS = { timeout: 30_000 };

forEachClient(import.meta.url, { timeoutMs: 45_000 }, (kitPromise) => {
  let kit: ClientKit;
  let server: ServerProcess;
  let client: TestClient;
  const extraClients: TestClient[] = [];

  before(async () => {
    kit = await kitPromise;
    server = await ServerProcess.start();
    client = kit.connect(server.port);
  });

  after(async () => {
    await closeAfterTests([], [client, ...extraClients]);
  });

  const check = <T>(body: () => Promise<T>) => withServerLog(server, body);
  const revisions = (events: ReadEvent[]) => events.map((event) => Number(event.revision));
  const call = <T>(promise: Promise<T>, what: string) => withTimeout(promise, CALL_MS, what);

  async function fillStream(stream: string, count: number): Promise<string[]> {
    const ids = Array.from({ length: count }, () => randomUUID());
    await call(client.append(stream, ids.map((id, i) => ({ id, type: 'Filled', data: { i } })), 'no_stream'), 'fill');
    return ids;
  }

  test('append with no_stream, stream_exists, an exact revision and any', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('states');
      const ids = Array.from({ length: 5 }, () => randomUUID());
      const first = await call(client.append(stream, [{ id: ids[0], type: 'Created', data: { n: 0 } }], 'no_stream'), 'append no_stream');
      assert.equal(first.success, true);
      assert.equal(first.nextExpectedRevision, 0n);
      assert.ok(first.position, 'an append reports its position');
      const second = await call(client.append(stream, [{ id: ids[1], type: 'Changed', data: { n: 1 } }], 'stream_exists'), 'append stream_exists');
      assert.equal(second.nextExpectedRevision, 1n);
      const third = await call(client.append(stream, [{ id: ids[2], type: 'Changed', data: { n: 2 } }], 1n), 'append at revision 1');
      assert.equal(third.nextExpectedRevision, 2n);
      const fourth = await call(
        client.append(stream, [{ id: ids[3], type: 'Changed', data: { n: 3 } }, { id: ids[4], type: 'Changed', data: { n: 4 }, metadata: { by: 'test' } }], 'any'),
        'append any',
      );
      assert.equal(fourth.nextExpectedRevision, 4n);
      for (const [earlier, later] of [[first, second], [second, third], [third, fourth]] as const) {
        assert.ok(later.position!.commit > earlier.position!.commit, `positions grow: ${describe(earlier.position)} then ${describe(later.position)}`);
      }

      const events = await call(client.readStream(stream), 'read back');
      assert.deepEqual(revisions(events), [0, 1, 2, 3, 4]);
      assert.deepEqual(events.map((event) => event.id), ids);
      assert.deepEqual(events.map((event) => event.type), ['Created', 'Changed', 'Changed', 'Changed', 'Changed']);
      assert.deepEqual(events.map((event) => event.data), [0, 1, 2, 3, 4].map((n) => ({ n })));
      assert.ok(events.every((event) => event.isJson && event.streamId === stream));
      assert.deepEqual(events[4]!.metadata, { by: 'test' });
      // The append's position is the position of the last event it wrote.
      assert.deepEqual(events[4]!.position, fourth.position);
      const now = Date.now();
      for (const event of events) assert.ok(Math.abs(event.created.getTime() - now) < 60_000, `created ${event.created.toISOString()} is about now`);
    }),
  );

  test('events without custom metadata, and a binary event without data, read back empty', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('empty-fields');
      await call(
        client.append(stream, [
          { type: 'NoMetadata', data: { a: 1 } },
          { type: 'EmptyBinary', binary: new Uint8Array(0) },
          { type: 'BinaryMetadata', data: { b: 2 }, metadata: new Uint8Array([1, 2, 3]) },
        ]),
        'append',
      );
      const events = await call(client.readStream(stream), 'read');
      assert.equal(events.length, 3);
      const problems: string[] = [];
      if (events[0]!.metadata !== undefined) problems.push(`an event written without metadata reads back with metadata ${describe(events[0]!.metadata)}`);
      const emptyData = events[1]!.data as Uint8Array;
      if (emptyData.byteLength !== 0) problems.push(`a binary event written with empty data reads back with data ${describe(Buffer.from(emptyData).toString('utf8'))}`);
      if (events[1]!.metadata !== undefined) problems.push(`a binary event written without metadata reads back with metadata ${describe(events[1]!.metadata)}`);
      assert.deepEqual(problems, []);
      assert.deepEqual([...(events[2]!.metadata as Uint8Array)], [1, 2, 3], 'binary metadata comes back byte for byte');
    }),
  );

  test('wrong expected version: the error type and the expected/actual values the client exposes', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('wev');
      await fillStream(stream, 3);
      const cases: { state: 'no_stream' | 'stream_exists' | bigint; stream: string; expected: unknown; actual: unknown }[] = [
        { state: 5n, stream, expected: 5n, actual: 2n },
        { state: 1n, stream, expected: 1n, actual: 2n },
        { state: 'no_stream', stream, expected: 'no_stream', actual: 2n },
      ];
      const missing = uniqueStream('wev-missing');
      cases.push({ state: 'stream_exists', stream: missing, expected: 'stream_exists', actual: 'no_stream' });
      cases.push({ state: 0n, stream: missing, expected: 0n, actual: 'no_stream' });
      for (const c of cases) {
        const error = await caught(() => client.append(c.stream, [{ type: 'Refused' }], c.state), CALL_MS, `append expecting ${describe(c.state)}`);
        assertErrorType(error, kit.errors.WrongExpectedVersionError, `append expecting ${describe(c.state)}`);
        assert.deepEqual(kit.wrongVersionFacts(error), { streamName: c.stream, expected: c.expected, actual: c.actual }, `append expecting ${describe(c.state)}`);
      }
      assert.deepEqual(revisions(await call(client.readStream(stream), 'read')), [0, 1, 2], 'refused appends wrote nothing');
      const notFound = await caught(() => client.readStream(missing), CALL_MS, 'read the stream refused appends did not create');
      assertErrorType(notFound, kit.errors.StreamNotFoundError, 'read missing');
    }),
  );

  test('idempotent retry of the same event ids', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('idempotent');
      const batch = [randomUUID(), randomUUID()].map((id) => ({ id, type: 'Once', data: { id } }));
      const original = await call(client.append(stream, batch, 'no_stream'), 'first append');
      assert.equal(original.nextExpectedRevision, 1n);
      const retried = await call(client.append(stream, batch, 'no_stream'), 'retry with no_stream');
      assert.equal(retried.success, true);
      assert.equal(retried.nextExpectedRevision, 1n, 'a retry reports the original result');
      const retriedAny = await call(client.append(stream, batch, 'any'), 'retry with any');
      assert.equal(retriedAny.nextExpectedRevision, 1n);

      const next = [{ id: randomUUID(), type: 'Twice' }];
      assert.equal((await call(client.append(stream, next, 1n), 'append at 1')).nextExpectedRevision, 2n);
      assert.equal((await call(client.append(stream, next, 1n), 'retry at 1')).nextExpectedRevision, 2n);
      const events = await call(client.readStream(stream), 'read');
      assert.deepEqual(
        events.map((event) => event.id),
        [...batch.map((event) => event.id), next[0]!.id],
        'each event is stored once',
      );
    }),
  );

  test('read a stream forwards, backwards, from a revision, with a max count', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('read');
      const ids = await fillStream(stream, 10);
      assert.deepEqual(revisions(await call(client.readStream(stream), 'forwards')), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const backwards = await call(client.readStream(stream, { direction: 'backwards', fromRevision: 'end' }), 'backwards');
      assert.deepEqual(revisions(backwards), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      assert.deepEqual(backwards.map((event) => event.id), [...ids].reverse());
      assert.deepEqual(revisions(await call(client.readStream(stream, { fromRevision: 3n, maxCount: 4 }), 'from 3, 4')), [3, 4, 5, 6]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { direction: 'backwards', fromRevision: 5n, maxCount: 3 }), 'back from 5, 3')), [5, 4, 3]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { direction: 'backwards', fromRevision: 'end', maxCount: 1 }), 'last')), [9]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { fromRevision: 8n, maxCount: 100 }), 'from 8')), [8, 9]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { fromRevision: 10n }), 'past the end')), []);
      assert.deepEqual(revisions(await call(client.readStream(stream, { maxCount: 1 }), 'first')), [0]);
    }),
  );

  test('read a stream that does not exist: StreamNotFoundError', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('missing');
      for (const direction of ['forwards', 'backwards'] as const) {
        const error = await caught(
          () => client.readStream(stream, { direction, fromRevision: direction === 'forwards' ? 'start' : 'end' }),
          CALL_MS,
          `read ${direction}`,
        );
        assertErrorType(error, kit.errors.StreamNotFoundError, `read a missing stream ${direction}`);
      }
      const metadata = await call(client.getStreamMetadata(stream), 'metadata of a missing stream');
      assert.equal(metadata.metadata, undefined);
    }),
  );

  test('readAll forwards and backwards with positions', TEST_OPTIONS, () =>
    check(async () => {
      const streams = [uniqueStream('all-a'), uniqueStream('all-b')];
      const written: { stream: string; id: string }[] = [];
      const appendPositions: (Position | undefined)[] = [];
      for (let i = 0; i < 6; i++) {
        const stream = streams[i % 2]!;
        const id = randomUUID();
        appendPositions.push((await call(client.append(stream, [{ id, type: 'AllEvent', data: { i } }]), 'append')).position);
        written.push({ stream, id });
      }
      const ours = (events: ReadEvent[]) => events.filter((event) => streams.includes(event.streamId));

      const forwards = await call(client.readAll(), 'readAll forwards');
      assert.deepEqual(ours(forwards).map((event) => event.id), written.map((w) => w.id), 'forwards in append order');
      for (let i = 1; i < forwards.length; i++) {
        const [a, b] = [forwards[i - 1]!.position!, forwards[i]!.position!];
        assert.ok(b.commit > a.commit || (b.commit === a.commit && b.prepare > a.prepare), `$all forwards goes ${describe(a)} then ${describe(b)}`);
      }
      ours(forwards).forEach((event, i) => {
        assert.ok(event.position, 'a $all event has a position');
        assert.deepEqual(event.position, appendPositions[i], `event ${i} is where its append said`);
        assert.equal(event.commitPosition, event.position.commit);
      });

      const backwards = await call(client.readAll({ direction: 'backwards', fromPosition: 'end' }), 'readAll backwards');
      assert.deepEqual(ours(backwards).map((event) => event.id), written.map((w) => w.id).reverse(), 'backwards in reverse order');
      assert.deepEqual(
        backwards.map((event) => event.id),
        forwards.map((event) => event.id).reverse(),
        'backwards from the end is forwards reversed',
      );

      const third = ours(forwards)[2]!.position!;
      const fromThird = await call(client.readAll({ fromPosition: third, maxCount: 4 }), 'readAll from a position');
      assert.equal(fromThird.length, 4);
      assert.equal(fromThird[0]!.id, written[2]!.id, 'a forwards read from a position starts at that event');
      assert.deepEqual(ours(fromThird).map((event) => event.id), written.slice(2, 6).map((w) => w.id));

      const beforeThird = await call(client.readAll({ direction: 'backwards', fromPosition: third, maxCount: 2 }), 'readAll backwards from a position');
      assert.equal(beforeThird.length, 2);
      for (const event of beforeThird) {
        assert.ok(event.position!.commit <= third.commit, `backwards from ${describe(third)} gave ${describe(event.position)}`);
      }
      assert.ok(beforeThird[0]!.position!.commit > beforeThird[1]!.position!.commit, 'backwards goes back');

      const limited = await call(client.readAll({ maxCount: 3 }), 'readAll max count');
      assert.deepEqual(limited.map((event) => event.id), forwards.slice(0, 3).map((event) => event.id));
    }),
  );

  test('delete, read (not found), append again (revisions continue)', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('delete');
      await fillStream(stream, 3);
      const position = await call(client.deleteStream(stream, 2n), 'delete');
      assert.ok(position, 'a delete reports a position');
      const error = await caught(() => client.readStream(stream), CALL_MS, 'read after delete');
      assertErrorType(error, kit.errors.StreamNotFoundError, 'read a deleted stream');

      const again = await call(client.append(stream, [{ type: 'Recreated' }], 'any'), 'append after delete');
      assert.equal(again.nextExpectedRevision, 3n, 'revisions continue after a delete');
      const events = await call(client.readStream(stream), 'read the recreated stream');
      assert.deepEqual(revisions(events), [3], 'only the events after the delete are visible');
      assert.equal(events[0]!.type, 'Recreated');
    }),
  );

  test('tombstone: reads, appends, deletes and tombstones fail with StreamDeletedError', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('tombstone');
      await fillStream(stream, 2);
      await call(client.tombstoneStream(stream), 'tombstone');
      const attempts: [string, () => Promise<unknown>][] = [
        ['read', () => client.readStream(stream)],
        ['read backwards', () => client.readStream(stream, { direction: 'backwards', fromRevision: 'end' })],
        ['append', () => client.append(stream, [{ type: 'AfterTombstone' }])],
        ['append expecting no_stream', () => client.append(stream, [{ type: 'AfterTombstone' }], 'no_stream')],
        ['delete', () => client.deleteStream(stream)],
        ['tombstone again', () => client.tombstoneStream(stream)],
      ];
      for (const [what, attempt] of attempts) {
        const error = await caught(attempt, CALL_MS, `${what} a tombstoned stream`);
        assertErrorType(error, kit.errors.StreamDeletedError, `${what} a tombstoned stream`);
      }
    }),
  );

  test('delete and tombstone with a wrong expected revision: WrongExpectedVersionError', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('delete-wev');
      await fillStream(stream, 4);
      const problems: string[] = [];
      const missing = uniqueStream('tombstone-missing');
      const cases: [string, () => Promise<unknown>, { streamName: string; expected: unknown; actual: unknown }][] = [
        ['delete expecting revision 0 (it is at 3)', () => client.deleteStream(stream, 0n), { streamName: stream, expected: 0n, actual: 3n }],
        ['tombstone expecting revision 1 (it is at 3)', () => client.tombstoneStream(stream, 1n), { streamName: stream, expected: 1n, actual: 3n }],
        ['tombstone a missing stream expecting revision 4', () => client.tombstoneStream(missing, 4n), { streamName: missing, expected: 4n, actual: 'no_stream' }],
      ];
      // Concurrently: a client that never answers costs the time limit once, not three times.
      const errors = await Promise.all(cases.map(([what, attempt]) => caught(attempt, SHORT_CALL_MS, what)));
      cases.forEach(([what, , facts], i) => {
        const error = errors[i];
        if (!(error instanceof kit.errors.WrongExpectedVersionError)) problems.push(`${what}: ${describe(error)}`);
        else if (!isDeepStrictEqual(kit.wrongVersionFacts(error), facts)) problems.push(`${what}: ${describe(kit.wrongVersionFacts(error))}, expected ${describe(facts)}`);
      });
      assert.deepEqual(problems, []);
      assert.equal((await call(client.readStream(stream), 'read')).length, 4, 'the refused delete and tombstone changed nothing');
    }),
  );

  test('set and get stream metadata; $maxCount is honoured by reads', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('metadata');
      await fillStream(stream, 10);
      const set = await call(client.setStreamMetadata(stream, { maxCount: 3, owner: 'tests' }), 'set metadata');
      assert.equal(set.success, true);
      assert.equal(set.nextExpectedRevision, 0n, 'the first metadata event is revision 0 of the metastream');
      const got = await call(client.getStreamMetadata(stream), 'get metadata');
      assert.equal(got.metadata?.maxCount, 3);
      assert.equal(got.metadata?.owner, 'tests');

      assert.deepEqual(revisions(await call(client.readStream(stream), 'read forwards')), [7, 8, 9]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { direction: 'backwards', fromRevision: 'end' }), 'read backwards')), [9, 8, 7]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { maxCount: 2 }), 'read 2')), [7, 8]);
      assert.deepEqual(revisions(await call(client.readStream(stream, { fromRevision: 1n, maxCount: 2 }), 'read from 1')), [7, 8]);

      await call(client.append(stream, [{ type: 'More' }], 9n), 'append one more');
      assert.deepEqual(revisions(await call(client.readStream(stream), 'read after one more')), [8, 9, 10]);

      await call(client.setStreamMetadata(stream, { maxCount: 5 }), 'replace metadata');
      const replaced = await call(client.getStreamMetadata(stream), 'get replaced metadata');
      assert.equal(replaced.metadata?.maxCount, 5);
      assert.equal(replaced.metadata?.owner, undefined, 'metadata is replaced, not merged');
      assert.deepEqual(revisions(await call(client.readStream(stream), 'read with maxCount 5')), [6, 7, 8, 9, 10]);
    }),
  );

  test('concurrent writers racing on the same expected revision: exactly one wins each round', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('race');
      const connections = [client];
      for (let i = 0; i < 3; i++) {
        const extra = kit.connect(server.port);
        extraClients.push(extra);
        connections.push(extra);
      }
      const WRITERS = 8;
      const ROUNDS = 12;
      const winners: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const expected = round === 0 ? ('no_stream' as const) : BigInt(round - 1);
        const ids = Array.from({ length: WRITERS }, () => randomUUID());
        const outcomes = await call(
          Promise.allSettled(ids.map((id, w) => connections[w % connections.length]!.append(stream, [{ id, type: 'Raced', data: { round, w } }], expected))),
          `round ${round}`,
        );
        const won = outcomes.flatMap((outcome, w) => (outcome.status === 'fulfilled' ? [w] : []));
        assert.equal(won.length, 1, `round ${round}: ${won.length} writers won (${describe(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : String(o.reason))))})`);
        const winner = outcomes[won[0]!] as PromiseFulfilledResult<{ nextExpectedRevision: bigint }>;
        assert.equal(winner.value.nextExpectedRevision, BigInt(round));
        winners.push(ids[won[0]!]!);
        outcomes.forEach((outcome, w) => {
          if (outcome.status === 'fulfilled') return;
          assertErrorType(outcome.reason, kit.errors.WrongExpectedVersionError, `round ${round} loser ${w}`);
          assert.deepEqual(kit.wrongVersionFacts(outcome.reason), { streamName: stream, expected, actual: BigInt(round) }, `round ${round} loser ${w}`);
        });
      }
      const events = await call(client.readStream(stream), 'read');
      assert.deepEqual(events.map((event) => event.id), winners, 'the stream holds exactly the winners, in order');
    }),
  );

  test('a 1 MiB event round-trips (binary and JSON)', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('large');
      const bytes = seededBytes(seededRandom(7), 1024 * 1024);
      const text = 'x'.repeat(1024 * 1024 - 32);
      await call(client.append(stream, [{ type: 'BigBinary', binary: bytes }]), 'append 1 MiB binary');
      await call(client.append(stream, [{ type: 'BigJson', data: { text } }]), 'append 1 MiB JSON');
      const events = await call(client.readStream(stream), 'read back');
      assert.equal(events.length, 2);
      assert.equal(events[0]!.isJson, false);
      assert.ok(Buffer.from(events[0]!.data as Uint8Array).equals(bytes), 'binary data is returned byte for byte');
      assert.equal((events[1]!.data as { text: string }).text, text);
      const fromAll = (await call(client.readAll({ direction: 'backwards', fromPosition: 'end', maxCount: 2 }), 'read $all')).reverse();
      assert.ok(Buffer.from(fromAll[0]!.data as Uint8Array).equals(bytes), 'and so is it through $all');
    }),
  );

  /** A node started with --max-append-size 1 MiB, shared by the two limit tests. */
  const LIMIT = 1024 * 1024;
  let limited: { server: ServerProcess; client: TestClient } | undefined;
  async function limitedNode(): Promise<{ server: ServerProcess; client: TestClient }> {
    if (!limited) {
      const limitedServer = await ServerProcess.start({ extraArgs: ['--max-append-size', String(LIMIT)] });
      const limitedClient = kit.connect(limitedServer.port);
      extraClients.push(limitedClient);
      limited = { server: limitedServer, client: limitedClient };
    }
    return limited;
  }

  test('appends over --max-append-size are refused with MaxAppendSizeExceededError; the node stays up', TEST_OPTIONS, async () => {
    const { server: limitedServer, client: limitedClient } = await limitedNode();
    await withServerLog(limitedServer, async () => {
      const stream = uniqueStream('limit');
      assert.equal((await call(limitedClient.append(stream, [{ type: 'Small', data: { ok: true } }], 'no_stream'), 'a small append')).nextExpectedRevision, 0n);
      const random = seededRandom(11);
      const refusals: [string, () => Promise<unknown>][] = [
        ['one event of 1.5 MiB', () => limitedClient.append(stream, [{ type: 'Huge', binary: seededBytes(random, LIMIT + LIMIT / 2) }])],
        ['three events of 400 KiB', () => limitedClient.append(stream, [0, 1, 2].map(() => ({ type: 'Part', binary: seededBytes(random, 400 * 1024) })))],
      ];
      for (const [what, attempt] of refusals) {
        const error = await caught(attempt, CALL_MS, what);
        assertErrorType(error, kit.errors.MaxAppendSizeExceededError, what);
        assert.equal(kit.maxAppendSizeOf(error), LIMIT, `${what}: the error carries the limit`);
        assert.ok(limitedServer.isRunning, `the node is still running after ${what}`);
        const after = await call(limitedClient.append(stream, [{ type: 'Small', data: { after: what } }]), `an append after ${what}`);
        assert.equal(after.success, true);
      }
      // The limit counts more than the data (the type, the stream name), so stay a little below it.
      const atLimit = await call(limitedClient.append(stream, [{ type: 'AtLimit', binary: seededBytes(random, LIMIT - 4096) }]), 'an append just under the limit');
      assert.equal(atLimit.success, true);
      const events = await call(limitedClient.readStream(stream), 'read');
      assert.deepEqual(
        events.map((event) => event.type),
        ['Small', 'Small', 'Small', 'AtLimit'],
        'nothing of the refused appends was written',
      );
    });
  });

  test('an event far over --max-append-size (4 MiB over 1 MiB) gets MaxAppendSizeExceededError and fails no other append', TEST_OPTIONS, async () => {
    const { server: limitedServer, client: limitedClient } = await limitedNode();
    await withServerLog(limitedServer, async () => {
      const stream = uniqueStream('far-over');
      // The huge append goes first on the client's shared BatchAppend call, a small one right behind it.
      const huge = caught(() => limitedClient.append(stream, [{ type: 'Huger', binary: seededBytes(seededRandom(13), 4 * LIMIT) }]), CALL_MS, 'a 4 MiB append');
      const neighbour = limitedClient.append(uniqueStream('neighbour'), [{ type: 'Small' }]).then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const error = await huge;
      const small = await call(neighbour, 'the small append sent right after');
      assert.ok(limitedServer.isRunning, 'the node is still running');
      const problems: string[] = [];
      if (!(error instanceof kit.errors.MaxAppendSizeExceededError)) problems.push(`the 4 MiB append failed with ${describe(error)}, not MaxAppendSizeExceededError`);
      if (!small.ok) problems.push(`an unrelated small append in flight at the same time failed too: ${describe(small.error)}`);
      const later = await call(limitedClient.append(stream, [{ type: 'Later' }]), 'an append afterwards');
      assert.equal(later.success, true, 'a later append works');
      assert.deepEqual(problems, []);
    });
  });
});
