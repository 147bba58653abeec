/**
 * The newest entries of a log, by index (a Raft index, or the order records were applied in), at
 * most `capacity` of them and, past the newest one, at most `maxBytes` (as `sizeOf` counts them):
 * a count alone would let large entries hold gigabytes. Appends are contiguous and a truncation
 * cuts a suffix, so the entries held are always one run ending at the newest: each lives in the
 * slot `index % capacity` of a ring. Nothing is hashed, and nothing is reallocated as entries
 * come and go — a Map with the same churn rehashes itself every `capacity` appends. Each slot's
 * weight is kept beside it, so dropping the oldest entry does not reach into it (long out of the
 * CPU's caches by then: that cost a leader about 1 µs per append).
 */
export class RecentEntries<E> {
  private readonly slots: (E | undefined)[];
  private readonly weights: Float64Array;
  /** Index of the oldest entry held; the run is empty while `last < first`. */
  private first = 1;
  private last = 0;
  private heldBytes = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
    private readonly sizeOf: (entry: E) => number = () => 0,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`the capacity must be a positive integer, not ${capacity}`);
    if (!(maxBytes >= 0)) throw new RangeError(`the byte budget must be a number of bytes, not ${maxBytes}`);
    this.slots = new Array<E | undefined>(capacity);
    this.weights = new Float64Array(capacity);
  }

  get size(): number {
    return this.last - this.first + 1;
  }

  /** What the entries held weigh, as `sizeOf` counts them. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Index of the oldest entry held (meaningless while empty). */
  get firstIndex(): number {
    return this.first;
  }

  /**
   * Holds `entry` as the newest, dropping the oldest past the capacity or the byte budget (the
   * newest is held whatever it weighs). An index that does not follow the newest held starts a
   * new run (the entries before it are forgotten).
   */
  push(index: number, entry: E): void {
    if (index !== this.last + 1 || this.size === 0) {
      this.forgetAll();
      this.first = index;
      this.last = index - 1;
    }
    // When the ring is full, the slot about to be written is the oldest's.
    if (this.size === this.capacity) this.dropOldest();
    const slot = index % this.capacity;
    const weight = this.sizeOf(entry);
    this.slots[slot] = entry;
    this.weights[slot] = weight;
    this.heldBytes += weight;
    this.last = index;
    while (this.heldBytes > this.maxBytes && this.first < this.last) this.dropOldest();
  }

  get(index: number): E | undefined {
    if (index < this.first || index > this.last) return undefined;
    return this.slots[index % this.capacity];
  }

  /** Forgets every entry after `index`. */
  truncateAfter(index: number): void {
    if (index >= this.last) return;
    for (let dropped = Math.max(index + 1, this.first); dropped <= this.last; dropped++) this.forgetSlot(dropped);
    this.last = Math.max(index, this.first - 1);
  }

  private dropOldest(): void {
    this.forgetSlot(this.first);
    this.first++;
  }

  private forgetSlot(index: number): void {
    const slot = index % this.capacity;
    this.heldBytes -= this.weights[slot]!;
    this.weights[slot] = 0;
    this.slots[slot] = undefined;
  }

  private forgetAll(): void {
    for (let held = this.first; held <= this.last; held++) this.forgetSlot(held);
    this.last = this.first - 1;
    this.heldBytes = 0;
  }
}
