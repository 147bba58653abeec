import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KurrentDBClient, NO_STREAM, StreamNotFoundError, StreamTombstonedError, WrongExpectedVersionError, binaryEvent, jsonEvent } from '@kurrent/kurrentdb-client';
import { ServerProcess, stopAllServers } from './server-process.js';
import { uniqueStream, withTimeout } from './support.js';

/**
 * The 1.x client's multiStreamAppend (v2 AppendSession): atomic across streams — all of them get
 * their events or none does — with per-stream expected states and the client's typed errors.
 * Only @kurrent/kurrentdb-client has this call, so this file loads only that package.
 */
const CALL_MS = 10_000;
let server: ServerProcess;
let client: KurrentDBClient;

before(async () => {
  server = await ServerProcess.start();
  client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${server.port}?tls=false`);
});

after(async () => {
  await withTimeout(client.dispose(), 5_000, 'dispose').catch(() => undefined);
  await stopAllServers();
});

async function types(stream: string): Promise<string[]> {
  const found: string[] = [];
  for await (const resolved of client.readStream(stream)) if (resolved.event) found.push(resolved.event.type);
  return found;
}

test('appends to several streams in one atomic write, keeping types, data and metadata', async () => {
  const order = uniqueStream('order');
  const stock = uniqueStream('stock');
  const result = await withTimeout(
    client.multiStreamAppend([
      { streamName: order, expectedState: NO_STREAM, events: [jsonEvent({ type: 'OrderPlaced', data: { total: 5 }, metadata: { user: 'ada' } })] },
      { streamName: stock, expectedState: 'any', events: [binaryEvent({ type: 'Reserved', data: new Uint8Array([1, 2, 3]) }), jsonEvent({ type: 'Counted', data: { n: 2 } })] },
    ]),
    CALL_MS,
    'multiStreamAppend',
  );
  assert.deepEqual(result.responses, [
    { streamName: order, revision: 0n },
    { streamName: stock, revision: 1n },
  ]);
  const [placed] = await withTimeout(
    (async () => {
      const events = [];
      for await (const resolved of client.readStream(order)) events.push(resolved.event);
      return events;
    })(),
    CALL_MS,
    'read',
  );
  assert.equal(placed?.type, 'OrderPlaced');
  assert.deepEqual(placed?.data, { total: 5 });
  assert.deepEqual(placed?.metadata, { user: 'ada' });
  assert.deepEqual(await types(stock), ['Reserved', 'Counted']);
});

test('writes nothing when one stream\'s expected state fails, with the client\'s wrong-expected-version error', async () => {
  const existing = uniqueStream('existing');
  const untouched = uniqueStream('untouched');
  await client.appendToStream(existing, jsonEvent({ type: 'First', data: {} }));
  await assert.rejects(
    withTimeout(
      client.multiStreamAppend([
        { streamName: untouched, expectedState: 'any', events: [jsonEvent({ type: 'Never', data: {} })] },
        { streamName: existing, expectedState: NO_STREAM, events: [jsonEvent({ type: 'Never', data: {} })] },
      ]),
      CALL_MS,
      'multiStreamAppend',
    ),
    (error: unknown) => {
      assert.ok(error instanceof WrongExpectedVersionError, String(error));
      assert.equal(error.streamName, existing);
      assert.equal(error.actualState, 0n);
      return true;
    },
  );
  await assert.rejects(types(untouched), StreamNotFoundError);
  assert.deepEqual(await types(existing), ['First']);
});

test('refuses a tombstoned stream with the client\'s tombstoned error, and the node stays up', async () => {
  const gone = uniqueStream('gone');
  await client.appendToStream(gone, jsonEvent({ type: 'Once', data: {} }));
  await client.tombstoneStream(gone);
  await assert.rejects(
    withTimeout(client.multiStreamAppend([{ streamName: gone, expectedState: 'any', events: [jsonEvent({ type: 'Again', data: {} })] }]), CALL_MS, 'multiStreamAppend'),
    StreamTombstonedError,
  );
  const alive = uniqueStream('alive');
  await client.multiStreamAppend([{ streamName: alive, expectedState: 'any', events: [jsonEvent({ type: 'Fine', data: {} })] }]);
  assert.deepEqual(await types(alive), ['Fine']);
});
