import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_GROUP_SETTINGS, type GroupSettings } from '../../src/subscriptions/core/group-settings.js';
import { PersistentGroup, type AckStateSnapshot, type GroupEffects, type GroupMessage, type NackAction, type RestoredAckState } from '../../src/subscriptions/core/persistent-group.js';

/** The pure persistent-subscription group, driven directly: no store, no clock, no sockets. */

type Message = GroupMessage<number>;

function message(sequence: number, streamId = `stream-${sequence % 3}`, correlationId?: string): Message {
  return { sequence, position: sequence, id: `id-${sequence}`, streamId, ...(correlationId ? { correlationId } : {}) };
}

function messages(from: number, count: number): Message[] {
  return Array.from({ length: count }, (_, i) => message(from + i));
}

function group(settings: Partial<GroupSettings> = {}, restored: RestoredAckState<number> = { checkpoint: undefined, handledBeyond: [] }) {
  const machine = new PersistentGroup<Message, number>({ ...DEFAULT_GROUP_SETTINGS, ...settings }, restored);
  machine.start(0);
  return machine;
}

function take(machine: PersistentGroup<Message, number>): GroupEffects<Message, number> {
  return machine.takeEffects();
}

describe('persistent group: delivery', () => {
  test('reads a first page, then delivers round robin within each consumer\u2019s buffer', () => {
    const machine = group({ readBatchSize: 10 });
    assert.deepEqual(take(machine).read, { after: undefined, maxCount: 10 });
    machine.consumerJoined('a', 2);
    machine.consumerJoined('b', 2);
    machine.messagesRead(messages(0, 10), false);
    const effects = take(machine);
    assert.deepEqual(
      effects.deliveries.map((delivery) => [delivery.consumer, delivery.message.sequence]),
      [
        ['a', 0],
        ['b', 1],
        ['a', 2],
        ['b', 3],
      ],
    );
    assert.deepEqual(effects.read, { after: { sequence: 9, position: 9 }, maxCount: 10 });
  });

  test('DispatchToSingle fills the first consumer before the next', () => {
    const machine = group({ strategy: 'DispatchToSingle' });
    machine.consumerJoined('a', 3);
    machine.consumerJoined('b', 3);
    machine.messagesRead(messages(0, 5), true);
    const consumers = take(machine).deliveries.map((delivery) => delivery.consumer);
    assert.deepEqual(consumers, ['a', 'a', 'a', 'b', 'b']);
  });

  test('Pinned keeps a stream on one consumer; PinnedByCorrelation keys on the correlation id', () => {
    for (const strategy of ['Pinned', 'PinnedByCorrelation'] as const) {
      const machine = group({ strategy });
      for (const id of ['a', 'b', 'c']) machine.consumerJoined(id, 100);
      const read = Array.from({ length: 60 }, (_, i) => message(i, `s-${i % 7}`, `c-${i % 5}`));
      machine.messagesRead(read, true);
      const owner = new Map<string, string>();
      for (const delivery of take(machine).deliveries) {
        const key = strategy === 'Pinned' ? delivery.message.streamId : delivery.message.correlationId!;
        const previous = owner.get(key);
        if (previous) assert.equal(delivery.consumer, previous, `${strategy}: ${key} moved`);
        owner.set(key, delivery.consumer);
      }
      assert.ok(new Set(owner.values()).size > 1, `${strategy} used a single consumer for every key`);
    }
  });

  test('a full pinned consumer holds back its messages but not the others\u2019', () => {
    const machine = group({ strategy: 'Pinned' });
    machine.consumerJoined('a', 1);
    machine.consumerJoined('b', 1);
    // Find two streams pinned to different consumers.
    machine.messagesRead([message(0, 'x'), message(1, 'x'), message(2, 'y'), message(3, 'z'), message(4, 'w')], true);
    const delivered = take(machine).deliveries;
    assert.equal(delivered.length, 2, 'each consumer takes exactly one message');
    assert.notEqual(delivered[0]!.consumer, delivered[1]!.consumer);
  });

  test('refuses a consumer over the maximum', () => {
    const machine = group({ maxSubscriberCount: 2 });
    assert.equal(machine.consumerJoined('a', 1), true);
    assert.equal(machine.consumerJoined('b', 1), true);
    assert.equal(machine.consumerJoined('c', 1), false);
    machine.consumerLeft('a');
    assert.equal(machine.consumerJoined('c', 1), true);
  });
});

