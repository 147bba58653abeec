import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import {
  EventIdConflictError,
  EventStore,
  InvalidArgumentError,
  MaximumAppendSizeExceededError,
  MemoryFileSystem,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
  type EventData,
  type RecordedEvent,
} from '../../src/embedded/index.js';
import { LocalCommitter } from '../../src/store/committer.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const openMemory = (options: Parameters<typeof EventStore.open>[0] = {}) => EventStore.open({ inMemory: true, ...options });
const events = (...types: string[]): EventData[] => types.map((type) => ({ type, data: { type } }));
const types = (list: RecordedEvent[]) => list.map((event) => event.type);
const revisions = (list: RecordedEvent[]) => list.map((event) => event.revision);
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

describe('expected state', () => {
  it('no_stream holds only for a stream without events', async () => {
    const store = await openMemory();
    const first = await store.appendToStream('s', events('A'), { expectedState: 'no_stream' });
    assert.equal(first.nextExpectedRevision, 0);
    await assert.rejects(store.appendToStream('s', events('B'), { expectedState: 'no_stream' }), (error: unknown) => {
      assert.ok(error instanceof WrongExpectedVersionError);
      assert.deepEqual(error.actual, { kind: 'revision', revision: 0 });
      assert.equal(error.code, 'WRONG_EXPECTED_VERSION');
      return true;
    });
    await store.close();
  });

  it('stream_exists holds only for a stream with events', async () => {
    const store = await openMemory();
    await assert.rejects(store.appendToStream('s', events('A'), { expectedState: 'stream_exists' }), (error: unknown) => {
      assert.ok(error instanceof WrongExpectedVersionError);
      assert.deepEqual(error.actual, { kind: 'no-stream' });
      return true;
    });
    await store.appendToStream('s', events('A'));
    assert.equal((await store.appendToStream('s', events('B'), { expectedState: 'stream_exists' })).nextExpectedRevision, 1);
    await store.close();
  });

  it('an exact revision holds only when it is the last revision', async () => {
    const store = await openMemory();
    await assert.rejects(store.appendToStream('s', events('A'), { expectedState: 0 }), WrongExpectedVersionError);
    await store.appendToStream('s', events('A', 'B'));
    await assert.rejects(store.appendToStream('s', events('C'), { expectedState: 0 }), WrongExpectedVersionError);
    assert.equal((await store.appendToStream('s', events('C'), { expectedState: 1 })).nextExpectedRevision, 2);
    assert.equal((await store.appendToStream('s', events('D'), { expectedState: 2n })).nextExpectedRevision, 3);
    await store.close();
  });

  it('rejects malformed expected states with a typed error', async () => {
    const store = await openMemory();
    for (const expectedState of [-1, 1.5, 'anything', -3n, Number.NaN]) {
      await assert.rejects(store.appendToStream('s', events('A'), { expectedState: expectedState as never }), InvalidArgumentError);
    }
    assert.equal((await store.readAll()).events.length, 0);
    await store.close();
  });

  it('validates concurrent appends against the writes still in flight', async () => {
    const store = await openMemory();
    const results = await Promise.allSettled([0, 1, 2, 3].map(() => store.appendToStream('s', events('X'), { expectedState: 'no_stream' })));
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    const chained = await Promise.all([
      store.appendToStream('s', events('B'), { expectedState: 0 }),
      store.appendToStream('s', events('C'), { expectedState: 1 }),
      store.appendToStream('s', events('D'), { expectedState: 2 }),
    ]);
    assert.deepEqual(chained.map((result) => result.nextExpectedRevision), [1, 2, 3]);
    assert.deepEqual(revisions(await store.readStream('s')), [0, 1, 2, 3]);
    await store.close();
  });
});

