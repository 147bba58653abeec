import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test, type TestContext } from 'node:test';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { forEachClient, withServerLog } from './client-matrix.js';
import { loadClientKit, type ClientKit, type PersistentDecider, type PersistentDelivery, type PersistentInfo, type PersistentRecorder, type PersistentSettings, type Position, type ProposedEvent, type TestClient } from './clients.js';
import { ServerProcess } from './server-process.js';
import { assertErrorType, caught, closeAfterTests, describe, sleep, uniqueStream, withTimeout } from './support.js';

/**
 * Persistent subscriptions through both official clients, unmodified, on a single node: the
 * consumer strategies with one and three consumers, ack and each nack action, message timeouts
 * leading to retries and then a park, replaying parked messages, updating and deleting a group
 * while consumers are connected, the subscriber limit, `$all` groups with filters (the server's
 * own state streams never arrive), where a group starts, what GetInfo and List report, the
 * subsystem restart, and a server restart on the same data directory after a graceful stop
 * (no acknowledged message comes back) and after a kill -9 (only the last ack window may).
 */
const CALL_MS = 10_000;
const DELIVERY_MS = 10_000;
const TEST_OPTIONS = { timeout: 20_000 };
const RESTART_TEST_OPTIONS = { timeout: 30_000 };


forEachClient(import.meta.url, { timeoutMs: 90_000 }, (kitPromise, clientName) => {
  let kit: ClientKit;
  let server: ServerProcess;
  let client: TestClient;
  const consumers: PersistentRecorder[] = [];
  const otherClients: TestClient[] = [];

  before(async () => {
    kit = await kitPromise;
    server = await ServerProcess.start();
    client = kit.connect(server.port);
  });

  after(async () => {
    await closeAfterTests(consumers, [client, ...otherClients]);
  });

  const check = <T>(body: () => Promise<T>) => withServerLog(server, body);
  const call = <T>(promise: Promise<T>, what: string) => withTimeout(promise, CALL_MS, what);

  /** Connects a consumer (tracked for clean-up) and waits for its confirmation. */
  async function consume(source: string, group: string, options: { bufferSize?: number; decide?: PersistentDecider; on?: TestClient; confirm?: boolean } = {}): Promise<PersistentRecorder> {
    const target = options.on ?? client;
    const consumer = target.persistent.subscribe(source, group, { ...(options.bufferSize !== undefined ? { bufferSize: options.bufferSize } : {}), ...(options.decide ? { decide: options.decide } : {}) });
    consumers.push(consumer);
    if (options.confirm !== false) await consumer.waitFor(() => consumer.confirmed, CALL_MS, `${group}: the subscription is confirmed`);
    return consumer;
  }

  async function stopConsumers(list: readonly PersistentRecorder[]): Promise<void> {
    await Promise.allSettled(list.map((consumer) => withTimeout(consumer.unsubscribe(), 2_000, 'unsubscribe')));
  }

  /** Appends `count` events (in appends of up to 50), returns their ids in order. */
  async function write(stream: string, count: number, make: (index: number) => Partial<ProposedEvent> = () => ({}), target: TestClient = client): Promise<string[]> {
    const ids: string[] = [];
    for (let done = 0; done < count; done += 50) {
      const batch = Array.from({ length: Math.min(50, count - done) }, (_, offset) => ({ id: randomUUID(), type: 'Work', data: { index: done + offset }, ...make(done + offset) }));
      await call(target.append(stream, batch), `append to ${stream}`);
      ids.push(...batch.map((event) => event.id));
    }
    return ids;
  }

  async function create(source: string, group: string, settings: PersistentSettings = {}, filter?: Parameters<TestClient['persistent']['create']>[3]): Promise<void> {
    await call(client.persistent.create(source, group, { startFrom: 'start', ...settings }, filter), `create ${group} on ${source}`);
  }

  /** Polls GetInfo until `condition` holds (bounded). */
  function infoUntil(source: string, group: string, condition: (info: PersistentInfo) => boolean, what: string, ms = DELIVERY_MS) {
    return infoUntilOn(client, source, group, condition, what, ms);
  }

  async function infoUntilOn(target: TestClient, source: string, group: string, condition: (info: PersistentInfo) => boolean, what: string, ms = DELIVERY_MS) {
    const deadline = Date.now() + ms;
    let last: unknown;
    for (;;) {
      const info = await call(target.persistent.getInfo(source, group), `getInfo ${group}`);
      if (condition(info)) return info;
      last = info;
      if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms; last info ${describe({ stats: (last as { stats: unknown }).stats, connections: (last as { connections: unknown[] }).connections.length })}`);
      await sleep(50);
    }
  }

  /** Waits for the server to drop `consumer` and checks the client reports it as PersistentSubscriptionDroppedError. */
  async function expectDropped(consumer: PersistentRecorder, what: string): Promise<void> {
    await consumer.waitFor(() => consumer.error !== undefined, DELIVERY_MS, `${what}: the consumer gets an error`, true);
    assertErrorType(consumer.error, kit.errors.PersistentSubscriptionDroppedError, what);
  }

  /** Every delivery of `consumers` to a map: ack-id → deliveries. */
  function byId(list: readonly PersistentRecorder[]): Map<string, (PersistentDelivery & { consumer: number })[]> {
    const map = new Map<string, (PersistentDelivery & { consumer: number })[]>();
    list.forEach((consumer, index) => {
      for (const delivery of consumer.deliveries) {
        const entry = map.get(delivery.ackId) ?? [];
        entry.push({ ...delivery, consumer: index });
        map.set(delivery.ackId, entry);
      }
    });
    return map;
  }

  const ackedTotal = (list: readonly PersistentRecorder[]) => list.reduce((sum, consumer) => sum + consumer.acked.length, 0);

  /** Waits until `ids` were all acknowledged across `list`; then asserts each was delivered exactly once. */
  async function expectEachOnceAndAcked(list: readonly PersistentRecorder[], ids: readonly string[], what: string): Promise<void> {
    const wanted = new Set(ids);
    const ackedIds = () => new Set(list.flatMap((consumer) => consumer.acked.map((entry) => entry.id)).filter((id) => wanted.has(id)));
    await Promise.race(list.map((consumer) => consumer.waitFor(() => ackedIds().size === wanted.size, DELIVERY_MS, `${what}: every event acknowledged (${ackedIds().size}/${wanted.size})`)));
    await sleep(150);
    const deliveries = byId(list);
    const problems: string[] = [];
    for (const id of ids) {
      const seen = deliveries.get(id) ?? [];
      if (seen.length !== 1) problems.push(`${id} delivered ${seen.length} times`);
    }
    for (const id of deliveries.keys()) if (!wanted.has(id)) problems.push(`unexpected ${id}`);
    assert.deepEqual(problems.slice(0, 10), [], `${what}: ${problems.length} problems`);
  }

  // ------------------------------------------------------------------ management

  test('create, getInfo and list: settings round trip; create twice → PersistentSubscriptionExistsError; unknown → DoesNotExist', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-manage');
      const group = `g-${randomUUID()}`;
      await write(stream, 5);
      const settings: PersistentSettings = {
        startFrom: 2n,
        resolveLinkTos: true,
        messageTimeout: 12_345,
        maxRetryCount: 7,
        checkPointAfter: 3_000,
        checkPointLowerBound: 5,
        checkPointUpperBound: 77,
        maxSubscriberCount: 4,
        liveBufferSize: 123,
        readBatchSize: 11,
        historyBufferSize: 222,
        consumerStrategyName: 'DispatchToSingle',
      };
      await call(client.persistent.create(stream, group, settings), 'create');
      const info = await call(client.persistent.getInfo(stream, group), 'getInfo');
      assert.equal(info.eventSource, stream);
      assert.equal(info.groupName, group);
      const { startFrom, ...rest } = settings;
      for (const [key, value] of Object.entries(rest)) assert.deepEqual(info.settings[key], value, `settings.${key} round trip (${describe(info.settings)})`);
      assert.equal(info.settings.startFrom, startFrom, 'startFrom round trip');
      assert.equal(info.connections.length, 0);
      assert.equal(info.stats.parkedMessageCount, 0n);

      const allGroup = `g-all-${randomUUID()}`;
      await call(client.persistent.create('$all', allGroup, { startFrom: 'end', consumerStrategyName: 'Pinned', maxSubscriberCount: 'unbounded' }), 'create $all');
      const allInfo = await call(client.persistent.getInfo('$all', allGroup), 'getInfo $all');
      assert.equal(allInfo.eventSource, '$all');
      assert.equal(allInfo.settings.consumerStrategyName, 'Pinned');
      assert.equal(allInfo.settings.maxSubscriberCount, 'unbounded');
      assert.equal(typeof allInfo.settings.startFrom, 'string', `a $all group from the end reports END (${describe(allInfo.settings.startFrom)})`);

      const forStream = await call(client.persistent.list(stream), 'list for the stream');
      assert.deepEqual(forStream.map((each) => each.groupName), [group], 'list for the stream: just its group');
      const forAll = await call(client.persistent.list('$all'), 'list for $all');
      assert.ok(forAll.some((each) => each.groupName === allGroup) && forAll.every((each) => each.eventSource === '$all'), `list for $all: ${describe(forAll.map((each) => each.groupName))}`);
      const everything = await call(client.persistent.list(), 'list all');
      for (const wanted of [group, allGroup]) assert.ok(everything.some((each) => each.groupName === wanted), `list all has ${wanted}`);

      assertErrorType(await caught(() => client.persistent.create(stream, group, {}), CALL_MS, 'create twice'), kit.errors.PersistentSubscriptionExistsError, 'create twice');
      assertErrorType(await caught(() => client.persistent.create('$all', allGroup, {}), CALL_MS, 'create $all twice'), kit.errors.PersistentSubscriptionExistsError, 'create $all twice');
      const missing = `missing-${randomUUID()}`;
      for (const [what, action] of [
        ['getInfo', () => client.persistent.getInfo(stream, missing)],
        ['update', () => client.persistent.update(stream, missing, {})],
        ['delete', () => client.persistent.delete(stream, missing)],
        ['replayParked', () => client.persistent.replayParked(stream, missing)],
        ['getInfo $all', () => client.persistent.getInfo('$all', missing)],
      ] as const) {
        assertErrorType(await caught(action, CALL_MS, `${what} of a missing group`), kit.errors.PersistentSubscriptionDoesNotExistError, `${what} of a missing group`);
      }
      const subscriber = await consume(stream, missing, { confirm: false });
      await subscriber.waitFor(() => subscriber.error !== undefined, CALL_MS, 'subscribing to a missing group fails', true);
      assertErrorType(subscriber.error, kit.errors.PersistentSubscriptionDoesNotExistError, 'subscribing to a missing group');
      await call(client.persistent.delete('$all', allGroup), 'delete the $all group');
    }),
  );

  // ------------------------------------------------------------------ strategies

  for (const consumerCount of [1, 3]) {
    test(`RoundRobin with ${consumerCount} consumer(s): each event delivered once and acked${consumerCount > 1 ? ', spread over every consumer' : ''}`, TEST_OPTIONS, () =>
      check(async () => {
        const stream = uniqueStream('ps-rr');
        const group = 'rr';
        await create(stream, group, { consumerStrategyName: 'RoundRobin' });
        const list: PersistentRecorder[] = [];
        for (let i = 0; i < consumerCount; i++) list.push(await consume(stream, group, { bufferSize: 5 }));
        await infoUntil(stream, group, (info) => info.connections.length === consumerCount, 'every consumer connected');
        const ids = await write(stream, 150);
        await expectEachOnceAndAcked(list, ids, 'round robin');
        const counts = list.map((consumer) => consumer.deliveries.length);
        if (consumerCount > 1) {
          // Round robin with 5 slots each: nobody gets most of it.
          for (const count of counts) assert.ok(count >= 150 / consumerCount / 3, `round robin spreads: ${describe(counts)}`);
        }
        await stopConsumers(list);
      }),
    );

    test(`DispatchToSingle with ${consumerCount} consumer(s): everything goes to one consumer while it has room`, TEST_OPTIONS, () =>
      check(async () => {
        const stream = uniqueStream('ps-single');
        const group = 'single';
        await create(stream, group, { consumerStrategyName: 'DispatchToSingle' });
        const list: PersistentRecorder[] = [];
        for (let i = 0; i < consumerCount; i++) list.push(await consume(stream, group, { bufferSize: 100 }));
        await infoUntil(stream, group, (info) => info.connections.length === consumerCount, 'every consumer connected');
        const ids = await write(stream, 80);
        await expectEachOnceAndAcked(list, ids, 'dispatch to single');
        const counts = list.map((consumer) => consumer.deliveries.length);
        assert.equal(counts.filter((count) => count > 0).length, 1, `one consumer got everything: ${describe(counts)}`);
        if (consumerCount > 1) {
          // The first has no room left: the others take over.
          const full = (_delivery: PersistentDelivery) => 'hold' as const;
          const [first] = list.filter((consumer) => consumer.deliveries.length > 0);
          first!.decide = full;
          await write(stream, 130);
          await Promise.race(list.map((consumer) => consumer.waitFor(() => ackedTotal(list) >= ids.length + 30, DELIVERY_MS, 'the others take the overflow')));
          const overflow = list.filter((consumer) => consumer !== first).reduce((sum, consumer) => sum + consumer.deliveries.length, 0);
          assert.ok(overflow >= 30, `once the first is full, the others get messages (${overflow})`);
          assert.ok(first!.held.length <= 100, `the first never holds more than its buffer (${first!.held.length})`);
        }
        await stopConsumers(list);
      }),
    );

    test(`Pinned with ${consumerCount} consumer(s) ($all, stream-prefix filter, 12 streams): each stream stays on one consumer`, TEST_OPTIONS, () =>
      check(async () => {
        const prefix = `ps-pin-${randomUUID()}-`;
        const group = `pinned-${randomUUID()}`;
        await create('$all', group, { startFrom: 'end', consumerStrategyName: 'Pinned' }, { on: 'streamName', prefixes: [prefix] });
        const list: PersistentRecorder[] = [];
        for (let i = 0; i < consumerCount; i++) list.push(await consume('$all', group, { bufferSize: 200 }));
        await infoUntil('$all', group, (info) => info.connections.length === consumerCount, 'every consumer connected');
        const ids: string[] = [];
        for (let round = 0; round < 3; round++) {
          for (let s = 0; s < 12; s++) ids.push(...(await write(`${prefix}${s}`, 4)));
        }
        await expectEachOnceAndAcked(list, ids, 'pinned');
        const owners = new Map<string, Set<number>>();
        list.forEach((consumer, index) => {
          for (const delivery of consumer.deliveries) owners.set(delivery.event.streamId, (owners.get(delivery.event.streamId) ?? new Set()).add(index));
        });
        assert.equal(owners.size, 12, 'all 12 streams delivered');
        for (const [stream, set] of owners) assert.equal(set.size, 1, `${stream} went to consumers ${describe([...set])}`);
        if (consumerCount > 1) {
          const used = new Set([...owners.values()].map((set) => [...set][0]));
          assert.ok(used.size >= 2, `12 streams are spread over more than one consumer (${used.size})`);
        }
        await stopConsumers(list);
        await call(client.persistent.delete('$all', group), 'delete');
      }),
    );

    // @eventstore/db-client 6.x does not know PinnedByCorrelation: it warns and leaves the strategy
    // unset (the server then sees 0, DispatchToSingle), so only the kurrentdb client can create one.
    const noCorrelation = clientName === 'esdb' ? '@eventstore/db-client 6.x cannot send PinnedByCorrelation (it sends no strategy)' : false;
    test(`PinnedByCorrelation with ${consumerCount} consumer(s): each correlation id stays on one consumer`, { ...TEST_OPTIONS, skip: noCorrelation }, () =>
      check(async () => {
        const stream = uniqueStream('ps-corr');
        const group = 'corr';
        await create(stream, group, { consumerStrategyName: 'PinnedByCorrelation' });
        const info = await call(client.persistent.getInfo(stream, group), 'getInfo');
        assert.equal(info.settings.consumerStrategyName, 'PinnedByCorrelation');
        const list: PersistentRecorder[] = [];
        for (let i = 0; i < consumerCount; i++) list.push(await consume(stream, group, { bufferSize: 200 }));
        await infoUntil(stream, group, (each) => each.connections.length === consumerCount, 'every consumer connected');
        const correlations = Array.from({ length: 10 }, () => randomUUID());
        const ids = await write(stream, 100, (index) => ({ metadata: { $correlationId: correlations[index % 10] } }));
        await expectEachOnceAndAcked(list, ids, 'pinned by correlation');
        const owners = new Map<string, Set<number>>();
        list.forEach((consumer, index) => {
          for (const delivery of consumer.deliveries) {
            const correlation = (delivery.event.metadata as { $correlationId?: string }).$correlationId!;
            owners.set(correlation, (owners.get(correlation) ?? new Set()).add(index));
          }
        });
        assert.equal(owners.size, 10);
        for (const [correlation, set] of owners) assert.equal(set.size, 1, `correlation ${correlation} went to consumers ${describe([...set])}`);
        if (consumerCount > 1) assert.ok(new Set([...owners.values()].map((set) => [...set][0])).size >= 2, 'ten correlation ids use more than one consumer');
        await stopConsumers(list);
      }),
    );
  }

  // ------------------------------------------------------------------ ack and nack

  test('nack: park → parked count; retry → redelivered with retryCount+1; skip → not redelivered; stop → that consumer is dropped', TEST_OPTIONS, (t) =>
    check(async () => {
      const stream = uniqueStream('ps-nack');
      const group = 'nack';
      await create(stream, group, { maxRetryCount: 5 });
      const actions = ['ack', 'park', 'retry', 'skip'] as const;
      const decide: PersistentDecider = (delivery) => {
        const action = actions[(delivery.event.data as { index: number }).index % 4]!;
        // A retried message is acknowledged the second time round.
        return action === 'retry' && delivery.retryCount > 0 ? 'ack' : action;
      };
      const consumer = await consume(stream, group, { decide, bufferSize: 10 });
      const ids = await write(stream, 40);
      const index = new Map(ids.map((id, i) => [id, i]));
      await consumer.waitFor(() => consumer.deliveries.length >= 50, DELIVERY_MS, '40 deliveries and 10 retries');
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 10n, 'ten parked');
      await sleep(300);
      const deliveries = byId([consumer]);
      for (const id of ids) {
        const seen = deliveries.get(id) ?? [];
        const action = actions[index.get(id)! % 4];
        if (action === 'retry') assert.deepEqual(seen.map((each) => each.retryCount), [0, 1], `retried ${index.get(id)}: delivered again with retryCount 1`);
        else assert.deepEqual(seen.map((each) => each.retryCount), [0], `${action} ${index.get(id)}: delivered once`);
      }
      assert.equal(consumer.deliveries.length, 50);
      const info = await call(client.persistent.getInfo(stream, group), 'getInfo');
      assert.equal(info.stats.totalInFlightMessages, 0, 'nothing in flight');
      assert.equal(info.stats.lastCheckpointed, 39n, `the checkpoint covers everything handled (${describe(info.stats)})`);

      // Stop: the consumer that nacks with stop is dropped; the message goes to the next consumer with retryCount 1.
      await consumer.unsubscribe();
      await infoUntil(stream, group, (each) => each.connections.length === 0, 'no consumer');
      const stopper = await consume(stream, group, { decide: () => 'stop', bufferSize: 1 });
      const [stopped] = await write(stream, 1);
      await stopper.waitFor(() => stopper.deliveries.length > 0, DELIVERY_MS, 'the stopping consumer gets the new event');
      await stopper.waitFor(() => stopper.error !== undefined || stopper.ended, DELIVERY_MS, 'the stopping consumer is dropped', true);
      t.diagnostic(`nack stop ends the consumer's call with ${stopper.error ? describe(stopper.error) : 'a clean end'}`);
      await infoUntil(stream, group, (each) => each.connections.length === 0, 'the stopping consumer is gone from getInfo');
      const next = await consume(stream, group);
      await next.waitFor(() => next.acked.length >= 1, DELIVERY_MS, 'the stopped message goes to the next consumer');
      await sleep(200);
      assert.deepEqual(next.deliveries.map((each) => [each.ackId, each.retryCount]), [[stopped, 1]], 'the message nacked with stop comes back with retryCount 1, alone');
      await stopConsumers([next]);
    }),
  );

  test('a consumer that goes away: what it held goes to another consumer with retryCount 1', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-leave');
      const group = 'leave';
      await create(stream, group, { consumerStrategyName: 'DispatchToSingle' });
      const leaver = await consume(stream, group, { decide: () => 'hold', bufferSize: 5 });
      const ids = await write(stream, 5);
      await leaver.waitFor(() => leaver.held.length === 5, DELIVERY_MS, 'the first consumer holds all five');
      const stayer = await consume(stream, group, { bufferSize: 10 });
      await sleep(200);
      assert.equal(stayer.deliveries.length, 0, 'nothing for the second while the first holds everything');
      await leaver.unsubscribe();
      await stayer.waitFor(() => stayer.acked.length >= 5, DELIVERY_MS, 'the held messages go to the second consumer');
      await sleep(200);
      assert.deepEqual(stayer.deliveries.map((each) => [each.ackId, each.retryCount]), ids.map((id) => [id, 1]), 'each once, in order, with retryCount 1');
      await infoUntil(stream, group, (info) => info.stats.lastCheckpointed === 4n && info.connections.length === 1, 'checkpoint at 4, one connection');
      await stopConsumers([stayer]);
    }),
  );

  test('message timeout: retried with retryCount 1..maxRetryCount, then parked; replay parked brings the messages back', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-timeout');
      const group = 'timeout';
      await create(stream, group, { messageTimeout: 400, maxRetryCount: 2 });
      const consumer = await consume(stream, group, { decide: () => 'hold', bufferSize: 10 });
      const ids = await write(stream, 3);
      await consumer.waitFor(() => consumer.deliveries.length >= 9, DELIVERY_MS, 'three deliveries of each of three messages');
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 3n, 'all three parked');
      await sleep(800);
      const deliveries = byId([consumer]);
      for (const id of ids) assert.deepEqual((deliveries.get(id) ?? []).map((each) => each.retryCount), [0, 1, 2], `${id}: delivered with retry counts 0, 1, 2 then parked`);
      const first = (deliveries.get(ids[0]!) ?? []).map((each) => each.at);
      assert.ok(first[1]! - first[0]! >= 300, `the retry came after about the message timeout (${(first[1]! - first[0]!).toFixed(0)} ms)`);
      assert.equal(consumer.deliveries.length, 9, 'nothing more after the park');

      // Replay: the parked messages come back; acknowledged now, the parked count drops to 0.
      consumer.decide = () => 'ack';
      await call(client.persistent.replayParked(stream, group), 'replayParked');
      await consumer.waitFor(() => consumer.acked.length >= 3, DELIVERY_MS, 'the three parked messages come back');
      assert.deepEqual(consumer.deliveries.slice(9).map((each) => each.ackId).sort(), [...ids].sort(), 'the replayed messages are the parked ones');
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 0n, 'the parked count drops to 0 after the replay is handled');
      await sleep(300);
      assert.equal(consumer.deliveries.length, 12, `each replayed once: ${describe(consumer.deliveries.map((each) => `${ids.indexOf(each.ackId)}/r${each.retryCount}@${each.at.toFixed(0)}`))}`);
      await stopConsumers([consumer]);
    }),
  );

  test('an idle group: a message delivered after more than the message timeout of quiet is not retried before its own timeout', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-idle');
      const group = 'idle';
      await create(stream, group, { messageTimeout: 600, maxRetryCount: 5 });
      const consumer = await consume(stream, group, { decide: (delivery) => (delivery.retryCount === 0 ? 'hold' : 'ack') });
      await write(stream, 1);
      await consumer.waitFor(() => consumer.deliveries.length >= 2, DELIVERY_MS, 'the first message, then its retry');
      // Quiet for longer than the message timeout: nothing in flight, nothing to commit.
      await sleep(1_000);
      const [late] = await write(stream, 1);
      await consumer.waitFor(() => consumer.deliveries.length >= 4, DELIVERY_MS, 'the second message, then its retry');
      const [delivered, retried] = consumer.deliveries.filter((each) => each.ackId === late);
      assert.equal(retried!.retryCount, 1);
      const gap = retried!.at - delivered!.at;
      assert.ok(gap >= 450, `the retry waits for the message timeout of 600 ms (it came after ${gap.toFixed(0)} ms)`);
      await stopConsumers([consumer]);
    }),
  );

  test('message timeout 0 means no timeout: a held message is not retried', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-no-timeout');
      const group = 'no-timeout';
      await create(stream, group, { messageTimeout: 0, maxRetryCount: 2 });
      const consumer = await consume(stream, group, { decide: () => 'hold' });
      await write(stream, 2);
      await consumer.waitFor(() => consumer.held.length === 2, DELIVERY_MS, 'both delivered');
      await sleep(1_000);
      assert.deepEqual(consumer.deliveries.map((each) => each.retryCount), [0, 0], 'delivered once each, never retried');
      const info = await call(client.persistent.getInfo(stream, group), 'getInfo');
      assert.equal(info.settings.messageTimeout, 0);
      assert.equal(info.stats.parkedMessageCount, 0n);
      assert.equal(info.stats.totalInFlightMessages, 2);
      await consumer.ack(consumer.held.slice());
      await infoUntil(stream, group, (each) => each.stats.lastCheckpointed === 1n, 'acked and checkpointed');
      await stopConsumers([consumer]);
    }),
  );

  test('replay parked with stopAt: only that many come back', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-replay');
      const group = 'replay';
      await create(stream, group);
      const consumer = await consume(stream, group, { decide: () => 'park', bufferSize: 20 });
      const ids = await write(stream, 6);
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 6n, 'six parked');
      consumer.decide = () => 'ack';
      await call(client.persistent.replayParked(stream, group, 2), 'replayParked stopAt 2');
      await consumer.waitFor(() => consumer.acked.length >= 2, DELIVERY_MS, 'two come back');
      await sleep(400);
      assert.deepEqual(consumer.deliveries.slice(6).map((each) => each.ackId), ids.slice(0, 2), 'the first two parked messages, in order');
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 4n, 'four still parked');
      await call(client.persistent.replayParked(stream, group), 'replay the rest');
      await consumer.waitFor(() => consumer.acked.length >= 6, DELIVERY_MS, 'the other four come back');
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 0n, 'none parked');
      await stopConsumers([consumer]);
    }),
  );

  // ------------------------------------------------------------------ update, delete, limits

  test('update while consumers are connected: they are dropped, resubscribing works, the new settings are in getInfo; acked messages not redelivered', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-update');
      const group = 'update';
      await create(stream, group, { maxRetryCount: 3, messageTimeout: 10_000 });
      const list = [await consume(stream, group), await consume(stream, group)];
      const ids = await write(stream, 30);
      await expectEachOnceAndAcked(list, ids, 'before the update');
      await call(client.persistent.update(stream, group, { startFrom: 'start', maxRetryCount: 9, messageTimeout: 4_321, consumerStrategyName: 'DispatchToSingle' }), 'update');
      for (const consumer of list) {
        await expectDropped(consumer, 'dropped by the update');
      }
      const info = await call(client.persistent.getInfo(stream, group), 'getInfo');
      assert.equal(info.settings.maxRetryCount, 9);
      assert.equal(info.settings.messageTimeout, 4_321);
      assert.equal(info.settings.consumerStrategyName, 'DispatchToSingle');
      const again = await consume(stream, group);
      const more = await write(stream, 10);
      await expectEachOnceAndAcked([again], more, 'after the update: only new events, none of the acknowledged ones');
      await stopConsumers([again]);
    }),
  );

  test('delete while consumers are connected: dropped; getInfo → DoesNotExist; create again starts afresh', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-delete');
      const group = 'delete';
      await create(stream, group);
      const consumer = await consume(stream, group, { decide: (delivery) => ((delivery.event.data as { index: number }).index < 3 ? 'park' : 'ack') });
      const ids = await write(stream, 20);
      await consumer.waitFor(() => consumer.acked.length >= 17, DELIVERY_MS, 'all handled');
      await infoUntil(stream, group, (info) => info.stats.parkedMessageCount === 3n, 'three parked');
      await call(client.persistent.delete(stream, group), 'delete');
      await expectDropped(consumer, 'dropped by the delete');
      assertErrorType(await caught(() => client.persistent.getInfo(stream, group), CALL_MS, 'getInfo after delete'), kit.errors.PersistentSubscriptionDoesNotExistError, 'getInfo after delete');
      assert.ok(!(await call(client.persistent.list(stream), 'list')).some((each) => each.groupName === group), 'the deleted group is not listed');
      await create(stream, group);
      const info = await call(client.persistent.getInfo(stream, group), 'getInfo of the new group');
      assert.equal(info.stats.parkedMessageCount, 0n, 'the new group has no parked messages');
      const fresh = await consume(stream, group);
      await expectEachOnceAndAcked([fresh], ids, 'the new group delivers everything again, from the start');
      await call(client.persistent.replayParked(stream, group), 'replayParked on the new group');
      await sleep(300);
      assert.equal(fresh.deliveries.length, ids.length, 'the deleted group\'s parked messages are not the new group\'s to replay');
      await stopConsumers([fresh]);
    }),
  );

  test('maxSubscriberCount 2: the third consumer gets MaximumSubscribersReached; a slot freed is usable again', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-max');
      const group = 'max';
      await create(stream, group, { maxSubscriberCount: 2 });
      const first = await consume(stream, group);
      const second = await consume(stream, group);
      const third = await consume(stream, group, { confirm: false });
      await third.waitFor(() => third.error !== undefined, CALL_MS, 'the third is refused', true);
      assertErrorType(third.error, kit.errors.PersistentSubscriptionMaximumSubscribersReachedError, 'the third consumer');
      assert.equal((await call(client.persistent.getInfo(stream, group), 'getInfo')).connections.length, 2);
      await first.unsubscribe();
      await infoUntil(stream, group, (info) => info.connections.length === 1, 'one left after an unsubscribe');
      const fourth = await consume(stream, group);
      const ids = await write(stream, 10);
      await expectEachOnceAndAcked([second, fourth], ids, 'the two consumers');
      await stopConsumers([second, fourth]);
    }),
  );

  // ------------------------------------------------------------------ $all, filters, starts

  test('$all groups: a stream-prefix filter and an event-type filter deliver only matching events; the server\'s own state streams never arrive', TEST_OPTIONS, () =>
    check(async () => {
      const tag = randomUUID();
      const prefix = `ps-filter-${tag}-`;
      const type = `PsType${tag.replace(/-/g, '')}`;
      const byStream = `by-stream-${tag}`;
      const byType = `by-type-${tag}`;
      const system = `system-types-${tag}`;
      const everything = `everything-${tag}`;
      await create('$all', byStream, { startFrom: 'end' }, { on: 'streamName', prefixes: [prefix] });
      await create('$all', byType, { startFrom: 'end' }, { on: 'eventType', prefixes: [type] });
      // Every event type of the server's own state begins with '$': this group would see them if they were not kept out.
      await create('$all', system, { startFrom: 'end' }, { on: 'eventType', regex: '^\\$' });
      await create('$all', everything, { startFrom: 'end' });
      const streamConsumer = await consume('$all', byStream);
      const typeConsumer = await consume('$all', byType);
      const systemConsumer = await consume('$all', system);
      const everythingConsumer = await consume('$all', everything, { bufferSize: 50 });
      const matchingStream = [...(await write(`${prefix}a`, 10)), ...(await write(`${prefix}b`, 10))];
      const matchingType = await write(uniqueStream('ps-other'), 10, () => ({ type }));
      const neither = await write(uniqueStream('ps-neither'), 10);
      // Metadata writes are '$metadata' events in '$$' streams: a '$' type that is not the groups' own.
      const metaStream = uniqueStream('ps-meta');
      await call(client.setStreamMetadata(metaStream, { tag }), 'set metadata');
      const marker = await write(uniqueStream('ps-marker'), 1, () => ({ type: `Marker${tag}` }));
      await expectEachOnceAndAcked([streamConsumer], matchingStream, 'stream-prefix filter');
      await expectEachOnceAndAcked([typeConsumer], matchingType, 'event-type filter');
      await everythingConsumer.waitFor(() => everythingConsumer.ids().includes(marker[0]!), DELIVERY_MS, 'the unfiltered group reaches the marker');
      await systemConsumer.waitFor(() => systemConsumer.deliveries.some((each) => each.event.streamId === `$$${metaStream}`), DELIVERY_MS, 'the $-type group sees a metadata event');
      await sleep(300);
      const everythingIds = new Set(everythingConsumer.ids());
      for (const id of [...matchingStream, ...matchingType, ...neither]) assert.ok(everythingIds.has(id), 'the unfiltered group gets every event');
      for (const consumer of [streamConsumer, typeConsumer, systemConsumer, everythingConsumer]) {
        const own = consumer.deliveries.filter((each) => each.event.streamId.startsWith('$persistentsubscription') || each.event.streamId.startsWith('$$$persistentsubscription') || each.event.streamId === '$persistentSubscriptionConfig');
        assert.deepEqual(own.map((each) => `${each.event.streamId}@${each.event.revision} ${each.event.type}`).slice(0, 5), [], `${consumer.label}: none of the server's own state streams arrives`);
      }
      assert.ok(systemConsumer.deliveries.every((each) => each.event.type.startsWith('$')), 'the $-type group only gets $ types');
      await stopConsumers([streamConsumer, typeConsumer, systemConsumer, everythingConsumer]);
      for (const group of [byStream, byType, system, everything]) await call(client.persistent.delete('$all', group), `delete ${group}`);
    }),
  );

  test('a filtered $all group: park and replay, update while connected keeps the filter, delete while connected', TEST_OPTIONS, () =>
    check(async () => {
      const prefix = `ps-all-life-${randomUUID()}-`;
      const group = `life-${randomUUID()}`;
      await create('$all', group, { startFrom: 'end', maxRetryCount: 3 }, { on: 'streamName', prefixes: [prefix] });
      const consumer = await consume('$all', group, { decide: (delivery) => ((delivery.event.data as { index: number }).index < 3 ? 'park' : 'ack') });
      const first = await write(`${prefix}one`, 10);
      await write(uniqueStream('ps-all-life-other'), 5);
      await consumer.waitFor(() => consumer.acked.length >= 7, DELIVERY_MS, 'seven acked');
      await infoUntil('$all', group, (info) => info.stats.parkedMessageCount === 3n, 'three parked');
      consumer.decide = () => 'ack';
      await call(client.persistent.replayParked('$all', group), 'replayParked $all');
      await consumer.waitFor(() => consumer.acked.length >= 10, DELIVERY_MS, 'the three parked come back');
      assert.deepEqual(consumer.deliveries.slice(10).map((each) => each.ackId), first.slice(0, 3), 'the parked ones, in order');
      await infoUntil('$all', group, (info) => info.stats.parkedMessageCount === 0n, 'none parked');

      await call(client.persistent.update('$all', group, { startFrom: 'end', maxRetryCount: 6 }), 'update $all');
      await expectDropped(consumer, 'dropped by the update of a $all group');
      const info = await call(client.persistent.getInfo('$all', group), 'getInfo after the update');
      assert.equal(info.settings.maxRetryCount, 6);
      const again = await consume('$all', group);
      const later = await write(`${prefix}two`, 5);
      await write(uniqueStream('ps-all-life-other'), 5);
      await expectEachOnceAndAcked([again], later, 'after the update: the filter still applies, nothing acked comes back');

      await call(client.persistent.delete('$all', group), 'delete $all');
      await expectDropped(again, 'dropped by the delete of a $all group');
      assertErrorType(await caught(() => client.persistent.getInfo('$all', group), CALL_MS, 'getInfo after delete'), kit.errors.PersistentSubscriptionDoesNotExistError, 'getInfo of the deleted $all group');
    }),
  );

  test('resolveLinkTos: a group on a stream of links delivers the targets, acked by the link id; without it, the links', TEST_OPTIONS, () =>
    check(async () => {
      const target = uniqueStream('ps-link-target');
      const links = uniqueStream('ps-links');
      const targetIds = await write(target, 5);
      const linkIds = await write(links, 5, (index) => ({ type: '$>', binary: new Uint8Array(Buffer.from(`${index}@${target}`)) }));
      await call(client.persistent.create(links, 'resolved', { startFrom: 'start', resolveLinkTos: true }), 'create resolving');
      await call(client.persistent.create(links, 'raw', { startFrom: 'start', resolveLinkTos: false }), 'create not resolving');
      const resolved = await consume(links, 'resolved');
      const raw = await consume(links, 'raw');
      await expectEachOnceAndAcked([resolved], linkIds, 'resolving: acked by link id');
      await expectEachOnceAndAcked([raw], linkIds, 'not resolving');
      assert.deepEqual(resolved.deliveries.map((each) => each.event.id), targetIds, 'the resolved events are the targets');
      assert.ok(resolved.deliveries.every((each) => each.event.streamId === target), 'from the target stream');
      assert.ok(raw.deliveries.every((each) => each.event.type === '$>' && each.event.streamId === links), 'without resolving: the links themselves');
      await infoUntil(links, 'resolved', (info) => info.stats.lastCheckpointed === 4n, 'the resolving group checkpoints the link stream\'s revisions');
      await stopConsumers([resolved, raw]);
    }),
  );

  test('start from the end and from a revision (stream), from a position ($all)', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-startfrom');
      const before = await write(stream, 10);
      await call(client.persistent.create(stream, 'end', { startFrom: 'end' }), 'create from end');
      await call(client.persistent.create(stream, 'rev7', { startFrom: 7n }), 'create from 7');
      const fromEnd = await consume(stream, 'end');
      const fromSeven = await consume(stream, 'rev7');
      const after = await write(stream, 5);
      await expectEachOnceAndAcked([fromEnd], after, 'from the end: only what came after the create');
      await expectEachOnceAndAcked([fromSeven], [...before.slice(7), ...after], 'from revision 7: 7, 8, 9 and the new ones');
      assert.deepEqual(fromSeven.deliveries.map((each) => each.event.revision), [7n, 8n, 9n, 10n, 11n, 12n, 13n, 14n], 'in order');
      const info = await call(client.persistent.getInfo(stream, 'rev7'), 'getInfo');
      assert.equal(info.settings.startFrom, 7n);

      // $all from a position: the event at that position is the first delivered.
      const allStream = uniqueStream('ps-startpos');
      const prefix = allStream;
      await write(allStream, 3);
      const [third] = (await call(client.readStream(allStream, { fromRevision: 2n, maxCount: 1 }), 'read the third'));
      const laterIds = await write(allStream, 3);
      const group = `pos-${randomUUID()}`;
      await call(client.persistent.create('$all', group, { startFrom: third!.position! }, { on: 'streamName', prefixes: [prefix] }), 'create $all from a position');
      const fromPosition = await consume('$all', group);
      await expectEachOnceAndAcked([fromPosition], [third!.id, ...laterIds], 'from a position: that event (inclusive) and the later ones');
      const allInfo = await call(client.persistent.getInfo('$all', group), 'getInfo $all');
      assert.deepEqual(allInfo.settings.startFrom, third!.position, 'startFrom position round trip');
      const known = allInfo.stats.lastKnown as Position;
      const lastPosition = fromPosition.deliveries.at(-1)!.event.position!;
      assert.deepEqual(known, lastPosition, 'lastKnownEventPosition is the last event read');
      await infoUntil('$all', group, (each) => describe(each.stats.lastCheckpointed) === describe(lastPosition), 'lastCheckpointedEventPosition reaches the last acked event');

      // $all from the end: nothing written before the create, even the very last event.
      const endStream = uniqueStream('ps-startend');
      await write(endStream, 3);
      const endGroup = `end-${randomUUID()}`;
      await call(client.persistent.create('$all', endGroup, { startFrom: 'end' }, { on: 'streamName', prefixes: [endStream] }), 'create $all from the end');
      const fromAllEnd = await consume('$all', endGroup);
      const newer = await write(endStream, 2);
      await expectEachOnceAndAcked([fromAllEnd], newer, '$all from the end: only events written after the create');
      await stopConsumers([fromEnd, fromSeven, fromPosition, fromAllEnd]);
      await call(client.persistent.delete('$all', group), 'delete');
      await call(client.persistent.delete('$all', endGroup), 'delete');
    }),
  );

  test('getInfo while consuming: connections with in-flight counts, last checkpointed stops before the first unacked message, last known', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('ps-info');
      const group = 'info';
      await create(stream, group, { consumerStrategyName: 'RoundRobin' });
      // The message at revision 5 is held: the checkpoint may not pass it.
      const decide: PersistentDecider = (delivery) => (delivery.event.revision === 5n ? 'hold' : 'ack');
      const first = await consume(stream, group, { decide, bufferSize: 7 });
      const second = await consume(stream, group, { decide, bufferSize: 7 });
      await write(stream, 20);
      await Promise.race([first, second].map((each) => each.waitFor(() => ackedTotal([first, second]) >= 19, DELIVERY_MS, '19 acked')));
      const info = await infoUntil(stream, group, (each) => each.stats.totalInFlightMessages === 1, 'one message in flight');
      assert.equal(info.connections.length, 2, 'two connections');
      assert.deepEqual(info.connections.map((each) => each.inFlightMessages).sort(), [0, 1], 'the holder has one in flight');
      assert.equal(info.connections.reduce((sum, each) => sum + Number(each.totalItems), 0), 20, 'total items per connection add up');
      assert.deepEqual(info.connections.map((each) => each.availableSlots).sort(), [6, 7]);
      assert.equal(info.stats.lastCheckpointed, 4n, 'the checkpoint stops before the unacked revision 5');
      assert.equal(info.stats.lastKnown, 19n, 'the last known event');
      assert.equal(info.stats.totalItems, 20n);
      const [listed] = await call(client.persistent.list(stream), 'list');
      assert.equal(listed?.connections.length, 2, 'list shows the connections too');
      assert.equal(listed?.stats.lastCheckpointed, 4n, 'list shows the checkpoint too');
      const holder = [first, second].find((each) => each.held.length === 1)!;
      await holder.ack(holder.held.slice());
      await infoUntil(stream, group, (each) => each.stats.lastCheckpointed === 19n && each.stats.totalInFlightMessages === 0, 'the checkpoint reaches 19 once 5 is acked');
      await stopConsumers([first, second]);
    }),
  );

  test('restartSubsystem: consumers are dropped, resubscribe works, no acknowledged message comes back', TEST_OPTIONS, (t) =>
    check(async () => {
      const stream = uniqueStream('ps-restart-subsystem');
      const group = 'subsystem';
      await create(stream, group);
      const consumer = await consume(stream, group, { decide: (delivery) => (delivery.event.revision < 15n ? 'ack' : 'hold') });
      const ids = await write(stream, 20);
      await consumer.waitFor(() => consumer.acked.length >= 15 && consumer.held.length === 5, DELIVERY_MS, '15 acked, 5 held');
      await infoUntil(stream, group, (info) => info.stats.totalInFlightMessages === 5, 'the server has the 15 acks');
      await call(client.persistent.restartSubsystem(), 'restartSubsystem');
      await consumer.waitFor(() => consumer.error !== undefined || consumer.ended, DELIVERY_MS, 'dropped by the restart', true);
      t.diagnostic(`restartSubsystem ends the consumer's call with ${consumer.error ? describe(consumer.error) : 'a clean end'}`);
      const again = await consume(stream, group);
      await again.waitFor(() => again.acked.length >= 5, DELIVERY_MS, 'the five unacked come back');
      await sleep(300);
      assert.deepEqual(again.ids(), ids.slice(15), 'exactly the unacknowledged ones, once each');
      await stopConsumers([again]);
    }),
  );

  test('the server logged no warning or error through all of the above (and no MaxListenersExceededWarning)', TEST_OPTIONS, (t) => {
    const problems = server.problems();
    for (const line of problems.slice(0, 10)) t.diagnostic(line);
    assert.deepEqual(server.logs.filter((line) => /MaxListenersExceededWarning/.test(line)), [], 'no listener pile-up on the consumers\' calls');
    assert.deepEqual(problems.slice(0, 5), [], `${problems.length} warnings/errors`);
  });

  // ------------------------------------------------------------------ restarts on the same --db

  /**
   * Three consumers on a group while a writer appends; the server goes down (`how`) part way;
   * after a restart on the same data directory the consumers resubscribe and handle the rest.
   * Returns what was acknowledged before, and how many of those came back.
   */
  async function restartRun(t: TestContext, how: 'graceful' | 'kill') {
    const directory = await makeTempDirectory('chronicle-it-ps-restart-');
    let first: ServerProcess | undefined;
    let second: ServerProcess | undefined;
    const clients: TestClient[] = [];
    try {
      first = await ServerProcess.start({ db: directory.path });
      const port = first.port;
      // The events are written with the 1.x client whatever client is under test: the 6.x client
      // keeps one process-wide table of pending appends, so the break of any of its BatchAppend
      // calls (this node going down, or a call of an earlier test noticing its node went) rejects
      // every append pending in the process, including this test's writes.
      const writer = (await loadClientKit('kurrentdb')).connect(port);
      clients.push(writer);
      const stream = uniqueStream(`ps-${how}`);
      const group = 'durable';
      const total = 1_500;
      await call(writer.persistent.create(stream, group, { startFrom: 'start', consumerStrategyName: 'RoundRobin', messageTimeout: 60_000 }), 'create');
      const ids = [...(await write(stream, 500, () => ({}), writer))];
      ids.push(...(await write(stream, total - 500, () => ({}), writer)));
      // Consumers that take 20 ms per message (10 at a time each), so the server goes down mid-way.
      let answering = true;
      const slow: PersistentDecider = (delivery, recorder) => {
        setTimeout(() => {
          if (answering) void recorder.ack([delivery]);
        }, 20);
        return 'hold';
      };
      const before: PersistentRecorder[] = [];
      for (let i = 0; i < 3; i++) {
        const consumerClient = kit.connect(port);
        clients.push(consumerClient);
        before.push(await withServerLog(first, () => consume(stream, group, { on: consumerClient, bufferSize: 10, decide: slow })));
      }
      // Let the consumers get some way through, then take the server down mid-flight.
      await Promise.race(before.map((consumer) => consumer.waitFor(() => ackedTotal(before) >= 700, DELIVERY_MS, 'some of it acknowledged')));
      let downAt: number;
      if (how === 'graceful') {
        // The consumers stop answering; once the server has every ack they sent (GetInfo's
        // in-flight count equals what they hold), SIGTERM straight away.
        answering = false;
        await sleep(100);
        // A last burst of acks (half of what each consumer holds), and the stop follows as soon as
        // the server has them: these are committed by the graceful stop, not by the 50 ms window.
        await Promise.all(before.map((consumer) => consumer.ack(consumer.held.slice(0, Math.floor(consumer.held.length / 2)))));
        const held = () => before.reduce((sum, consumer) => sum + consumer.held.length, 0);
        const info = await withTimeout(
          (async () => {
            for (;;) {
              const each = await writer.persistent.getInfo(stream, group);
              if (each.stats.totalInFlightMessages === held()) return each;
              await sleep(1);
            }
          })(),
          DELIVERY_MS,
          'the server has every ack',
        );
        downAt = performance.now();
        const exit = await first.stop();
        assert.equal(exit.code, 0, `a graceful stop exits 0 (${describe(exit)})`);
        t.diagnostic(`graceful stop: ${ackedTotal(before)} acked, ${held()} held (in flight per getInfo ${info.stats.totalInFlightMessages}), lastCheckpointed ${describe(info.stats.lastCheckpointed)}`);
      } else {
        // The writer is done; closed first, so the kill does not break its idle BatchAppend call.
        await withTimeout(writer.dispose(), 5_000, 'dispose the writer');
        downAt = performance.now();
        await first.kill();
        answering = false;
      }
      const ackedBefore = new Map(before.flatMap((consumer) => consumer.acked.map((entry) => [entry.id, entry.sentAt] as const)));
      const heldBefore = new Set(before.flatMap((consumer) => consumer.held.map((delivery) => delivery.ackId)));
      const deliveredBefore = new Set(before.flatMap((consumer) => consumer.ids()));
      await Promise.all(before.map((consumer) => consumer.waitFor(() => consumer.error !== undefined || consumer.ended, DELIVERY_MS, 'the consumers see the server go', true)));

      second = await ServerProcess.start({ db: directory.path, port });
      const after: PersistentRecorder[] = [];
      for (let i = 0; i < 3; i++) {
        const consumerClient = kit.connect(port);
        clients.push(consumerClient);
        after.push(await withServerLog(second, () => consume(stream, group, { on: consumerClient, bufferSize: 10 })));
      }
      const notAcked = ids.filter((id) => !ackedBefore.has(id));
      const wanted = new Set(notAcked);
      const ackedAfter = () => new Set(after.flatMap((consumer) => consumer.acked.map((entry) => entry.id)).filter((id) => wanted.has(id)));
      await withServerLog(second, () =>
        Promise.race(after.map((consumer) => consumer.waitFor(() => ackedAfter().size === wanted.size, DELIVERY_MS, `every message not acked before is delivered after the restart (${ackedAfter().size}/${wanted.size})`))),
      );
      await sleep(300);
      const deliveredAfter = after.flatMap((consumer) => consumer.ids());
      const redeliveredAcked = deliveredAfter.filter((id) => ackedBefore.has(id));
      const counts = new Map<string, number>();
      for (const id of deliveredAfter) counts.set(id, (counts.get(id) ?? 0) + 1);
      const twiceAfter = [...counts].filter(([, count]) => count > 1);
      assert.deepEqual(twiceAfter.slice(0, 5), [], 'after the restart, nothing is delivered twice');
      const unknown = deliveredAfter.filter((id) => !ids.includes(id));
      assert.deepEqual(unknown, [], 'only the stream\'s events');
      const heldRedelivered = [...heldBefore].filter((id) => counts.has(id)).length;
      const heldRetryCounts = after.flatMap((consumer) => consumer.deliveries.filter((delivery) => heldBefore.has(delivery.ackId)).map((delivery) => delivery.retryCount));
      return { ackedBefore, heldBefore, deliveredBefore, downAt, redeliveredAcked, heldRedelivered, heldRetryCounts, total, ids, notAcked };
    } finally {
      await Promise.allSettled(clients.map((each) => withTimeout(each.dispose(), 5_000, 'dispose')));
      await first?.stop();
      await second?.stop();
      await directory.remove();
    }
  }

  test('parked messages survive restarts; a replay handled before a kill -9 stays handled', RESTART_TEST_OPTIONS, () =>
    (async () => {
      const directory = await makeTempDirectory('chronicle-it-ps-parked-');
      let node: ServerProcess | undefined;
      const clients: TestClient[] = [];
      try {
        node = await ServerProcess.start({ db: directory.path });
        const port = node.port;
        const connect = () => {
          const each = kit.connect(port);
          clients.push(each);
          return each;
        };
        const stream = uniqueStream('ps-parked-durable');
        const group = 'parked';
        let admin = connect();
        await call(admin.persistent.create(stream, group, { startFrom: 'start' }), 'create');
        // Written with the 1.x client, as in restartRun: the 6.x client's appends are exposed to any of its calls breaking.
        const writer = (await loadClientKit('kurrentdb')).connect(port);
        clients.push(writer);
        const ids = await write(stream, 10, () => ({}), writer);
        const parker = await consume(stream, group, { on: admin, decide: (delivery) => ((delivery.event.data as { index: number }).index % 3 === 0 ? 'park' : 'ack') });
        await parker.waitFor(() => parker.acked.length + parker.nacked.length >= 10, DELIVERY_MS, 'all answered');
        await withServerLog(node, () => infoUntilOn(admin, stream, group, (info) => info.stats.parkedMessageCount === 4n, 'four parked'));
        await node.stop();

        node = await ServerProcess.start({ db: directory.path, port });
        admin = connect();
        const afterStop = await call(admin.persistent.getInfo(stream, group), 'getInfo after a restart');
        assert.equal(afterStop.stats.parkedMessageCount, 4n, 'still four parked after a graceful restart');
        assert.equal(afterStop.stats.lastCheckpointed, 9n, 'the checkpoint survived');
        const replayer = await consume(stream, group, { on: admin });
        await sleep(300);
        assert.equal(replayer.deliveries.length, 0, 'nothing delivered before the replay');
        await call(admin.persistent.replayParked(stream, group), 'replayParked');
        await replayer.waitFor(() => replayer.acked.length >= 4, DELIVERY_MS, 'the four come back');
        assert.deepEqual(replayer.ids(), [0, 3, 6, 9].map((index) => ids[index]), 'the parked ones, in order');
        await withServerLog(node, () => infoUntilOn(admin, stream, group, (info) => info.stats.parkedMessageCount === 0n, 'none parked'));
        // Past the 50 ms window: the replay's end is committed, so a crash does not bring them back.
        await sleep(300);
        await node.kill();

        node = await ServerProcess.start({ db: directory.path, port });
        admin = connect();
        const afterKill = await call(admin.persistent.getInfo(stream, group), 'getInfo after a kill');
        assert.equal(afterKill.stats.parkedMessageCount, 0n, 'the handled replay is not parked again after a kill -9');
        const last = await consume(stream, group, { on: admin });
        await call(admin.persistent.replayParked(stream, group), 'replayParked again');
        await sleep(400);
        assert.deepEqual(last.ids(), [], 'nothing comes back');
      } finally {
        await Promise.allSettled(clients.map((each) => withTimeout(each.dispose(), 5_000, 'dispose')));
        await node?.stop();
        await directory.remove();
      }
    })(),
  );

  test('graceful restart on the same --db: no acknowledged message is delivered again, every unacknowledged one is', RESTART_TEST_OPTIONS, async (t) => {
    const run = await restartRun(t, 'graceful');
    t.diagnostic(`acked before ${run.ackedBefore.size}, held ${run.heldBefore.size}, redelivered acked ${run.redeliveredAcked.length}, held redelivered ${run.heldRedelivered}`);
    assert.ok(run.ackedBefore.size >= 700 && run.ackedBefore.size < run.total, `a restart mid-way (${run.ackedBefore.size} of ${run.total} acked)`);
    assert.equal(run.heldRedelivered, run.heldBefore.size, 'every message held unacked is delivered again');
    assert.ok(run.heldRetryCounts.length > 0 && run.heldRetryCounts.every((count) => count >= 1), `what was held comes back with its retry count raised (${run.heldRetryCounts.join(',')})`);
    assert.deepEqual(run.redeliveredAcked.slice(0, 10), [], `no acknowledged message comes back (${run.redeliveredAcked.length} did)`);
  });

  test('kill -9 restart on the same --db: nothing lost; only acks from the last window come back', RESTART_TEST_OPTIONS, async (t) => {
    const run = await restartRun(t, 'kill');
    // Generous bound for a loaded machine: the window is 50 ms; acks sent in the last 400 ms
    // before the kill may not have reached the server or its log.
    const recentMs = 400;
    const recent = [...run.ackedBefore.values()].filter((sentAt) => run.downAt - sentAt <= recentMs).length;
    const old = run.redeliveredAcked.filter((id) => run.downAt - run.ackedBefore.get(id)! > recentMs);
    const inFlightAtKill = [...run.deliveredBefore].filter((id) => !run.ackedBefore.has(id)).length;
    const oldestMs = Math.max(0, ...run.redeliveredAcked.map((id) => run.downAt - run.ackedBefore.get(id)!));
    t.diagnostic(
      `acked before ${run.ackedBefore.size} of ${run.total}, in flight at the kill ${inFlightAtKill}, acks sent in the last ${recentMs} ms ${recent}, acked messages delivered again ${run.redeliveredAcked.length} (the oldest ack among them sent ${oldestMs.toFixed(0)} ms before the kill; older than ${recentMs} ms: ${old.length})`,
    );
    assert.deepEqual(old.slice(0, 10), [], `no ack older than ${recentMs} ms before the kill comes back`);
    assert.ok(run.redeliveredAcked.length <= recent, `duplicates (${run.redeliveredAcked.length}) ≤ acks of the last ${recentMs} ms (${recent})`);
  });
});