describe('persistent group: acknowledgements and the checkpoint', () => {
  test('the checkpoint covers only a fully handled prefix; later acks are listed beyond it', () => {
    const machine = group();
    machine.consumerJoined('a', 10);
    machine.messagesRead(messages(0, 5), true);
    take(machine);
    machine.ack('a', ['id-0', 'id-2', 'id-3']);
    const snapshot = machine.snapshot();
    assert.deepEqual(snapshot.checkpoint, { sequence: 0, position: 0 });
    assert.deepEqual(snapshot.handledBeyond, [2, 3]);
    machine.ack('a', ['id-1']);
    assert.deepEqual(machine.snapshot().checkpoint, { sequence: 3, position: 3 });
    assert.deepEqual(machine.snapshot().handledBeyond, []);
  });

  test('commits the ack state once the window closes, or at once after the window\u2019s count of acks', () => {
    const machine = group({ checkpointAfterMs: 2_000, maxCheckpointCount: 3 });
    machine.consumerJoined('a', 10);
    machine.messagesRead(messages(0, 5), true);
    take(machine);
    machine.ack('a', ['id-0']);
    assert.equal(take(machine).commitAckState, undefined, 'not before the window closes');
    assert.equal(machine.nextTickAt(), 50);
    machine.tick(49);
    assert.equal(take(machine).commitAckState, undefined);
    machine.tick(50);
    assert.deepEqual(take(machine).commitAckState?.checkpoint, { sequence: 0, position: 0 });
    machine.ackStateCommitted();
    machine.ack('a', ['id-1', 'id-2', 'id-3']);
    assert.deepEqual(take(machine).commitAckState?.checkpoint, { sequence: 3, position: 3 }, 'three acks fill a window of three');
  });

  test('one commit at a time; a failed commit is tried again', () => {
    const machine = group();
    machine.consumerJoined('a', 10);
    machine.messagesRead(messages(0, 3), true);
    take(machine);
    machine.ack('a', ['id-0']);
    machine.tick(100);
    assert.ok(take(machine).commitAckState);
    machine.ack('a', ['id-1']);
    machine.tick(1_000);
    assert.equal(take(machine).commitAckState, undefined, 'a second commit waits for the first');
    machine.ackStateFailed();
    machine.tick(1_100);
    assert.deepEqual(take(machine).commitAckState?.checkpoint, { sequence: 1, position: 1 });
  });

  test('a message out when the group stopped comes back after the restart with its retry count raised', () => {
    const machine = group();
    machine.consumerJoined('a', 10);
    machine.messagesRead(messages(0, 3), true);
    take(machine);
    machine.nack('a', ['id-1'], 'retry', '');
    take(machine);
    machine.ack('a', ['id-0']);
    const snapshot = machine.snapshot();
    assert.deepEqual(snapshot.delivered, [
      [1, 1],
      [2, 0],
    ]);
    const restarted = group({}, { checkpoint: snapshot.checkpoint, handledBeyond: snapshot.handledBeyond, delivered: snapshot.delivered });
    restarted.consumerJoined('b', 10);
    restarted.messagesRead(messages(1, 2), true);
    assert.deepEqual(
      take(restarted).deliveries.map((delivery) => [delivery.message.sequence, delivery.retryCount]),
      [
        [1, 2],
        [2, 1],
      ],
    );
  });

  test('a restored group skips what was acknowledged beyond its checkpoint', () => {
    const machine = group({}, { checkpoint: { sequence: 1, position: 1 }, handledBeyond: [3, 4] });
    assert.deepEqual(take(machine).read?.after, { sequence: 1, position: 1 });
    machine.consumerJoined('a', 10);
    machine.messagesRead(messages(2, 4), true);
    assert.deepEqual(
      take(machine).deliveries.map((delivery) => delivery.message.sequence),
      [2, 5],
    );
    machine.ack('a', ['id-2']);
    assert.deepEqual(machine.snapshot().checkpoint, { sequence: 4, position: 4 });
  });
});