describe('idempotent retries', () => {
  it('returns the original result for the same ids and writes nothing, for every expected state', async () => {
    const store = await openMemory();
    const batch = [{ id: uuid(1), type: 'A' }, { id: uuid(2), type: 'B' }];
    const original = await store.appendToStream('s', batch, { expectedState: 'no_stream' });
    for (const expectedState of ['no_stream', 'any'] as const) {
      assert.deepEqual(await store.appendToStream('s', batch, { expectedState }), original);
    }
    const next = await store.appendToStream('s', [{ id: uuid(3), type: 'C' }], { expectedState: 1 });
    assert.deepEqual(await store.appendToStream('s', [{ id: uuid(3), type: 'C' }], { expectedState: 1 }), next);
    assert.deepEqual(await store.appendToStream('s', [{ id: uuid(3), type: 'C' }]), next);
    assert.deepEqual(types(await store.readStream('s')), ['A', 'B', 'C']);
    await store.close();
  });

  it('is an error when ids overlap an earlier batch only partly', async () => {
    const store = await openMemory();
    await store.appendToStream('s', [{ id: uuid(1), type: 'A' }, { id: uuid(2), type: 'B' }]);
    await assert.rejects(store.appendToStream('s', [{ id: uuid(1), type: 'A' }]), EventIdConflictError);
    await assert.rejects(store.appendToStream('s', [{ id: uuid(2), type: 'B' }, { id: uuid(1), type: 'A' }]), EventIdConflictError);
    await assert.rejects(store.appendToStream('other', [{ id: uuid(1), type: 'A' }, { id: uuid(2), type: 'B' }]), EventIdConflictError);
    await assert.rejects(store.appendToStream('s', [{ id: uuid(2), type: 'B' }, { id: uuid(9), type: 'Z' }]), EventIdConflictError);
    assert.equal((await store.readAll()).events.length, 2);
    await store.close();
  });

  it('answers a retry whose expected state did not hold for the original with wrong expected version', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('A'));
    await store.appendToStream('s', [{ id: uuid(5), type: 'B' }], { expectedState: 0 });
    await assert.rejects(store.appendToStream('s', [{ id: uuid(5), type: 'B' }], { expectedState: 'no_stream' }), WrongExpectedVersionError);
    await store.close();
  });

  it('refuses the same id twice in one append', async () => {
    const store = await openMemory();
    await assert.rejects(store.appendToStream('s', [{ id: uuid(1), type: 'A' }, { id: uuid(1), type: 'B' }]), InvalidArgumentError);
    await store.close();
  });

  it('recognises retries after a restart: the window is rebuilt from the log', async () => {
    const fileSystem = new MemoryFileSystem();
    const store = await EventStore.open({ fileSystem, directory: '/db' });
    const original = await store.appendToStream('s', [{ id: uuid(7), type: 'A' }], { expectedState: 'no_stream' });
    await store.close();
    const reopened = await EventStore.open({ fileSystem, directory: '/db' });
    assert.deepEqual(await reopened.appendToStream('s', [{ id: uuid(7), type: 'A' }], { expectedState: 'no_stream' }), original);
    assert.equal((await reopened.readStream('s')).length, 1);
    await reopened.close();
  });

  it('forgets ids beyond the window, by count and by age', async () => {
    let now = 1_000_000;
    const store = await openMemory({ idempotencyWindow: { maxEvents: 2, maxAgeMs: 60_000 }, clock: () => now });
    await store.appendToStream('s', [{ id: uuid(1), type: 'A' }]);
    await store.appendToStream('s', [{ id: uuid(2), type: 'B' }]);
    await store.appendToStream('s', [{ id: uuid(3), type: 'C' }]);
    // uuid(1) fell out of the window: appending it again is a new event.
    assert.equal((await store.appendToStream('s', [{ id: uuid(1), type: 'A' }])).nextExpectedRevision, 3);
    now += 61_000;
    assert.equal((await store.appendToStream('s', [{ id: uuid(3), type: 'C' }])).nextExpectedRevision, 4);
    await store.close();
  });
});

describe('multi-stream appends', () => {
  it('write to several streams atomically, each with its own expected state', async () => {
    const store = await openMemory();
    await store.appendToStream('b', events('b0'));
    const result = await store.appendToStreams([
      { stream: 'a', events: events('a0', 'a1'), expectedState: 'no_stream' },
      { stream: 'b', events: events('b1'), expectedState: 0 },
    ]);
    assert.deepEqual(result.streams, [
      { stream: 'a', nextExpectedRevision: 1 },
      { stream: 'b', nextExpectedRevision: 1 },
    ]);
    const all = (await store.readAll()).events;
    assert.equal(new Set(all.slice(1).map((event) => event.position.commit)).size, 1, 'one record for the whole write');
    await store.close();
  });

  it('write nothing when any expected state fails, and refuse a stream named twice', async () => {
    const store = await openMemory();
    await assert.rejects(
      store.appendToStreams([
        { stream: 'a', events: events('a0'), expectedState: 'no_stream' },
        { stream: 'b', events: events('b0'), expectedState: 3 },
      ]),
      WrongExpectedVersionError,
    );
    await assert.rejects(store.readStream('a'), StreamNotFoundError);
    await assert.rejects(
      store.appendToStreams([
        { stream: 'a', events: events('x') },
        { stream: 'a', events: events('y') },
      ]),
      InvalidArgumentError,
    );
    await assert.rejects(store.appendToStreams([]), InvalidArgumentError);
    assert.equal((await store.readAll()).events.length, 0);
    await store.close();
  });

  it('recognise an exact retry, recreate soft-deleted streams, and refuse tombstoned ones', async () => {
    const store = await openMemory();
    const request = [
      { stream: 'a', events: [{ id: uuid(1), type: 'A' }] },
      { stream: 'b', events: [{ id: uuid(2), type: 'B' }] },
    ];
    const first = await store.appendToStreams(request);
    assert.deepEqual(await store.appendToStreams(request), first);
    assert.equal((await store.readAll()).events.length, 2);
    await store.deleteStream('a');
    await store.appendToStreams([{ stream: 'a', events: events('again'), expectedState: 'no_stream' }]);
    assert.deepEqual(types(await store.readStream('a')), ['again']);
    await store.tombstoneStream('b');
    await assert.rejects(store.appendToStreams([{ stream: 'b', events: events('never') }]), StreamDeletedError);
    await store.close();
  });
});

