import { access, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LmdbIndexBackend } from '../storage/lmdb-index-backend.js';
import { INDEX_FORMAT_VERSION, type IndexBackend, type IndexMeta } from '../storage/index-backend.js';
import type { Log } from '../storage/log.js';
import { MemoryIndexBackend } from '../storage/memory-index-backend.js';
import { RecordType } from '../storage/record-frame.js';
import { eventHeaderAt, entryOffsetsOf } from './event-codec.js';
import type { IdempotencyWindowLimits, WrittenBatch } from './idempotency-window.js';
import { StreamIndex } from './stream-index.js';
import { batchesOfRecord, type BatchEventFacts } from './written-batches.js';

const REPLAY_READ_BYTES = 4 * 1024 * 1024;
const REPLAY_FLUSH_EVERY_EVENTS = 500_000;

export interface IndexRecovery {
  index: StreamIndex;
  /** Why the index was rebuilt from the start of the log, if it was. */
  rebuiltBecause: string | undefined;
  recordsReplayed: number;
}

const LMDB_MAGIC = 0xbeefc0de;
const LMDB_MAGIC_OFFSET = 24;

/** Does the file start with an LMDB meta page? A damaged one can crash the LMDB library outright. */
async function looksLikeLmdb(dataFile: string): Promise<boolean> {
  const handle = await open(dataFile, 'r');
  try {
    const header = Buffer.alloc(LMDB_MAGIC_OFFSET + 4);
    const { bytesRead } = await handle.read(header, 0, header.byteLength, 0);
    return bytesRead === header.byteLength && header.readUInt32LE(LMDB_MAGIC_OFFSET) === LMDB_MAGIC;
  } finally {
    await handle.close();
  }
}

/**
 * Opens the LMDB index at `directory`. An index that cannot be trusted is deleted, to be rebuilt
 * from the log: one whose data file is not LMDB, one that fails to open, and one whose previous
 * opening never finished (`openingMarker` still there: the process died — LMDB can crash the
 * process on a damaged file — while opening or replaying). The caller removes the marker once
 * the index is recovered.
 */
export async function openLmdbBackend(directory: string, openingMarker: string, warn: (message: string) => void): Promise<IndexBackend> {
  const rebuild = async (reason: string) => {
    warn(`the index at ${directory} ${reason}; deleting it to rebuild it from the log`);
    await LmdbIndexBackend.destroy(directory);
  };
  if (await exists(openingMarker)) await rebuild('was being opened when the process last stopped');
  else if ((await exists(join(directory, 'data.mdb'))) && !(await looksLikeLmdb(join(directory, 'data.mdb')))) await rebuild('is not an LMDB file');
  await writeFile(openingMarker, `opening index since ${new Date().toISOString()}\n`);
  try {
    return LmdbIndexBackend.open(directory);
  } catch (error) {
    await rebuild(`cannot be opened (${(error as Error).message})`);
    return LmdbIndexBackend.open(directory);
  }
}

export async function indexOpened(openingMarker: string): Promise<void> {
  await rm(openingMarker, { force: true });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export function openMemoryBackend(): IndexBackend {
  return new MemoryIndexBackend();
}

/** Why an index's meta does not describe this log, or undefined when it does. */
async function indexMismatch(meta: IndexMeta | undefined, log: Log): Promise<string | undefined> {
  if (!meta) return 'there is no index';
  if (meta.formatVersion !== INDEX_FORMAT_VERSION) return `the index format is ${meta.formatVersion}, this version uses ${INDEX_FORMAT_VERSION}`;
  if (meta.checkpoint < log.startPosition || meta.checkpoint > log.writtenPosition) {
    return `the index covers the log up to ${meta.checkpoint}, but the log holds [${log.startPosition}, ${log.writtenPosition}]`;
  }
  if (meta.checkpoint === log.startPosition) return undefined;
  try {
    const [last] = await log.readBackward(meta.checkpoint, 1);
    if (last && last.end === meta.checkpoint && last.term === meta.lastTerm && last.index === meta.lastIndex) return undefined;
  } catch {
    // Not a record boundary: the index belongs to another log.
  }
  return `the index's last record (term ${meta.lastTerm}, index ${meta.lastIndex}, ending at ${meta.checkpoint}) is not in this log`;
}

/**
 * Brings the index up to the log: keeps it when its checkpoint names a record of this log and
 * replays the log from there; otherwise clears it and rebuilds it from the start of the log.
 */
export async function recoverIndex(backend: IndexBackend, log: Log, replay: 'whole-log' | 'index-only'): Promise<IndexRecovery> {
  const meta = backend.getMeta();
  const rebuiltBecause = await indexMismatch(meta, log);
  const index = new StreamIndex(backend, rebuiltBecause ? undefined : meta);
  if (rebuiltBecause) await index.reset(log.startPosition);
  let cursor = index.appliedPosition;
  let recordsReplayed = 0;
  while (replay === 'whole-log' && cursor < log.writtenPosition) {
    const records = await log.read(cursor, REPLAY_READ_BYTES);
    if (records.length === 0) break;
    for (const record of records) index.apply(record);
    recordsReplayed += records.length;
    cursor = records.at(-1)!.end;
    if (index.unflushedEventCount >= REPLAY_FLUSH_EVERY_EVENTS) await index.flush();
  }
  await index.flush();
  return { index, rebuiltBecause, recordsReplayed };
}

/** Where recovered writes go: the idempotency window, or a replica's ring of written ids. */
export interface WrittenBatchSink {
  readonly limits: IdempotencyWindowLimits;
  add(batch: WrittenBatch): void;
}

/**
 * Refills the idempotency window (or the ring a replica keeps instead) from the newest writes in
 * the log (reading backwards), oldest first, so a client retrying across a restart is still
 * recognised.
 */
export async function recoverIdempotencyWindow(window: WrittenBatchSink, log: Log, nowMs: number, appliedPosition: number): Promise<void> {
  const oldestKeptMicros = (nowMs - window.limits.maxAgeMs) * 1000;
  const collected: WrittenBatch[][] = [];
  const done = Promise.resolve();
  let events = 0;
  // Only applied (committed) writes: a retry must never be told that an uncommitted one succeeded.
  let cursor = appliedPosition;
  scan: while (cursor > log.startPosition && events < window.limits.maxEvents) {
    const records = await log.readBackward(cursor, REPLAY_READ_BYTES);
    if (records.length === 0) break;
    for (const record of records) {
      cursor = record.position;
      if (record.type !== RecordType.Events) continue;
      const offsets = entryOffsetsOf(record.payload);
      const facts: BatchEventFacts[] = offsets.map((offset) => eventHeaderAt(record.payload, offset));
      if (facts.length > 0 && facts[0]!.createdMicros < oldestKeptMicros) break scan;
      collected.push(batchesOfRecord(facts, offsets, record.payload, record.position, done));
      events += facts.length;
      if (events >= window.limits.maxEvents) break scan;
    }
  }
  for (let i = collected.length - 1; i >= 0; i--) for (const batch of collected[i]!) window.add(batch);
}
