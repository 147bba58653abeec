import { CheckpointFile } from './checkpoint-file.js';
import { LogClosedError, LogCorruptionError, LogFailedError } from './errors.js';
import type { FileSystem } from './file-system.js';
import { findFirstDamage, scanTail } from './log-recovery.js';
import { CHECKPOINT_FILE, completePendingTruncation, truncateLogFiles } from './log-truncation.js';
import {
  checkFrame,
  decodeFrame,
  encodeFrame,
  sealFrame,
  FRAME_HEADER_BYTES,
  FRAME_OVERHEAD_BYTES,
  type LogRecord,
} from './record-frame.js';
import { findSegmentIndex, listSegmentBases, openSegment, type Segment } from './segments.js';

export interface LogOptions {
  fileSystem: FileSystem;
  directory: string;
  /** A segment is sealed and a new one started once it holds at least this many bytes. */
  segmentSizeBytes?: number;
  /** The largest frame the log accepts (and believes on recovery). */
  maxFrameBytes?: number;
  /** Upper bound of bytes written by one flush (a single larger frame still goes alone). */
  maxFlushBytes?: number;
  /** How the next flush is scheduled; the simulator injects its own. Defaults to `setImmediate`. */
  scheduleFlush?: (flush: () => void) => void;
  /** Called once when the log fails (write or fsync error). The node must stop. */
  onFailure?: (error: LogFailedError) => void;
}

export interface AppendTicket {
  /** Where the record starts in the logical log. */
  position: number;
  /** Where the next record will start. */
  end: number;
  /** Resolves once the record is on disk (fdatasync returned); rejects if the log fails. */
  durable: Promise<void>;
}

export interface LastRecord {
  position: number;
  term: number;
  index: number;
}

interface PendingFrame {
  frame: Uint8Array;
  position: number;
  segmentBase: number;
}

/** The appends that wait for the same flush, and the promise they share. */
interface Waiter {
  end: number;
  durable: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export const DEFAULT_SEGMENT_SIZE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_FLUSH_BYTES = 8 * 1024 * 1024;
const READ_AHEAD_BYTES = 64 * 1024;

/**
 * The append-only log: the source of truth of a node. Records are framed (see record-frame.ts),
 * addressed by their byte offset in the logical log, and made durable by group commit: every
 * append of one event-loop turn — and every append that arrives while a flush is in progress —
 * shares one write and one fdatasync.
 */
export class Log {
  private readonly segments: Segment[];
  private readonly checkpoint: CheckpointFile;
  private readonly segmentSizeBytes: number;
  readonly maxFrameBytes: number;
  private readonly maxFlushBytes: number;
  private readonly scheduleFlush: (flush: () => void) => void;

  /** Position after the last appended record (durable or not). */
  private tail: number;
  /** Position up to which the bytes are in the files (readable). */
  private written: number;
  /** Position up to which the bytes are durable. */
  private durable: number;
  private last: LastRecord | undefined;
  /** Base of the segment new records go to; may be ahead of `segments` until the flush creates it. */
  private activeSegmentBase: number;

  private pending: PendingFrame[] = [];
  /** The frames the flush in progress took from `pending`: not in the file until `written` passes them. */
  private flushingFrames: PendingFrame[] = [];
  private waiters: Waiter[] = [];
  /** The group new appends join; closed when a flush takes its frames. */
  private openGroup: Waiter | undefined;
  private flushing = false;
  private flushScheduled = false;
  private idleWaiters: (() => void)[] = [];
  private failure: LogFailedError | undefined;
  private truncating = false;
  private closed = false;
  private readonly onFailure: ((error: LogFailedError) => void) | undefined;
  /** Counters for metrics and tests. */
  readonly stats = { flushes: 0, framesFlushed: 0, bytesFlushed: 0, recoveredTornBytes: 0, recoveredRecordsVerified: 0 };
  /** Told of every group commit once it is durable (metrics); called once per flush, never per record. */
  onFlushed: ((frames: number, bytes: number, syncMs: number) => void) | undefined;

