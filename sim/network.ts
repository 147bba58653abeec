// The simulated network between the nodes of one cluster. Each message becomes a scheduler event;
// whether it is dropped, how long it takes and whether it arrives twice are drawn from the
// SimRandom given to the constructor, in a fixed order per send, so the same seed and the same
// sequence of calls deliver the same messages at the same times.
//
// Timing model, chosen to match a real network:
// - Connectivity (partitions, isolation, cut links) is checked when a message is *sent*. A message
//   already in flight when a partition starts is still delivered, like a packet already on the wire.
// - Whether the receiver is up is checked when a message *arrives*: a crashed node receives nothing,
//   and a message sent to a node that is down but back up by arrival is delivered.
// - A node that is down sends nothing: late promise continuations of a crashed node may still call
//   send(), and those messages are dropped (counted as `down`).

import type { SimRandom } from './random.js';
import type { Scheduler } from './scheduler.js';

export interface NetworkFaults {
  /** Each copy of a message takes a delay drawn uniformly from [delayMsMin, delayMsMax]. */
  delayMsMin: number;
  delayMsMax: number;
  /** Chance that a message is lost. */
  dropProbability: number;
  /** Chance that a delivered message arrives once more, a further random delay later. */
  duplicateProbability: number;
  /**
   * When false, a message never arrives before one sent earlier on the same directed link (TCP-like
   * FIFO; duplicates excepted). When true, each message's delay is independent, so later messages
   * can overtake earlier ones.
   */
  reorder: boolean;
  /**
   * Chance that a copy is held up far longer (a stalled link, a long GC pause on the way): an
   * extra delay of 500 ms up to `longDelayMsMax`. Delayed votes and appends from an old term are
   * what term checks exist for.
   */
  longDelayProbability?: number;
  longDelayMsMax?: number;
  /**
   * When set, a duplicate arrives up to this much later than its original (a retransmission
   * after a long stall): old votes and appends show up when their term is long over.
   */
  staleDuplicateMsMax?: number;
}

export const networkFaultsNone: Readonly<NetworkFaults> = {
  delayMsMin: 1,
  delayMsMax: 1,
  dropProbability: 0,
  duplicateProbability: 0,
  reorder: false,
};

export type DropReason = 'random' | 'partition' | 'down';

export interface NetworkStats {
  sent: number;
  /** Copies handed to a receiver; a duplicated message counts twice. */
  delivered: number;
  dropped: Record<DropReason, number>;
  /** Messages for which a second copy was scheduled. */
  duplicated: number;
}

export type DeliverMessage<M> = (from: string, message: M) => void;

/** Group memberships of nodes not listed in a partition: they form one group together. */
const UNLISTED_GROUPS: ReadonlySet<number> = new Set([-1]);

function assertFaults(faults: NetworkFaults): void {
  const { delayMsMin, delayMsMax, dropProbability, duplicateProbability } = faults;
  if (!Number.isSafeInteger(delayMsMin) || !Number.isSafeInteger(delayMsMax) || delayMsMin < 0 || delayMsMax < delayMsMin) {
    throw new RangeError(`delays are integers with 0 <= delayMsMin <= delayMsMax, got ${delayMsMin}..${delayMsMax}`);
  }
  for (const [name, probability] of [['dropProbability', dropProbability], ['duplicateProbability', duplicateProbability]] as const) {
    if (!(probability >= 0 && probability <= 1)) throw new RangeError(`${name} is in [0, 1], got ${probability}`);
  }
}

