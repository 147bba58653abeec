import { randomUUID } from 'node:crypto';
import {
  PersistentSubscriptionDroppedError,
  PersistentSubscriptionExistsError,
  PersistentSubscriptionNotFoundError,
  StoreUnavailableError,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
} from '../../errors.js';
import type { EventStore } from '../../store/event-store.js';
import { CONFIG_EVENT_TYPE, CONFIG_STREAM, decodeConfig, encodeConfig, groupKey, parkedStreamOf, sourceName, validateDefinition, type GroupDefinition, type GroupSource } from './durable-state.js';
import { GroupRuntime, type ConsumerDescription, type ConsumerHandle, type ConsumerSink, type GroupInfo, type HostEnvironment } from './group-runtime.js';

const CONFIG_FOLLOW_INTERVAL_MS = 1000;
const NOT_SERVING = 'persistent subscriptions are not being served by this node right now (starting, stopping, or not the leader); retry shortly';

/** What a client asks for when it creates or updates a group; the host fills in the rest. */
export type GroupRequest = Omit<GroupDefinition, 'resolvedStart' | 'generation'>;

/**
 * All persistent subscription groups of this node, hosted while it may write (a single node
 * always; in a cluster, the leader). The definitions live in one system stream, each group's ack
 * state and parked messages in its own: a node that starts hosting (at start-up, or on becoming
 * leader) reads them back from the log and carries on where the previous host stopped.
 * Management calls are applied one at a time.
 */
export class PersistentSubscriptionHost {
  private readonly groups = new Map<string, GroupRuntime>();
  private configRevision = -1;
  private state: 'stopped' | 'starting' | 'running' | 'stopping' = 'stopped';
  private serial: Promise<unknown> = Promise.resolve();
  /** Counts the times hosting started, and when the last one began: a new epoch reads the groups' state afresh. */
  private epochNumber = 0;
  private configTimer: { cancel(): void } | undefined;
  private readonly readyWaiters = new Set<() => void>();
  private readonly stoppedGroupsWriting: Promise<void>[] = [];
  private epochStartedAt = 0;

  constructor(
    private readonly store: EventStore,
    /** Real time and timers by default; the simulator passes its own; a cluster adds confirmLeadership. */
    private readonly environment: HostEnvironment = nodeHostEnvironment(),
  ) {}

  get running(): boolean {
    return this.state === 'running';
  }

  /**
   * Resolves once the groups are hosted, waiting up to `timeoutMs` (a node that just became leader
   * starts hosting within moments); then fails with a retryable "unavailable".
   */
  async ready(timeoutMs: number): Promise<void> {
    if (this.state === 'running') return;
    await new Promise<void>((resolve, reject) => {
      const waiter = () => {
        timer.cancel();
        resolve();
      };
      const timer = this.environment.schedule(timeoutMs, () => {
        this.readyWaiters.delete(waiter);
        reject(new StoreUnavailableError(NOT_SERVING));
      });
      this.readyWaiters.add(waiter);
    });
  }

  get epoch(): { number: number; startedAt: number } {
    return { number: this.epochNumber, startedAt: this.epochStartedAt };
  }

  /** Loads the definitions and starts every group (in a cluster, once leadership is confirmed). */
  start(): Promise<void> {
    return this.serially(async () => {
      if (this.state === 'running' || this.state === 'starting') return;
      this.state = 'starting';
      try {
        // A group stopped without a handover may still have an ack state on its way into the log
        // (waiting for this node to lead again): let it land first, or this epoch would load the
        // state before it and deliver again what it acknowledged.
        await Promise.allSettled(this.stoppedGroupsWriting.splice(0));
        this.epochNumber++;
        this.epochStartedAt = this.environment.now();
        await this.environment.confirmLeadership?.();
        const { revision, definitions } = await this.readConfig();
        this.configRevision = revision;
        for (const definition of definitions) await this.startGroup(definition);
        this.state = 'running';
        this.followConfig();
        for (const waiter of [...this.readyWaiters]) waiter();
        this.readyWaiters.clear();
      } catch (error) {
        await this.stopGroups(false, new StoreUnavailableError('persistent subscriptions could not start'));
        this.state = 'stopped';
        throw error;
      }
    });
  }

  /**
   * Stops hosting. Graceful (the node stops or hands leadership over): acknowledgements received
   * so far are committed first. Either way consumers' calls end with a retryable error, so the
   * clients resubscribe (on the new leader, in a cluster).
   */
  stop(graceful: boolean, reason: string): Promise<void> {
    return this.serially(async () => {
      if (this.state === 'stopped') return;
      this.state = 'stopping';
      this.configTimer?.cancel();
      this.configTimer = undefined;
      await this.stopGroups(graceful, new StoreUnavailableError(reason));
      this.state = 'stopped';
    });
  }

