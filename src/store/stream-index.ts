import {
  INDEX_FORMAT_VERSION,
  MAX_RUN_LENGTH,
  runLastRevision,
  type IndexBackend,
  type IndexMeta,
  type RevisionRun,
  type RunDirection,
  type StreamRecord,
} from '../storage/index-backend.js';
import { RecordType, type LogRecord } from '../storage/record-frame.js';
import { decodeEventAt, forEachEventHeader } from './event-codec.js';
import { isMetastream, METADATA_EVENT_TYPE, streamOfMetastream, TOMBSTONE_EVENT_TYPE } from './stream-names.js';

/** Writes applied since the last flush, waiting to go to the backend. */
class MemTable {
  readonly streams = new Map<string, StreamRecord>();
  /** Per stream id, runs in revision order. */
  readonly runs = new Map<number, RevisionRun[]>();
  eventCount = 0;
}

/** What applying an event needs to know of it. */
export interface IndexedEventFacts {
  stream: string;
  revision: number;
  type: string;
}

/** Where one revision of a stream lives in the log. */
export interface RevisionLocation {
  revision: number;
  recordPosition: number;
  entryOffset: number;
}

const CLEAN_CACHE_MAX_STREAMS = 100_000;

/**
 * The derived index: stream records and where each revision lives, built by applying committed
 * log records in order. Recent changes live in a memtable and reach the backend in one atomic
 * commit per flush, together with the position up to which the index is valid — so after a crash
 * the index is simply behind, and replaying the log from its checkpoint brings it back.
 */
export class StreamIndex {
  private active = new MemTable();
  private flushing: MemTable | undefined;
  /** Stream records read from the backend, kept to spare a lookup on the write path. */
  private clean = new Map<string, StreamRecord>();
  private meta: IndexMeta;
  private flushInFlight: Promise<void> | undefined;

  constructor(private readonly backend: IndexBackend, meta: IndexMeta | undefined) {
    this.meta = meta ?? { formatVersion: INDEX_FORMAT_VERSION, checkpoint: 0, lastTerm: 0, lastIndex: 0, nextStreamId: 1 };
  }

  /** The index reflects every log record before this position. */
  get appliedPosition(): number {
    return this.meta.checkpoint;
  }

  get backendKind(): IndexBackend['kind'] {
    return this.backend.kind;
  }

  /** Events applied since the last flush started. */
  get unflushedEventCount(): number {
    return this.active.eventCount;
  }

  getStream(name: string): StreamRecord | undefined {
    const record = this.active.streams.get(name) ?? this.flushing?.streams.get(name) ?? this.clean.get(name);
    if (record) return record;
    const stored = this.backend.getStream(name);
    if (stored) this.cacheClean(name, stored);
    return stored;
  }

  private cacheClean(name: string, record: StreamRecord): void {
    if (this.clean.size >= CLEAN_CACHE_MAX_STREAMS) this.clean.clear();
    this.clean.set(name, record);
  }

  /** A record of the active memtable that may be changed. */
  private mutableStream(name: string): StreamRecord {
    let record = this.active.streams.get(name);
    if (record) return record;
    const existing = this.getStream(name);
    record = existing
      ? { ...existing }
      : { id: this.meta.nextStreamId++, lastRevision: -1, lastCommitPosition: -1, tombstoned: false, metadataJson: null };
    this.active.streams.set(name, record);
    return record;
  }

  /**
   * Applies one committed record. Records must come in log order, each exactly once. The write
   * path passes the headers of the events it just encoded (`known`), sparing their decoding.
   */
  apply(record: LogRecord, known?: { headers: readonly IndexedEventFacts[]; entryOffsets: readonly number[] }): void {
    if (record.position !== this.meta.checkpoint) {
      throw new Error(`index invariant: record at ${record.position} applied, but the index is at ${this.meta.checkpoint}`);
    }
    if (record.type === RecordType.Events) {
      if (known) {
        for (let i = 0; i < known.headers.length; i++) this.applyEvent(record, known.headers[i]!, known.entryOffsets[i]!);
      } else {
        forEachEventHeader(record.payload, (header) => this.applyEvent(record, header, header.entryOffset));
      }
      this.currentRun = undefined;
    }
    this.meta.checkpoint = record.end;
    this.meta.lastTerm = record.term;
    this.meta.lastIndex = record.index;
  }

  /** The run the previous event of the record being applied went to. */
  private currentRun: RevisionRun | undefined;

  private applyEvent(record: LogRecord, header: IndexedEventFacts, entryOffset: number): void {
    const stream = this.mutableStream(header.stream);
    stream.lastCommitPosition = record.position;
    if (header.type === TOMBSTONE_EVENT_TYPE) {
      stream.tombstoned = true;
      this.currentRun = undefined;
      return;
    }
    if (header.revision !== stream.lastRevision + 1) {
      throw new Error(`index invariant: '${header.stream}' revision ${header.revision} follows ${stream.lastRevision}`);
    }
    stream.lastRevision = header.revision;
    this.currentRun = this.extendRun(this.currentRun, stream.id, header.revision, record.position, entryOffset);
    this.active.eventCount++;
    if (isMetastream(header.stream) && header.type === METADATA_EVENT_TYPE) {
      const event = decodeEventAt(record.payload, entryOffset, record.position);
      this.mutableStream(streamOfMetastream(header.stream)).metadataJson = Buffer.from(event.data).toString('utf8');
    }
  }

