import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { forEachClient, withServerLog } from './client-matrix.js';
import type { ClientKit, ReadEvent, TestClient } from './clients.js';
import { ServerProcess, stopAllServers } from './server-process.js';
import { describe, sleep, withTimeout } from './support.js';

/**
 * Durability through the official clients: what a client was told is written survives a
 * `kill -9` of the node and a restart on the same --db, exactly once and at its revision; a
 * SIGTERM stops the node cleanly (exit code 0) and a restart shows everything.
 */
const CALL_MS = 10_000;
const TEST_OPTIONS = { timeout: 30_000 };

interface Acknowledged {
  stream: string;
  firstRevision: bigint;
  ids: string[];
}

forEachClient(import.meta.url, { timeoutMs: 45_000 }, (kitPromise) => {
  let kit: ClientKit;
  const clients: TestClient[] = [];
  const directories: { remove: () => Promise<void> }[] = [];

  before(async () => {
    kit = await kitPromise;
  });

  after(async () => {
    await Promise.allSettled(clients.map((client) => withTimeout(client.dispose(), 5_000, 'dispose')));
    await stopAllServers();
    await Promise.allSettled(directories.map((directory) => directory.remove()));
  });

  const connect = (port: number) => {
    const client = kit.connect(port);
    clients.push(client);
    return client;
  };
  const call = <T>(promise: Promise<T>, what: string) => withTimeout(promise, CALL_MS, what);

  /**
   * Writers append until told to stop or until their first failure (the kill). Stream writers
   * own a stream and append with expected revisions; "any" writers share one stream.
   */
  function startWriters(client: TestClient, runId: string, streamWriters: number, anyWriters: number) {
    const acknowledged: Acknowledged[] = [];
    const failures: string[] = [];
    let stopping = false;
    const own = Array.from({ length: streamWriters }, async (_, w) => {
      const stream = `durable-${runId}-${w}`;
      let next = 0n;
      for (let i = 0; !stopping; i++) {
        const ids = Array.from({ length: 1 + (i % 3) }, () => randomUUID());
        try {
          const result = await withTimeout(
            client.append(stream, ids.map((id) => ({ id, type: 'Durable', data: { w, i } })), next === 0n ? 'no_stream' : next - 1n),
            CALL_MS,
            'append',
          );
          assert.equal(result.nextExpectedRevision, next + BigInt(ids.length) - 1n, `${stream}: the append after ${next - 1n}`);
          acknowledged.push({ stream, firstRevision: next, ids });
          next += BigInt(ids.length);
        } catch (error) {
          failures.push(describe(error));
          return;
        }
      }
    });
    const shared = `durable-${runId}-shared`;
    const any = Array.from({ length: anyWriters }, async (_, w) => {
      for (let i = 0; !stopping; i++) {
        const ids = Array.from({ length: 1 + (i % 2) }, () => randomUUID());
        try {
          const result = await withTimeout(client.append(shared, ids.map((id) => ({ id, type: 'DurableAny', data: { w, i } })), 'any'), CALL_MS, 'append any');
          acknowledged.push({ stream: shared, firstRevision: result.nextExpectedRevision - BigInt(ids.length) + 1n, ids });
        } catch (error) {
          failures.push(describe(error));
          return;
        }
      }
    });
    return {
      acknowledged,
      failures,
      stop: async () => {
        stopping = true;
        await Promise.all([...own, ...any]);
      },
      /** Resolves once at least `count` appends were acknowledged (or fails after `ms`). */
      until: async (count: number, ms: number) => {
        const deadline = Date.now() + ms;
        while (acknowledged.length < count) {
          if (Date.now() > deadline) throw new Error(`only ${acknowledged.length} of ${count} appends acknowledged in ${ms} ms; failures: ${failures.slice(0, 3).join(' | ')}`);
          if (failures.length) throw new Error(`a writer failed before the kill: ${failures[0]}`);
          await sleep(10);
        }
      },
    };
  }

  /** Every acknowledged event is present exactly once, at its revision; each stream is contiguous. */
  async function assertHoldsAcknowledged(client: TestClient, acknowledged: readonly Acknowledged[], what: string): Promise<Map<string, ReadEvent[]>> {
    const streams = [...new Set(acknowledged.map((ack) => ack.stream))];
    const byStream = new Map<string, ReadEvent[]>();
    for (const stream of streams) {
      const events = await call(client.readStream(stream), `${what}: read ${stream}`);
      events.forEach((event, i) => assert.equal(event.revision, BigInt(i), `${what}: ${stream} index ${i} has revision ${event.revision}`));
      byStream.set(stream, events);
    }
    let missing = 0;
    const problems: string[] = [];
    for (const ack of acknowledged) {
      const events = byStream.get(ack.stream)!;
      ack.ids.forEach((id, i) => {
        const revision = Number(ack.firstRevision) + i;
        const event = events[revision];
        if (!event) {
          missing++;
          if (problems.length < 10) problems.push(`acknowledged ${ack.stream}@${revision} (${id}) is missing; the stream ends at ${events.length - 1}`);
        } else if (event.id !== id) {
          problems.push(`${ack.stream}@${revision} holds ${event.id}, not the acknowledged ${id}`);
        }
      });
    }
    assert.deepEqual(problems.slice(0, 10), [], `${what}: ${missing} acknowledged events missing, ${problems.length} problems`);

    const all = await call(client.readAll(), `${what}: read $all`);
    const counts = new Map<string, number>();
    for (const event of all) if (byStream.has(event.streamId)) counts.set(event.id, (counts.get(event.id) ?? 0) + 1);
    const acknowledgedIds = acknowledged.flatMap((ack) => ack.ids);
    const notOnce = acknowledgedIds.filter((id) => counts.get(id) !== 1);
    assert.deepEqual(notOnce.slice(0, 5).map((id) => `${id} appears ${counts.get(id) ?? 0} times in $all`), [], `${what}: ${notOnce.length} acknowledged events not exactly once in $all`);
    // Appends in flight at the kill may or may not be there, but never in part and never twice.
    for (const [stream, events] of byStream) {
      const ids = new Set(events.map((event) => event.id));
      assert.equal(ids.size, events.length, `${what}: ${stream} holds an event twice`);
    }
    return byStream;
  }

  test('appends acknowledged by the client survive kill -9 and a restart on the same --db (twice)', TEST_OPTIONS, async (t) => {
    const directory = await makeTempDirectory('chronicle-it-kill-');
    directories.push(directory);
    let server = await ServerProcess.start({ db: directory.path });
    const port = server.port;
    const acknowledged: Acknowledged[] = [];
    const runId = randomUUID().slice(0, 8);
    const servers: ServerProcess[] = [server];
    await withServerLog(servers, async () => {
      for (let cycle = 0; cycle < 2; cycle++) {
        const writerClient = connect(port);
        const writers = startWriters(writerClient, `${runId}-${cycle}`, 6, 2);
        await writers.until(150 + cycle * 50, 15_000);
        // The kill lands while appends are in flight.
        const killed = await server.kill();
        assert.equal(killed.signal, 'SIGKILL');
        await withTimeout(writers.stop(), 15_000, 'the writers notice the kill');
        acknowledged.push(...writers.acknowledged);
        assert.ok(writers.failures.length > 0, 'the writers were cut off by the kill');
        t.diagnostic(`kill ${cycle + 1}: ${writers.acknowledged.length} appends acknowledged (${writers.acknowledged.reduce((n, ack) => n + ack.ids.length, 0)} events); the writers then saw: ${[...new Set(writers.failures)].join(' | ')}`);

        server = await ServerProcess.start({ db: directory.path, port });
        servers.push(server);
        const verifier = connect(port);
        const byStream = await assertHoldsAcknowledged(verifier, acknowledged, `after kill ${cycle + 1}`);
        // Later writes continue each stream where the store says it ends.
        for (const [stream, events] of byStream) {
          const id = randomUUID();
          const result = await call(verifier.append(stream, [{ id, type: 'AfterRestart' }], BigInt(events.length - 1)), `append to ${stream} after the restart`);
          assert.equal(result.nextExpectedRevision, BigInt(events.length));
          acknowledged.push({ stream, firstRevision: BigInt(events.length), ids: [id] });
        }
      }
    });
    await server.stop();
  });

  test('SIGTERM stops the node with exit code 0 (promptly, with clients connected) and a restart shows everything', TEST_OPTIONS, async (t) => {
    const directory = await makeTempDirectory('chronicle-it-sigterm-');
    directories.push(directory);
    const first = await ServerProcess.start({ db: directory.path });
    const port = first.port;
    const client = connect(port);
    const runId = randomUUID().slice(0, 8);
    let second: ServerProcess | undefined;
    await withServerLog([first], async () => {
      const writers = startWriters(client, runId, 4, 1);
      await writers.until(100, 15_000);
      await writers.stop();
      assert.deepEqual(writers.failures, []);
      // The client also reads and keeps a live subscription open, as applications do.
      await assertHoldsAcknowledged(client, writers.acknowledged, 'before the stop');
      const subscription = client.subscribeToAll('end');
      await subscription.waitFor(() => subscription.caughtUp >= 1, 5_000, 'a live $all subscription');

      const startedAt = Date.now();
      const exit = await first.stop(8_000);
      const stopMs = Date.now() - startedAt;
      t.diagnostic(`SIGTERM: ${describe(exit)} after ${stopMs} ms`);
      await subscription.waitFor(() => subscription.error !== undefined || subscription.ended, 5_000, 'the subscription ends with the node').catch(() => undefined);

      second = await ServerProcess.start({ db: directory.path, port });
      await withServerLog([first, second], async () => {
        const verifier = connect(port);
        await assertHoldsAcknowledged(verifier, writers.acknowledged, 'after SIGTERM and a restart');
        const more = await call(verifier.append(`durable-${runId}-0`, [{ type: 'AfterRestart' }], 'stream_exists'), 'append after the restart');
        assert.equal(more.success, true);
        const stopLines = first.logs.filter((line) => /stopping|stopped|received SIGTERM/.test(line)).map((line) => (JSON.parse(line) as { time: string; msg: string }));
        assert.deepEqual(
          { exit, promptly: stopMs < 5_000 },
          { exit: { code: 0, signal: null }, promptly: true },
          `SIGTERM took ${stopMs} ms to end the node (grace 8000 ms, then SIGKILL); its stop log: ${describe(stopLines)}`,
        );
      });
      await second.stop();
    });
  });
});