  async create(request: GroupRequest): Promise<void> {
    await this.serially(async () => {
      this.assertRunning();
      await this.resync();
      const key = groupKey(request.source, request.group);
      if (this.groups.has(key)) throw new PersistentSubscriptionExistsError(sourceName(request.source), request.group);
      const definition: GroupDefinition = { ...request, generation: this.environment.newId(), resolvedStart: await this.resolveStart(request) };
      validateDefinition(definition);
      await this.saveConfig([...this.definitions(), definition]);
      await this.startGroup(definition);
    });
  }

  /** Changes a group's settings; its consumers are dropped (the clients resubscribe) and it resumes from its ack state. */
  async update(request: GroupRequest): Promise<void> {
    await this.serially(async () => {
      this.assertRunning();
      await this.resync();
      const key = groupKey(request.source, request.group);
      const current = this.groups.get(key);
      if (!current) throw new PersistentSubscriptionNotFoundError(sourceName(request.source), request.group);
      const definition: GroupDefinition = {
        ...request,
        generation: current.definition.generation,
        resolvedStart: current.definition.resolvedStart,
        ...(request.source.kind === 'all' && current.definition.filter && !request.filter ? { filter: current.definition.filter } : {}),
      };
      validateDefinition(definition);
      await current.stop(true, new PersistentSubscriptionDroppedError(sourceName(request.source), request.group, 'the group was updated; subscribe again'));
      this.groups.delete(key);
      try {
        await this.saveConfig([...this.definitions(), definition]);
      } catch (error) {
        // The change did not happen: the group carries on as it was.
        await this.startGroup(current.definition);
        throw error;
      }
      await this.startGroup(definition);
    });
  }

  async delete(source: GroupSource, group: string): Promise<void> {
    await this.serially(async () => {
      this.assertRunning();
      await this.resync();
      const key = groupKey(source, group);
      const current = this.groups.get(key);
      if (!current) throw new PersistentSubscriptionNotFoundError(sourceName(source), group);
      await current.stop(false, new PersistentSubscriptionDroppedError(sourceName(source), group, 'the group was deleted'));
      this.groups.delete(key);
      await this.saveConfig(this.definitions());
      await this.truncateParked(source, group);
    });
  }

  connect(source: GroupSource, group: string, bufferSize: number, description: ConsumerDescription, sink: ConsumerSink): ConsumerHandle {
    this.assertRunning();
    return this.group(source, group).connect(bufferSize, description, sink);
  }

  info(source: GroupSource, group: string): GroupInfo {
    this.assertRunning();
    return this.group(source, group).info();
  }

  list(source?: GroupSource): GroupInfo[] {
    this.assertRunning();
    const wanted = source ? sourceName(source) : undefined;
    return [...this.groups.values()].filter((runtime) => wanted === undefined || sourceName(runtime.definition.source) === wanted).map((runtime) => runtime.info());
  }

  /** Every hosted group's figures, for metrics; empty while this node does not host. */
  figures(): ReturnType<GroupRuntime['figures']>[] {
    return this.state === 'running' ? [...this.groups.values()].map((runtime) => runtime.figures()) : [];
  }

  async replayParked(source: GroupSource, group: string, stopAt: number | undefined): Promise<void> {
    this.assertRunning();
    await this.group(source, group).replayParked(stopAt);
  }

  /** Stops every group gracefully and starts them again from the log. */
  async restart(): Promise<void> {
    await this.stop(true, 'the persistent subscriptions subsystem is restarting; subscribe again');
    await this.start();
  }

  // ------------------------------------------------------------------ internals

  private group(source: GroupSource, group: string): GroupRuntime {
    const runtime = this.groups.get(groupKey(source, group));
    if (!runtime) throw new PersistentSubscriptionNotFoundError(sourceName(source), group);
    return runtime;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new StoreUnavailableError(NOT_SERVING);
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.serial.then(work, work);
    this.serial = result.catch(() => undefined);
    return result;
  }

  private definitions(): GroupDefinition[] {
    return [...this.groups.values()].map((runtime) => runtime.definition);
  }

  private async startGroup(definition: GroupDefinition): Promise<void> {
    const runtime = new GroupRuntime(this.store, definition, this.environment);
    await runtime.start();
    this.groups.set(groupKey(definition.source, definition.group), runtime);
  }

  private async stopGroups(graceful: boolean, error: Error): Promise<void> {
    const runtimes = [...this.groups.values()];
    this.groups.clear();
    await Promise.all(runtimes.map((runtime) => runtime.stop(graceful, error)));
    this.stoppedGroupsWriting.push(...runtimes.map((runtime) => runtime.settled()));
  }

