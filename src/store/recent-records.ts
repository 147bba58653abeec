import type { LogRecord } from '../storage/record-frame.js';

/**
 * The last N applied records, kept in memory so that reads of fresh events (the common case for
 * subscriptions) skip the file system. Records arrive in log order, so a ring buffer holds them
 * sorted by position and a binary search finds one.
 */
export class RecentRecords {
  private readonly ring: (LogRecord | undefined)[];
  /** Index of the oldest record. */
  private start = 0;
  private count = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<LogRecord | undefined>(capacity);
  }

  add(record: LogRecord): void {
    const at = (this.start + this.count) % this.capacity;
    this.ring[at] = record;
    if (this.count < this.capacity) this.count++;
    else this.start = (this.start + 1) % this.capacity;
  }

  get(position: number): LogRecord | undefined {
    let low = 0;
    let high = this.count - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const record = this.ring[(this.start + middle) % this.capacity]!;
      if (record.position === position) return record;
      if (record.position < position) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  clear(): void {
    this.ring.fill(undefined);
    this.start = 0;
    this.count = 0;
  }
}