describe('persistent group: retries and parking', () => {
  test('a timed-out message is retried with its count raised, then parked past the maximum', () => {
    const machine = group({ messageTimeoutMs: 100, maxRetryCount: 1 });
    machine.consumerJoined('a', 1);
    machine.messagesRead(messages(0, 2), true);
    assert.deepEqual(take(machine).deliveries.map((delivery) => [delivery.message.sequence, delivery.retryCount]), [[0, 0]]);
    machine.tick(100);
    assert.deepEqual(take(machine).deliveries.map((delivery) => [delivery.message.sequence, delivery.retryCount]), [[0, 1]]);
    machine.tick(200);
    const effects = take(machine);
    assert.deepEqual(effects.deliveries.map((delivery) => [delivery.message.sequence, delivery.retryCount]), [[1, 0]]);
    const snapshot = machine.snapshot();
    assert.deepEqual(snapshot.parks.map((park) => park.message.sequence), [0]);
    assert.match(snapshot.parks[0]!.reason, /max retry count 1/);
    assert.deepEqual(snapshot.checkpoint, { sequence: 0, position: 0 }, 'a parked message is handled');
  });

  test('a message timeout of 0 never times out', () => {
    const machine = group({ messageTimeoutMs: 0 });
    machine.consumerJoined('a', 1);
    machine.messagesRead(messages(0, 2), true);
    assert.equal(take(machine).deliveries.length, 1);
    machine.tick(100);
    machine.ackStateCommitted();
    assert.equal(machine.nextTickAt(), undefined, 'nothing to wake up for');
    machine.tick(10_000_000);
    assert.equal(take(machine).deliveries.length, 0);
  });

  test('nack actions: park, retry, skip, stop', () => {
    const machine = group();
    machine.consumerJoined('a', 10);
    machine.consumerJoined('b', 10);
    machine.messagesRead(messages(0, 4), true);
    take(machine);
    const nack = (consumer: string, id: string, action: NackAction) => {
      machine.nack(consumer, [id], action, `because ${action}`);
      return take(machine);
    };
    assert.equal(nack('a', 'id-0', 'park').deliveries.length, 0);
    assert.deepEqual(machine.snapshot().parks.map((park) => park.reason), ['because park']);
    const retried = nack('b', 'id-1', 'retry').deliveries;
    assert.deepEqual(retried.map((delivery) => [delivery.message.sequence, delivery.retryCount]), [[1, 1]]);
    nack('a', 'id-2', 'skip');
    assert.deepEqual(machine.snapshot().handledBeyond, [2]);
    const stopped = nack('b', 'id-3', 'stop');
    assert.deepEqual(stopped.drops, [{ consumer: 'b', reason: 'because stop' }]);
    // What b held goes to a with its count raised: 3, and 1 if the retry had gone to b.
    const expected: [string, number, number][] = [['a', 3, 1]];
    if (retried[0]!.consumer === 'b') expected.unshift(['a', 1, 2]);
    assert.deepEqual(
      stopped.deliveries.map((delivery) => [delivery.consumer, delivery.message.sequence, delivery.retryCount]).sort(),
      expected,
    );
  });

  test('each park is committed once: with the first commit after it, and not again', () => {
    const machine = group();
    machine.consumerJoined('a', 10);
    machine.messagesRead(messages(0, 3), true);
    take(machine);
    machine.nack('a', ['id-0'], 'park', 'first');
    machine.tick(100);
    assert.deepEqual(take(machine).commitAckState?.parks.map((park) => park.message.sequence), [0]);
    machine.nack('a', ['id-1'], 'park', 'second');
    machine.ackStateCommitted();
    machine.tick(200);
    assert.deepEqual(take(machine).commitAckState?.parks.map((park) => park.message.sequence), [1]);
    machine.ackStateFailed();
    machine.tick(300);
    assert.deepEqual(take(machine).commitAckState?.parks.map((park) => park.message.sequence), [1], 'a failed commit\u2019s parks go with the next');
  });

  test('what a leaving consumer held goes to the others', () => {
    const machine = group();
    machine.consumerJoined('a', 2);
    machine.consumerJoined('b', 2);
    machine.messagesRead(messages(0, 2), true);
    take(machine);
    machine.consumerLeft('a');
    const effects = take(machine);
    assert.deepEqual(effects.deliveries.map((delivery) => [delivery.consumer, delivery.message.sequence, delivery.retryCount]), [['b', 0, 1]]);
  });

  test('replayed parked messages are delivered again; the parked stream is truncated once all are handled', () => {
    const machine = group();
    machine.consumerJoined('a', 10);
    machine.replayParked([message(7), message(8)], 1);
    assert.deepEqual(take(machine).deliveries.map((delivery) => [delivery.message.sequence, delivery.retryCount]), [
      [7, 0],
      [8, 0],
    ]);
    machine.ack('a', ['id-7']);
    assert.equal(machine.snapshot().parkedReplayedUpTo, undefined);
    machine.ack('a', ['id-8']);
    assert.equal(machine.snapshot().parkedReplayedUpTo, 1);
  });
});