describe('reading streams', () => {
  it('reads forwards and backwards from a revision with a max count', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('0', '1', '2', '3', '4'));
    assert.deepEqual(revisions(await store.readStream('s', { fromRevision: 2 })), [2, 3, 4]);
    assert.deepEqual(revisions(await store.readStream('s', { fromRevision: 1, maxCount: 2 })), [1, 2]);
    assert.deepEqual(revisions(await store.readStream('s', { direction: 'backwards' })), [4, 3, 2, 1, 0]);
    assert.deepEqual(revisions(await store.readStream('s', { direction: 'backwards', fromRevision: 2, maxCount: 2 })), [2, 1]);
    assert.deepEqual(revisions(await store.readStream('s', { fromRevision: 9 })), []);
    assert.deepEqual(revisions(await store.readStream('s', { fromRevision: 'end' })), []);
    assert.deepEqual(revisions(await store.readStream('s', { maxCount: 0 })), []);
    await assert.rejects(store.readStream('missing'), StreamNotFoundError);
    await store.close();
  });

  it('keeps event content, type, content type, metadata, id and timestamps', async () => {
    const store = await openMemory({ clock: () => 1_700_000_000_123 });
    await store.appendToStream('s', [
      { id: uuid(42), type: 'Json', data: { a: [1, 2] }, metadata: { correlationId: 'c' } },
      { type: 'Binary', data: new Uint8Array([0, 1, 255]), contentType: 'application/octet-stream' },
    ]);
    const [json, binary] = await store.readStream('s');
    assert.equal(json!.id, uuid(42));
    assert.equal(json!.contentType, 'application/json');
    assert.deepEqual(JSON.parse(Buffer.from(json!.data).toString()), { a: [1, 2] });
    assert.deepEqual(JSON.parse(Buffer.from(json!.metadata).toString()), { correlationId: 'c' });
    assert.equal(json!.created.getTime(), 1_700_000_000_123);
    assert.equal(binary!.contentType, 'application/octet-stream');
    assert.deepEqual([...binary!.data], [0, 1, 255]);
    assert.ok(json!.position.prepare > json!.position.commit);
    assert.equal(json!.position.commit, binary!.position.commit, 'one atomic append is one record');
    await store.close();
  });

  it('hands out bytes a caller may change without changing what later reads return', async () => {
    const store = await openMemory();
    await store.appendToStream('s', [{ type: 'A', data: new Uint8Array([1, 2, 3]) }]);
    const [first] = await store.readStream('s');
    first!.data.fill(9);
    const [again] = await store.readStream('s');
    assert.deepEqual([...again!.data], [1, 2, 3]);
    await store.close();
  });

  it('reads long streams across index runs and flushes, in both directions', async () => {
    const temp = await makeTempDirectory();
    cleanups.push(temp.remove);
    const store = await EventStore.open({ directory: temp.path, indexFlushIntervalMs: 1 });
    for (let batch = 0; batch < 30; batch++) {
      await store.appendToStream('long', Array.from({ length: 100 }, (_, i) => ({ type: `e${batch * 100 + i}` })));
      if (batch % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      await store.appendToStream(`other-${batch}`, events('noise'));
    }
    assert.deepEqual(revisions(await store.readStream('long', { fromRevision: 1020, maxCount: 10 })), [1020, 1021, 1022, 1023, 1024, 1025, 1026, 1027, 1028, 1029]);
    const all = await store.readStream('long');
    assert.deepEqual(revisions(all), Array.from({ length: 3000 }, (_, i) => i));
    const backwards = await store.readStream('long', { direction: 'backwards', fromRevision: 2050, maxCount: 2000 });
    assert.deepEqual(revisions(backwards), Array.from({ length: 2000 }, (_, i) => 2050 - i).filter((revision) => revision >= 0 && revision > 50));
    await store.close();
    const reopened = await EventStore.open({ directory: temp.path });
    assert.deepEqual(revisions(await reopened.readStream('long', { direction: 'backwards', maxCount: 3 })), [2999, 2998, 2997]);
    assert.equal((await reopened.readStream('long', { fromRevision: 1500, maxCount: 700 })).length, 700);
    await reopened.close();
  });
});