  private constructor(
    private readonly options: LogOptions,
    segments: Segment[],
    checkpoint: CheckpointFile,
    end: number,
    last: LastRecord | undefined,
  ) {
    this.segments = segments;
    this.checkpoint = checkpoint;
    this.segmentSizeBytes = options.segmentSizeBytes ?? DEFAULT_SEGMENT_SIZE_BYTES;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxFlushBytes = options.maxFlushBytes ?? DEFAULT_MAX_FLUSH_BYTES;
    this.scheduleFlush = options.scheduleFlush ?? ((flush) => setImmediate(flush));
    this.onFailure = options.onFailure;
    this.tail = end;
    this.written = end;
    this.durable = end;
    this.last = last;
    this.activeSegmentBase = segments.at(-1)!.basePosition;
  }

  /**
   * Opens (or creates) the log in a directory, verifying every record from the last checkpoint to
   * the end, cutting off a torn tail, and refusing (LogCorruptionError) damage to durable data.
   */
  static async open(options: LogOptions): Promise<Log> {
    const { fileSystem, directory } = options;
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    await fileSystem.makeDirectory(directory);
    await completePendingTruncation(fileSystem, directory);
    const checkpoint = new CheckpointFile(fileSystem, directory, CHECKPOINT_FILE);
    const bases = await listSegmentBases(fileSystem, directory);
    const segments: Segment[] = [];
    if (bases.length === 0) {
      segments.push(await openSegment(fileSystem, directory, 0, true));
      await fileSystem.syncDirectory(directory);
    } else {
      for (const base of bases) segments.push(await openSegment(fileSystem, directory, base, false));
    }
    try {
      return await Log.recover(options, segments, checkpoint, maxFrameBytes);
    } catch (error) {
      for (const segment of segments) await segment.file.close().catch(() => undefined);
      throw error;
    }
  }

  private static async recover(options: LogOptions, segments: Segment[], checkpoint: CheckpointFile, maxFrameBytes: number): Promise<Log> {
    assertContiguous(segments);
    const logEnd = segments.at(-1)!.basePosition + segments.at(-1)!.sizeBytes;
    const checkpointPosition = (await checkpoint.read()) ?? segments[0]!.basePosition;
    if (checkpointPosition > logEnd) {
      const last = segments.at(-1)!;
      throw new LogCorruptionError(
        last.file.path,
        last.sizeBytes,
        logEnd,
        `the log ends at ${logEnd} but its checkpoint says ${checkpointPosition} was durable: bytes are missing`,
      );
    }
    const scan = await scanTail(segments, Math.max(checkpointPosition, segments[0]!.basePosition), {
      maxFrameBytes,
      maxTornTailBytes: Math.max(options.maxFlushBytes ?? DEFAULT_MAX_FLUSH_BYTES, maxFrameBytes) + maxFrameBytes,
    });
    const lastSegment = segments.at(-1)!;
    if (scan.tornBytes > 0) {
      lastSegment.sizeBytes -= scan.tornBytes;
      await lastSegment.file.truncate(lastSegment.sizeBytes);
    }
    // What a killed process wrote may still be only in the page cache: make it durable before the
    // checkpoint says so, or a later power loss could take records this node has since served.
    for (const segment of segments) {
      if (segment.basePosition + segment.sizeBytes > checkpointPosition || segment === lastSegment) await segment.file.datasync();
    }
    const log = new Log(options, segments, checkpoint, scan.validEnd, undefined);
    log.stats.recoveredTornBytes = scan.tornBytes;
    log.stats.recoveredRecordsVerified = scan.recordsVerified;
    log.last = await log.readLastRecord();
    await checkpoint.write(scan.validEnd, { sync: true });
    return log;
  }

  /** Position after the last appended record, durable or not: where the next record will go. */
  get tailPosition(): number {
    return this.tail;
  }

  get durablePosition(): number {
    return this.durable;
  }

  /** Position up to which records can be read back. */
  get writtenPosition(): number {
    return this.written;
  }

  /** The first position still held by the log. */
  get startPosition(): number {
    return this.segments[0]!.basePosition;
  }

  /** Term and index of the last appended record. */
  get lastRecord(): LastRecord | undefined {
    return this.last;
  }

