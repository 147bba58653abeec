import { ID_BYTES, IdempotencyWindow, type IdempotencyWindowLimits, type WrittenBatch } from './idempotency-window.js';
import type { WriteFacts } from './written-batches.js';

const INITIAL_BATCHES = 1024;
const COMMITTED = Promise.resolve();

/**
 * What a replica that does not lead keeps of the newest committed writes, so that it can build
 * the idempotency window when it comes to lead: per write its stream, ids, revision and
 * positions, in typed arrays written in log order and overwritten oldest first, bounded by the
 * window's event count. Keeping a follower's window itself current cost a hash-table insertion
 * and removal and three objects per write it applied; this costs a copy of the ids, and building
 * the window from 100,000 of them takes about a tenth of a second, with no read of the log.
 */
export class WrittenIdRing {
  private readonly maxEvents: number;
  /** Slots for batches and for ids; both grow by doubling up to what `maxEvents` needs. */
  private batchSlots: number;
  private idSlots: number;
  private ids: Uint8Array;
  private streams: (string | undefined)[];
  /** Per batch: where its ids start (a count of ids ever written), how many, and its facts. */
  private idStarts: Float64Array;
  private counts: Uint32Array;
  private firstRevisions: Float64Array;
  private commitPositions: Float64Array;
  private lastPreparePositions: Float64Array;
  private createdMicros: Float64Array;
  private softDeleted: Uint8Array;
  /** Batches and ids ever written; the kept ones are the newest `batchesWritten - oldest`. */
  private batchesWritten = 0;
  private oldest = 0;
  private idsWritten = 0;
  private eventsKept = 0;
  /** Offsets 0, 16, 32... of ids stored one after another (see `add`). */
  private readonly contiguous: number[] = [];

  constructor(readonly limits: IdempotencyWindowLimits) {
    this.maxEvents = limits.maxEvents;
    this.batchSlots = Math.max(1, Math.min(INITIAL_BATCHES, this.maxEvents));
    this.idSlots = this.batchSlots;
    this.ids = new Uint8Array(this.idSlots * ID_BYTES);
    this.streams = new Array<string | undefined>(this.batchSlots);
    this.idStarts = new Float64Array(this.batchSlots);
    this.counts = new Uint32Array(this.batchSlots);
    this.firstRevisions = new Float64Array(this.batchSlots);
    this.commitPositions = new Float64Array(this.batchSlots);
    this.lastPreparePositions = new Float64Array(this.batchSlots);
    this.createdMicros = new Float64Array(this.batchSlots);
    this.softDeleted = new Uint8Array(this.batchSlots);
  }

  /** Events remembered. */
  get size(): number {
    return this.eventsKept;
  }

  /**
   * Records a committed write (after every earlier one), forgetting the oldest past the bound: its
   * `count` ids are the 16 bytes at `offsets[first..first+count)` of `source`, each moved by `delta`.
   */
  record(batch: WriteFacts, source: Uint8Array, offsets: readonly number[], first: number, count: number, delta: number): void {
    if (count === 0) return;
    // A write larger than the whole window leaves nothing behind, as the window itself does.
    if (count > this.maxEvents) {
      this.clear();
      return;
    }
    while (this.eventsKept + count > this.maxEvents) this.dropOldest();
    this.ensureRoom(count);
    const slot = this.batchesWritten % this.batchSlots;
    this.streams[slot] = batch.stream;
    this.idStarts[slot] = this.idsWritten;
    this.counts[slot] = count;
    this.firstRevisions[slot] = batch.firstRevision;
    this.commitPositions[slot] = batch.commitPosition;
    this.lastPreparePositions[slot] = batch.lastPreparePosition;
    this.createdMicros[slot] = batch.createdMicros;
    this.softDeleted[slot] = batch.softDeleted ? 1 : 0;
    for (let i = 0; i < count; i++) {
      const at = ((this.idsWritten + i) % this.idSlots) * ID_BYTES;
      const from = offsets[first + i]! + delta;
      for (let k = 0; k < ID_BYTES; k++) this.ids[at + k] = source[from + k]!;
    }
    this.idsWritten += count;
    this.batchesWritten++;
    this.eventsKept += count;
  }

  /** Records a committed write as the window holds it (its ids contiguous). */
  add(batch: WrittenBatch): void {
    const count = batch.ids.byteLength / ID_BYTES;
    while (this.contiguous.length < count) this.contiguous.push(this.contiguous.length * ID_BYTES);
    const { stream, firstRevision, commitPosition, lastPreparePosition, createdMicros } = batch;
    this.record({ stream, firstRevision, softDeleted: batch.priorView.softDeleted, commitPosition, lastPreparePosition, createdMicros }, batch.ids, this.contiguous, 0, count, 0);
  }

  /** A ring holding the committed writes a window remembers (a leader that stops leading keeps them so). */
  static fromWindow(window: IdempotencyWindow): WrittenIdRing {
    const ring = new WrittenIdRing(window.limits);
    window.forEachBatch((batch) => ring.add(batch));
    return ring;
  }

