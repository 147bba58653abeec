import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPersistentSubscriptions, PersistentSubscriptionRecord, type DeliveryRecord } from '../../sim/persistent-consumers.js';

/** The simulation's persistent-subscription checkers on hand-made histories: each must fail when it should. */

function delivery(sequence: number, atMs: number, host: { node: string; epoch: number; startedMs: number }): DeliveryRecord {
  return { consumer: 0, node: host.node, incarnation: 1, epoch: host.epoch, id: `id-${sequence}`, sequence, atMs, hostStartedMs: host.startedMs };
}

test('a message delivered by a host that started after an ack state covering it was committed is a violation', () => {
  const record = new PersistentSubscriptionRecord();
  const first = { node: 'n1', epoch: 1, startedMs: 0 };
  const second = { node: 'n2', epoch: 1, startedMs: 500 };
  record.deliveries.push(delivery(0, 10, first), delivery(1, 11, first));
  record.commit('n1', 1, 1, 100, { checkpoint: { sequence: 0, position: 0 }, handledBeyond: [], delivered: [], parks: [] });
  record.ackedIds.add('id-0').add('id-1');
  assert.deepEqual(checkPersistentSubscriptions(record, ['id-0', 'id-1'], 1000), []);
  // The new host redelivers 1 (not covered: fine) and 0 (covered by a commit before it started: not fine).
  record.deliveries.push(delivery(1, 600, second));
  assert.deepEqual(checkPersistentSubscriptions(record, ['id-0', 'id-1'], 1000), []);
  record.deliveries.push(delivery(0, 610, second));
  const violations = checkPersistentSubscriptions(record, ['id-0', 'id-1'], 1000);
  assert.equal(violations.length, 1);
  assert.equal(violations[0]!.checker, 'persistent-no-redelivery-of-committed-acks');
});

test('a host that started before another host\u2019s commit may still deliver (it could not know)', () => {
  const record = new PersistentSubscriptionRecord();
  const stale = { node: 'n1', epoch: 1, startedMs: 0 };
  record.commit('n2', 1, 1, 100, { checkpoint: undefined, handledBeyond: [3], delivered: [], parks: [] });
  record.deliveries.push(delivery(3, 200, stale));
  record.ackedIds.add('id-3');
  assert.deepEqual(checkPersistentSubscriptions(record, ['id-3'], 1000), []);
});

test('an event of the stream no consumer acknowledged is lost', () => {
  const record = new PersistentSubscriptionRecord();
  record.deliveries.push(delivery(0, 10, { node: 'n1', epoch: 1, startedMs: 0 }));
  const violations = checkPersistentSubscriptions(record, ['id-0'], 1000);
  assert.deepEqual(violations.map((violation) => violation.checker), ['persistent-nothing-lost']);
});