describe('reading $all', () => {
  it('reads every committed event in order, forwards and backwards, and pages without gaps', async () => {
    const store = await openMemory();
    await store.appendToStream('a', events('a0', 'a1'));
    await store.appendToStream('b', events('b0'));
    await store.appendToStream('a', events('a2', 'a3', 'a4'));
    const forwards = await store.readAll();
    assert.deepEqual(types(forwards.events), ['a0', 'a1', 'b0', 'a2', 'a3', 'a4']);
    assert.equal(forwards.isEnd, true);
    const backwards = await store.readAll({ direction: 'backwards' });
    assert.deepEqual(types(backwards.events), ['a4', 'a3', 'a2', 'b0', 'a1', 'a0']);
    for (const pageSize of [1, 2, 4]) {
      for (const direction of ['forwards', 'backwards'] as const) {
        const seen: string[] = [];
        let page = await store.readAll({ direction, maxCount: pageSize });
        for (let rounds = 0; rounds < 20; rounds++) {
          seen.push(...types(page.events));
          if (page.isEnd && page.events.length < pageSize) break;
          page = await store.readAll({ direction, maxCount: pageSize, fromPosition: page.nextPosition });
        }
        assert.deepEqual(seen, direction === 'forwards' ? types(forwards.events) : types(backwards.events), `${direction} pages of ${pageSize}`);
      }
    }
    const positions = forwards.events.map((event) => event.position.prepare);
    assert.deepEqual(positions, [...positions].sort((x, y) => x - y));
    const fromThird = await store.readAll({ fromPosition: forwards.events[3]!.position });
    assert.deepEqual(types(fromThird.events), ['a2', 'a3', 'a4'], 'forwards includes the event at the position');
    const beforeThird = await store.readAll({ direction: 'backwards', fromPosition: forwards.events[3]!.position });
    assert.deepEqual(types(beforeThird.events), ['b0', 'a1', 'a0'], 'backwards starts just before it');
    await store.close();
  });

  it('filters by stream and event type, prefix or regex, on the server side', async () => {
    const store = await openMemory();
    await store.appendToStream('order-1', events('Placed', 'Paid'));
    await store.appendToStream('user-1', events('Registered'));
    await store.setStreamMetadata('order-1', { $maxCount: 10 });
    const names = async (filter: object) => (await store.readAll({ filter })).events.map((event) => `${event.streamId}/${event.type}`);
    assert.deepEqual(await names({ streamNamePrefixes: ['order-'] }), ['order-1/Placed', 'order-1/Paid']);
    assert.deepEqual(await names({ streamNameRegex: '^user-\\d+$' }), ['user-1/Registered']);
    assert.deepEqual(await names({ eventTypePrefixes: ['Pa', 'Reg'] }), ['order-1/Paid', 'user-1/Registered']);
    assert.deepEqual(await names({ eventTypeRegex: /^P/g }), ['order-1/Placed', 'order-1/Paid']);
    assert.deepEqual(await names({ excludeSystemEvents: true }), ['order-1/Placed', 'order-1/Paid', 'user-1/Registered']);
    assert.deepEqual(await names({}), ['order-1/Placed', 'order-1/Paid', 'user-1/Registered', '$$order-1/$metadata']);
    await assert.rejects(store.readAll({ filter: { streamNameRegex: '(' } }), InvalidArgumentError);
    await store.close();
  });

  it('reports the last event a filtered read examined, and resuming after it skips nothing', async () => {
    const store = await openMemory();
    await store.appendToStream('s', Array.from({ length: 10 }, (_, i) => ({ type: i === 7 ? 'Wanted' : 'Other' })));
    const first = await store.readAll({ filter: { eventTypePrefixes: ['Wanted'] }, scanLimit: 4 });
    assert.equal(first.events.length, 0);
    const all = (await store.readAll()).events;
    assert.deepEqual(first.lastScannedPosition, all[3]!.position);
    const rest = await store.readAll({ fromPosition: first.nextPosition, filter: { eventTypePrefixes: ['Wanted'] } });
    assert.deepEqual(types(rest.events), ['Wanted']);
    await store.close();
  });

  it('refuses positions that are not in the log or not at a record', async () => {
    const store = await openMemory();
    await store.appendToStream('a', events('x'));
    await assert.rejects(store.readAll({ fromPosition: { commit: 1 << 20, prepare: 1 << 20 } }), InvalidArgumentError);
    await assert.rejects(store.readAll({ fromPosition: { commit: 3, prepare: 3 } }), InvalidArgumentError);
    await assert.rejects(store.readAll({ fromPosition: { commit: 5, prepare: 1 } }), InvalidArgumentError);
    await store.close();
  });
});