  /** "End" means the end when the group is created: nothing written after that is skipped. */
  private async resolveStart(request: GroupRequest): Promise<GroupDefinition['resolvedStart']> {
    const start = request.startFrom;
    if (request.source.kind === 'stream') {
      if (start.kind === 'start') return { revision: 0 };
      if (start.kind === 'revision') return { revision: start.revision };
      try {
        const [last] = await this.store.readStream(request.source.stream, { direction: 'backwards', maxCount: 1 });
        return { revision: last ? last.revision + 1 : 0 };
      } catch (error) {
        if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return { revision: 0 };
        throw error;
      }
    }
    if (start.kind === 'start') return { position: { commit: 0, prepare: 0 } };
    if (start.kind === 'position') return { position: start.position };
    const end = this.store.position;
    return { position: { commit: end, prepare: end } };
  }

  /** The latest committed definitions (-1: none were ever written). */
  private async readConfig(): Promise<{ revision: number; definitions: GroupDefinition[] }> {
    try {
      const [last] = await this.store.readStream(CONFIG_STREAM, { direction: 'backwards', maxCount: 1 });
      return last ? { revision: last.revision, definitions: decodeConfig(last.data) } : { revision: -1, definitions: [] };
    } catch (error) {
      if (error instanceof StreamNotFoundError) return { revision: -1, definitions: [] };
      throw error;
    }
  }

  /**
   * Brings the hosted groups in line with the committed definitions. They differ after a change
   * whose write had an unknown outcome (no quorum in time) and committed later: the log is the
   * truth, so groups it adds start, groups it removes or changes stop (and start as changed).
   */
  private async resync(): Promise<void> {
    const { revision, definitions } = await this.readConfig();
    if (revision === this.configRevision) return;
    this.configRevision = revision;
    const wanted = new Map(definitions.map((definition) => [groupKey(definition.source, definition.group), definition]));
    for (const [key, runtime] of [...this.groups]) {
      const next = wanted.get(key);
      if (next && JSON.stringify(next) === JSON.stringify(runtime.definition)) continue;
      this.groups.delete(key);
      const { source, group } = runtime.definition;
      await runtime.stop(true, new PersistentSubscriptionDroppedError(sourceName(source), group, next ? 'the group was changed; subscribe again' : 'the group was deleted'));
      this.stoppedGroupsWriting.push(runtime.settled());
    }
    for (const [key, definition] of wanted) if (!this.groups.has(key)) await this.startGroup(definition);
  }

  /** Checks the committed definitions every second while hosting (see `resync`). */
  private followConfig(): void {
    this.configTimer = this.environment.schedule(CONFIG_FOLLOW_INTERVAL_MS, () => {
      this.configTimer = undefined;
      if (this.state !== 'running') return;
      this.serially(async () => {
        if (this.state === 'running') await this.resync();
      })
        .catch((error: unknown) => this.environment.log('warn', 'persistent subscriptions could not read their definitions; trying again', error))
        .finally(() => {
          if (this.state === 'running' && !this.configTimer) this.followConfig();
        });
    });
  }

  private async saveConfig(definitions: GroupDefinition[]): Promise<void> {
    const expectedState = this.configRevision < 0 ? 'no_stream' : this.configRevision;
    try {
      const result = await this.store.appendToSystemStreams([
        { stream: CONFIG_STREAM, expectedState, events: [{ type: CONFIG_EVENT_TYPE, data: encodeConfig(definitions), contentType: 'application/json' }] },
      ]);
      this.configRevision = result.streams[0]!.nextExpectedRevision;
    } catch (error) {
      // An earlier change whose outcome was unknown is still on its way into the log.
      if (error instanceof WrongExpectedVersionError) throw new StoreUnavailableError('an earlier change to the persistent subscriptions has not settled yet (its outcome was unknown); retry shortly');
      throw error;
    }
  }

  /** A deleted group's parked messages go with it. */
  private async truncateParked(source: GroupSource, group: string): Promise<void> {
    const parked = parkedStreamOf(source, group);
    let next = 0;
    try {
      const [last] = await this.store.readStream(parked, { direction: 'backwards', maxCount: 1 });
      next = last ? last.revision + 1 : 0;
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return;
      throw error;
    }
    if (next === 0) return;
    await this.store.appendToSystemStreams([{ stream: `$$${parked}`, events: [{ type: '$metadata', data: { $tb: next } }] }]);
  }
}

/** The host's clock and log on a real node: monotonic time, and a pino-style logger. */
export function nodeHostEnvironment(logger?: { info(o: object | string, m?: string): void; warn(o: object | string, m?: string): void; error(o: object | string, m?: string): void }): HostEnvironment {
  return {
    now: () => performance.now(),
    schedule: (delayMs, action) => {
      const timer = setTimeout(action, delayMs);
      return { cancel: () => clearTimeout(timer) };
    },
    newId: () => randomUUID(),
    log: (level, message, error) => {
      if (!logger) return;
      if (error === undefined) logger[level](message);
      else logger[level]({ err: error }, message);
    },
  };
}
