// Simulated time for a whole cluster in one process. Every timer, message delivery and disk
// completion of a run is an event here, ordered by (time, insertion sequence), so two runs that
// schedule the same events in the same order execute them in the same order: nothing depends on
// the wall clock or on the heap's internal layout.
//
// The code under simulation is async: its promises settle over an in-memory file system without
// real I/O, but only once the microtask queue runs. `runUntil` and `runWhile` therefore let every
// pending promise continuation run after each event before they take the next one, so an event's
// whole async aftermath (including the events it schedules) happens "at" that event's time.

export type TimerId = number & { readonly timerIdBrand: unique symbol };

export interface SchedulerOptions {
  /** Called just before each event runs; a run can keep the recent tail to print on failure. */
  onEvent?: (timeMs: number, label: string) => void;
}

export interface RunOptions {
  /** The run fails with an Error once it would run more events than this (livelock guard). */
  maxEvents?: number;
}

interface ScheduledEvent {
  readonly timeMs: number;
  /** Insertion order; breaks ties between events at the same time, and doubles as the TimerId. */
  readonly sequence: number;
  readonly action: () => void;
  readonly label: string;
  cancelled: boolean;
}

const MAX_EVENTS_DEFAULT = 10_000_000;

/** Below this many cancelled entries the heap is never rebuilt; rebuilding tiny heaps is waste. */
const COMPACTION_CANCELLED_MIN = 1024;

function runsBefore(left: ScheduledEvent, right: ScheduledEvent): boolean {
  return left.timeMs < right.timeMs || (left.timeMs === right.timeMs && left.sequence < right.sequence);
}

/**
 * Lets every queued promise continuation run. Node empties the microtask queue before it runs the
 * next macrotask, so once a setImmediate callback fires, every chain that was runnable has run to
 * its next real wait. (A fixed number of `await Promise.resolve()` rounds is not enough: a chain of
 * N awaits needs N rounds, and each `await` of a native promise costs more than one.)
 */
function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

function assertTimeMs(timeMs: number, name: string): void {
  if (!Number.isSafeInteger(timeMs) || timeMs < 0) {
    throw new RangeError(`${name} is a non-negative integer number of milliseconds, got ${timeMs}`);
  }
}

export class Scheduler {
  private currentTimeMs = 0;
  private nextSequence = 0;
  /** A binary min-heap by (timeMs, sequence). Cancelled events stay in it until they surface. */
  private readonly heap: ScheduledEvent[] = [];
  private readonly live = new Map<number, ScheduledEvent>();
  private cancelledInHeap = 0;
  private runningAction = false;
  private running = false;
  private readonly onEvent: ((timeMs: number, label: string) => void) | undefined;

  constructor(options: SchedulerOptions = {}) {
    this.onEvent = options.onEvent;
  }

  /** Simulated time in milliseconds since the run started. Never decreases. */
  get now(): number {
    return this.currentTimeMs;
  }

  /** How many events are scheduled and not cancelled. */
  get pending(): number {
    return this.live.size;
  }

  /** When the next event will run, or undefined when none is scheduled. */
  get nextEventTimeMs(): number | undefined {
    return this.peek()?.timeMs;
  }

  /** Schedules `action` at absolute time `timeMs`, which must not be in the past. */
  at(timeMs: number, action: () => void, label = ''): TimerId {
    assertTimeMs(timeMs, 'an event time');
    if (timeMs < this.currentTimeMs) {
      throw new RangeError(`cannot schedule ${label || 'an event'} at ${timeMs} ms: it is already ${this.currentTimeMs} ms`);
    }
    const event: ScheduledEvent = { timeMs, sequence: this.nextSequence++, action, label, cancelled: false };
    this.live.set(event.sequence, event);
    this.push(event);
    return event.sequence as TimerId;
  }

  /** Schedules `action` `delayMs` after now (0 runs it after everything already due now). */
  after(delayMs: number, action: () => void, label = ''): TimerId {
    assertTimeMs(delayMs, 'a delay');
    return this.at(this.currentTimeMs + delayMs, action, label);
  }

  /** Cancels a pending event. Returns false if it already ran or was cancelled (not an error). */
  cancel(id: TimerId): boolean {
    const event = this.live.get(id);
    if (event === undefined) return false;
    this.live.delete(id);
    event.cancelled = true;
    this.cancelledInHeap++;
    this.compactIfMostlyCancelled();
    return true;
  }

  /**
   * Runs the earliest event synchronously, advancing now to its time. Does not drain promise
   * continuations; async code under simulation wants `runUntil` or `runWhile`.
   */
  runNext(): boolean {
    if (this.runningAction || this.running) throw new Error('runNext() called while the scheduler is running');
    return this.runEarliest();
  }