  /**
   * Appends one record. Its position is assigned now; `durable` resolves after the group commit
   * that carries it. Records become durable in order.
   */
  append(type: number, term: number, index: number, payload: Uint8Array): AppendTicket {
    return this.appendSealed(encodeFrame(type, term, index, payload), term, index);
  }

  /**
   * Appends a frame made with `allocateFrame` whose payload is in place: the log seals it (header,
   * trailer, CRC) and writes that very buffer, without copying the payload.
   */
  appendFrame(frame: Uint8Array, type: number, term: number, index: number): AppendTicket {
    sealFrame(frame, type, term, index);
    return this.appendSealed(frame, term, index);
  }

  private appendSealed(frame: Uint8Array, term: number, index: number): AppendTicket {
    this.assertWritable();
    if (frame.byteLength > this.maxFrameBytes) {
      throw new RangeError(`record of ${frame.byteLength} bytes exceeds the log's limit of ${this.maxFrameBytes} bytes`);
    }
    const position = this.tail;
    if (position - this.activeSegmentBase >= this.segmentSizeBytes) this.activeSegmentBase = position;
    this.pending.push({ frame, position, segmentBase: this.activeSegmentBase });
    this.tail = position + frame.byteLength;
    this.last = { position, term, index };
    // Every append waiting for the same flush shares one promise: a batch allocates one, not one per record.
    let group = this.openGroup;
    if (!group) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const durable = new Promise<void>((onResolve, onReject) => {
        resolve = onResolve;
        reject = onReject;
      });
      // The failure is also reported through onFailure; an ignored ticket must not crash the process.
      durable.catch(() => undefined);
      group = this.openGroup = { end: 0, durable, resolve, reject };
      this.waiters.push(group);
    }
    group.end = this.tail;
    this.requestFlush();
    return { position, end: this.tail, durable: group.durable };
  }

  private requestFlush(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    this.scheduleFlush(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.pending.length === 0 || this.failure) return;
    this.flushing = true;
    let flushedEnd = 0;
    try {
      const batch = this.takeFlushBatch();
      this.flushingFrames = batch;
      const touched = new Set<Segment>();
      let index = 0;
      while (index < batch.length) {
        const segmentBase = batch[index]!.segmentBase;
        const chunks: Uint8Array[] = [];
        const writeAt = batch[index]!.position;
        while (index < batch.length && batch[index]!.segmentBase === segmentBase) chunks.push(batch[index++]!.frame);
        const segment = await this.segmentForWrite(segmentBase);
        await segment.file.write(chunks, writeAt - segment.basePosition);
        segment.sizeBytes = writeAt + byteLength(chunks) - segment.basePosition;
        touched.add(segment);
      }
      flushedEnd = batch.at(-1)!.position + batch.at(-1)!.frame.byteLength;
      this.written = flushedEnd;
      const syncStartedMs = performance.now();
      for (const segment of touched) await segment.file.datasync();
      this.durable = flushedEnd;
      this.stats.flushes++;
      this.stats.framesFlushed += batch.length;
      this.stats.bytesFlushed += flushedEnd - batch[0]!.position;
      this.onFlushed?.(batch.length, flushedEnd - batch[0]!.position, performance.now() - syncStartedMs);
    } catch (error) {
      this.fail(error);
    } finally {
      this.flushing = false;
      this.flushingFrames = [];
    }
    if (this.failure) {
      this.notifyIdle();
      return;
    }
    // The records that arrived during this fdatasync go to the disk before this batch's waiters
    // run: what they do next (answer clients, acknowledge a leader) then overlaps the next
    // fdatasync instead of holding back its start.
    if (this.pending.length > 0) void this.flush();
    this.resolveWaiters(flushedEnd);
    if (!this.flushing && this.pending.length === 0) this.notifyIdle();
  }

  private takeFlushBatch(): PendingFrame[] {
    this.openGroup = undefined;
    let bytes = 0;
    let count = 0;
    while (count < this.pending.length) {
      const size = this.pending[count]!.frame.byteLength;
      if (count > 0 && bytes + size > this.maxFlushBytes) break;
      bytes += size;
      count++;
    }
    return this.pending.splice(0, count);
  }

