import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { forEachClient, withServerLog } from './client-matrix.js';
import type { ClientKit, Position, ReadEvent, SubscriptionRecorder, TestClient } from './clients.js';
import { ServerProcess } from './server-process.js';
import { closeAfterTests, describe, sleep, uniqueStream, withTimeout } from './support.js';

/**
 * Catch-up subscriptions through both official clients: to a stream and to $all, from the
 * start, the end, a revision or a position, while a writer keeps appending (history then live,
 * no gap, no duplicate); filtered $all subscriptions with checkpoints; unsubscribe; a server
 * restart on the same data directory.
 */
const CALL_MS = 10_000;
const DELIVERY_MS = 10_000;
const TEST_OPTIONS = { timeout: 30_000 };

function comparePositions(a: Position, b: Position): number {
  return a.commit === b.commit ? Number(a.prepare - b.prepare) : a.commit < b.commit ? -1 : 1;
}

forEachClient(import.meta.url, { timeoutMs: 45_000 }, (kitPromise) => {
  let kit: ClientKit;
  let server: ServerProcess;
  let client: TestClient;
  const subscriptions: SubscriptionRecorder[] = [];
  const otherClients: TestClient[] = [];

  before(async () => {
    kit = await kitPromise;
    server = await ServerProcess.start();
    client = kit.connect(server.port);
  });

  after(async () => {
    await closeAfterTests(subscriptions, [client, ...otherClients]);
  });

  const check = <T>(body: () => Promise<T>) => withServerLog(server, body);
  const call = <T>(promise: Promise<T>, what: string) => withTimeout(promise, CALL_MS, what);
  const track = (subscription: SubscriptionRecorder) => {
    subscriptions.push(subscription);
    return subscription;
  };

  /** Appends `count` events to `stream` one append at a time (expected revisions), with a pause every few. */
  async function writeSequentially(target: TestClient, stream: string, count: number, firstRevision: number, pauseEvery = 10): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = randomUUID();
      const revision = firstRevision + i;
      await call(target.append(stream, [{ id, type: 'Written', data: { revision } }], revision === 0 ? 'no_stream' : BigInt(revision - 1)), `append ${stream}@${revision}`);
      ids.push(id);
      if (pauseEvery > 0 && i % pauseEvery === pauseEvery - 1) await sleep(2);
    }
    return ids;
  }

  /** Appends `count` events of 100 per append to `stream`, as fast as possible. */
  async function writeInBulk(stream: string, count: number, type = 'Bulk'): Promise<string[]> {
    const ids: string[] = [];
    for (let done = 0; done < count; done += 100) {
      const batch = Array.from({ length: Math.min(100, count - done) }, () => ({ id: randomUUID(), type, data: { bulk: true } }));
      await call(client.append(stream, batch), `bulk append to ${stream}`);
      ids.push(...batch.map((event) => event.id));
    }
    return ids;
  }

  function assertExactly(events: ReadEvent[], stream: string, ids: string[], firstRevision: number, what: string): void {
    const ours = events.filter((event) => event.streamId === stream);
    const problems: string[] = [];
    const seen = new Set<string>();
    ours.forEach((event, i) => {
      if (seen.has(event.id)) problems.push(`duplicate ${event.id} at index ${i} (revision ${event.revision})`);
      seen.add(event.id);
      if (event.revision !== BigInt(firstRevision + i)) problems.push(`index ${i} has revision ${event.revision}, expected ${firstRevision + i}`);
    });
    assert.deepEqual(problems.slice(0, 10), [], `${what}: ${problems.length} problems`);
    assert.equal(ours.length, ids.length, `${what}: delivered ${ours.length} of ${ids.length} events`);
    assert.deepEqual(ours.map((event) => event.id), ids, `${what}: the ids, in order`);
  }

  function assertPositionsGrow(events: ReadEvent[], what: string): void {
    for (let i = 1; i < events.length; i++) {
      const [a, b] = [events[i - 1]!.position!, events[i]!.position!];
      assert.ok(comparePositions(a, b) < 0, `${what}: position ${describe(a)} is followed by ${describe(b)} (index ${i})`);
    }
  }

  test('subscribeToStream from the start: history then live, no gap, no duplicate, while a writer appends', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('sub-start');
      const history = await writeSequentially(client, stream, 300, 0, 0);
      const writer = writeSequentially(client, stream, 150, 300);
      const subscription = track(client.subscribeToStream(stream, 'start'));
      const live = await writer;
      const all = [...history, ...live];
      await subscription.waitFor(() => subscription.events.length >= all.length, DELIVERY_MS, 'every event delivered');
      await sleep(200);
      assertExactly(subscription.events, stream, all, 0, 'subscription from start');
      assert.ok(subscription.caughtUp >= 1, `the subscription reported caught-up (${subscription.summary()})`);
    }),
  );

  test('subscribeToStream from the end: only events appended after it is live', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('sub-end');
      await writeSequentially(client, stream, 10, 0, 0);
      const subscription = track(client.subscribeToStream(stream, 'end'));
      await subscription.waitFor(() => subscription.caughtUp >= 1, DELIVERY_MS, 'caught up');
      const live = await writeSequentially(client, stream, 100, 10);
      await subscription.waitFor(() => subscription.events.length >= live.length, DELIVERY_MS, 'the live events');
      await sleep(200);
      assertExactly(subscription.events, stream, live, 10, 'subscription from end');
    }),
  );

  test('subscribeToStream from a revision: starts after it, then live', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('sub-revision');
      const history = await writeSequentially(client, stream, 40, 0, 0);
      const writer = writeSequentially(client, stream, 60, 40);
      const subscription = track(client.subscribeToStream(stream, 24n));
      const live = await writer;
      const expected = [...history.slice(25), ...live];
      await subscription.waitFor(() => subscription.events.length >= expected.length, DELIVERY_MS, 'every event after revision 24');
      await sleep(200);
      assertExactly(subscription.events, stream, expected, 25, 'subscription from revision 24');
    }),
  );

  test('subscribeToStream to a stream that does not exist yet: delivers it from revision 0 once written', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('sub-later');
      const subscription = track(client.subscribeToStream(stream, 'start'));
      await subscription.waitFor(() => subscription.caughtUp >= 1 || subscription.confirmed, DELIVERY_MS, 'confirmed');
      const ids = await writeSequentially(client, stream, 20, 0);
      await subscription.waitFor(() => subscription.events.length >= ids.length, DELIVERY_MS, 'the events');
      assertExactly(subscription.events, stream, ids, 0, 'subscription before the stream existed');
    }),
  );

  test('subscribeToAll from the start: all of $all in order, then live, while writers append', TEST_OPTIONS, () =>
    check(async () => {
      const streams = [uniqueStream('all-start-a'), uniqueStream('all-start-b')];
      const earlier = await Promise.all(streams.map((stream) => writeSequentially(client, stream, 150, 0, 0)));
      const writers = Promise.all(streams.map((stream) => writeSequentially(client, stream, 100, 150)));
      const subscription = track(client.subscribeToAll('start'));
      const live = await writers;
      const endOfLog = (await call(client.readAll({ direction: 'backwards', fromPosition: 'end', maxCount: 1 }), 'the last event'))[0]!;
      await subscription.waitFor(() => subscription.events.some((event) => event.id === endOfLog.id), DELIVERY_MS, 'up to the last event of $all');
      await sleep(200);
      streams.forEach((stream, i) => assertExactly(subscription.events, stream, [...earlier[i]!, ...live[i]!], 0, `$all subscription, ${stream}`));
      assertPositionsGrow(subscription.events, '$all subscription');
      const everything = await call(client.readAll(), 'read $all');
      assert.deepEqual(
        subscription.events.map((event) => event.id),
        everything.map((event) => event.id),
        'the subscription delivered exactly what a read of $all returns',
      );
    }),
  );

  test('subscribeToAll from the end: only what is appended after it is live', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('all-end');
      await writeSequentially(client, stream, 5, 0, 0);
      const subscription = track(client.subscribeToAll('end'));
      await subscription.waitFor(() => subscription.caughtUp >= 1, DELIVERY_MS, 'caught up');
      const live = await writeSequentially(client, stream, 80, 5);
      await subscription.waitFor(() => subscription.events.filter((event) => event.streamId === stream).length >= live.length, DELIVERY_MS, 'the live events');
      await sleep(200);
      assertExactly(subscription.events, stream, live, 5, '$all from end');
      assertPositionsGrow(subscription.events, '$all from end');
    }),
  );

  test('subscribeToAll from a position: starts after that event', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('all-position');
      const ids = await writeSequentially(client, stream, 30, 0, 0);
      const events = await call(client.readStream(stream), 'read');
      const from = events[9]!.position!;
      const writer = writeSequentially(client, stream, 50, 30);
      const subscription = track(client.subscribeToAll(from));
      const live = await writer;
      const expected = [...ids.slice(10), ...live];
      await subscription.waitFor(() => subscription.events.filter((event) => event.streamId === stream).length >= expected.length, DELIVERY_MS, 'the events after the position');
      await sleep(200);
      assert.ok(subscription.events.length > 0);
      assert.ok(comparePositions(subscription.events[0]!.position!, from) > 0, `the first event delivered (${describe(subscription.events[0]!.position)}) is after ${describe(from)}`);
      assert.equal(subscription.events[0]!.id, ids[10], 'delivery starts with the event right after the position');
      assertExactly(subscription.events, stream, expected, 10, '$all from a position');
      assertPositionsGrow(subscription.events, '$all from a position');
    }),
  );

  test('filtered subscribeToAll by stream-name prefix: only matching events, and checkpoints while non-matching ones pass', TEST_OPTIONS, () =>
    check(async () => {
      const prefix = `filtered-${randomUUID()}-`;
      const matching = [`${prefix}one`, `${prefix}two`];
      const noise = uniqueStream('noise');
      const wanted: Record<string, string[]> = { [matching[0]!]: [], [matching[1]!]: [] };
      // History: matching events between long stretches of others.
      for (let round = 0; round < 3; round++) {
        await writeInBulk(noise, 400);
        for (const stream of matching) {
          const id = randomUUID();
          await call(client.append(stream, [{ id, type: 'Wanted', data: { round } }]), 'append matching');
          wanted[stream]!.push(id);
        }
      }
      const subscription = track(client.subscribeToAll('start', { on: 'streamName', prefixes: [prefix], maxSearchWindow: 50, checkpointInterval: 1 }));
      await subscription.waitFor(() => subscription.events.length >= 6 && subscription.caughtUp >= 1, DELIVERY_MS, 'the six historical matching events');
      const checkpointsInHistory = subscription.checkpoints.length;

      // Live: more others, then matching ones.
      await writeInBulk(noise, 600);
      await sleep(300);
      const checkpointsAfterLiveNoise = subscription.checkpoints.length;
      for (const stream of matching) {
        const id = randomUUID();
        await call(client.append(stream, [{ id, type: 'Wanted', data: { live: true } }]), 'append matching live');
        wanted[stream]!.push(id);
      }
      await subscription.waitFor(() => subscription.events.length >= 8, DELIVERY_MS, 'the live matching events');
      await sleep(200);

      const strays = subscription.events.filter((event) => !event.streamId.startsWith(prefix));
      assert.deepEqual(strays.map((event) => event.streamId).slice(0, 5), [], `${strays.length} events of other streams were delivered`);
      for (const stream of matching) assertExactly(subscription.events, stream, wanted[stream]!, 0, `filtered ${stream}`);
      assertPositionsGrow(subscription.events, 'filtered subscription');
      assert.ok(checkpointsInHistory >= 1, `checkpoints while catching up over 1200 other events: ${checkpointsInHistory} (${subscription.summary()})`);
      for (let i = 1; i < subscription.checkpoints.length; i++) {
        assert.ok(comparePositions(subscription.checkpoints[i - 1]!, subscription.checkpoints[i]!) <= 0, `checkpoints go back: ${describe(subscription.checkpoints[i - 1])} then ${describe(subscription.checkpoints[i])}`);
      }
      assert.ok(
        checkpointsAfterLiveNoise > checkpointsInHistory,
        `checkpoints while 600 other events pass a live subscription (search window 50): ${checkpointsAfterLiveNoise - checkpointsInHistory}`,
      );
    }),
  );

  test('filtered subscribeToAll by event-type regex: only matching types', TEST_OPTIONS, () =>
    check(async () => {
      const tag = randomUUID().replace(/-/g, '').slice(0, 12);
      const stream = uniqueStream('typed');
      const types = [`Order${tag}Placed`, `Order${tag}Paid`, `Order${tag}Shipped`, `Invoice${tag}Sent`, `Order${tag}PlacedTwice`];
      const regex = `^Order${tag}(Placed|Paid)$`;
      const wantedIds: string[] = [];
      for (let i = 0; i < 40; i++) {
        const type = types[i % types.length]!;
        const id = randomUUID();
        await call(client.append(stream, [{ id, type, data: { i } }]), 'append typed');
        if (new RegExp(regex).test(type)) wantedIds.push(id);
      }
      await writeInBulk(uniqueStream('noise'), 300, `Order${tag}Refunded`);
      const subscription = track(client.subscribeToAll('start', { on: 'eventType', regex, checkpointInterval: 1, maxSearchWindow: 20 }));
      await subscription.waitFor(() => subscription.events.length >= wantedIds.length && subscription.caughtUp >= 1, DELIVERY_MS, 'the matching events');
      await sleep(200);
      const wrongTypes = subscription.events.filter((event) => !new RegExp(regex).test(event.type));
      assert.deepEqual(wrongTypes.map((event) => event.type).slice(0, 5), [], `${wrongTypes.length} events of other types were delivered`);
      assert.deepEqual(subscription.events.map((event) => event.id), wantedIds);
      assert.ok(subscription.checkpoints.length >= 1, `checkpoints: ${subscription.summary()}`);
    }),
  );

  test('unsubscribe stops delivery', TEST_OPTIONS, () =>
    check(async () => {
      const stream = uniqueStream('unsubscribe');
      const subscription = track(client.subscribeToStream(stream, 'start'));
      const first = await writeSequentially(client, stream, 10, 0);
      await subscription.waitFor(() => subscription.events.length >= first.length, DELIVERY_MS, 'the first events');
      await withTimeout(subscription.unsubscribe(), 5_000, 'unsubscribe');
      await sleep(100);
      const delivered = subscription.events.length;
      await writeSequentially(client, stream, 20, 10);
      await sleep(500);
      assert.equal(subscription.events.length, delivered, `events delivered after unsubscribe (${subscription.summary()})`);
      assert.equal(subscription.error, undefined, 'unsubscribing is not an error');
      // The node is fine and other subscriptions still work.
      const again = track(client.subscribeToStream(stream, 'start'));
      await again.waitFor(() => again.events.length >= 30, DELIVERY_MS, 'a new subscription gets everything');
    }),
  );

  test('server restart on the same --db (SIGTERM, same port): the client reconnects for new calls', TEST_OPTIONS, async (t) => {
    const directory = await makeTempDirectory('chronicle-it-restart-');
    let first: ServerProcess | undefined;
    let second: ServerProcess | undefined;
    const restartClient = () => {
      const created = kit.connect(first!.port);
      otherClients.push(created);
      return created;
    };
    try {
      first = await ServerProcess.start({ db: directory.path });
      const port = first.port;
      await withServerLog([first], async () => {
        const own = restartClient();
        const stream = uniqueStream('restart');
        const earlier = await writeSequentially(own, stream, 20, 0);
        const subscription = track(own.subscribeToStream(stream, 'start'));
        await subscription.waitFor(() => subscription.events.length >= earlier.length, DELIVERY_MS, 'delivery before the restart');

        const exit = await first!.stop();
        assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM stops the node cleanly');
        await subscription.waitFor(() => subscription.error !== undefined || subscription.ended, 5_000, 'the subscription ends when the node stops');
        const howItEnded = subscription.error ? `${subscription.error.constructor.name}: ${subscription.error.message}` : 'ended without an error';
        t.diagnostic(`SIGTERM stopped the node in ${first!.lastStopMs} ms; the open subscription: ${howItEnded}`);

        second = await ServerProcess.start({ db: directory.path, port });
        await withServerLog([first!, second], async () => {
          // New calls on the same client object: the first one after the restart should work.
          const failures: string[] = [];
          let appended: string[] | undefined;
          for (let attempt = 0; attempt < 5 && !appended; attempt++) {
            try {
              appended = await writeSequentially(own, stream, 10, 20);
            } catch (error) {
              failures.push(describe(error));
              await sleep(500);
            }
          }
          assert.ok(appended, `no append worked after the restart: ${failures.join(' | ')}`);
          t.diagnostic(`calls that failed after the restart before one worked: ${failures.length ? failures.join(' | ') : 'none'}`);
          const events = await call(own.readStream(stream), 'read after the restart');
          assert.deepEqual(events.map((event) => event.id), [...earlier, ...appended], 'everything from before and after the restart, once');
          const resumed = track(own.subscribeToStream(stream, subscription.events.at(-1)!.revision));
          await resumed.waitFor(() => resumed.events.length >= 10, DELIVERY_MS, 'a new subscription resumes after the last delivered event');
          assert.deepEqual(resumed.events.map((event) => event.id), appended, 'resumed without a gap or a duplicate');
          assert.deepEqual(failures, [], `calls that failed right after the restart (the old subscription ${howItEnded})`);
        });
      });
    } finally {
      await first?.stop();
      await second?.stop();
      await directory.remove();
    }
  });
});