describe('deleting', () => {
  it('soft delete hides the stream; an append recreates it with revisions continuing', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('A', 'B'));
    await store.setStreamMetadata('s', { owner: 'team-a' });
    await store.deleteStream('s', { expectedState: 1 });
    await assert.rejects(store.readStream('s'), StreamNotFoundError);
    const deletedMetadata = await store.getStreamMetadata('s');
    assert.equal(deletedMetadata.metadataJson, '{"owner":"team-a","$tb":9223372036854775807}');
    const recreated = await store.appendToStream('s', events('C'), { expectedState: 'no_stream' });
    assert.equal(recreated.nextExpectedRevision, 2);
    assert.deepEqual(types(await store.readStream('s')), ['C']);
    assert.deepEqual((await store.getStreamMetadata('s')).metadata, { owner: 'team-a', $tb: 2 });
    await store.close();
  });

  it('a soft-deleted stream also takes its last revision as expected state', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('A', 'B'));
    await store.deleteStream('s');
    await assert.rejects(store.appendToStream('s', events('C'), { expectedState: 'stream_exists' }), WrongExpectedVersionError);
    assert.equal((await store.appendToStream('s', events('C'), { expectedState: 1 })).nextExpectedRevision, 2);
    await store.close();
  });

  it('tombstone is final: appends, reads, deletes and metadata fail with stream deleted', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('A'));
    await store.tombstoneStream('s', { expectedState: 0 });
    await assert.rejects(store.readStream('s'), StreamDeletedError);
    await assert.rejects(store.appendToStream('s', events('B')), StreamDeletedError);
    await assert.rejects(store.appendToStream('s', events('B'), { expectedState: 'no_stream' }), StreamDeletedError);
    await assert.rejects(store.deleteStream('s'), StreamDeletedError);
    await assert.rejects(store.tombstoneStream('s'), StreamDeletedError);
    await assert.rejects(store.setStreamMetadata('s', {}), StreamDeletedError);
    const tombstone = (await store.readAll()).events.at(-1)!;
    assert.equal(tombstone.type, '$streamDeleted');
    await store.close();
  });

  it('deletes check the expected state', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('A'));
    await assert.rejects(store.deleteStream('s', { expectedState: 5 }), WrongExpectedVersionError);
    await assert.rejects(store.tombstoneStream('s', { expectedState: 'no_stream' }), WrongExpectedVersionError);
    assert.equal((await store.readStream('s')).length, 1);
    await store.close();
  });
});

describe('stream metadata', () => {
  it('$maxCount and $tb limit what a stream read returns; custom keys are kept', async () => {
    const store = await openMemory();
    await store.appendToStream('s', events('0', '1', '2', '3', '4', '5'));
    const set = await store.setStreamMetadata('s', { $maxCount: 3, color: 'blue' }, { expectedState: 'no_stream' });
    assert.equal(set.nextExpectedRevision, 0);
    assert.deepEqual(revisions(await store.readStream('s')), [3, 4, 5]);
    assert.deepEqual(revisions(await store.readStream('s', { direction: 'backwards' })), [5, 4, 3]);
    await store.setStreamMetadata('s', { $tb: 5, color: 'red' }, { expectedState: 0 });
    assert.deepEqual(revisions(await store.readStream('s')), [5]);
    const metadata = await store.getStreamMetadata('s');
    assert.deepEqual(metadata.metadata, { $tb: 5, color: 'red' });
    assert.equal(metadata.metastreamRevision, 1);
    assert.deepEqual(types(await store.readStream('$$s')), ['$metadata', '$metadata']);
    await assert.rejects(store.setStreamMetadata('s', { $tb: 9 }, { expectedState: 0 }), WrongExpectedVersionError);
    await store.close();
  });

  it('$maxAge hides events older than it, by the store clock', async () => {
    let now = 1_700_000_000_000;
    const store = await openMemory({ clock: () => now });
    await store.appendToStream('s', events('old'));
    now += 10_000;
    await store.appendToStream('s', events('new'));
    await store.setStreamMetadata('s', { $maxAge: 5 });
    assert.deepEqual(types(await store.readStream('s')), ['new']);
    now += 10_000;
    assert.deepEqual(types(await store.readStream('s')), []);
    await store.close();
  });

  it('rejects invalid metadata', async () => {
    const store = await openMemory();
    for (const metadata of [{ $maxCount: 0 }, { $maxCount: 'ten' }, { $maxAge: -1 }, { $tb: 1.5 }, { $acl: 'all' }]) {
      await assert.rejects(store.setStreamMetadata('s', metadata), InvalidArgumentError, JSON.stringify(metadata));
    }
    await assert.rejects(store.appendToStream('$$s', [{ type: '$metadata', data: new Uint8Array([1, 2]) }]), InvalidArgumentError);
    assert.equal((await store.readAll()).events.length, 0);
    await store.close();
  });
});

