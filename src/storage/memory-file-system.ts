import type { FileSystem, LogFile } from './file-system.js';

/**
 * An in-memory file system that models what a crash can do to data in the page cache:
 * writes are visible at once but volatile until `datasync`; directory entries (new, renamed,
 * removed files) are volatile until `syncDirectory`. `crash()` throws away everything volatile,
 * optionally keeping a torn prefix of each file's last unsynced write. `flipByte()` corrupts
 * stored data on demand. Fully deterministic: randomness comes from the caller.
 */
interface UndoRecord {
  /** Where the operation changed bytes, and the size the file had before it. */
  position: number;
  previousSize: number;
  /** The bytes it overwrote (within the old size), to put back on a crash. */
  previousBytes: Uint8Array;
  /** What a write wrote (empty for a truncation), for tearing. */
  written: Uint8Array;
}

interface Inode {
  /** What reads see now, up to `size`. */
  bytes: Uint8Array;
  size: number;
  /** Unsynced operations, oldest first: a crash undoes them in reverse (cheap however large the file). */
  undo: UndoRecord[];
}

export interface CrashOptions {
  /** Keep a prefix of the last unsynced write of each file; `keepFraction` in [0, 1) picks its length. */
  tearLastWrite?: { keepFraction: number };
}

export class MemoryFileSystem implements FileSystem {
  /** path → inode, as visible now. */
  private readonly visible = new Map<string, Inode>();
  /** path → inode, as a crash would leave the directory entries. */
  private readonly durableEntries = new Map<string, Inode>();
  private readonly directories = new Set<string>(['/']);
  private openHandles = new Set<MemoryLogFile>();
  /** Counts fdatasync calls; tests assert group commit with it. */
  datasyncCount = 0;
  /** When set, the next datasync calls fail with this error (models EIO). */
  failDatasyncWith: Error | undefined;
  /** Called when a datasync starts, before it takes effect: tests crash the machine from here. */
  beforeDatasync: ((path: string) => void) | undefined;

  async open(path: string, options: { create: boolean }): Promise<LogFile> {
    let inode = this.visible.get(path);
    if (!inode) {
      if (!options.create) throw fileSystemError('ENOENT', `no such file: ${path}`);
      if (!this.directories.has(parentOf(path))) throw fileSystemError('ENOENT', `no such directory: ${parentOf(path)}`);
      inode = { bytes: new Uint8Array(0), size: 0, undo: [] };
      this.visible.set(path, inode);
    }
    const handle = new MemoryLogFile(path, inode, this);
    this.openHandles.add(handle);
    return handle;
  }

  async list(directory: string): Promise<string[]> {
    const prefix = directory.endsWith('/') ? directory : `${directory}/`;
    const names: string[] = [];
    for (const path of this.visible.keys()) {
      if (path.startsWith(prefix) && !path.slice(prefix.length).includes('/')) names.push(path.slice(prefix.length));
    }
    return names.sort();
  }

  async exists(path: string): Promise<boolean> {
    return this.visible.has(path) || this.directories.has(path);
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    const inode = this.visible.get(fromPath);
    if (!inode) throw fileSystemError('ENOENT', `no such file: ${fromPath}`);
    this.visible.delete(fromPath);
    this.visible.set(toPath, inode);
  }

  async remove(path: string): Promise<void> {
    this.visible.delete(path);
  }

  async makeDirectory(directory: string): Promise<void> {
    let path = '';
    for (const part of directory.split('/').filter(Boolean)) {
      path += `/${part}`;
      this.directories.add(path);
    }
  }

  async syncDirectory(directory: string): Promise<void> {
    const prefix = directory.endsWith('/') ? directory : `${directory}/`;
    const inDirectory = (path: string) => path.startsWith(prefix) && !path.slice(prefix.length).includes('/');
    for (const path of [...this.durableEntries.keys()]) {
      if (inDirectory(path) && !this.visible.has(path)) this.durableEntries.delete(path);
    }
    for (const [path, inode] of this.visible) {
      if (inDirectory(path)) this.durableEntries.set(path, inode);
    }
  }

