import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it, type TestContext } from 'node:test';
import type * as KurrentLib from '@kurrent/kurrentdb-client';
import { leaderIn, startCluster, unaryGrpc, waitForGossip } from './cluster-support.js';
import type { ServerProcess } from './server-process.js';
import { sleep } from './support.js';

/**
 * Persistent subscriptions across a leader change, with the official client: three consumers
 * acknowledge while a writer keeps appending; the leader is killed (kill -9) or resigns. The
 * clients resubscribe on the new leader. Every acknowledged write is delivered; a message whose
 * acknowledgement was sent before the last commit window is never delivered again after a crash,
 * and after a graceful handover no acknowledged message comes back at all, while the ones that
 * were out come back with their retry count raised.
 */
type KurrentModule = typeof KurrentLib;

const FORM_TIMEOUT_MS = 20_000;
const GROUP = 'failover-group';
const CONSUMER_BUFFER = 10;
/** The ack window is 50 ms; committing it takes a round of replication. Acks older than this were committed before a crash. */
const CRASH_SAFE_ACK_AGE_MS = 250;

interface Delivery {
  id: string;
  consumer: number;
  retryCount: number;
  at: number;
}

interface Run {
  deliveries: Delivery[];
  /** When each consumer first sent an ack for an event id. */
  ackedAt: Map<string, number>;
  writtenIds: string[];
  errors: string[];
}

