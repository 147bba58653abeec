import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { all, appendsWithEntries, Cluster, from, type ClusterOptions } from '../helpers/raft-harness.js';

const VOTERS = ['a', 'b', 'c'];

function batchingCluster(options: Partial<ClusterOptions> = {}): { cluster: Cluster; leader: string } {
  const cluster = new Cluster({ voters: VOTERS, electionTicks: 10, heartbeatTicks: 2, batchAppends: true, ...options });
  return { cluster, leader: cluster.tickUntilLeader() };
}

/** The payloads of the entries the leader has queued for followers, one list per append. */
function queuedBatches(cluster: Cluster, leader: string): string[][] {
  return cluster.queue.filter(all(from(leader), appendsWithEntries)).map((envelope) => {
    const message = envelope.message;
    return message.kind === 'append' ? (message.entries ?? []).map((entry) => String(entry.payload)) : [];
  });
}

function propose(cluster: Cluster, leader: string, ...payloads: string[]): void {
  for (const payload of payloads) assert.ok(cluster.propose(leader, payload).ok, `${leader} refused ${payload}`);
}

/** Writes a wave of `size` entries, sent together, and lets the cluster settle: the leader's last batch has that size. */
function settledWave(cluster: Cluster, leader: string, size: number, prefix: string): void {
  propose(cluster, leader, ...Array.from({ length: size }, (_, n) => `${prefix}${n + 1}`));
  cluster.collect();
  assert.deepEqual(queuedBatches(cluster, leader).map((batch) => batch.length), [size, size], `a wave of ${size} goes out as one append per follower`);
  cluster.stabilize();
}

