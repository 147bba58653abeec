import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message } from '../../src/consensus/types.js';
import type { RecordBody } from '../../src/cluster/raft-log.js';
import { SimCluster, type ClusterObserver } from '../../sim/cluster.js';
import { SimNetwork } from '../../sim/network.js';
import { SimRandom } from '../../sim/random.js';
import { Scheduler } from '../../sim/scheduler.js';

const VOTERS = ['n1', 'n2', 'n3'];
const NETWORK_DELAY_MS = 2;

interface Run {
  scheduler: Scheduler;
  cluster: SimCluster;
  /** Every append with entries the leader sent, by its number of entries. */
  appendSizes: number[];
}

async function startCluster(appendBatchDelayMs: number): Promise<Run> {
  const scheduler = new Scheduler();
  const random = new SimRandom(7);
  const network = new SimNetwork<Message<RecordBody>>(scheduler, random.fork('network'), {
    delayMsMin: NETWORK_DELAY_MS,
    delayMsMax: NETWORK_DELAY_MS,
    dropProbability: 0,
    duplicateProbability: 0,
    reorder: false,
    longDelayProbability: 0,
    longDelayMsMax: 0,
  });
  const appendSizes: number[] = [];
  const ignore = (): void => undefined;
  const observer: ClusterObserver = {
    onStatus: ignore,
    onApplied: ignore,
    onNodeFailure: (node, error) => assert.fail(`${node} failed: ${error.message}`),
    onFault: ignore,
    onTruncate: ignore,
    onSend: (_node, _to, message) => {
      if (message.kind === 'append' && message.count > 0) appendSizes.push(message.count);
    },
    onStartFailure: (node, error) => assert.fail(`${node} did not start: ${error.message}`),
    onAckStateCommitted: ignore,
  };
  const cluster = new SimCluster(scheduler, network, random.fork('cluster'), {
    voters: VOTERS,
    learners: [],
    tickMs: 100,
    raft: { preVote: true, checkQuorum: true },
    electionStorm: false,
    lateLearners: false,
    writeTimeoutMs: 3000,
    appendBatchDelayMs,
    clockRates: new Map(VOTERS.map((id) => [id, 1])),
    diskLatencyMs: { min: 0, max: 0 },
    unsafe: undefined,
  }, observer);
  for (const id of VOTERS) await cluster.start(id);
  await scheduler.runWhile(() => leaderOf(cluster) === undefined, 10_000);
  assert.ok(leaderOf(cluster), 'a leader within 10 s');
  return { scheduler, cluster, appendSizes };
}

function leaderOf(cluster: SimCluster): string | undefined {
  return VOTERS.find((id) => cluster.replicaOf(id)?.writable);
}

/** Appends one event per call, all at once; resolves with the simulated time each took. */
async function appendTogether(run: Run, count: number, label: string): Promise<number[]> {
  const replica = run.cluster.replicaOf(leaderOf(run.cluster)!)!;
  const startedMs = run.scheduler.now;
  const tookMs: (number | undefined)[] = Array.from({ length: count }, () => undefined);
  const writes = Array.from({ length: count }, (_, i) =>
    replica.store.appendToStream(`s-${label}`, [{ type: 'test', data: { i } }], { expectedState: 'any' }).then(() => {
      tookMs[i] = run.scheduler.now - startedMs;
    }),
  );
  await run.scheduler.runWhile(() => tookMs.includes(undefined), run.scheduler.now + 5000);
  await Promise.all(writes);
  return tookMs as number[];
}

/**
 * Closing flushes through the simulated disk, whose completions are scheduler events: run it until
 * every node closed. (A flush due after a node is marked down never runs, so let the cluster go
 * quiet first.)
 */
async function stopCluster(run: Run): Promise<void> {
  await run.scheduler.runUntil(run.scheduler.now + 500);
  let closed = false;
  void run.cluster.stopAll().finally(() => (closed = true));
  await run.scheduler.runWhile(() => !closed, run.scheduler.now + 60_000);
  assert.ok(closed, 'every node closed');
}

describe('a leader batching appends (simulated cluster)', () => {
  it('sends a wave of writes as one append, and a lone write after it within the batching delay', async () => {
    const delayMs = 20;
    const run = await startCluster(delayMs);
    await appendTogether(run, 1, 'warm');

    run.appendSizes.length = 0;
    await appendTogether(run, 8, 'wave');
    assert.deepEqual(run.appendSizes, [8, 8], 'one append of eight per follower');

    // Alone after a wave of eight, the write waits for more; nothing else comes, so the delay sends it.
    run.appendSizes.length = 0;
    const [loneMs] = (await appendTogether(run, 1, 'lone')) as [number];
    assert.deepEqual(run.appendSizes, [1, 1]);
    assert.ok(loneMs >= delayMs, `the lone write waited for the batching delay (${loneMs} ms)`);
    assert.ok(loneMs <= delayMs + 4 * NETWORK_DELAY_MS + 10, `and then went at once (${loneMs} ms)`);

    // Its batch was one entry: the next lone write is not held.
    const [nextMs] = (await appendTogether(run, 1, 'next')) as [number];
    assert.ok(nextMs < delayMs, `the next lone write did not wait (${nextMs} ms)`);
    await stopCluster(run);
  });

  it('with a delay of 0 every write goes at once', async () => {
    const run = await startCluster(0);
    await appendTogether(run, 8, 'wave');
    const [loneMs] = (await appendTogether(run, 1, 'lone')) as [number];
    assert.ok(loneMs <= 4 * NETWORK_DELAY_MS + 10, `the lone write did not wait (${loneMs} ms)`);
    await stopCluster(run);
  });
});
