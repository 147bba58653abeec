import type { FastifyRequest } from 'fastify';
import { InvalidArgumentError, StreamNotFoundError } from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import type { Position } from '../../store/types.js';
import { runAllCatchUp, runStreamCatchUp } from '../../subscriptions/catch-up-runner.js';
import type { SubscriptionTracker } from '../../subscriptions/subscription-tracker.js';
import type { CommandRunner } from './command-runner.js';
import { eventFilter } from './commands.js';
import { eventJson, formatPosition, parsePosition } from './event-json.js';
import { asChronicleError } from './problem.js';
import type { RouteTable } from './routes.js';
import { liveAllQuery, liveHeaders, liveStreamQuery, streamParams } from './schemas.js';
import { SseChannel, type RawResponse, type SseOptions } from './sse.js';
import { filterOf } from './stream-routes.js';

/**
 * Live endpoints: catch-up subscriptions as Server-Sent Events. History first, then live events
 * as they commit, from the same loop the gRPC subscriptions use. Each event's SSE id is where it
 * is (a revision, or `commit:prepare` in $all), so a client that reconnects with `Last-Event-ID`
 * continues right after the last event it received: no gap, no duplicate.
 */
export interface LiveContext {
  store: EventStore;
  runner: CommandRunner;
  subscriptions: SubscriptionTracker;
  sse: SseOptions;
  /** Aborted when the node stops: open streams end with a `dropped` event. */
  shutdown: AbortSignal;
}

const SSE_RESPONSES = { 200: 'text/event-stream: events (id = revision or position), then caught-up, fell-behind, checkpoint and a final dropped event', 400: 'Malformed request', 410: 'The stream is tombstoned', 503: 'This node cannot serve reads yet: retry after Retry-After' };

type Subscribe = (signal: AbortSignal, channel: SseChannel) => Promise<void>;

async function serve(context: LiveContext, raw: RawResponse, hijack: () => void, subscribe: Subscribe): Promise<void> {
  await context.runner.admitLocalReads();
  hijack();
  const channel = new SseChannel(raw, context.sse);
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  // The response closes when the client goes (or the stream ends); the request's own 'close' can
  // come as soon as its (empty) body is read, which is no reason to stop.
  raw.once('close', stop);
  context.shutdown.addEventListener('abort', stop, { once: true });
  try {
    await subscribe(abort.signal, channel);
    if (context.shutdown.aborted) channel.drop({ code: 'STORE_UNAVAILABLE', message: 'the node is shutting down; reconnect (to another node) with Last-Event-ID to resume' });
  } catch (error) {
    const failure = asChronicleError(error, 0);
    if (!abort.signal.aborted || context.shutdown.aborted) channel.drop({ code: failure.code, message: failure.message });
  } finally {
    context.shutdown.removeEventListener('abort', stop);
    channel.end();
  }
}

function afterRevision(request: FastifyRequest): number | 'start' | 'end' {
  const lastEventId = (request.headers as Record<string, string | undefined>)['last-event-id'];
  if (lastEventId !== undefined) {
    if (!/^\d{1,16}$/.test(lastEventId)) throw new InvalidArgumentError(`Last-Event-ID of a stream is the revision of the last event received, not '${lastEventId}'`);
    return Number(lastEventId);
  }
  const from = (request.query as { from?: string }).from;
  if (from === undefined || from === 'start') return 'start';
  if (from === 'end') return 'end';
  // Delivering from revision N is delivering after N - 1.
  return Number(from) === 0 ? 'start' : Number(from) - 1;
}

function afterPosition(request: FastifyRequest): Position | 'start' | 'end' {
  const lastEventId = (request.headers as Record<string, string | undefined>)['last-event-id'];
  const from = lastEventId ?? (request.query as { from?: string }).from ?? 'start';
  if (from === 'start' || from === 'end') return from;
  const position = parsePosition(from);
  if (!position) throw new InvalidArgumentError(`a position is commit:prepare (prepare ≥ commit), not '${from}'`);
  return position;
}

/** Fails before the stream starts for what the client must see as an HTTP status (a tombstoned stream: 410). */
async function checkReadable(store: EventStore, stream: string): Promise<void> {
  try {
    await store.readStream(stream, { maxCount: 0 });
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
}

export function registerLiveRoutes(routes: RouteTable, context: LiveContext): void {
  const { store } = context;
  routes.add({
    method: 'GET',
    url: '/streams/$all/live',
    tags: ['live'],
    summary: 'Subscribe to $all (history, then live) as Server-Sent Events',
    description: 'Filters as query parameters. Resume with Last-Event-ID (the id of the last event or checkpoint received). With a filter, checkpoint events carry how far the filter has looked.',
    schema: { querystring: liveAllQuery, headers: liveHeaders },
    responses: SSE_RESPONSES,
    successContentType: 'text/event-stream',
    handler: async (request, reply) => {
      const after = afterPosition(request);
      const query = request.query as { checkpointEvery: number } & Record<string, unknown>;
      const filter = eventFilter(filterOf(query));
      if (filter) await store.readAll({ maxCount: 0, filter }); // a bad regex is a 400, before the stream starts
      await serve(context, reply.raw, () => reply.hijack(), (signal, channel) =>
        runAllCatchUp(
          store,
          after,
          filter,
          query.checkpointEvery,
          {
            event: (event) => channel.send({ id: formatPosition(event.position), data: JSON.stringify(eventJson(event)) }),
            caughtUp: (last) => channel.send({ event: 'caught-up', data: JSON.stringify({ position: last ? formatPosition(last) : null }) }),
            fellBehind: (last) => channel.send({ event: 'fell-behind', data: JSON.stringify({ position: last ? formatPosition(last) : null }) }),
            checkpoint: (scannedTo) => channel.send({ id: formatPosition(scannedTo), event: 'checkpoint', data: JSON.stringify({ position: formatPosition(scannedTo) }) }),
          },
          signal,
          context.subscriptions.track('sse'),
        ),
      );
    },
  });

  routes.add({
    method: 'GET',
    url: '/streams/:stream/live',
    tags: ['live'],
    summary: 'Subscribe to a stream (history, then live) as Server-Sent Events',
    description: 'Waits for the stream if it does not exist yet. Resume with Last-Event-ID (the revision of the last event received).',
    schema: { params: streamParams, querystring: liveStreamQuery, headers: liveHeaders },
    responses: SSE_RESPONSES,
    successContentType: 'text/event-stream',
    handler: async (request, reply) => {
      const stream = (request.params as { stream: string }).stream;
      const after = afterRevision(request);
      await checkReadable(store, stream);
      await serve(context, reply.raw, () => reply.hijack(), (signal, channel) =>
        runStreamCatchUp(
          store,
          stream,
          after,
          {
            event: (event) => channel.send({ id: String(event.revision), data: JSON.stringify(eventJson(event)) }),
            caughtUp: (last) => channel.send({ event: 'caught-up', data: JSON.stringify({ revision: last ?? null }) }),
            fellBehind: (last) => channel.send({ event: 'fell-behind', data: JSON.stringify({ revision: last ?? null }) }),
          },
          signal,
          context.subscriptions.track('sse'),
        ),
      );
    },
  });
}