describe('bad input', () => {
  it('rejects invalid stream names, event types and ids with typed errors', async () => {
    const store = await openMemory();
    const bad: [string, EventData[]][] = [
      ['', events('A')],
      ['x'.repeat(2000), events('A')],
      ['$all', events('A')],
      ['$system', events('A')],
      ['s', [{ type: '' }]],
      ['s', [{ type: 'A', id: 'not-a-uuid' }]],
      ['s', [{ type: '$streamDeleted' }]],
      ['s', [{ type: '$metadata', data: {} }]],
      ['s', [{ type: 'A', contentType: 'text/plain' as never }]],
      ['s', [null as never]],
    ];
    for (const [stream, list] of bad) {
      await assert.rejects(store.appendToStream(stream, list), InvalidArgumentError, `${stream.slice(0, 10)} ${JSON.stringify(list)}`);
    }
    await assert.rejects(store.readStream(''), InvalidArgumentError);
    await assert.rejects(store.readStream('s', { direction: 'sideways' as never }), InvalidArgumentError);
    await assert.rejects(store.readStream('s', { maxCount: -1 }), InvalidArgumentError);
    assert.equal((await store.readAll()).events.length, 0);
    await store.close();
  });

  it('rejects oversized events and appends with the maximum-append-size error, and keeps working', async () => {
    const store = await openMemory({ maxEventSizeBytes: 1000, maxAppendSizeBytes: 2500 });
    await assert.rejects(store.appendToStream('s', [{ type: 'Big', data: new Uint8Array(1200) }]), (error: unknown) => {
      assert.ok(error instanceof MaximumAppendSizeExceededError);
      assert.equal(error.maxAppendSizeBytes, 1000);
      assert.equal(error.code, 'MAXIMUM_APPEND_SIZE_EXCEEDED');
      return true;
    });
    await assert.rejects(
      store.appendToStream('s', Array.from({ length: 3 }, () => ({ type: 'Mid', data: new Uint8Array(900) }))),
      MaximumAppendSizeExceededError,
    );
    assert.equal((await store.appendToStream('s', [{ type: 'Ok', data: new Uint8Array(900) }])).nextExpectedRevision, 0);
    await store.close();
  });
});

describe('index recovery', () => {
  it('rebuilds a deleted index from the log', async () => {
    const temp = await makeTempDirectory();
    cleanups.push(temp.remove);
    const store = await EventStore.open({ directory: temp.path });
    await store.appendToStream('a', events('1', '2'));
    await store.setStreamMetadata('a', { $maxCount: 1 });
    await store.appendToStream('b', events('3'));
    await store.tombstoneStream('b');
    await store.close();
    await rm(`${temp.path}/index`, { recursive: true });
    const messages: string[] = [];
    const reopened = await EventStore.open({ directory: temp.path, log: (message) => messages.push(message) });
    assert.ok(messages.some((message) => message.includes('rebuilt from the log')), messages.join('\n'));
    assert.deepEqual(types(await reopened.readStream('a')), ['2']);
    await assert.rejects(reopened.readStream('b'), StreamDeletedError);
    assert.equal((await reopened.appendToStream('a', events('4'), { expectedState: 1 })).nextExpectedRevision, 2);
    await reopened.close();
  });

  it('rebuilds an index that is damaged or belongs to another log', async () => {
    const temp = await makeTempDirectory();
    cleanups.push(temp.remove);
    const other = await makeTempDirectory();
    cleanups.push(other.remove);
    const store = await EventStore.open({ directory: temp.path });
    await store.appendToStream('a', events('1', '2'));
    await store.close();
    const stranger = await EventStore.open({ directory: other.path });
    await stranger.appendToStream('zzz', events('x', 'y', 'z'));
    await stranger.close();
    // Swap in another store's index: its checkpoint names a record this log does not have.
    await rm(`${temp.path}/index`, { recursive: true });
    const { cp } = await import('node:fs/promises');
    await cp(`${other.path}/index`, `${temp.path}/index`, { recursive: true });
    const reopened = await EventStore.open({ directory: temp.path });
    assert.deepEqual(types(await reopened.readStream('a')), ['1', '2']);
    await assert.rejects(reopened.readStream('zzz'), StreamNotFoundError);
    await reopened.close();
    await writeFile(`${temp.path}/index/data.mdb`, 'garbage that is not an LMDB file');
    const again = await EventStore.open({ directory: temp.path });
    assert.deepEqual(types(await again.readStream('a')), ['1', '2']);
    await again.close();
    // A start that died while opening the index (LMDB can take the process down on a bad file)
    // leaves its marker behind; the next start does not trust that index.
    await writeFile(`${temp.path}/index.opening`, 'left by a crashed start');
    const messages: string[] = [];
    const afterCrash = await EventStore.open({ directory: temp.path, log: (message) => messages.push(message) });
    assert.ok(messages.some((message) => message.includes('was being opened when the process last stopped')), messages.join('\n'));
    assert.deepEqual(types(await afterCrash.readStream('a')), ['1', '2']);
    await afterCrash.close();
  });
});