  private runEarliest(): boolean {
    const event = this.popLive();
    if (event === undefined) return false;
    this.live.delete(event.sequence);
    this.currentTimeMs = event.timeMs;
    this.onEvent?.(event.timeMs, event.label);
    this.runningAction = true;
    try {
      event.action();
    } finally {
      this.runningAction = false;
    }
    return true;
  }

  /**
   * Runs every event due at or before `timeMs` in order, letting promise continuations run after
   * each one, then sets now to `timeMs`. Returns how many events ran.
   */
  async runUntil(timeMs: number, options: RunOptions = {}): Promise<number> {
    assertTimeMs(timeMs, 'runUntil() time');
    if (timeMs < this.currentTimeMs) {
      throw new RangeError(`runUntil(${timeMs}) is in the past: it is already ${this.currentTimeMs} ms`);
    }
    return this.run(() => true, timeMs, options);
  }

  /**
   * Runs events in order while `condition()` holds (checked before each event, after continuations
   * have run) and the next event is due at or before `limitMs`, an absolute simulated time. If the
   * condition still holds when no event is due by `limitMs`, now becomes `limitMs`; if it turned
   * false, now stays at the event that falsified it. Returns how many events ran; the caller checks
   * the condition to learn which way it ended.
   */
  async runWhile(condition: () => boolean, limitMs: number, options: RunOptions = {}): Promise<number> {
    assertTimeMs(limitMs, 'runWhile() limit');
    if (limitMs < this.currentTimeMs) {
      throw new RangeError(`runWhile() limit ${limitMs} is in the past: it is already ${this.currentTimeMs} ms`);
    }
    return this.run(condition, limitMs, options);
  }

  private async run(condition: () => boolean, limitMs: number, options: RunOptions): Promise<number> {
    const maxEvents = options.maxEvents ?? MAX_EVENTS_DEFAULT;
    if (this.running || this.runningAction) throw new Error('the scheduler is already running');
    this.running = true;
    try {
      // Work the caller started before this call (an append it did not await) schedules its
      // events first, exactly as it would after an event.
      await drainMicrotasks();
      let eventsRun = 0;
      while (condition()) {
        const next = this.peek();
        if (next === undefined || next.timeMs > limitMs) {
          this.currentTimeMs = limitMs;
          break;
        }
        if (eventsRun >= maxEvents) {
          throw new Error(
            `more than ${maxEvents} events before ${limitMs} ms (now ${this.currentTimeMs} ms, next: ${next.label || 'unlabelled'}): livelock?`,
          );
        }
        this.runEarliest();
        eventsRun++;
        await drainMicrotasks();
      }
      return eventsRun;
    } finally {
      this.running = false;
    }
  }

  private peek(): ScheduledEvent | undefined {
    this.discardCancelledTop();
    return this.heap[0];
  }

  private popLive(): ScheduledEvent | undefined {
    this.discardCancelledTop();
    return this.pop();
  }

  private discardCancelledTop(): void {
    while (this.heap[0]?.cancelled === true) {
      this.pop();
      this.cancelledInHeap--;
    }
  }

  /**
   * Rebuilds the heap without cancelled events once they are the majority, so a node that resets
   * its election timer on every heartbeat does not grow the heap without bound. Extraction order
   * depends only on (timeMs, sequence), never on the layout, so rebuilding cannot change a run.
   */
  private compactIfMostlyCancelled(): void {
    if (this.cancelledInHeap < COMPACTION_CANCELLED_MIN || this.cancelledInHeap * 2 < this.heap.length) return;
    const kept = this.heap.filter((event) => !event.cancelled);
    this.heap.length = 0;
    for (const event of kept) this.push(event);
    this.cancelledInHeap = 0;
  }

  private push(event: ScheduledEvent): void {
    const heap = this.heap;
    heap.push(event);
    let index = heap.length - 1;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as ScheduledEvent;
      if (!runsBefore(event, parent)) break;
      heap[index] = parent;
      index = parentIndex;
    }
    heap[index] = event;
  }

  private pop(): ScheduledEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let index = 0;
    while (true) {
      const leftIndex = 2 * index + 1;
      if (leftIndex >= heap.length) break;
      const rightIndex = leftIndex + 1;
      const left = heap[leftIndex] as ScheduledEvent;
      const right = heap[rightIndex];
      const earlierIndex = right !== undefined && runsBefore(right, left) ? rightIndex : leftIndex;
      const earlier = heap[earlierIndex] as ScheduledEvent;
      if (!runsBefore(earlier, last)) break;
      heap[index] = earlier;
      index = earlierIndex;
    }
    heap[index] = last;
    return top;
  }
}