export class SimNetwork<M> {
  private currentFaults: NetworkFaults;
  private readonly handlers = new Map<string, DeliverMessage<M>>();
  /** Every id ever registered; sending to any other id is a bug in the simulation, not a fault. */
  private readonly knownIds = new Set<string>();
  private readonly downIds = new Set<string>();
  /** The partition or bridge in force: each listed node's groups; two nodes talk if they share one. */
  private groupsById: Map<string, ReadonlySet<number>> | undefined;
  private readonly isolatedIds = new Set<string>();
  /** Directed cuts, from -> to. */
  private readonly cutLinks = new Map<string, Set<string>>();
  /** Latest arrival time scheduled per directed link, so FIFO mode never lets a message overtake. */
  private readonly lastArrivalMsByLink = new Map<string, Map<string, number>>();
  private readonly counts: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: { random: 0, partition: 0, down: 0 },
    duplicated: 0,
  };

  constructor(
    private readonly scheduler: Scheduler,
    private readonly random: SimRandom,
    faults: Partial<NetworkFaults> = {},
  ) {
    this.currentFaults = { ...networkFaultsNone, ...faults };
    assertFaults(this.currentFaults);
  }

  get faults(): Readonly<NetworkFaults> {
    return { ...this.currentFaults };
  }

  /** A snapshot of the counters. */
  get stats(): NetworkStats {
    return { ...this.counts, dropped: { ...this.counts.dropped } };
  }

  /** Changes some fault settings from now on; messages already in flight keep their schedule. */
  setFaults(faults: Partial<NetworkFaults>): void {
    const merged = { ...this.currentFaults, ...faults };
    assertFaults(merged);
    this.currentFaults = merged;
  }

  register(id: string, deliver: DeliverMessage<M>): void {
    if (this.handlers.has(id)) throw new Error(`node ${id} is already registered`);
    this.handlers.set(id, deliver);
    this.knownIds.add(id);
  }

  /**
   * Removes a node's handler, e.g. while a crashed node is rebuilt; it registers again on restart.
   * Messages that arrive meanwhile are dropped as `down`.
   */
  unregister(id: string): void {
    this.handlers.delete(id);
  }

  send(from: string, to: string, message: M): void {
    this.assertKnown(from);
    this.assertKnown(to);
    this.counts.sent++;
    if (this.downIds.has(from)) {
      this.counts.dropped.down++;
      return;
    }
    if (!this.canSend(from, to)) {
      this.counts.dropped.partition++;
      return;
    }
    const faults = this.currentFaults;
    if (this.random.chance(faults.dropProbability)) {
      this.counts.dropped.random++;
      return;
    }
    const arrivalMs = this.arrivalMs(from, to, this.scheduler.now + this.drawDelayMs());
    const label = `deliver ${from}->${to}`;
    this.scheduler.at(arrivalMs, () => this.deliver(from, to, message), label);
    if (this.random.chance(faults.duplicateProbability)) {
      this.counts.duplicated++;
      const staleMs = faults.staleDuplicateMsMax ? this.random.between(0, faults.staleDuplicateMsMax) : 0;
      this.scheduler.at(arrivalMs + this.drawDelayMs() + staleMs, () => this.deliver(from, to, message), `${label} (duplicate)`);
    }
  }

  /** Marks a node crashed: it receives and sends nothing until `up`. */
  down(id: string): void {
    this.assertKnown(id);
    this.downIds.add(id);
  }

  up(id: string): void {
    this.assertKnown(id);
    this.downIds.delete(id);
  }

  isUp(id: string): boolean {
    return !this.downIds.has(id);
  }

  /**
   * Splits the nodes into groups that cannot talk to each other (symmetric). Nodes not listed form
   * one more group together. Replaces any earlier partition or bridge; isolations and cut links stay.
   */
  partition(groups: readonly (readonly string[])[]): void {
    const groupsById = new Map<string, ReadonlySet<number>>();
    groups.forEach((group, groupIndex) => {
      for (const id of group) {
        if (groupsById.has(id)) throw new Error(`node ${id} is listed in two groups of a partition`);
        groupsById.set(id, new Set([groupIndex]));
      }
    });
    this.groupsById = groupsById;
  }

  /**
   * A partial partition: sides `a` and `b` cannot talk to each other, but `bridgeNode` talks to
   * both (the case where a node can see two halves that cannot see each other). Unlisted nodes
   * form a group of their own, as in `partition`, which this replaces.
   */
  bridge(a: readonly string[], b: readonly string[], bridgeNode: string): void {
    if (a.includes(bridgeNode) || b.includes(bridgeNode)) throw new Error(`bridge node ${bridgeNode} is listed on a side`);
    this.partition([a, b]);
    this.groupsById?.set(bridgeNode, new Set([0, 1]));
  }

  /** Cuts a node off from every other node, in both directions, on top of any partition. */
  isolate(id: string): void {
    this.isolatedIds.add(id);
  }

  /** Cuts one direction only: `from` can no longer reach `to`, but `to` still reaches `from`. */
  cutLink(from: string, to: string): void {
    let cutTargets = this.cutLinks.get(from);
    if (cutTargets === undefined) {
      cutTargets = new Set();
      this.cutLinks.set(from, cutTargets);
    }
    cutTargets.add(to);
  }

  /** Removes every partition, bridge, isolation and cut link. Crashed nodes stay down. */
  heal(): void {
    this.groupsById = undefined;
    this.isolatedIds.clear();
    this.cutLinks.clear();
  }

  /** Whether a message sent now from `from` to `to` would get through the connectivity faults. */
  canSend(from: string, to: string): boolean {
    if (this.cutLinks.get(from)?.has(to) === true) return false;
    // A node always reaches itself: partitions are between machines.
    if (from === to) return true;
    if (this.isolatedIds.has(from) || this.isolatedIds.has(to)) return false;
    if (this.groupsById === undefined) return true;
    const fromGroups = this.groupsById.get(from) ?? UNLISTED_GROUPS;
    const toGroups = this.groupsById.get(to) ?? UNLISTED_GROUPS;
    for (const group of fromGroups) if (toGroups.has(group)) return true;
    return false;
  }

  private deliver(from: string, to: string, message: M): void {
    const handler = this.handlers.get(to);
    if (handler === undefined || this.downIds.has(to)) {
      this.counts.dropped.down++;
      return;
    }
    this.counts.delivered++;
    handler(from, message);
  }

  private drawDelayMs(): number {
    const faults = this.currentFaults;
    const delayMs = this.random.between(faults.delayMsMin, faults.delayMsMax);
    const longProbability = faults.longDelayProbability ?? 0;
    if (longProbability > 0 && this.random.chance(longProbability)) return delayMs + this.random.between(500, Math.max(500, faults.longDelayMsMax ?? 3000));
    return delayMs;
  }

  /**
   * Records the arrival on its link and, in FIFO mode, holds it back to the link's latest arrival.
   * Equal times are enough: the scheduler runs same-time events in insertion order. The latest
   * arrival is tracked in reorder mode too, so switching to FIFO mid-run orders new messages after
   * every one already in flight.
   */
  private arrivalMs(from: string, to: string, drawnArrivalMs: number): number {
    let byTarget = this.lastArrivalMsByLink.get(from);
    if (byTarget === undefined) {
      byTarget = new Map();
      this.lastArrivalMsByLink.set(from, byTarget);
    }
    const lastArrivalMs = byTarget.get(to) ?? 0;
    const arrivalMs = this.currentFaults.reorder ? drawnArrivalMs : Math.max(drawnArrivalMs, lastArrivalMs);
    byTarget.set(to, Math.max(arrivalMs, lastArrivalMs));
    return arrivalMs;
  }

  private assertKnown(id: string): void {
    if (!this.knownIds.has(id)) throw new Error(`unknown node ${id}: register it first`);
  }
}
