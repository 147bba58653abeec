import { open, type Database, type RootDatabase } from 'lmdb';
import { rm } from 'node:fs/promises';
import type { IndexBackend, IndexMeta, RevisionRun, RunDirection, StreamRecord } from './index-backend.js';

const META_KEY = 'index';

/**
 * The index in LMDB: `streams` (name → StreamRecord), `runs` ([stream id, first revision] →
 * packed positions) and `meta`. Commits run on lmdb-js's writer thread, off the event loop; the
 * index needs no fsync of its own because the log is replayed past its checkpoint on open.
 */
export class LmdbIndexBackend implements IndexBackend {
  readonly kind = 'lmdb' as const;

  private constructor(
    private readonly root: RootDatabase,
    private readonly streams: Database<StreamRecord, string>,
    private readonly runs: Database<Buffer, [number, number]>,
    private readonly meta: Database<IndexMeta, string>,
  ) {}

  static open(directory: string): LmdbIndexBackend {
    const root = open({ path: directory, maxDbs: 8, mapSize: 64 * 1024 * 1024 * 1024 });
    const streams = root.openDB<StreamRecord, string>({ name: 'streams' });
    const runs = root.openDB<Buffer, [number, number]>({ name: 'runs', encoding: 'binary' });
    const meta = root.openDB<IndexMeta, string>({ name: 'meta' });
    return new LmdbIndexBackend(root, streams, runs, meta);
  }

  /** Deletes an index directory that could not be opened, so it can be rebuilt. */
  static async destroy(directory: string): Promise<void> {
    await rm(directory, { recursive: true, force: true });
  }

  getStream(name: string): StreamRecord | undefined {
    const record = this.streams.get(name);
    return record && { ...record };
  }

  runsFrom(streamId: number, revision: number, direction: RunDirection, limit: number): RevisionRun[] {
    if (limit <= 0) return [];
    const result: RevisionRun[] = [];
    const before = this.runs.getRange({ start: [streamId, revision], end: [streamId, -1], reverse: true, limit: direction === 'forwards' ? 1 : limit });
    for (const { key, value } of before) result.push(decodeRun(key[0], key[1], value));
    if (direction === 'backwards') return result;
    const after = this.runs.getRange({ start: [streamId, revision + 1], end: [streamId + 1, -1], limit: limit - result.length });
    for (const { key, value } of after) result.push(decodeRun(key[0], key[1], value));
    return result;
  }

  getMeta(): IndexMeta | undefined {
    const meta = this.meta.get(META_KEY);
    return meta && { ...meta };
  }

  commit(streams: ReadonlyMap<string, StreamRecord>, runs: readonly RevisionRun[], meta: IndexMeta): Promise<void> {
    // lmdb-js puts every write of one batch callback into a single transaction.
    return this.root
      .batch(() => {
        for (const [name, record] of streams) void this.streams.put(name, record);
        for (const run of runs) void this.runs.put([run.streamId, run.firstRevision], encodeRun(run));
        void this.meta.put(META_KEY, meta);
      })
      .then(() => undefined);
  }

  async clear(): Promise<void> {
    await this.streams.clearAsync();
    await this.runs.clearAsync();
    await this.meta.clearAsync();
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

function encodeRun(run: RevisionRun): Buffer {
  const count = run.recordPositions.length;
  const bytes = Buffer.allocUnsafe(4 + count * 12);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(0, count, true);
  for (let i = 0; i < count; i++) {
    view.setFloat64(4 + i * 8, run.recordPositions[i]!, true);
    view.setUint32(4 + count * 8 + i * 4, run.entryOffsets[i]!, true);
  }
  return bytes;
}

function decodeRun(streamId: number, firstRevision: number, bytes: Uint8Array): RevisionRun {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  const recordPositions = new Array<number>(count);
  const entryOffsets = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    recordPositions[i] = view.getFloat64(4 + i * 8, true);
    entryOffsets[i] = view.getUint32(4 + count * 8 + i * 4, true);
  }
  return { streamId, firstRevision, recordPositions, entryOffsets };
}