describe('persistent subscriptions across a leader change (3 nodes, official client)', { timeout: 240_000 }, () => {
  let kurrent: KurrentModule;
  before(async () => {
    kurrent = await import('@kurrent/kurrentdb-client');
  });

  let nodes: ServerProcess[] = [];
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  /** Writes, consumes and acknowledges; `disrupt` runs once traffic flows; returns what happened. */
  async function runScenario(t: TestContext, disrupt: (leaderIndex: number, externalPorts: number[]) => Promise<number>): Promise<{ run: Run; disruptedAt: number }> {
    const cluster = await startCluster(3, false);
    nodes = cluster.nodes;
    const { gossipPorts, externalPorts } = cluster;
    const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
    const leaderIndex = externalPorts.indexOf(leaderIn(view)!.externalHttp.port);
    const connection = `kurrentdb://${externalPorts.map((port) => `127.0.0.1:${port}`).join(',')}?tls=false`;
    const client = kurrent.KurrentDBClient.connectionString(connection);
    const stream = `failover-${randomUUID()}`;
    const run: Run = { deliveries: [], ackedAt: new Map(), writtenIds: [], errors: [] };
    let stopWriting = false;
    let stopConsuming = false;
    const subscriptions = new Set<{ unsubscribe(): Promise<void> }>();
    try {
      await client.createPersistentSubscriptionToStream(stream, GROUP, kurrent.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: kurrent.START }));

      const writer = (async () => {
        for (let i = 0; !stopWriting && i < 100_000; i++) {
          const id = randomUUID();
          const deadline = Date.now() + 20_000;
          for (;;) {
            // A retry carries the same event id: the write happens once whatever the failures.
            const ok = await client.appendToStream(stream, kurrent.jsonEvent({ id, type: 'numbered', data: { i } })).then(
              () => true,
              (error: unknown) => {
                run.errors.push(`append: ${(error as Error).message}`);
                return false;
              },
            );
            if (ok) break;
            if (Date.now() > deadline) throw new Error(`append ${i} did not succeed within 20 s`);
            await sleep(100);
          }
          run.writtenIds.push(id);
          await sleep(4);
        }
      })();

      const consumer = async (index: number) => {
        while (!stopConsuming) {
          const subscription = client.subscribeToPersistentSubscriptionToStream(stream, GROUP, { bufferSize: CONSUMER_BUFFER });
          subscriptions.add(subscription);
          try {
            for await (const resolved of subscription) {
              const id = resolved.event!.id;
              run.deliveries.push({ id, consumer: index, retryCount: resolved.retryCount, at: Date.now() });
              if (!run.ackedAt.has(id)) run.ackedAt.set(id, Date.now());
              await subscription.ack(resolved);
              if (stopConsuming) break;
            }
          } catch (error) {
            run.errors.push(`consumer ${index}: ${(error as Error).message}`);
          } finally {
            subscriptions.delete(subscription);
          }
          if (!stopConsuming) await sleep(200);
        }
      };
      const consumers = [0, 1, 2].map((index) => consumer(index));

      await waitUntil(() => run.ackedAt.size >= 200, 20_000, 'consumers to acknowledge 200 events');
      const disruptedAt = await disrupt(leaderIndex, externalPorts);
      const others = gossipPorts.filter((_, i) => i !== leaderIndex);
      await waitForGossip(others, (members) => leaderIn(members) !== undefined, 20_000, 'a leader after the disruption');
      const written = run.writtenIds.length;
      await waitUntil(() => run.writtenIds.length >= written + 200, 30_000, '200 more writes after the leader change');
      stopWriting = true;
      await writer;
      const everything = new Set(run.writtenIds);
      await waitUntil(() => [...everything].every((id) => run.ackedAt.has(id)), 30_000, 'every written event to be delivered', () => {
        const missing = [...everything].filter((id) => !run.ackedAt.has(id)).length;
        return `${missing} of ${everything.size} never delivered; errors: ${run.errors.slice(-5).join(' | ')}`;
      });
      stopConsuming = true;
      await Promise.all([...subscriptions].map((subscription) => subscription.unsubscribe().catch(() => undefined)));
      await Promise.race([Promise.all(consumers), sleep(5_000)]);
      t.diagnostic(`${run.writtenIds.length} written, ${run.deliveries.length} deliveries, ${redeliveredAfterAck(run, Infinity).length} redelivered after an ack`);
      return { run, disruptedAt };
    } finally {
      stopWriting = true;
      stopConsuming = true;
      await client.dispose();
      await Promise.all(nodes.map((node) => node.stop()));
      nodes = [];
    }
  }

  it('kill -9 of the leader: every event is delivered; acknowledgements older than the commit window never come back', async (t) => {
    const { run, disruptedAt } = await runScenario(t, async (leaderIndex) => {
      const killedAt = Date.now();
      await nodes[leaderIndex]!.kill();
      return killedAt;
    });
    const late = redeliveredAfterAck(run, disruptedAt - CRASH_SAFE_ACK_AGE_MS);
    assert.deepEqual(late, [], 'messages acknowledged well before the crash were delivered again');
    const all = redeliveredAfterAck(run, Infinity);
    const ackedInLastWindow = [...run.ackedAt.values()].filter((at) => at >= disruptedAt - CRASH_SAFE_ACK_AGE_MS && at <= disruptedAt + 1000).length;
    t.diagnostic(`redelivered after an ack: ${all.length} (acks sent in the last ${CRASH_SAFE_ACK_AGE_MS} ms before the kill or to the dead leader: ${ackedInLastWindow})`);
    assert.ok(all.length <= ackedInLastWindow, `${all.length} acknowledged messages came back; at most ${ackedInLastWindow} were acknowledged in the last window`);
  });

  it('a graceful resignation: no acknowledged message is delivered again', async (t) => {
    const { run, disruptedAt } = await runScenario(t, async (leaderIndex, externalPorts) => {
      const resignedAt = Date.now();
      const status = await unaryGrpc(externalPorts[leaderIndex]!, '/event_store.client.operations.Operations/ResignNode', Buffer.alloc(0));
      assert.equal(status, '0', 'ResignNode succeeds on the leader');
      return resignedAt;
    });
    // Acks sent before the resignation was asked for reached the leader first (loopback, a few ms): all committed.
    const redelivered = redeliveredAfterAck(run, disruptedAt - 20);
    assert.deepEqual(redelivered, [], 'acknowledged messages came back after a graceful handover');
    // What was out (delivered, not yet acknowledged) when the leader handed over comes back as a retry.
    const deliveredBefore = new Set(run.deliveries.filter((delivery) => delivery.at < disruptedAt).map((delivery) => delivery.id));
    const again = run.deliveries.filter((delivery) => delivery.at > disruptedAt && deliveredBefore.has(delivery.id));
    t.diagnostic(`in flight at the handover and delivered again: ${again.length}, retry counts ${[...new Set(again.map((delivery) => delivery.retryCount))].join(',')}`);
    assert.ok(again.every((delivery) => delivery.retryCount >= 1), 'a message out at the handover came back with retry count 0');
  });
});

/** Deliveries of an event whose ack (sent before `ackedBefore`) preceded this delivery. */
function redeliveredAfterAck(run: Run, ackedBefore: number): Delivery[] {
  return run.deliveries.filter((delivery) => {
    const acked = run.ackedAt.get(delivery.id);
    return acked !== undefined && acked < delivery.at && acked < ackedBefore;
  });
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string, explain?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}${explain ? `: ${explain()}` : ''}`);
    await sleep(50);
  }
}
