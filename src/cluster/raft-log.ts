import type { Entry, EntryKind, Membership, TermRun } from '../consensus/types.js';
import type { Log } from '../storage/log.js';
import { RecordType, type LogRecord } from '../storage/record-frame.js';
import { EntryPositions, type EntryPositionsOptions } from './entry-positions.js';
import { RecentEntries } from '../storage/recent-entries.js';

/**
 * An entry's content as the log stores it: the record type and payload. The leader's own data
 * entries also carry the sealed frame the store built, so appending them copies nothing.
 */
export interface RecordBody {
  type: number;
  payload: Uint8Array;
  frame?: Uint8Array;
}

const RECENT_ENTRIES_MAX = 8192;
/** Past the newest entry, the recent entries hold at most this much: large entries are read back from the log instead. */
const RECENT_ENTRIES_MAX_BYTES = 32 * 1024 * 1024;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

/** What the replication core is started from, found by scanning the log. */
export interface RaftLogState {
  termRuns: TermRun[];
  lastIndex: number;
  configurations: { index: number; membership: Membership }[];
}

/**
 * The event log seen as Raft's log: entry `i` is the `i`-th record, at the same byte position on
 * every replica (the records are identical and written in the same order). Keeps the position of
 * every index (see EntryPositions) and the newest entries, so the leader ships recent entries
 * without reading the disk.
 */
export class RaftLog {
  private readonly positions: EntryPositions;
  private readonly recent: RecentEntries<Entry<RecordBody>>;
  /** Where the last `recentRecordAt` found its record: the store applies records in order, so the next one is usually next. */
  private nextLookup = 0;

  private constructor(private readonly log: Log, positionsOptions: EntryPositionsOptions, recentEntries: number) {
    this.positions = new EntryPositions((position) => log.recordLengthAt(position), positionsOptions);
    this.recent = new RecentEntries(recentEntries, RECENT_ENTRIES_MAX_BYTES, (entry) => (entry.payload.frame ?? entry.payload.payload).byteLength);
  }

  static async open(log: Log, positionsOptions: EntryPositionsOptions = {}, recentEntries = RECENT_ENTRIES_MAX): Promise<{ raftLog: RaftLog; state: RaftLogState }> {
    const raftLog = new RaftLog(log, positionsOptions, recentEntries);
    const termRuns: TermRun[] = [];
    const configurations: { index: number; membership: Membership }[] = [];
    let cursor = log.startPosition;
    if (cursor !== 0) throw new Error(`the log starts at ${cursor}; a replica needs the whole log from position 0`);
    while (cursor < log.writtenPosition) {
      const records = await log.read(cursor, READ_CHUNK_BYTES);
      if (records.length === 0) break;
      for (const record of records) {
        const expected = raftLog.positions.lastIndex + 1;
        if (record.index !== expected) {
          throw new Error(`the log's record at ${record.position} has index ${record.index}, expected ${expected}: it is not a replicated log`);
        }
        raftLog.positions.push(record.position);
        if (termRuns.length === 0 || termRuns.at(-1)!.term !== record.term) termRuns.push({ startIndex: record.index, term: record.term });
        if (record.type === RecordType.Configuration) configurations.push({ index: record.index, membership: decodeMembership(record.payload) });
      }
      cursor = records.at(-1)!.end;
    }
    return { raftLog, state: { termRuns, lastIndex: raftLog.lastIndex, configurations } };
  }

  get lastIndex(): number {
    return this.positions.lastIndex;
  }

  positionOf(index: number): number {
    if (!Number.isInteger(index) || index < 1 || index > this.lastIndex) throw new RangeError(`the log has no entry ${index} (last ${this.lastIndex})`);
    return this.positions.positionOf(index);
  }

  /** Where entry `index` ends (0 for index 0). */
  endOf(index: number): number {
    if (index === 0) return 0;
    if (index < this.lastIndex) return this.positions.positionOf(index + 1);
    if (index === this.lastIndex) return this.log.tailPosition;
    throw new RangeError(`the log has no entry ${index} (last ${this.lastIndex})`);
  }

  /**
   * Appends entries (contiguous after the last one); resolves once they are durable. Entries the
   * core made itself (no-op, configuration) get their payload here.
   */
  append(entries: readonly Entry<RecordBody | undefined>[]): Promise<void> {
    let durable: Promise<void> = Promise.resolve();
    for (const entry of entries) {
      if (entry.index !== this.lastIndex + 1) throw new Error(`appending entry ${entry.index} after ${this.lastIndex}: the log must stay contiguous`);
      const body = entry.payload ?? bodyOf(entry.kind, entry.membership);
      const ticket = body.frame ? this.log.appendFrame(body.frame, body.type, entry.term, entry.index) : this.log.append(body.type, entry.term, entry.index, body.payload);
      this.positions.push(ticket.position);
      // An entry that came with its body is held as it is (nothing changes an entry once made).
      this.recent.push(entry.index, entry.payload ? (entry as Entry<RecordBody>) : { ...entry, payload: body });
      durable = ticket.durable;
    }
    return durable;
  }

