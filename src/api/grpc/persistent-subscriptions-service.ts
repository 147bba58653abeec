import { InvalidArgumentError } from '../../errors.js';
import { CONSUMER_STRATEGIES, type ConsumerStrategy, type GroupSettings } from '../../subscriptions/core/group-settings.js';
import type { NackAction } from '../../subscriptions/core/persistent-group.js';
import { formatGroupPosition, formatStart, sourceName, type AllFilterDefinition, type AllStart, type GroupSource, type StreamStart } from '../../subscriptions/persistent/durable-state.js';
import type { SubscriptionMessage } from '../../subscriptions/persistent/group-reader.js';
import type { ConsumerHandle, GroupInfo } from '../../subscriptions/persistent/group-runtime.js';
import type { GroupRequest, PersistentSubscriptionHost } from '../../subscriptions/persistent/host.js';
import type { CallContext, GrpcServer, ResponseStream } from './grpc-server.js';
import { codecOf, streamNameOf, toNumber, uuidFromMessage, type Message } from './protocol.js';
import { recordedEventMessage, type ReadShape } from './streams-service.js';

const SERVICE = 'event_store.client.persistent_subscriptions.PersistentSubscriptions';
const PACKAGE = 'event_store.client.persistent_subscriptions';
/** The legacy stream-group encoding's "from the end" revision: the largest uint64. */
const LEGACY_END_REVISION = 2 ** 63;
/** .NET ticks (100 ns) per millisecond, for clients that send timeouts as ticks. */
const TICKS_PER_MS = 10_000;
const DEFAULT_CONSUMER_BUFFER = 10;
/** A node that just became leader starts hosting the groups within moments: calls wait that long, not fail. */
const READY_WAIT_MS = 3000;

/** The persistent subscriptions service, as the official clients call it; the groups live in `host`. */
export function registerPersistentSubscriptionsService(server: GrpcServer, host: PersistentSubscriptionHost): void {
  const unary = (method: string, handle: (request: Message) => Promise<Message>, requestType = `${method}Req`, responseType = `${method}Resp`) =>
    server.addMethod({
      kind: 'unary',
      path: `/${SERVICE}/${method}`,
      request: codecOf(requestType.includes('.') ? requestType : `${PACKAGE}.${requestType}`),
      response: codecOf(responseType.includes('.') ? responseType : `${PACKAGE}.${responseType}`),
      handle: async (request: Message) => {
        await host.ready(READY_WAIT_MS);
        return handle(request);
      },
    });
  unary('Create', async (request) => {
    await host.create(groupRequestOf(request.options, true));
    return {};
  });
  unary('Update', async (request) => {
    await host.update(groupRequestOf(request.options, false));
    return {};
  });
  unary('Delete', async (request) => {
    const options = required(request.options, 'Delete');
    await host.delete(sourceOf(options, 'stream_identifier'), groupNameOf(options));
    return {};
  });
  unary('GetInfo', async (request) => {
    const options = required(request.options, 'GetInfo');
    return { subscription_info: infoMessage(host.info(sourceOf(options, 'stream_identifier'), groupNameOf(options))) };
  });
  unary('List', async (request) => {
    const options = request.options;
    let source: GroupSource | undefined;
    if (options?.list_option === 'list_for_stream') source = sourceOf(options.list_for_stream ?? {}, 'stream');
    return { subscriptions: host.list(source).map(infoMessage) };
  });
  unary('ReplayParked', async (request) => {
    const options = required(request.options, 'ReplayParked');
    const stopAt = options.stop_at_option === 'stop_at' ? toNumber(options.stop_at) : undefined;
    if (stopAt !== undefined && stopAt < 0) throw new InvalidArgumentError(`stop at must be zero or more messages, got ${stopAt}`);
    await host.replayParked(sourceOf(options, 'stream_identifier'), groupNameOf(options), stopAt);
    return {};
  });
  unary(
    'RestartSubsystem',
    async () => {
      await host.restart();
      return {};
    },
    'event_store.client.Empty',
    'event_store.client.Empty',
  );
  server.addMethod({
    kind: 'bidi',
    path: `/${SERVICE}/Read`,
    longLived: true,
    request: codecOf(`${PACKAGE}.ReadReq`),
    response: codecOf(`${PACKAGE}.ReadResp`),
    handle: (requests, responses, context) => consume(host, requests, responses, context),
  });
}