  /** An idempotency window holding what this ring holds (minus what is past the age limit at `nowMs`). */
  toWindow(limits: IdempotencyWindowLimits, nowMs: number): IdempotencyWindow {
    const window = new IdempotencyWindow(limits);
    for (let batch = this.oldest; batch < this.batchesWritten; batch++) {
      const slot = batch % this.batchSlots;
      const count = this.counts[slot]!;
      const ids = new Uint8Array(count * ID_BYTES);
      for (let i = 0; i < count; i++) ids.set(this.idAt(this.idStarts[slot]! + i), i * ID_BYTES);
      const firstRevision = this.firstRevisions[slot]!;
      window.add({
        stream: this.streams[slot]!,
        ids,
        firstRevision,
        priorView: { lastRevision: firstRevision - 1, tombstoned: false, softDeleted: this.softDeleted[slot] === 1 },
        commitPosition: this.commitPositions[slot]!,
        lastPreparePosition: this.lastPreparePositions[slot]!,
        createdMicros: this.createdMicros[slot]!,
        committed: COMMITTED,
      });
    }
    window.evictExpired(nowMs);
    return window;
  }

  private idAt(id: number): Uint8Array {
    const at = (id % this.idSlots) * ID_BYTES;
    return this.ids.subarray(at, at + ID_BYTES);
  }

  private dropOldest(): void {
    const slot = this.oldest % this.batchSlots;
    this.eventsKept -= this.counts[slot]!;
    this.streams[slot] = undefined;
    this.oldest++;
  }

  private clear(): void {
    while (this.oldest < this.batchesWritten) this.dropOldest();
  }

  /** Makes room for one more batch of `count` ids (the bound on events is already kept). */
  private ensureRoom(count: number): void {
    const batchesNeeded = this.batchesWritten - this.oldest + 1;
    const idsNeeded = this.eventsKept + count;
    if (batchesNeeded <= this.batchSlots && idsNeeded <= this.idSlots) return;
    let batchSlots = this.batchSlots;
    while (batchSlots < batchesNeeded) batchSlots = Math.min(batchSlots * 2, this.maxEvents);
    let idSlots = this.idSlots;
    while (idSlots < idsNeeded) idSlots = Math.min(idSlots * 2, this.maxEvents);
    this.regrow(batchSlots, idSlots);
  }

  /** Moves what is kept into larger arrays, each entry at its count modulo the new size. */
  private regrow(batchSlots: number, idSlots: number): void {
    const ids = new Uint8Array(idSlots * ID_BYTES);
    const streams = new Array<string | undefined>(batchSlots);
    const idStarts = new Float64Array(batchSlots);
    const counts = new Uint32Array(batchSlots);
    const firstRevisions = new Float64Array(batchSlots);
    const commitPositions = new Float64Array(batchSlots);
    const lastPreparePositions = new Float64Array(batchSlots);
    const createdMicros = new Float64Array(batchSlots);
    const softDeleted = new Uint8Array(batchSlots);
    for (let batch = this.oldest; batch < this.batchesWritten; batch++) {
      const from = batch % this.batchSlots;
      const to = batch % batchSlots;
      streams[to] = this.streams[from];
      idStarts[to] = this.idStarts[from]!;
      counts[to] = this.counts[from]!;
      firstRevisions[to] = this.firstRevisions[from]!;
      commitPositions[to] = this.commitPositions[from]!;
      lastPreparePositions[to] = this.lastPreparePositions[from]!;
      createdMicros[to] = this.createdMicros[from]!;
      softDeleted[to] = this.softDeleted[from]!;
    }
    // The ids kept follow one another from the oldest batch's first: they move in the few runs
    // that are contiguous in both rings, not one id (and one view) at a time.
    const firstId = this.oldest < this.batchesWritten ? this.idStarts[this.oldest % this.batchSlots]! : this.idsWritten;
    copyRingRun(this.ids, this.idSlots, ids, idSlots, firstId, this.idsWritten);
    this.batchSlots = batchSlots;
    this.idSlots = idSlots;
    this.ids = ids;
    this.streams = streams;
    this.idStarts = idStarts;
    this.counts = counts;
    this.firstRevisions = firstRevisions;
    this.commitPositions = commitPositions;
    this.lastPreparePositions = lastPreparePositions;
    this.createdMicros = createdMicros;
    this.softDeleted = softDeleted;
  }
}

/** Copies ids `first` to `end` (exclusive, counted since the ring began) from one ring of 16-byte slots to another. */
function copyRingRun(from: Uint8Array, fromSlots: number, to: Uint8Array, toSlots: number, first: number, end: number): void {
  let id = first;
  while (id < end) {
    const source = id % fromSlots;
    const target = id % toSlots;
    const run = Math.min(end - id, fromSlots - source, toSlots - target);
    to.set(from.subarray(source * ID_BYTES, (source + run) * ID_BYTES), target * ID_BYTES);
    id += run;
  }
}
