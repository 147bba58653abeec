import { RecentEntries } from '../storage/recent-entries.js';
import type { LogRecord } from '../storage/record-frame.js';

export interface RecentRecordsLimits {
  /** Hold at most this many records. */
  maxRecords: number;
  /** Hold at most this many bytes of payload (the newest record is held whatever its size). */
  maxBytes: number;
}

/**
 * The newest applied records, kept in memory so that reads of fresh events (the common case for
 * subscriptions) skip the file system. Bounded by count and by bytes: large events fill the
 * budget with fewer records rather than memory with thousands of them. Records arrive in log
 * order, so the ring (by arrival number) holds them sorted by position and a binary search finds one.
 */
export class RecentRecords {
  private readonly ring: RecentEntries<LogRecord>;
  private added = 0;

  constructor(limits: RecentRecordsLimits) {
    this.ring = new RecentEntries<LogRecord>(limits.maxRecords, limits.maxBytes, (record) => record.payload.byteLength);
  }

  get bytes(): number {
    return this.ring.bytes;
  }

  add(record: LogRecord): void {
    this.ring.push(++this.added, record);
  }

  get(position: number): LogRecord | undefined {
    let low = this.ring.firstIndex;
    let high = low + this.ring.size - 1;
    while (low <= high) {
      const middle = low + ((high - low) >> 1);
      const record = this.ring.get(middle)!;
      if (record.position === position) return record;
      if (record.position < position) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }
}