describe('Raft: batching appends', () => {
  it('a lone write goes out at once while the writes come one at a time', () => {
    const { cluster, leader } = batchingCluster();
    for (let n = 1; n <= 3; n++) {
      propose(cluster, leader, `e${n}`);
      cluster.collect();
      assert.deepEqual(queuedBatches(cluster, leader), [[`e${n}`], [`e${n}`]]);
      cluster.stabilize();
    }
    assert.deepEqual(cluster.node(leader).appendHolds, [], 'no batching delay asked for');
  });

  it('after a wave of 8, a lone write waits for half the wave, then all of it goes in one append', () => {
    const { cluster, leader } = batchingCluster();
    settledWave(cluster, leader, 8, 'w');

    propose(cluster, leader, 'x1');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [], 'the lone head of the next wave is held');
    assert.equal(cluster.node(leader).appendHolds.length, 1, 'with nothing in flight, the caller is asked for its delay');

    propose(cluster, leader, 'x2', 'x3');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [], 'three of an expected eight: still held');
    propose(cluster, leader, 'x4');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [
      ['x1', 'x2', 'x3', 'x4'],
      ['x1', 'x2', 'x3', 'x4'],
    ]);
    assert.equal(cluster.node(leader).appendHolds.length, 1, 'one delay per hold');

    cluster.stabilize();
    for (const id of VOTERS) assert.deepEqual(cluster.node(id).appliedData.slice(-4), ['x1', 'x2', 'x3', 'x4']);
  });

  it("the caller's delay releases what is held; a stale release does nothing", () => {
    const { cluster, leader } = batchingCluster();
    settledWave(cluster, leader, 8, 'w');
    propose(cluster, leader, 'x1');
    cluster.collect();
    const [hold] = cluster.node(leader).appendHolds as [number];

    cluster.releaseAppends(leader, hold - 1);
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [], 'a release for an older hold leaves this one held');

    cluster.releaseAppends(leader, hold);
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [['x1'], ['x1']]);
    cluster.stabilize();
    assert.ok(cluster.node(leader).appliedData.includes('x1'));

    // The last batch was that one entry: the next lone write is not held.
    propose(cluster, leader, 'x2');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [['x2'], ['x2']]);
    cluster.releaseAppends(leader, hold);
    cluster.collect();
    assert.equal(queuedBatches(cluster, leader).length, 2, 'releasing a hold already released sends nothing more');
  });

  it('while a batch is uncommitted, new writes wait for its commit without asking for a delay', () => {
    const { cluster, leader } = batchingCluster();
    settledWave(cluster, leader, 8, 'w');
    propose(cluster, leader, 'y1', 'y2', 'y3', 'y4');
    cluster.collect();
    assert.equal(queuedBatches(cluster, leader).length, 2, 'half the last wave goes at once');
    const holdsBefore = cluster.node(leader).appendHolds.length;

    propose(cluster, leader, 'z1');
    cluster.collect();
    assert.equal(queuedBatches(cluster, leader).length, 2, 'z1 is not sent while y1..y4 are in flight');
    assert.equal(cluster.node(leader).appendHolds.length, holdsBefore, 'the commit of y1..y4, not a delay, ends this wait');

    // The followers take y1..y4; their answers commit it, and the wait turns into a delayed one.
    cluster.deliver();
    cluster.collect();
    cluster.deliver();
    cluster.collect();
    assert.ok(cluster.node(leader).appliedData.includes('y4'));
    assert.ok(!queuedBatches(cluster, leader).some((batch) => batch.includes('z1')), 'z1 is still held after the commit');
    assert.equal(cluster.node(leader).appendHolds.length, holdsBefore + 1);
    cluster.releaseAppends(leader);
    cluster.stabilize();
    for (const id of VOTERS) assert.equal(cluster.node(id).appliedData.at(-1), 'z1');
  });

  it('entries that fill an append are never held', () => {
    const { cluster, leader } = batchingCluster({ maxEntriesPerAppend: 4 });
    settledWave(cluster, leader, 4, 'w');
    settledWave(cluster, leader, 4, 'v');
    // Waves of 16: more than an append holds, so 4 (a full append) is enough to send.
    propose(cluster, leader, ...Array.from({ length: 16 }, (_, n) => `u${n + 1}`));
    cluster.stabilize();
    propose(cluster, leader, 't1', 't2', 't3', 't4');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [
      ['t1', 't2', 't3', 't4'],
      ['t1', 't2', 't3', 't4'],
    ]);
  });

  it("a leadership transfer sends what is held, so the target can take the whole log", () => {
    const { cluster, leader } = batchingCluster();
    settledWave(cluster, leader, 8, 'w');
    propose(cluster, leader, 'x1');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), []);

    const target = VOTERS.find((id) => id !== leader)!;
    assert.ok(cluster.transferLeadership(leader, target));
    assert.equal(cluster.status(target).role, 'leader');
    cluster.tickUntil(() => cluster.status(target).leaderReady);
    cluster.stabilize();
    for (const id of VOTERS) assert.equal(cluster.node(id).appliedData.at(-1), 'x1', `${id} applied the write that was held`);
  });

  it('a node that leads again starts from batches of one, whatever it batched before', () => {
    const { cluster, leader } = batchingCluster();
    settledWave(cluster, leader, 8, 'w');
    const other = VOTERS.find((id) => id !== leader)!;
    assert.ok(cluster.transferLeadership(leader, other));
    cluster.tickUntil(() => cluster.status(other).leaderReady);
    assert.ok(cluster.transferLeadership(other, leader));
    cluster.tickUntil(() => cluster.status(leader).leaderReady);
    cluster.stabilize();

    propose(cluster, leader, 'n1');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [['n1'], ['n1']]);
  });

  it('without batchAppends every write goes out at once', () => {
    const { cluster, leader } = batchingCluster({ batchAppends: false });
    settledWave(cluster, leader, 8, 'w');
    propose(cluster, leader, 'x1');
    cluster.collect();
    assert.deepEqual(queuedBatches(cluster, leader), [['x1'], ['x1']]);
    assert.deepEqual(cluster.node(leader).appendHolds, []);
  });
});
