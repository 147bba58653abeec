/**
 * The newest entries of a Raft log, by index. Appends are contiguous and a truncation cuts a
 * suffix, so the entries held are always one run ending at the newest: each lives in the slot
 * `index % capacity` of a ring. Nothing is hashed, and nothing is reallocated as entries come
 * and go — a Map with the same churn rehashes itself every `capacity` appends.
 */
export class RecentEntries<E> {
  private readonly slots: (E | undefined)[];
  /** Index of the oldest entry held; the run is empty while `last < first`. */
  private first = 1;
  private last = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`the capacity must be a positive integer, not ${capacity}`);
    this.slots = new Array<E | undefined>(capacity);
  }

  get size(): number {
    return this.last - this.first + 1;
  }

  /** Index of the oldest entry held (meaningless while empty). */
  get firstIndex(): number {
    return this.first;
  }

  /**
   * Holds `entry` as the newest, dropping the oldest past the capacity. An index that does not
   * follow the newest held starts a new run (the entries before it are forgotten).
   */
  push(index: number, entry: E): void {
    if (index !== this.last + 1 || this.size === 0) {
      this.forgetAll();
      this.first = index;
    }
    this.slots[index % this.capacity] = entry;
    this.last = index;
    // The slot just written was the oldest's when the ring was full.
    if (this.size > this.capacity) this.first++;
  }

  get(index: number): E | undefined {
    if (index < this.first || index > this.last) return undefined;
    return this.slots[index % this.capacity];
  }

  /** Forgets every entry after `index`. */
  truncateAfter(index: number): void {
    if (index >= this.last) return;
    for (let dropped = Math.max(index + 1, this.first); dropped <= this.last; dropped++) this.slots[dropped % this.capacity] = undefined;
    this.last = Math.max(index, this.first - 1);
  }

  private forgetAll(): void {
    for (let held = this.first; held <= this.last; held++) this.slots[held % this.capacity] = undefined;
    this.last = this.first - 1;
  }
}