// ------------------------------------------------------------------ Read: one consumer

async function consume(host: PersistentSubscriptionHost, requests: AsyncIterable<Message>, responses: ResponseStream<Message>, context: CallContext): Promise<void> {
  const iterator = requests[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return;
  const options = first.value.options;
  if (first.value.content !== 'options' || !options) throw new InvalidArgumentError('a persistent subscription Read starts with its options');
  const source = sourceOf(options, 'stream_identifier');
  const group = groupNameOf(options);
  await host.ready(READY_WAIT_MS);
  const bufferSize = Number(options.buffer_size) > 0 ? Number(options.buffer_size) : DEFAULT_CONSUMER_BUFFER;
  const shape: ReadShape = { structuredIds: options.uuid_option?.content === 'structured' };

  // Deliveries that come before the confirmation is sent wait for it: it must be the first message.
  let confirmed = false;
  const early: Message[] = [];
  // One send at a time: concurrent sends on a stream that is not writable would each wait for
  // 'drain' with their own listeners (more than ten trip Node's MaxListenersExceededWarning).
  // The consumer's buffer size bounds how many deliveries queue here.
  let sending: Promise<void> = Promise.resolve();
  const send = (message: Message) => {
    sending = sending.then(() => responses.send(message)).catch(() => undefined);
  };
  let endCall!: (error: Error) => void;
  const ended = new Promise<never>((_resolve, reject) => (endCall = reject));
  ended.catch(() => undefined);
  const handle: ConsumerHandle = host.connect(
    source,
    group,
    bufferSize,
    {
      from: context.peer,
      connectionName: String(context.headers['connection-name'] ?? ''),
      username: usernameOf(context),
    },
    {
      deliver: (message, retryCount) => {
        const response = eventMessage(message, retryCount, shape);
        if (confirmed) send(response);
        else early.push(response);
      },
      end: (error) => endCall(error),
    },
  );
  try {
    await responses.send({ subscription_confirmation: { subscription_id: `${sourceName(source)}::${group}` } });
    confirmed = true;
    for (const response of early.splice(0)) send(response);
    const handleRequests = async () => {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        applyRequest(handle, next.value);
      }
    };
    await Promise.race([handleRequests(), ended]);
  } finally {
    handle.leave();
  }
}

function applyRequest(handle: ConsumerHandle, request: Message): void {
  if (request.content === 'ack') {
    handle.ack(idsOf(request.ack));
  } else if (request.content === 'nack') {
    handle.nack(idsOf(request.nack), nackActionOf(Number(request.nack.action ?? 0)), String(request.nack.reason ?? ''));
  } else {
    throw new InvalidArgumentError('after its options, a persistent subscription Read only takes acks and nacks');
  }
}

function idsOf(message: Message): string[] {
  const ids: string[] = [];
  for (const uuid of message.ids ?? []) {
    const id = uuidFromMessage(uuid);
    if (id) ids.push(id);
  }
  return ids;
}

function nackActionOf(action: number): NackAction {
  switch (action) {
    case 1:
      return 'park';
    case 3:
      return 'skip';
    case 4:
      return 'stop';
    // Retry, and Unknown (the server decides: retry, like KurrentDB).
    default:
      return 'retry';
  }
}

function eventMessage(message: SubscriptionMessage, retryCount: number, shape: ReadShape): Message {
  return {
    event: {
      event: recordedEventMessage(message.event, shape),
      ...(message.link ? { link: recordedEventMessage(message.link, shape) } : {}),
      commit_position: (message.link ?? message.event).position.commit,
      retry_count: retryCount,
    },
  };
}

