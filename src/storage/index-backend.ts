/**
 * The port the stream index persists through. Everything stored here is derived from the log and
 * can be thrown away and rebuilt; the meta record says up to which log position it is valid.
 * Two implementations: LMDB (on disk) and memory (`--mem-db`, tests).
 */
export interface StreamRecord {
  /** Assigned in log order when the stream is first seen, so a rebuild assigns the same ids. */
  id: number;
  /** -1 when the stream has no event (it may still have metadata). */
  lastRevision: number;
  /** Commit position of the stream's last write, -1 if none. */
  lastCommitPosition: number;
  tombstoned: boolean;
  /** The JSON text of the stream's current metadata (from its `$$` stream), or null. */
  metadataJson: string | null;
}

/** Where consecutive revisions of one stream live: revision `firstRevision + i` is at `recordPositions[i]`. */
export interface RevisionRun {
  streamId: number;
  firstRevision: number;
  recordPositions: number[];
  entryOffsets: number[];
}

export interface IndexMeta {
  formatVersion: number;
  /** The index reflects exactly the log records before this position. */
  checkpoint: number;
  /** Term and index of the record that ends at `checkpoint` (0, 0 when the checkpoint is the start), to recognise the log. */
  lastTerm: number;
  lastIndex: number;
  nextStreamId: number;
}

export const INDEX_FORMAT_VERSION = 1;

export type RunDirection = 'forwards' | 'backwards';

export interface IndexBackend {
  readonly kind: 'lmdb' | 'memory';
  getStream(name: string): StreamRecord | undefined;
  /**
   * Forwards: the run that holds `revision` (the last run starting at or before it), then the
   * following runs. Backwards: runs starting at or before `revision`, newest first. At most `limit`.
   */
  runsFrom(streamId: number, revision: number, direction: RunDirection, limit: number): RevisionRun[];
  getMeta(): IndexMeta | undefined;
  /** Writes streams, runs and meta in one atomic transaction. */
  commit(streams: ReadonlyMap<string, StreamRecord>, runs: readonly RevisionRun[], meta: IndexMeta): Promise<void>;
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** Longest run stored as one entry, so that finding one revision never loads a huge value. */
export const MAX_RUN_LENGTH = 1024;

export function runLastRevision(run: RevisionRun): number {
  return run.firstRevision + run.recordPositions.length - 1;
}