describe('robustness', () => {
  it('a commit listener that throws fails neither the write nor the other listeners', async () => {
    const store = await openMemory();
    store.onCommit(() => {
      throw new Error('listener bug');
    });
    const waiting = store.waitForCommitAfter(store.position);
    assert.equal((await store.appendToStream('s', events('A'))).nextExpectedRevision, 0);
    await waiting;
    await store.close();
  });

  it('an empty append answers from committed state, after the stream\'s writes in flight', async () => {
    const store = await openMemory();
    const write = store.appendToStream('s', events('A'));
    const empty = await store.appendToStream('s', [], { expectedState: 0 });
    assert.equal(empty.nextExpectedRevision, 0);
    assert.equal((await write).nextExpectedRevision, 0);
    assert.equal((await store.appendToStream('new', [], { expectedState: 'no_stream' })).nextExpectedRevision, -1);
    await store.close();
  });

  it('keeps at most 16 MiB of fresh records in memory however large the events: older ones are read from the log', async () => {
    const temp = await makeTempDirectory();
    cleanups.push(temp.remove);
    const store = await EventStore.open({ directory: temp.path });
    const megabyte = (n: number) => Buffer.alloc(1024 * 1024, n);
    for (let n = 0; n < 40; n++) await store.appendToStream('large', [{ type: 'Blob', data: megabyte(n) }]);
    const held = store.stats.recentRecordBytes;
    assert.ok(held > 8 * 1024 * 1024 && held <= 17 * 1024 * 1024, `${held} bytes of records held in memory`);
    const read = await store.readStream('large');
    assert.equal(read.length, 40);
    read.forEach((event, n) => assert.ok(Buffer.from(event.data).equals(megabyte(n)), `event ${n}`));
    await store.close();
  });

  it('reading $all backwards from a position that is not a record is invalid input', async () => {
    const store = await openMemory();
    await store.appendToStream('a', events('x', 'y'));
    await assert.rejects(store.readAll({ direction: 'backwards', fromPosition: { commit: 3, prepare: 3 } }), InvalidArgumentError);
    await store.close();
  });

  it('paging $all backwards one event at a time from inside a record misses nothing', async () => {
    const store = await openMemory();
    await store.appendToStream('a', events('x', 'y', 'z'));
    await store.appendToStream('b', events('w'));
    const all = (await store.readAll()).events;
    const seen: string[] = [];
    let page = await store.readAll({ direction: 'backwards', fromPosition: all[2]!.position, maxCount: 1 });
    for (let i = 0; i < 10 && page.events.length > 0; i++) {
      seen.push(...types(page.events));
      page = await store.readAll({ direction: 'backwards', fromPosition: page.nextPosition, maxCount: 1 });
    }
    assert.deepEqual(seen, ['y', 'x']);
    const empty = await store.readAll({ direction: 'backwards', fromPosition: { commit: all[0]!.position.commit, prepare: all[2]!.position.prepare + 1 }, maxCount: 0 });
    const next = await store.readAll({ direction: 'backwards', fromPosition: empty.nextPosition, maxCount: 5 });
    assert.deepEqual(types(next.events), ['z', 'y', 'x']);
    await store.close();
  });
});