  private async segmentForWrite(basePosition: number): Promise<Segment> {
    const current = this.segments.at(-1)!;
    if (current.basePosition === basePosition) return current;
    // A new segment: the previous one is sealed; make it and the new file's entry durable first.
    await current.file.datasync();
    const segment = await openSegment(this.options.fileSystem, this.options.directory, basePosition, true);
    await this.options.fileSystem.syncDirectory(this.options.directory);
    this.segments.push(segment);
    await this.checkpoint.write(this.durable, { sync: false });
    return segment;
  }

  private resolveWaiters(durableEnd: number): void {
    let count = 0;
    while (count < this.waiters.length && this.waiters[count]!.end <= durableEnd) count++;
    const done = this.waiters.splice(0, count);
    for (const waiter of done) waiter.resolve();
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = error instanceof LogFailedError ? error : new LogFailedError(error);
    const waiters = this.waiters;
    this.waiters = [];
    this.openGroup = undefined;
    this.pending = [];
    for (const waiter of waiters) waiter.reject(this.failure);
    this.onFailure?.(this.failure);
  }

  private notifyIdle(): void {
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of idle) resolve();
  }

  /** Resolves when every record appended so far is durable (or the log has failed). */
  async sync(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pending.length === 0 && !this.flushing) return;
    await new Promise<void>((resolve) => {
      this.idleWaiters.push(resolve);
      this.requestFlush();
    });
    if (this.failure) throw this.failure;
  }

  private assertWritable(): void {
    if (this.closed) throw new LogClosedError();
    if (this.failure) throw this.failure;
    if (this.truncating) throw new Error('the log is being truncated; appends wait until it is done');
  }

  /**
   * Reads whole records starting at `position` (a record boundary), up to about `maxBytes` and
   * never past `limit` (defaults to what has been written). Returns [] at the end.
   */
  async read(position: number, maxBytes: number, limit: number = this.written): Promise<LogRecord[]> {
    this.assertReadable();
    const end = Math.min(limit, this.written);
    if (position < this.startPosition || position > end) {
      throw new RangeError(`read position ${position} is outside the log [${this.startPosition}, ${end}]`);
    }
    const records: LogRecord[] = [];
    let cursor = position;
    let budget = Math.max(maxBytes, 1);
    while (cursor < end && budget > 0) {
      const segment = this.segments[findSegmentIndex(this.segments, cursor)]!;
      const segmentEnd = Math.min(end, segment.basePosition + segment.sizeBytes);
      if (cursor >= segmentEnd) break;
      let want = Math.min(Math.max(budget, FRAME_OVERHEAD_BYTES), segmentEnd - cursor);
      let bytes = await this.readBytes(segment, cursor, want);
      let offset = 0;
      while (offset < bytes.byteLength) {
        let check = checkFrame(bytes, offset, this.maxFrameBytes);
        if (!check.ok && check.reason === 'incomplete' && offset === 0 && records.length > 0) {
          // The next record does not fit in what is left of the budget; the caller reads it next time.
          return records;
        }
        if (!check.ok && check.reason === 'incomplete' && offset === 0 && want < segmentEnd - cursor) {
          want = Math.min(frameLength(bytes), segmentEnd - cursor);
          bytes = await this.readBytes(segment, cursor, want);
          check = checkFrame(bytes, 0, this.maxFrameBytes);
        }
        if (!check.ok) {
          if (check.reason === 'incomplete' && offset > 0) break;
          const fileOffset = cursor + offset - segment.basePosition;
          throw new LogCorruptionError(segment.file.path, fileOffset, cursor + offset, check.detail);
        }
        records.push(decodeFrame(bytes, offset, check.length, cursor + offset));
        offset += check.length;
      }
      cursor += offset;
      budget -= offset;
    }
    return records;
  }

  /**
   * The length of the record that starts at `position`, without waiting: read from the file
   * synchronously (a few bytes, normally in the page cache), or from memory for a record appended
   * and not yet written.
   */
  recordLengthAt(position: number): number {
    this.assertReadable();
    if (position < this.startPosition || position >= this.tail) {
      throw new RangeError(`no record at position ${position}: the log holds [${this.startPosition}, ${this.tail})`);
    }
    if (position >= this.written) {
      const frame = pendingFrameAt(this.flushingFrames, position) ?? pendingFrameAt(this.pending, position);
      if (!frame) throw new RangeError(`no record starts at position ${position}`);
      return frame.frame.byteLength;
    }
    const segment = this.segments[findSegmentIndex(this.segments, position)]!;
    const header = new Uint8Array(4);
    const read = segment.file.readSync(header, 0, 4, position - segment.basePosition);
    const length = read === 4 ? frameLength(header) : 0;
    if (length < FRAME_OVERHEAD_BYTES || length > this.maxFrameBytes || position + length > this.written) {
      throw new LogCorruptionError(segment.file.path, position - segment.basePosition, position, `no valid record length at ${position} (${read === 4 ? length : 'end of file'})`);
    }
    return length;
  }

  /** Reads the one record that starts at `position`. */
  async readRecord(position: number): Promise<LogRecord> {
    this.assertReadable();
    if (position < this.startPosition || position >= this.written) {
      throw new RangeError(`no record at position ${position}: the log holds [${this.startPosition}, ${this.written})`);
    }
    const segment = this.segments[findSegmentIndex(this.segments, position)]!;
    const segmentEnd = Math.min(this.written, segment.basePosition + segment.sizeBytes);
    let bytes = await this.readBytes(segment, position, Math.min(READ_AHEAD_BYTES, segmentEnd - position));
    let check = checkFrame(bytes, 0, this.maxFrameBytes);
    if (!check.ok && check.reason === 'incomplete' && bytes.byteLength >= 4) {
      bytes = await this.readBytes(segment, position, Math.min(frameLength(bytes), segmentEnd - position));
      check = checkFrame(bytes, 0, this.maxFrameBytes);
    }
    if (!check.ok) {
      throw new LogCorruptionError(segment.file.path, position - segment.basePosition, position, check.detail);
    }
    return decodeFrame(bytes, 0, check.length, position);
  }

  /**
   * Reads whole records that end at or before `endPosition`, walking backwards with the trailing
   * lengths, up to about `maxBytes`. Returned newest first.
   */
  async readBackward(endPosition: number, maxBytes: number): Promise<LogRecord[]> {
    this.assertReadable();
    if (endPosition > this.written || endPosition < this.startPosition) {
      throw new RangeError(`read position ${endPosition} is outside the log [${this.startPosition}, ${this.written}]`);
    }
    const records: LogRecord[] = [];
    let cursor = endPosition;
    let budget = Math.max(maxBytes, 1);
    while (cursor > this.startPosition && budget > 0) {
      const segment = this.segments[findSegmentIndex(this.segments, cursor - 1)]!;
      const from = Math.max(segment.basePosition, cursor - Math.max(budget, READ_AHEAD_BYTES));
      const bytes = await this.readBytes(segment, from, cursor - from);
      let offset = bytes.byteLength;
      while (offset > 0) {
        if (offset < 4) break;
        const length = new DataView(bytes.buffer, bytes.byteOffset + offset - 4, 4).getUint32(0, true);
        const frameEnd = from + offset;
        if (length < FRAME_OVERHEAD_BYTES || length > this.maxFrameBytes || frameEnd - length < segment.basePosition) {
          throw await this.damageBefore(segment, frameEnd);
        }
        if (length > offset) {
          if (offset === bytes.byteLength) {
            // A single record larger than the window: read it on its own.
            const record = await this.readRecord(cursor - length);
            if (record.end !== cursor) throw await this.damageBefore(segment, frameEnd);
            records.push(record);
            offset -= length;
          }
          break;
        }
        const start = offset - length;
        const check = checkFrame(bytes.subarray(0, offset), start, this.maxFrameBytes);
        if (!check.ok) throw await this.damageBefore(segment, frameEnd);
        records.push(decodeFrame(bytes, start, length, from + start));
        offset = start;
        if (bytes.byteLength - offset >= budget) break;
      }
      const consumed = bytes.byteLength - offset;
      if (consumed === 0) break;
      cursor -= consumed;
      budget -= consumed;
    }
    return records;
  }

  /**
   * The error for damage found walking backwards to `endPosition`: a damaged trailing length points
   * to the wrong place, so the frames are walked forwards from the segment start to name the
   * damaged one exactly.
   */
  private async damageBefore(segment: Segment, endPosition: number): Promise<LogCorruptionError> {
    const found = await findFirstDamage(segment, 0, endPosition - segment.basePosition, this.maxFrameBytes);
    const offset = found.damage?.offset ?? found.validEndOffset;
    const detail = found.damage?.detail ?? `the trailing length of the record that ends at ${endPosition} is damaged`;
    return new LogCorruptionError(segment.file.path, offset, segment.basePosition + offset, detail);
  }

  private async readLastRecord(): Promise<LastRecord | undefined> {
    if (this.written <= this.startPosition) return undefined;
    const [record] = await this.readBackward(this.written, FRAME_OVERHEAD_BYTES);
    return record ? { position: record.position, term: record.term, index: record.index } : undefined;
  }

  private async readBytes(segment: Segment, position: number, length: number): Promise<Uint8Array> {
    const bytes = Buffer.allocUnsafe(length);
    const read = await segment.file.read(bytes, 0, length, position - segment.basePosition);
    return bytes.subarray(0, read);
  }

  private assertReadable(): void {
    if (this.closed) throw new LogClosedError();
  }

  /**
   * Removes every record at or after `position` (a record boundary). A follower uses it when its
   * uncommitted tail is replaced by the leader's. Pending appends are flushed first; appends made
   * while the truncation runs are refused. Crash-safe: see log-truncation.ts.
   */
  async truncateSuffix(position: number): Promise<void> {
    this.assertWritable();
    this.truncating = true;
    try {
      await this.sync();
      if (position > this.tail || position < this.startPosition) {
        throw new RangeError(`cannot truncate at ${position}: the log holds [${this.startPosition}, ${this.tail}]`);
      }
      if (position === this.tail) return;
      await this.readRecord(position); // proves that `position` is a record boundary
      while (this.segments.length > 1 && this.segments.at(-1)!.basePosition >= position) await this.segments.pop()!.file.close();
      try {
        await truncateLogFiles(this.options.fileSystem, this.options.directory, position);
      } catch (error) {
        // Half-done on disk: only a restart (which completes the recorded intent) is safe now.
        this.fail(error);
        throw this.failure;
      }
      const segment = this.segments.at(-1)!;
      segment.sizeBytes = position - segment.basePosition;
      this.tail = this.written = this.durable = position;
      this.activeSegmentBase = segment.basePosition;
      this.last = await this.readLastRecord();
    } finally {
      this.truncating = false;
    }
  }

  /** Flushes what is pending, records a checkpoint, and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.failure) {
      await this.sync().catch(() => undefined);
    }
    this.closed = true;
    if (!this.failure) await this.checkpoint.write(this.durable, { sync: true });
    for (const segment of this.segments) await segment.file.close();
  }

  /** Segment files and their sizes, for operations and tests. */
  describeSegments(): { path: string; basePosition: number; sizeBytes: number }[] {
    return this.segments.map((segment) => ({ path: segment.file.path, basePosition: segment.basePosition, sizeBytes: segment.sizeBytes }));
  }
}

function byteLength(chunks: readonly Uint8Array[]): number {
  let total = 0;
  for (const chunk of chunks) total += chunk.byteLength;
  return total;
}

/** The frame starting at `position` among frames in position order, by binary search. */
function pendingFrameAt(frames: readonly PendingFrame[], position: number): PendingFrame | undefined {
  let low = 0;
  let high = frames.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const frame = frames[middle]!;
    if (frame.position === position) return frame;
    if (frame.position < position) low = middle + 1;
    else high = middle - 1;
  }
  return undefined;
}

function frameLength(bytes: Uint8Array): number {
  return Math.max(FRAME_HEADER_BYTES, new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true));
}

function assertContiguous(segments: readonly Segment[]): void {
  for (let index = 1; index < segments.length; index++) {
    const previous = segments[index - 1]!;
    const segment = segments[index]!;
    const expected = previous.basePosition + previous.sizeBytes;
    if (segment.basePosition !== expected) {
      throw new LogCorruptionError(
        previous.file.path,
        previous.sizeBytes,
        expected,
        `segment ${segment.file.path} starts at ${segment.basePosition}, but the previous segment ends at ${expected}`,
      );
    }
  }
}
