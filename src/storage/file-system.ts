/**
 * The narrow file I/O port the log is written against. Two implementations stand behind it:
 * `NodeFileSystem` (real files, real fsync) and `MemoryFileSystem` (a model of the page cache that
 * can crash, tear writes and flip bytes), so the same log code runs in production, in crash tests
 * and inside the deterministic simulator.
 */
export interface LogFile {
  readonly path: string;
  /** Writes all chunks contiguously at `position` (a positional writev). */
  write(chunks: readonly Uint8Array[], position: number): Promise<void>;
  /** Reads up to `length` bytes at `position` into `into` at `offset`; returns the bytes read (short at end of file). */
  read(into: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** `read` without waiting: for a few bytes the caller needs at once (a record's length). */
  readSync(into: Uint8Array, offset: number, length: number, position: number): number;
  /** Makes every write so far durable (fdatasync). */
  datasync(): Promise<void>;
  truncate(sizeBytes: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FileSystem {
  /** Opens a file for reading and writing; creates it (empty) when `create` is set and it does not exist. */
  open(path: string, options: { create: boolean }): Promise<LogFile>;
  /** The names (not paths) of the entries of a directory; empty when it does not exist. */
  list(directory: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
  rename(fromPath: string, toPath: string): Promise<void>;
  remove(path: string): Promise<void>;
  makeDirectory(directory: string): Promise<void>;
  /** Makes the directory's entries (created, renamed, removed files) durable. */
  syncDirectory(directory: string): Promise<void>;
}

export function joinPath(directory: string, name: string): string {
  return directory.endsWith('/') ? directory + name : `${directory}/${name}`;
}