// ------------------------------------------------------------------ properties

type Step =
  | { kind: 'join'; consumer: number; buffer: number }
  | { kind: 'leave'; consumer: number }
  | { kind: 'read'; count: number }
  | { kind: 'ack'; consumer: number; pick: number }
  | { kind: 'nack'; consumer: number; pick: number; action: NackAction }
  | { kind: 'tick'; ms: number }
  | { kind: 'commit'; ok: boolean }
  | { kind: 'crash' };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('join' as const), consumer: fc.integer({ min: 0, max: 3 }), buffer: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), consumer: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('read' as const), count: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('ack' as const), consumer: fc.integer({ min: 0, max: 3 }), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('nack' as const), consumer: fc.integer({ min: 0, max: 3 }), pick: fc.nat(), action: fc.constantFrom<NackAction>('park', 'retry', 'skip', 'stop') }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 400 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('commit' as const), ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const) }) },
);

/**
 * Runs a group over an endless source through random consumers, acks, nacks, timeouts, commits
 * that succeed or fail, and crashes (a new group from the last committed ack state). Checks:
 * - the checkpoint never passes a message that is not handled;
 * - nothing is lost: every message read is handled, in flight, or waiting, exactly once;
 * - after a crash, nothing whose acknowledgement was committed is delivered again.
 */