  private extendRun(current: RevisionRun | undefined, streamId: number, revision: number, recordPosition: number, entryOffset: number): RevisionRun {
    let runs = this.active.runs.get(streamId);
    const last = current?.streamId === streamId ? current : runs?.at(-1);
    if (last && runLastRevision(last) === revision - 1 && last.recordPositions.length < MAX_RUN_LENGTH) {
      last.recordPositions.push(recordPosition);
      last.entryOffsets.push(entryOffset);
      return last;
    }
    const run: RevisionRun = { streamId, firstRevision: revision, recordPositions: [recordPosition], entryOffsets: [entryOffset] };
    if (!runs) this.active.runs.set(streamId, (runs = []));
    runs.push(run);
    return run;
  }

  /**
   * Locations of up to `maxCount` revisions of a stream, starting at `fromRevision` and going in
   * `direction`, from the memtables and the backend.
   */
  locate(streamId: number, fromRevision: number, direction: RunDirection, maxCount: number): RevisionLocation[] {
    const locations: RevisionLocation[] = [];
    // The next revision wanted. A flush that has committed but not yet returned leaves a run both
    // in memory and in the backend; asking for each revision once makes the overlap harmless.
    let wanted = fromRevision;
    const take = (run: RevisionRun): boolean => {
      const count = run.recordPositions.length;
      if (direction === 'forwards') {
        for (let i = Math.max(0, wanted - run.firstRevision); i < count; i++) {
          if (locations.length >= maxCount) return false;
          locations.push({ revision: run.firstRevision + i, recordPosition: run.recordPositions[i]!, entryOffset: run.entryOffsets[i]! });
          wanted = run.firstRevision + i + 1;
        }
      } else {
        for (let i = Math.min(count - 1, wanted - run.firstRevision); i >= 0; i--) {
          if (locations.length >= maxCount) return false;
          locations.push({ revision: run.firstRevision + i, recordPosition: run.recordPositions[i]!, entryOffset: run.entryOffsets[i]! });
          wanted = run.firstRevision + i - 1;
        }
      }
      return locations.length < maxCount;
    };
    // Tiers from oldest to newest; revisions of newer tiers are all higher.
    const memoryRuns = [...(this.flushing?.runs.get(streamId) ?? []), ...(this.active.runs.get(streamId) ?? [])];
    if (direction === 'forwards') {
      const firstInMemory = memoryRuns[0]?.firstRevision ?? Infinity;
      if (fromRevision < firstInMemory) {
        let cursor = fromRevision;
        while (cursor < firstInMemory) {
          const runs = this.backend.runsFrom(streamId, cursor, 'forwards', 16);
          if (runs.length === 0) break;
          for (const run of runs) {
            if (runLastRevision(run) < cursor) continue;
            if (!take(run)) return locations;
          }
          cursor = runLastRevision(runs.at(-1)!) + 1;
          if (runs.length < 16) break;
        }
      }
      for (const run of memoryRuns) {
        if (runLastRevision(run) < fromRevision) continue;
        if (!take(run)) return locations;
      }
      return locations;
    }
    for (let i = memoryRuns.length - 1; i >= 0; i--) {
      const run = memoryRuns[i]!;
      if (run.firstRevision > fromRevision) continue;
      if (!take(run)) return locations;
    }
    let cursor = Math.min(fromRevision, (memoryRuns[0]?.firstRevision ?? Infinity) - 1);
    while (cursor >= 0 && locations.length < maxCount) {
      const runs = this.backend.runsFrom(streamId, cursor, 'backwards', 16);
      if (runs.length === 0) break;
      for (const run of runs) if (!take(run)) return locations;
      cursor = runs.at(-1)!.firstRevision - 1;
    }
    return locations;
  }

  /**
   * Moves the memtable to the backend in one transaction. One flush runs at a time; a caller that
   * arrives while one runs waits for it and then flushes what has accumulated since.
   */
  async flush(): Promise<void> {
    while (this.flushInFlight) await this.flushInFlight;
    if (this.active.streams.size === 0 && this.active.runs.size === 0 && this.backend.getMeta()?.checkpoint === this.meta.checkpoint) return;
    const flushing = (this.flushing = this.active);
    this.active = new MemTable();
    const runs: RevisionRun[] = [];
    for (const list of flushing.runs.values()) runs.push(...list);
    const meta = { ...this.meta };
    this.flushInFlight = this.backend.commit(flushing.streams, runs, meta).finally(() => {
      for (const [name, record] of flushing.streams) this.cacheClean(name, record);
      this.flushing = undefined;
      this.flushInFlight = undefined;
    });
    await this.flushInFlight;
  }

  /** Throws everything away (the backend too): the next records applied start from the log's start. */
  async reset(startPosition: number): Promise<void> {
    while (this.flushInFlight) await this.flushInFlight;
    await this.backend.clear();
    this.active = new MemTable();
    this.clean = new Map();
    this.meta = { formatVersion: INDEX_FORMAT_VERSION, checkpoint: startPosition, lastTerm: 0, lastIndex: 0, nextStreamId: 1 };
  }

  async close(options: { flush: boolean } = { flush: true }): Promise<void> {
    try {
      if (options.flush) await this.flush();
      else while (this.flushInFlight) await this.flushInFlight.catch(() => undefined);
    } finally {
      await this.backend.close();
    }
  }
}