function usernameOf(context: CallContext): string {
  const authorization = String(context.headers.authorization ?? '');
  if (!authorization.startsWith('Basic ')) return '';
  const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
  return decoded.slice(0, Math.max(0, decoded.indexOf(':')));
}

// ------------------------------------------------------------------ Create / Update requests

function groupRequestOf(options: Message | undefined, create: boolean): GroupRequest {
  const checked = required(options, create ? 'Create' : 'Update');
  const group = groupNameOf(checked);
  const settingsMessage = checked.settings ?? {};
  const settings = settingsOf(settingsMessage);
  if (checked.stream_option === 'all') {
    const all = checked.all ?? {};
    let startFrom: AllStart = { kind: 'start' };
    if (all.all_option === 'end') startFrom = { kind: 'end' };
    else if (all.all_option === 'position') {
      startFrom = { kind: 'position', position: { commit: toNumber(all.position?.commit_position), prepare: toNumber(all.position?.prepare_position) } };
    }
    const filter = create ? filterOf(all) : undefined;
    return { source: { kind: 'all' }, group, settings, startFrom, ...(filter ? { filter } : {}) };
  }
  let stream: string;
  let startFrom: StreamStart;
  if (checked.stream_option === 'stream') {
    stream = streamNameOf(checked.stream?.stream_identifier);
    const revisionOption = checked.stream?.revision_option;
    startFrom = revisionOption === 'end' ? { kind: 'end' } : revisionOption === 'revision' ? { kind: 'revision', revision: toNumber(checked.stream.revision) } : { kind: 'start' };
  } else {
    // The encoding the JS clients use: the stream in field 1, the start as a revision in the settings.
    stream = streamNameOf(checked.stream_identifier);
    const revision = toNumber(settingsMessage.revision);
    startFrom = revision >= LEGACY_END_REVISION ? { kind: 'end' } : revision === 0 ? { kind: 'start' } : { kind: 'revision', revision };
  }
  if (!stream) throw new InvalidArgumentError('a persistent subscription needs a stream (or $all)');
  if (startFrom.kind === 'revision' && !Number.isSafeInteger(startFrom.revision)) throw new InvalidArgumentError(`start revision ${startFrom.revision} is out of range`);
  return { source: { kind: 'stream', stream }, group, settings, startFrom };
}

function settingsOf(settings: Message): GroupSettings {
  const milliseconds = (oneof: string, ticksField: string, msField: string): number =>
    settings[oneof] === ticksField ? Math.round(toNumber(settings[ticksField]) / TICKS_PER_MS) : Number(settings[msField] ?? 0);
  return {
    resolveLinks: Boolean(settings.resolve_links),
    extraStatistics: Boolean(settings.extra_statistics),
    messageTimeoutMs: milliseconds('message_timeout', 'message_timeout_ticks', 'message_timeout_ms'),
    maxRetryCount: Number(settings.max_retry_count ?? 0),
    maxSubscriberCount: Number(settings.max_subscriber_count ?? 0),
    liveBufferSize: Number(settings.live_buffer_size ?? 0),
    readBatchSize: Number(settings.read_batch_size ?? 0),
    historyBufferSize: Number(settings.history_buffer_size ?? 0),
    checkpointAfterMs: milliseconds('checkpoint_after', 'checkpoint_after_ticks', 'checkpoint_after_ms'),
    minCheckpointCount: Number(settings.min_checkpoint_count ?? 0),
    maxCheckpointCount: Number(settings.max_checkpoint_count ?? 0),
    strategy: strategyOf(settings),
  };
}