test('property: the checkpoint never passes an unhandled message, nothing is lost, committed acks are never redelivered', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 200 }), fc.constantFrom('RoundRobin', 'DispatchToSingle', 'Pinned') , (steps, strategy) => {
      const settings: Partial<GroupSettings> = { messageTimeoutMs: 300, maxRetryCount: 2 /* = maxRetryCount below */, readBatchSize: 5, historyBufferSize: 10, liveBufferSize: 10, strategy: strategy as GroupSettings['strategy'] };
      let committed: RestoredAckState<number> = { checkpoint: undefined, handledBeyond: [] };
      /** Sequences handled as of the last committed ack state. */
      let committedHandled = new Set<number>();
      let machine = group(settings, committed);
      let now = 0;
      let pendingRead: { after: number | undefined; maxCount: number } | undefined;
      let pendingCommit: AckStateSnapshot<Message, number> | undefined;
      // What each consumer holds, by id: the model of in-flight messages.
      let held = new Map<string, Map<string, { message: Message; at: number; retryCount: number }>>();
      const maxRetryCount = 2;
      // A message that goes back for a retry past the maximum is parked instead: handled.
      const retried = (entry: { message: Message; retryCount: number }) => {
        if (entry.retryCount + 1 > maxRetryCount) handled.add(entry.message.sequence);
      };
      const handled = new Set<number>();
      const joined = new Set<string>();
      const absorb = () => {
        const effects = machine.takeEffects();
        for (const delivery of effects.deliveries) {
          assert.ok(!committedHandled.has(delivery.message.sequence), `message ${delivery.message.sequence} was delivered again after its ack was committed`);
          assert.ok(!handled.has(delivery.message.sequence), `message ${delivery.message.sequence} was delivered after it was handled`);
          // The latest delivery is the only owner: an ack from an earlier one is stale.
          for (const other of held.values()) other.delete(delivery.message.id);
          const holding = held.get(delivery.consumer) ?? new Map<string, { message: Message; at: number; retryCount: number }>();
          holding.set(delivery.message.id, { message: delivery.message, at: now, retryCount: delivery.retryCount });
          held.set(delivery.consumer, holding);
        }
        for (const drop of effects.drops) {
          held.delete(drop.consumer);
          joined.delete(drop.consumer);
        }
        if (effects.read) pendingRead = { after: effects.read.after?.sequence, maxCount: effects.read.maxCount };
        if (effects.commitAckState) pendingCommit = effects.commitAckState;
      };
      absorb();
      for (const step of steps) {
        const consumer = `c${'consumer' in step ? step.consumer : 0}`;
        switch (step.kind) {
          case 'join':
            if (!joined.has(consumer) && machine.consumerJoined(consumer, step.buffer)) joined.add(consumer);
            break;
          case 'leave':
            if (joined.has(consumer)) {
              joined.delete(consumer);
              for (const entry of held.get(consumer)?.values() ?? []) retried(entry);
              held.delete(consumer);
              machine.consumerLeft(consumer);
            }
            break;
          case 'read':
            if (pendingRead) {
              const from = (pendingRead.after ?? -1) + 1;
              const count = Math.min(step.count, pendingRead.maxCount);
              pendingRead = undefined;
              machine.messagesRead(messages(from, count), count < step.count);
            }
            break;
          case 'ack':
          case 'nack': {
            const holding = [...(held.get(consumer)?.values() ?? [])];
            if (holding.length === 0) break;
            const chosenEntry = holding[step.pick % holding.length]!;
            const chosen = chosenEntry.message;
            held.get(consumer)!.delete(chosen.id);
            if (step.kind === 'ack') {
              handled.add(chosen.sequence);
              machine.ack(consumer, [chosen.id]);
            } else {
              if (step.action === 'park' || step.action === 'skip') handled.add(chosen.sequence);
              else retried(chosenEntry);
              if (step.action === 'stop') {
                for (const entry of held.get(consumer)?.values() ?? []) retried(entry);
                held.delete(consumer);
                joined.delete(consumer);
              }
              machine.nack(consumer, [chosen.id], step.action, '');
            }
            break;
          }
          case 'tick':
            now += step.ms;
            // Timed-out messages leave their consumer (the same deadline as the group's).
            for (const holding of held.values()) {
              for (const [id, entry] of holding) {
                if (entry.at + 300 > now) continue;
                holding.delete(id);
                retried(entry);
              }
            }
            machine.tick(now);
            break;
          case 'commit':
            if (pendingCommit) {
              const snapshot = pendingCommit;
              pendingCommit = undefined;
              if (step.ok) {
                committed = { checkpoint: snapshot.checkpoint, handledBeyond: snapshot.handledBeyond };
                committedHandled = new Set([...handledPrefix(snapshot.checkpoint?.sequence), ...snapshot.handledBeyond]);
                machine.ackStateCommitted();
              } else {
                machine.ackStateFailed();
              }
            }
            break;
          case 'crash':
            machine = group(settings, committed);
            pendingRead = undefined;
            pendingCommit = undefined;
            held = new Map();
            joined.clear();
            handled.clear();
            for (const sequence of committedHandled) handled.add(sequence);
            break;
        }
        absorb();
        const statistics = machine.statistics();
        if (statistics.checkpoint) {
          for (let sequence = 0; sequence <= statistics.checkpoint.sequence; sequence++) {
            assert.ok(handled.has(sequence) || committedHandled.has(sequence), `the checkpoint ${statistics.checkpoint.sequence} passed unhandled message ${sequence}`);
          }
        }
        const lastRead = statistics.lastRead?.sequence ?? -1;
        const accounted = statistics.outstandingCount;
        const checkpointSequence = statistics.checkpoint?.sequence ?? (committed.checkpoint?.sequence ?? -1);
        assert.ok(accounted <= lastRead - checkpointSequence, 'more outstanding messages than were read past the checkpoint');
        assert.ok(statistics.inFlightCount + statistics.bufferedCount + statistics.retryCount <= accounted, 'a message is in two places at once');
      }
    }),
    { numRuns: 400 },
  );
});

function handledPrefix(checkpoint: number | undefined): number[] {
  return checkpoint === undefined ? [] : Array.from({ length: checkpoint + 1 }, (_, i) => i);
}