describe('live notification', () => {
  it('tells listeners the new committed position after each commit', async () => {
    const store = await openMemory();
    const seen: number[] = [];
    const stop = store.onCommit((position) => seen.push(position));
    const first = await store.appendToStream('s', events('A'));
    stop();
    await store.appendToStream('s', events('B'));
    assert.equal(seen.length, 1);
    assert.ok(seen[0]! > first.position.commit);
    const waiting = store.waitForCommitAfter(store.position);
    await store.appendToStream('s', events('C'));
    await waiting;
    await store.close();
  });
});

describe('write admission', () => {
  /** A store whose committer is the local one, counting proposals, admitting writes as told. */
  async function storeAdmitting(
    admitWrite: () => Promise<void> | undefined,
    on: { directory: string } | { inMemory: true } = { inMemory: true },
  ): Promise<{ store: EventStore; proposals: () => number }> {
    let proposals = 0;
    const store = await EventStore.open({
      ...on,
      replication: {
        committer: (log) => {
          const local = new LocalCommitter(log);
          return {
            propose: (type, frame) => {
              proposals++;
              return local.propose(type, frame);
            },
            admitWrite,
          };
        },
      },
    });
    // A replica's store decides writes only while it leads, with its idempotency window.
    store.startKeepingWriteIds();
    return { store, proposals: () => proposals };
  }

  it('proposes within the call when the committer admits writes at once: no promise or turn of the event loop first', async () => {
    const { store, proposals } = await storeAdmitting(() => undefined);
    const first = store.appendToStream('s', events('A'));
    const second = store.appendToStream('s', events('B'), { expectedState: 0n });
    assert.equal(proposals(), 2);
    assert.equal((await first).nextExpectedRevision, 0);
    assert.equal((await second).nextExpectedRevision, 1);
    await store.close();
  });

  it('in a cluster, keeps the written ids while it does not lead and recognises a retry once it leads again', async () => {
    const { store, proposals } = await storeAdmitting(() => undefined);
    const id = '6a2f41a3-c54c-4bf8-8a14-0a5f0a1a2b3c';
    const write = () => store.appendToStream('s', [{ id, type: 'T', data: { n: 1 } }]);
    assert.equal((await write()).nextExpectedRevision, 0);
    // Not leading: the window gives way to the ring, and a write that reached it anyway is refused.
    store.stopKeepingWriteIds();
    assert.equal(store.stats.idempotencyWindowEvents, 0);
    await assert.rejects(write(), /does not keep the idempotency window/);
    assert.equal(proposals(), 1);
    // Leading again: the window comes back from the ring, so the retry is recognised, not written twice.
    store.startKeepingWriteIds();
    assert.equal(store.stats.idempotencyWindowEvents, 1);
    assert.equal((await write()).nextExpectedRevision, 0);
    assert.equal(proposals(), 1);
    assert.equal((await store.readStream('s')).length, 1);
    await store.close();
  });

  it('in a cluster, keeps the written ids across a restart: a replica that reopens and leads recognises a retry', async () => {
    // On disk, so that the reopened index says how far the log was applied (as a restarted node's does).
    const directory = await makeTempDirectory();
    const on = { directory: directory.path };
    const id = '0b6f3c52-8f0e-4a7d-9a51-3f6e2d1c4b5a';
    const write = (store: EventStore) => store.appendToStream('s', [{ id, type: 'T', data: { n: 1 } }], { expectedState: 'no_stream' });
    try {
      const first = await storeAdmitting(() => undefined, on);
      const original = await write(first.store);
      await first.store.close();
      // Reopened, it is a follower until it leads: the ring it fills from the log becomes its window.
      const { store, proposals } = await storeAdmitting(() => undefined, on);
      assert.deepEqual(await write(store), original);
      assert.equal(proposals(), 0);
      assert.equal((await store.readStream('s')).length, 1);
      await store.close();
    } finally {
      await directory.remove();
    }
  });

  it('waits while the committer holds writes back, and fails the append when it refuses', async () => {
    let admit!: () => void;
    let refuse = false;
    const { store, proposals } = await storeAdmitting(() =>
      refuse ? Promise.reject(new Error('no quorum')) : new Promise<void>((resolve) => (admit = resolve)),
    );
    const held = store.appendToStream('s', events('A'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(proposals(), 0);
    admit();
    assert.equal((await held).nextExpectedRevision, 0);
    assert.equal(proposals(), 1);
    refuse = true;
    await assert.rejects(store.appendToStream('s', events('B')), /no quorum/);
    assert.equal(proposals(), 1);
    await store.close();
  });
});