function strategyOf(settings: Message): ConsumerStrategy {
  const named = String(settings.consumer_strategy ?? '');
  if (named) {
    const strategy = CONSUMER_STRATEGIES.find((candidate) => candidate.toLowerCase() === named.toLowerCase());
    if (!strategy) throw new InvalidArgumentError(`unknown consumer strategy '${named}'; use one of ${CONSUMER_STRATEGIES.join(', ')}`);
    return strategy;
  }
  const byNumber: ConsumerStrategy[] = ['DispatchToSingle', 'RoundRobin', 'Pinned'];
  const strategy = byNumber[Number(settings.named_consumer_strategy ?? 0)];
  if (!strategy) throw new InvalidArgumentError(`unknown consumer strategy number ${String(settings.named_consumer_strategy)}`);
  return strategy;
}

function filterOf(all: Message): AllFilterDefinition | undefined {
  if (all.filter_option !== 'filter' || !all.filter) return undefined;
  const on = all.filter.filter === 'event_type' ? 'event-type' : 'stream';
  const expression = on === 'stream' ? all.filter.stream_identifier : all.filter.event_type;
  const regex = String(expression?.regex ?? '');
  const prefixes: string[] = (expression?.prefix ?? []).map(String);
  return { on, prefixes: regex ? [] : prefixes, ...(regex ? { regex } : {}) };
}

// ------------------------------------------------------------------ shared

function required(options: Message | undefined, call: string): Message {
  if (!options) throw new InvalidArgumentError(`${call} needs options`);
  return options;
}

function groupNameOf(options: Message): string {
  const group = String(options.group_name ?? '');
  if (!group) throw new InvalidArgumentError('a persistent subscription needs a group name');
  return group;
}

/** The group's source from an options message: `all`, or the stream identifier in `streamField`. */
function sourceOf(options: Message, streamField: string): GroupSource {
  if (options.stream_option === 'all') return { kind: 'all' };
  const stream = streamNameOf(options[streamField]);
  if (!stream) throw new InvalidArgumentError('a persistent subscription needs a stream (or $all)');
  if (stream === '$all') return { kind: 'all' };
  return { kind: 'stream', stream };
}

function infoMessage(info: GroupInfo): Message {
  const { definition, statistics } = info;
  const settings = definition.settings;
  return {
    event_source: sourceName(definition.source),
    group_name: definition.group,
    status: info.status,
    connections: info.consumers.map((consumer) => ({
      from: consumer.from,
      username: consumer.username,
      average_items_per_second: 0,
      total_items: consumer.delivered,
      count_since_last_measurement: 0,
      observed_measurements: [],
      available_slots: Math.max(0, consumer.bufferSize - consumer.inFlight),
      in_flight_messages: consumer.inFlight,
      connection_name: consumer.connectionName,
    })),
    average_per_second: info.averagePerSecond,
    total_items: statistics.deliveredCount,
    count_since_last_measurement: info.countSinceLastMeasurement,
    last_checkpointed_event_position: formatGroupPosition(statistics.checkpoint?.position as never),
    last_known_event_position: formatGroupPosition(statistics.lastRead?.position as never),
    resolve_link_tos: settings.resolveLinks,
    start_from: formatStart(definition),
    message_timeout_milliseconds: settings.messageTimeoutMs,
    extra_statistics: settings.extraStatistics,
    max_retry_count: settings.maxRetryCount,
    live_buffer_size: settings.liveBufferSize,
    buffer_size: settings.historyBufferSize,
    read_batch_size: settings.readBatchSize,
    check_point_after_milliseconds: settings.checkpointAfterMs,
    min_check_point_count: settings.minCheckpointCount,
    max_check_point_count: settings.maxCheckpointCount,
    read_buffer_count: statistics.caughtUp ? 0 : statistics.bufferedCount,
    live_buffer_count: statistics.caughtUp ? statistics.bufferedCount : 0,
    retry_buffer_count: statistics.retryCount,
    total_in_flight_messages: statistics.inFlightCount,
    outstanding_messages_count: statistics.outstandingCount,
    named_consumer_strategy: settings.strategy,
    max_subscriber_count: settings.maxSubscriberCount,
    parked_message_count: info.parkedCount,
  };
}
