import { LmdbIndexBackend } from '../storage/lmdb-index-backend.js';
import { INDEX_FORMAT_VERSION, type IndexBackend, type IndexMeta } from '../storage/index-backend.js';
import type { Log } from '../storage/log.js';
import { MemoryIndexBackend } from '../storage/memory-index-backend.js';
import { RecordType } from '../storage/record-frame.js';
import { eventHeaderAt, entryOffsetsOf } from './event-codec.js';
import type { IdempotencyWindow, WrittenBatch } from './idempotency-window.js';
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

/** Opens the LMDB index; an index that cannot be opened is deleted, to be rebuilt. */
export async function openLmdbBackend(directory: string, warn: (message: string) => void): Promise<IndexBackend> {
  try {
    return LmdbIndexBackend.open(directory);
  } catch (error) {
    warn(`the index at ${directory} cannot be opened (${(error as Error).message}); deleting it to rebuild it from the log`);
    await LmdbIndexBackend.destroy(directory);
    return LmdbIndexBackend.open(directory);
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
export async function recoverIndex(backend: IndexBackend, log: Log): Promise<IndexRecovery> {
  const meta = backend.getMeta();
  const rebuiltBecause = await indexMismatch(meta, log);
  const index = new StreamIndex(backend, rebuiltBecause ? undefined : meta);
  if (rebuiltBecause) await index.reset(log.startPosition);
  let cursor = index.appliedPosition;
  let recordsReplayed = 0;
  while (cursor < log.writtenPosition) {
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

/**
 * Refills the idempotency window from the newest writes in the log (reading backwards), so a
 * client retrying across a restart is still recognised.
 */
export async function recoverIdempotencyWindow(window: IdempotencyWindow, log: Log, nowMs: number): Promise<void> {
  const oldestKeptMicros = (nowMs - window.limits.maxAgeMs) * 1000;
  const collected: WrittenBatch[][] = [];
  const done = Promise.resolve();
  let events = 0;
  let cursor = log.writtenPosition;
  scan: while (cursor > log.startPosition && events < window.limits.maxEvents) {
    const records = await log.readBackward(cursor, REPLAY_READ_BYTES);
    if (records.length === 0) break;
    for (const record of records) {
      cursor = record.position;
      if (record.type !== RecordType.Events) continue;
      const facts: BatchEventFacts[] = entryOffsetsOf(record.payload).map((offset) => eventHeaderAt(record.payload, offset));
      if (facts.length > 0 && facts[0]!.createdMicros < oldestKeptMicros) break scan;
      collected.push(batchesOfRecord(facts, record.position, done));
      events += facts.length;
      if (events >= window.limits.maxEvents) break scan;
    }
  }
  for (let i = collected.length - 1; i >= 0; i--) for (const batch of collected[i]!) window.add(batch);
  window.evictExpired(nowMs);
}
