import type { EventStore } from '../../store/event-store.js';
import type { EventFilter, Position } from '../../store/types.js';
import { runAllCatchUp, runStreamCatchUp } from '../../subscriptions/catch-up-runner.js';
import type { SubscriptionTracker } from '../../subscriptions/subscription-tracker.js';
import type { ResponseStream } from './grpc-server.js';
import type { Message } from './protocol.js';
import { positionMessage, readEventMessage, type ReadShape } from './streams-service.js';

/**
 * Catch-up subscriptions over the Read call: the shared catch-up loops (see
 * src/subscriptions/catch-up-runner.ts) with each signal as the Read response message the
 * KurrentDB clients expect. Each send waits for HTTP/2 flow control, which is what bounds a slow
 * subscriber to one page.
 */
function timestampNow(): Message {
  const now = Date.now();
  return { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1_000_000 };
}

export async function runStreamSubscription(
  store: EventStore,
  stream: string,
  after: number | 'start' | 'end',
  shape: ReadShape,
  responses: ResponseStream<Message>,
  signal: AbortSignal,
  subscriptions?: SubscriptionTracker,
): Promise<void> {
  const revisionOf = (last: number | undefined) => (last !== undefined ? { stream_revision: last } : {});
  await runStreamCatchUp(
    store,
    stream,
    after,
    {
      event: (event) => responses.send(readEventMessage(event, shape)),
      caughtUp: (last) => responses.send({ caught_up: { timestamp: timestampNow(), ...revisionOf(last) } }),
      fellBehind: (last) => responses.send({ fell_behind: { timestamp: timestampNow(), ...revisionOf(last) } }),
    },
    signal,
    subscriptions?.track('grpc'),
  );
}

export async function runAllSubscription(
  store: EventStore,
  after: Position | 'start' | 'end',
  filter: EventFilter | undefined,
  checkpointEveryEvents: number,
  shape: ReadShape,
  responses: ResponseStream<Message>,
  signal: AbortSignal,
  subscriptions?: SubscriptionTracker,
): Promise<void> {
  const positionOf = (last: Position | undefined) => (last ? { position: positionMessage(last) } : {});
  await runAllCatchUp(
    store,
    after,
    filter,
    checkpointEveryEvents,
    {
      event: (event) => responses.send(readEventMessage(event, shape)),
      caughtUp: (last) => responses.send({ caught_up: { timestamp: timestampNow(), ...positionOf(last) } }),
      fellBehind: (last) => responses.send({ fell_behind: { timestamp: timestampNow(), ...positionOf(last) } }),
      checkpoint: (scannedTo) => responses.send({ checkpoint: { ...positionMessage(scannedTo), timestamp: timestampNow() } }),
    },
    signal,
    subscriptions?.track('grpc'),
  );
}
