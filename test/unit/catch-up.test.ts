import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventStore, StreamDeletedError, subscribeToAll, subscribeToStream, type RecordedEvent } from '../../src/embedded/index.js';

async function collect(iterator: AsyncGenerator<RecordedEvent>, count: number): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const event of iterator) {
    events.push(event);
    if (events.length === count) break;
  }
  return events;
}

describe('catch-up subscriptions', () => {
  it('deliver history then live events to $all with no gap and no duplicate, while writers keep writing', async () => {
    const store = await EventStore.open({ inMemory: true });
    for (let i = 0; i < 50; i++) await store.appendToStream(`s-${i % 5}`, [{ type: `history-${i}` }]);
    const subscription = collect(subscribeToAll(store, { batchSize: 7 }), 150);
    for (let i = 0; i < 100; i++) {
      await store.appendToStream(`s-${i % 5}`, [{ type: `live-${i}` }]);
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const events = await subscription;
    const expected = [...Array.from({ length: 50 }, (_, i) => `history-${i}`), ...Array.from({ length: 100 }, (_, i) => `live-${i}`)];
    assert.deepEqual(events.map((event) => event.type), expected);
    await store.close();
  });

  it('start at the end of $all with only new events, and apply filters', async () => {
    const store = await EventStore.open({ inMemory: true });
    await store.appendToStream('order-1', [{ type: 'Old' }]);
    const subscription = collect(subscribeToAll(store, { fromPosition: 'end', filter: { streamNamePrefixes: ['order-'] } }), 2);
    await store.appendToStream('user-1', [{ type: 'Skipped' }]);
    await store.appendToStream('order-2', [{ type: 'New1' }]);
    await store.appendToStream('order-3', [{ type: 'New2' }]);
    assert.deepEqual((await subscription).map((event) => event.type), ['New1', 'New2']);
    await store.close();
  });

  it('follow one stream from a revision, waiting for it to exist', async () => {
    const store = await EventStore.open({ inMemory: true });
    const subscription = collect(subscribeToStream(store, 'later', { batchSize: 2 }), 5);
    await store.appendToStream('other', [{ type: 'Noise' }]);
    await store.appendToStream('later', [{ type: 'A' }, { type: 'B' }, { type: 'C' }]);
    await store.appendToStream('later', [{ type: 'D' }]);
    await store.appendToStream('later', [{ type: 'E' }]);
    assert.deepEqual((await subscription).map((event) => `${event.revision}:${event.type}`), ['0:A', '1:B', '2:C', '3:D', '4:E']);
    const fromTwo = await collect(subscribeToStream(store, 'later', { fromRevision: 2 }), 3);
    assert.deepEqual(fromTwo.map((event) => event.revision), [2, 3, 4]);
    await store.close();
  });

  it('end when aborted or when the store closes, and fail on a tombstoned stream', async () => {
    const store = await EventStore.open({ inMemory: true });
    const controller = new AbortController();
    const aborted = collect(subscribeToAll(store, { signal: controller.signal }), 10);
    setTimeout(() => controller.abort(), 10);
    assert.deepEqual(await aborted, []);
    const closing = collect(subscribeToStream(store, 'never'), 10);
    setTimeout(() => void store.close(), 10);
    assert.deepEqual(await closing, []);
    const other = await EventStore.open({ inMemory: true });
    await other.appendToStream('gone', [{ type: 'A' }]);
    await other.tombstoneStream('gone');
    await assert.rejects(collect(subscribeToStream(other, 'gone'), 1), StreamDeletedError);
    await other.close();
  });
});