  /** The record starting at `position`, when it is among the recent entries held in memory. */
  recentRecordAt(position: number): LogRecord | undefined {
    const first = this.recent.firstIndex;
    const last = first + this.recent.size - 1;
    let found = 0;
    if (this.nextLookup >= first && this.nextLookup <= last && this.positions.positionOf(this.nextLookup) === position) {
      found = this.nextLookup;
    } else {
      // The entries held are a contiguous run ending at the last (see RecentEntries): search only
      // those, whose positions are the newest chunks' (in memory unless catch-up reads pushed them out).
      let low = first;
      let high = last;
      while (low <= high && found === 0) {
        const middle = (low + high) >> 1;
        const start = this.positions.positionOf(middle);
        if (start === position) found = middle;
        else if (start < position) low = middle + 1;
        else high = middle - 1;
      }
    }
    const entry = found === 0 ? undefined : this.recent.get(found);
    if (!entry) return undefined;
    this.nextLookup = found + 1;
    return { position, end: this.endOf(found), type: entry.payload.type, term: entry.term, index: found, payload: entry.payload.payload };
  }

  /** Removes every entry after `index` from the log. */
  async truncateAfter(index: number): Promise<void> {
    if (index >= this.lastIndex) return;
    const position = this.positionOf(index + 1);
    await this.log.truncateSuffix(position);
    this.positions.truncate(index);
    this.recent.truncateAfter(index);
  }

  /** `count` entries from `fromIndex` when all are among the recent ones in memory, else undefined. */
  recentEntries(fromIndex: number, count: number): Entry<RecordBody>[] | undefined {
    if (fromIndex < this.recent.firstIndex || fromIndex + count - 1 > this.lastIndex) return undefined;
    const entries: Entry<RecordBody>[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const entry = this.recent.get(fromIndex + i);
      if (!entry) return undefined;
      entries[i] = entry;
    }
    return entries;
  }

  /** `count` entries from `fromIndex`, from memory when recent, else from the log. */
  async entries(fromIndex: number, count: number): Promise<Entry<RecordBody>[]> {
    const entries: Entry<RecordBody>[] = [];
    let index = fromIndex;
    let synced = false;
    while (entries.length < count) {
      const cached = this.recent.get(index);
      if (cached) {
        entries.push(cached);
        index++;
        continue;
      }
      const records = await this.log.read(this.positionOf(index), READ_CHUNK_BYTES);
      if (records.length === 0) {
        // Appended but not yet written to the file: wait for the flush once.
        if (synced) throw new Error(`entry ${index} at ${this.positionOf(index)} cannot be read`);
        await this.log.sync();
        synced = true;
        continue;
      }
      for (const record of records) {
        if (entries.length === count) break;
        if (record.index !== index) throw new Error(`expected entry ${index} at ${record.position}, found ${record.index}`);
        entries.push(entryOf(record));
        index++;
      }
    }
    return entries;
  }
}

function bodyOf(kind: EntryKind, membership: Membership | undefined): RecordBody {
  if (kind === 'noop') return { type: RecordType.NoOp, payload: new Uint8Array(0) };
  if (kind === 'config' && membership) return { type: RecordType.Configuration, payload: encodeMembership(membership) };
  throw new Error(`a ${kind} entry needs a payload`);
}

function kindOf(type: number): EntryKind {
  if (type === RecordType.NoOp) return 'noop';
  if (type === RecordType.Configuration) return 'config';
  return 'data';
}

export function entryOf(record: LogRecord): Entry<RecordBody> {
  const kind = kindOf(record.type);
  const entry: Entry<RecordBody> = { index: record.index, term: record.term, kind, payload: { type: record.type, payload: record.payload } };
  if (kind === 'config') entry.membership = decodeMembership(record.payload);
  return entry;
}

export function encodeMembership(membership: Membership): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ voters: membership.voters, learners: membership.learners }));
}

export function decodeMembership(payload: Uint8Array): Membership {
  const parsed = JSON.parse(new TextDecoder().decode(payload)) as { voters?: unknown; learners?: unknown };
  const ids = (value: unknown): string[] => (Array.isArray(value) ? value.filter((id): id is string => typeof id === 'string') : []);
  return { voters: ids(parsed.voters), learners: ids(parsed.learners) };
}
