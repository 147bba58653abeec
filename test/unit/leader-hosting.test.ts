import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PersistentSubscriptionHost } from '../../src/subscriptions/persistent/host.js';
import { LeaderHosting } from '../../src/subscriptions/persistent/leader-hosting.js';

/** The host's lifecycle as LeaderHosting sees it: started, stopped (gracefully or not). */
class FakeHost {
  running = false;
  readonly calls: string[] = [];
  stopping: Promise<void> = Promise.resolve();
  private finishStop: (() => void) | undefined;

  start(): Promise<void> {
    this.calls.push('start');
    this.running = true;
    return Promise.resolve();
  }

  /** A graceful stop waits until `completeStop`, as committing the groups' acknowledgements takes a round trip. */
  stop(graceful: boolean): Promise<void> {
    this.calls.push(graceful ? 'stop graceful' : 'stop');
    this.running = false;
    if (!graceful) return Promise.resolve();
    this.stopping = new Promise<void>((resolve) => (this.finishStop = resolve));
    return this.stopping;
  }

  completeStop(): void {
    this.finishStop?.();
  }
}

function hosting() {
  const host = new FakeHost();
  const state = { leader: true, transferring: false };
  const leaderHosting = new LeaderHosting(
    host as unknown as PersistentSubscriptionHost,
    () => state.leader,
    () => undefined,
    () => state.transferring,
  );
  return { host, state, leaderHosting };
}

describe('persistent subscriptions follow leadership', () => {
  it('are hosted while this node leads and let go when it stops leading', () => {
    const { host, state, leaderHosting } = hosting();
    leaderHosting.follow();
    assert.equal(host.running, true);
    state.leader = false;
    leaderHosting.follow();
    assert.equal(host.running, false);
    assert.deepEqual(host.calls, ['start', 'stop']);
  });

  it('a handover stops them gracefully before it resigns, and they stay down while the transfer runs and once it succeeded', async () => {
    const { host, state, leaderHosting } = hosting();
    leaderHosting.follow();
    const resigned: string[] = [];
    const handing = leaderHosting.handOver(() => {
      resigned.push('resign');
      state.transferring = true;
      return true;
    });
    leaderHosting.follow(); // while the acknowledgements are being committed
    assert.equal(host.running, false, 'not started again while stopping for the handover');
    assert.deepEqual(resigned, [], 'resigns only once the groups are stopped');
    host.completeStop();
    assert.equal(await handing, true);
    assert.deepEqual(resigned, ['resign']);
    leaderHosting.follow(); // the transfer is under way
    assert.equal(host.running, false);
    state.leader = false; // the target took over
    state.transferring = false;
    leaderHosting.follow();
    assert.equal(host.running, false);
    assert.deepEqual(host.calls, ['start', 'stop graceful']);
  });

  it('a handover that gave up leaves this node leading: the groups are hosted again', async () => {
    const { host, state, leaderHosting } = hosting();
    leaderHosting.follow();
    const handing = leaderHosting.handOver(() => {
      state.transferring = true;
      return true;
    });
    host.completeStop();
    assert.equal(await handing, true);
    state.transferring = false; // the target never caught up within an election timeout
    leaderHosting.follow();
    assert.equal(host.running, true, 'a leader hosts its groups again once the transfer is over');
    assert.deepEqual(host.calls, ['start', 'stop graceful', 'start']);
  });

  it('a handover that could not start (no voter to take over) hosts them again at once', async () => {
    const { host, leaderHosting } = hosting();
    leaderHosting.follow();
    const handing = leaderHosting.handOver(() => false);
    host.completeStop();
    assert.equal(await handing, false);
    leaderHosting.follow();
    assert.equal(host.running, true);
  });
});