  /** Simulates power loss: every open handle dies, unsynced data and directory entries are lost. */
  crash(options: CrashOptions = {}): void {
    for (const handle of this.openHandles) handle.invalidate();
    this.openHandles = new Set();
    this.visible.clear();
    for (const [path, inode] of this.durableEntries) {
      const last = inode.undo.at(-1);
      for (let i = inode.undo.length - 1; i >= 0; i--) {
        const record = inode.undo[i]!;
        inode.bytes.set(record.previousBytes, record.position);
        inode.size = record.previousSize;
      }
      inode.undo = [];
      if (last && last.written.byteLength > 0 && options.tearLastWrite) {
        const keep = Math.floor(last.written.byteLength * options.tearLastWrite.keepFraction);
        // A torn write lands only when it starts inside or right after the durable bytes.
        if (keep > 0 && last.position <= inode.size) writeInto(inode, last.written.subarray(0, keep), last.position);
        inode.undo = [];
      }
      this.visible.set(path, inode);
    }
    this.durableEntries.clear();
    for (const [path, inode] of this.visible) this.durableEntries.set(path, inode);
  }

  /** Flips one bit of a stored byte, in both the visible and the durable copy. */
  flipByte(path: string, offset: number, mask = 0x01): void {
    const inode = this.visible.get(path);
    if (!inode || offset >= inode.size) throw new Error(`cannot flip byte ${offset} of ${path}`);
    inode.bytes[offset] = (inode.bytes[offset] ?? 0) ^ mask;
  }

  /** Appends raw bytes to a file as if already durable (tests model garbage at the tail with it). */
  appendDurable(path: string, bytes: Uint8Array): void {
    const inode = this.visible.get(path);
    if (!inode) throw new Error(`no such file: ${path}`);
    writeInto(inode, bytes, inode.size);
    inode.undo = [];
  }

  fileSize(path: string): number {
    const inode = this.visible.get(path);
    if (!inode) throw new Error(`no such file: ${path}`);
    return inode.size;
  }

  forget(handle: MemoryLogFile): void {
    this.openHandles.delete(handle);
  }
}

function writeInto(inode: Inode, data: Uint8Array, position: number): void {
  const end = position + data.byteLength;
  if (end > inode.bytes.byteLength) {
    const grown = new Uint8Array(Math.max(end, inode.bytes.byteLength * 2, 4096));
    grown.set(inode.bytes.subarray(0, inode.size));
    inode.bytes = grown;
  }
  if (position > inode.size) inode.bytes.fill(0, inode.size, position);
  inode.bytes.set(data, position);
  inode.size = Math.max(inode.size, end);
}

function recordUndo(inode: Inode, position: number, endOfChange: number, written: Uint8Array): void {
  const overwrittenEnd = Math.min(endOfChange, inode.size);
  inode.undo.push({
    position,
    previousSize: inode.size,
    previousBytes: overwrittenEnd > position ? inode.bytes.slice(position, overwrittenEnd) : new Uint8Array(0),
    written,
  });
}

class MemoryLogFile implements LogFile {
  private valid = true;

  constructor(readonly path: string, private readonly inode: Inode, private readonly fileSystem: MemoryFileSystem) {}

  invalidate(): void {
    this.valid = false;
  }

  private check(): void {
    if (!this.valid) throw fileSystemError('EBADF', `file handle of ${this.path} is gone (crashed or closed)`);
  }

  async write(chunks: readonly Uint8Array[], position: number): Promise<void> {
    this.check();
    let total = 0;
    for (const chunk of chunks) total += chunk.byteLength;
    const data = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      data.set(chunk, offset);
      offset += chunk.byteLength;
    }
    recordUndo(this.inode, position, position + data.byteLength, data);
    writeInto(this.inode, data, position);
  }

  async read(into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.readSync(into, offset, length, position);
  }

  readSync(into: Uint8Array, offset: number, length: number, position: number): number {
    this.check();
    const available = Math.max(0, Math.min(length, this.inode.size - position));
    into.set(this.inode.bytes.subarray(position, position + available), offset);
    return available;
  }

  async datasync(): Promise<void> {
    this.check();
    this.fileSystem.beforeDatasync?.(this.path);
    this.check();
    this.fileSystem.datasyncCount++;
    if (this.fileSystem.failDatasyncWith) throw this.fileSystem.failDatasyncWith;
    this.inode.undo = [];
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.check();
    recordUndo(this.inode, sizeBytes, this.inode.size, new Uint8Array(0));
    if (sizeBytes < this.inode.size) this.inode.bytes.fill(0, sizeBytes, this.inode.size);
    else if (sizeBytes > this.inode.size) writeInto(this.inode, new Uint8Array(sizeBytes - this.inode.size), this.inode.size);
    this.inode.size = sizeBytes;
  }

  async size(): Promise<number> {
    this.check();
    return this.inode.size;
  }

  async close(): Promise<void> {
    this.valid = false;
    this.fileSystem.forget(this);
  }
}

function parentOf(path: string): string {
  const index = path.lastIndexOf('/');
  return index <= 0 ? '/' : path.slice(0, index);
}

function fileSystemError(code: string, message: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}
