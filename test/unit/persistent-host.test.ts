import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_GROUP_SETTINGS,
  EventStore,
  MaximumSubscribersReachedError,
  PersistentSubscriptionExistsError,
  PersistentSubscriptionHost,
  PersistentSubscriptionNotFoundError,
  type ConsumerHandle,
  type GroupRequest,
  type GroupSettings,
  type SubscriptionMessage,
} from '../../src/embedded/index.js';
import { nodeHostEnvironment } from '../../src/subscriptions/persistent/host.js';

/**
 * Persistent subscriptions in process, over an in-memory store: the host, its groups and the
 * ack state kept in the log, as the embedded API offers them (the gRPC service is a thin layer
 * over the same calls, tested with the official clients in test/integration).
 */

function request(stream: string, settings: Partial<GroupSettings> = {}, group = 'g'): GroupRequest {
  return { source: { kind: 'stream', stream }, group, startFrom: { kind: 'start' }, settings: { ...DEFAULT_GROUP_SETTINGS, ...settings } };
}

async function append(store: EventStore, stream: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await store.appendToStream(stream, [{ type: 'numbered', data: { i } }]);
}

/** A consumer that records what it receives; acks are the test's to send. */
function consumer(host: PersistentSubscriptionHost, stream: string, bufferSize = 10, group = 'g') {
  const received: { message: SubscriptionMessage; retryCount: number }[] = [];
  let ended: Error | undefined;
  const handle: ConsumerHandle = host.connect({ kind: 'stream', stream }, group, bufferSize, { from: 'test', connectionName: 'test', username: '' }, {
    deliver: (message, retryCount) => received.push({ message, retryCount }),
    end: (error) => (ended = error),
  });
  return {
    handle,
    received,
    get ended() {
      return ended;
    },
    revisions: () => received.map((entry) => entry.message.event.revision),
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('persistent subscription host (in process)', () => {
  test('delivers, and after a graceful stop and a new host nothing acknowledged comes back', async () => {
    const store = await EventStore.open({ inMemory: true });
    try {
      await append(store, 'orders', 30);
      const host = new PersistentSubscriptionHost(store);
      await host.start();
      await host.create(request('orders'));
      const first = consumer(host, 'orders', 5);
      const acked = new Set<number>();
      // Ack in an order of our own: some out of order, some never.
      while (acked.size < 20) {
        await until(() => first.received.some((entry) => !acked.has(entry.message.event.revision)), 'a delivery');
        for (const entry of first.received) {
          const revision = entry.message.event.revision;
          if (acked.has(revision) || revision === 3) continue;
          acked.add(revision);
          first.handle.ack([entry.message.id]);
        }
      }
      await host.stop(true, 'test stop');
      assert.ok(first.ended, 'the consumer was told');

      const next = new PersistentSubscriptionHost(store);
      await next.start();
      const second = consumer(next, 'orders', 100);
      await until(() => second.received.length >= 30 - acked.size, 'the rest');
      await sleep(50);
      const again = second.revisions().filter((revision) => acked.has(revision));
      assert.deepEqual(again, [], 'acknowledged messages were delivered again');
      assert.ok(second.revisions().includes(3), 'the unacknowledged message comes back');
      const info = next.info({ kind: 'stream', stream: 'orders' }, 'g');
      assert.equal(info.statistics.consumers.length, 1);
      await next.stop(true, 'done');
    } finally {
      await store.close();
    }
  });

  test('park, replay parked, and the parked count', async () => {
    const store = await EventStore.open({ inMemory: true });
    try {
      await append(store, 'payments', 3);
      const host = new PersistentSubscriptionHost(store);
      await host.start();
      await host.create(request('payments'));
      const reader = consumer(host, 'payments');
      await until(() => reader.received.length === 3, 'three deliveries');
      reader.handle.nack([reader.received[1]!.message.id], 'park', 'poison');
      reader.handle.ack([reader.received[0]!.message.id, reader.received[2]!.message.id]);
      await until(() => host.info({ kind: 'stream', stream: 'payments' }, 'g').parkedCount === 1, 'the park to be committed');
      await host.replayParked({ kind: 'stream', stream: 'payments' }, 'g', undefined);
      await until(() => reader.received.length === 4, 'the replayed message');
      const replayed = reader.received[3]!;
      assert.equal(replayed.message.event.revision, 1);
      reader.handle.ack([replayed.message.id]);
      await until(() => host.info({ kind: 'stream', stream: 'payments' }, 'g').parkedCount === 0, 'the parked stream to be truncated');
      await host.stop(true, 'done');
    } finally {
      await store.close();
    }
  });

  test('create twice, a missing group, the subscriber limit, update and delete', async () => {
    const store = await EventStore.open({ inMemory: true });
    try {
      await append(store, 's', 5);
      const host = new PersistentSubscriptionHost(store);
      await host.start();
      await host.create(request('s', { maxSubscriberCount: 1 }));
      await assert.rejects(host.create(request('s')), PersistentSubscriptionExistsError);
      assert.throws(() => host.info({ kind: 'stream', stream: 's' }, 'nope'), PersistentSubscriptionNotFoundError);
      const only = consumer(host, 's');
      assert.throws(() => consumer(host, 's'), MaximumSubscribersReachedError);
      await until(() => only.received.length === 5, 'five deliveries');
      only.handle.ack(only.received.slice(0, 2).map((entry) => entry.message.id));
      await host.update(request('s', { maxSubscriberCount: 2, messageTimeoutMs: 5_000 }));
      assert.ok(only.ended, 'update drops the consumers');
      assert.equal(host.info({ kind: 'stream', stream: 's' }, 'g').definition.settings.messageTimeoutMs, 5_000);
      const after = consumer(host, 's');
      consumer(host, 's');
      await until(() => after.received.length > 0, 'deliveries after the update');
      assert.ok(after.revisions().every((revision) => revision >= 2), `acknowledged messages came back after the update: ${after.revisions().join(',')}`);
      await host.delete({ kind: 'stream', stream: 's' }, 'g');
      assert.ok(after.ended, 'delete drops the consumers');
      assert.throws(() => host.info({ kind: 'stream', stream: 's' }, 'g'), PersistentSubscriptionNotFoundError);
      // Created again under the same name: a new group, from the start.
      await host.create(request('s'));
      const fresh = consumer(host, 's');
      await until(() => fresh.received.length === 5, 'every event again for the new group');
      await host.stop(true, 'done');
    } finally {
      await store.close();
    }
  });

  test('calls wait, boundedly, for a host that is about to start (a leader just elected)', async () => {
    const store = await EventStore.open({ inMemory: true });
    try {
      const host = new PersistentSubscriptionHost(store);
      await assert.rejects(host.ready(30), (error: Error) => error.name === 'StoreUnavailableError');
      const waiting = host.ready(2_000);
      await host.start();
      await waiting;
      await host.stop(true, 'done');
    } finally {
      await store.close();
    }
  });

  test('a host follows the committed definitions: a group written by another host (an earlier change that committed late) appears', async () => {
    const store = await EventStore.open({ inMemory: true });
    try {
      await append(store, 'late', 2);
      const first = new PersistentSubscriptionHost(store);
      const second = new PersistentSubscriptionHost(store);
      await first.start();
      await second.start();
      await first.create(request('late'));
      // The second host learns of it within its follow interval, and a create there says it exists.
      await until(() => second.figures().length === 1, 'the second host to start the group', 3_000);
      await assert.rejects(second.create(request('late')), PersistentSubscriptionExistsError);
      const reader = consumer(second, 'late');
      await until(() => reader.received.length === 2, 'deliveries from the second host');
      await first.delete({ kind: 'stream', stream: 'late' }, 'g');
      await until(() => reader.ended !== undefined, 'the consumer dropped when the group is gone', 3_000);
      await first.stop(true, 'done');
      await second.stop(true, 'done');
    } finally {
      await store.close();
    }
  });

  test('a $all group with a filter sees matching events only, never the groups\u2019 own streams', async () => {
    const store = await EventStore.open({ inMemory: true });
    try {
      const host = new PersistentSubscriptionHost(store);
      await host.start();
      await host.create({ source: { kind: 'all' }, group: 'all', startFrom: { kind: 'start' }, settings: { ...DEFAULT_GROUP_SETTINGS }, filter: { on: 'stream', prefixes: ['shop-'] } });
      await host.create({ source: { kind: 'all' }, group: 'everything', startFrom: { kind: 'start' }, settings: { ...DEFAULT_GROUP_SETTINGS } });
      await append(store, 'shop-1', 2);
      await append(store, 'other', 2);
      const received: SubscriptionMessage[] = [];
      const everythingReceived: SubscriptionMessage[] = [];
      const all = host.connect({ kind: 'all' }, 'all', 10, { from: '', connectionName: '', username: '' }, { deliver: (message) => received.push(message), end: () => undefined });
      const everything = host.connect({ kind: 'all' }, 'everything', 100, { from: '', connectionName: '', username: '' }, { deliver: (message) => everythingReceived.push(message), end: () => undefined });
      await until(() => received.length === 2 && everythingReceived.length >= 4, 'the $all deliveries');
      assert.deepEqual(received.map((message) => message.event.streamId), ['shop-1', 'shop-1']);
      all.ack(received.map((message) => message.id));
      everything.ack(everythingReceived.map((message) => message.id));
      await sleep(200);
      assert.ok(everythingReceived.every((message) => !message.event.streamId.startsWith('$persistentsubscription')), 'a group received its own state');
      await host.stop(true, 'done');
    } finally {
      await store.close();
    }
  });
});

test('metrics: each hosted group\u2019s consumers, in-flight, outstanding and parked messages', async () => {
  const { NodeMetrics } = await import('../../src/api/http/metrics.js');
  const { SubscriptionTracker } = await import('../../src/subscriptions/subscription-tracker.js');
  const store = await EventStore.open({ inMemory: true });
  try {
    await append(store, 'metered', 4);
    const host = new PersistentSubscriptionHost(store);
    await host.start();
    await host.create(request('metered', {}, 'billing'));
    const metrics = new NodeMetrics({ store, subscriptions: new SubscriptionTracker(() => store.position), persistentSubscriptions: host });
    const reader = consumer(host, 'metered', 10, 'billing');
    await until(() => reader.received.length === 4, 'four deliveries');
    reader.handle.ack([reader.received[0]!.message.id]);
    reader.handle.nack([reader.received[1]!.message.id], 'park', 'metered');
    await until(() => host.figures()[0]!.parkedCount === 1, 'the park to be committed');
    const text = await metrics.text();
    const value = (name: string) => Number(new RegExp(`^${name}\\{source="metered",group="billing"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('chronicle_persistent_subscription_consumers'), 1);
    assert.equal(value('chronicle_persistent_subscription_in_flight'), 2);
    assert.equal(value('chronicle_persistent_subscription_outstanding'), 2);
    assert.equal(value('chronicle_persistent_subscription_parked'), 1);
    assert.equal(value('chronicle_persistent_subscription_delivered'), 4);
    await host.stop(true, 'done');
    assert.doesNotMatch(await metrics.text(), /chronicle_persistent_subscription_consumers\{/, 'a node that stopped hosting reports no groups');
  } finally {
    await store.close();
  }
});

test('a host in a cluster loads nothing before this node is confirmed as leader, and does not start if it is not', async () => {
  const store = await EventStore.open({ inMemory: true });
  try {
    await append(store, 'confirmed', 3);
    const setup = new PersistentSubscriptionHost(store);
    await setup.start();
    await setup.create(request('confirmed'));
    await setup.stop(true, 'set up');

    // A deposed leader that has not heard of it yet: the barrier fails, nothing is hosted.
    const deposed = new PersistentSubscriptionHost(store, { ...nodeHostEnvironment(), confirmLeadership: () => Promise.reject(new Error('a newer leader exists')) });
    await assert.rejects(deposed.start(), /a newer leader exists/);
    assert.equal(deposed.running, false);
    assert.throws(() => consumer(deposed, 'confirmed'), /not|serv/i, 'no consumer is served');

    // A confirmed leader: the epoch begins when confirmation was asked for, the groups load after it.
    const order: string[] = [];
    let release!: () => void;
    const confirmed = new PersistentSubscriptionHost(store, {
      ...nodeHostEnvironment(),
      confirmLeadership: () => {
        order.push('confirm asked');
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    const starting = confirmed.start();
    await until(() => order.length > 0, 'the confirmation to be asked for');
    assert.equal(confirmed.running, false, 'not hosting while leadership is unconfirmed');
    release();
    await starting;
    assert.equal(confirmed.running, true);
    const reader = consumer(confirmed, 'confirmed');
    await until(() => reader.received.length === 3, 'the three messages');
    await confirmed.stop(true, 'done');
  } finally {
    await store.close();
  }
});
