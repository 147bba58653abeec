import type { IndexBackend, IndexMeta, RevisionRun, RunDirection, StreamRecord } from './index-backend.js';

/** The index held in memory: for `--mem-db` and tests. Same contract as the LMDB backend. */
export class MemoryIndexBackend implements IndexBackend {
  readonly kind = 'memory' as const;
  private streams = new Map<string, StreamRecord>();
  private runs = new Map<number, RevisionRun[]>();
  private meta: IndexMeta | undefined;

  getStream(name: string): StreamRecord | undefined {
    const record = this.streams.get(name);
    return record && { ...record };
  }

  runsFrom(streamId: number, revision: number, direction: RunDirection, limit: number): RevisionRun[] {
    const runs = this.runs.get(streamId);
    if (!runs || runs.length === 0 || limit <= 0) return [];
    // Index of the last run starting at or before `revision`, -1 if none.
    let low = 0;
    let high = runs.length - 1;
    let at = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (runs[middle]!.firstRevision <= revision) {
        at = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    if (direction === 'forwards') return runs.slice(Math.max(at, 0), Math.max(at, 0) + limit);
    if (at < 0) return [];
    return runs.slice(Math.max(0, at - limit + 1), at + 1).reverse();
  }

  getMeta(): IndexMeta | undefined {
    return this.meta && { ...this.meta };
  }

  async commit(streams: ReadonlyMap<string, StreamRecord>, runs: readonly RevisionRun[], meta: IndexMeta): Promise<void> {
    for (const [name, record] of streams) this.streams.set(name, { ...record });
    for (const run of runs) {
      let list = this.runs.get(run.streamId);
      if (!list) this.runs.set(run.streamId, (list = []));
      list.push(run);
    }
    this.meta = { ...meta };
  }

  async clear(): Promise<void> {
    this.streams = new Map();
    this.runs = new Map();
    this.meta = undefined;
  }

  async close(): Promise<void> {}
}
