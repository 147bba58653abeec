import { constants, readSync, writevSync } from 'node:fs';
import { open, readdir, rename, rm, mkdir, access } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { FileSystem, LogFile } from './file-system.js';

class NodeLogFile implements LogFile {
  constructor(readonly path: string, private readonly handle: FileHandle) {}

  /**
   * Writes into the page cache synchronously: a copy that takes microseconds, where a round trip
   * through libuv's thread pool costs more CPU than the copy and delays the fdatasync that follows
   * by one more turn of the event loop. The fdatasync, which waits for the disk, stays asynchronous.
   */
  async write(chunks: readonly Uint8Array[], position: number): Promise<void> {
    let offset = position;
    let pending = chunks.filter((chunk) => chunk.byteLength > 0);
    // writev may write fewer bytes than asked; loop until every byte is down.
    while (pending.length > 0) {
      const bytesWritten = writevSync(this.handle.fd, pending as Uint8Array[], offset);
      offset += bytesWritten;
      pending = dropWrittenBytes(pending, bytesWritten);
    }
  }

  async read(into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    let total = 0;
    while (total < length) {
      const { bytesRead } = await this.handle.read(into, offset + total, length - total, position + total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  }

  readSync(into: Uint8Array, offset: number, length: number, position: number): number {
    let total = 0;
    while (total < length) {
      const bytesRead = readSync(this.handle.fd, into, offset + total, length - total, position + total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.handle.truncate(sizeBytes);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

function dropWrittenBytes(chunks: Uint8Array[], bytesWritten: number): Uint8Array[] {
  let remaining = bytesWritten;
  const rest: Uint8Array[] = [];
  for (const chunk of chunks) {
    if (remaining >= chunk.byteLength) {
      remaining -= chunk.byteLength;
      continue;
    }
    rest.push(remaining > 0 ? chunk.subarray(remaining) : chunk);
    remaining = 0;
  }
  return rest;
}

export class NodeFileSystem implements FileSystem {
  async open(path: string, options: { create: boolean }): Promise<LogFile> {
    const flags = options.create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDWR;
    return new NodeLogFile(path, await open(path, flags, 0o644));
  }

  async list(directory: string): Promise<string[]> {
    try {
      return await readdir(directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await access(path);
      return true;
    } catch {
      return false;
    }
  }

  rename(fromPath: string, toPath: string): Promise<void> {
    return rename(fromPath, toPath);
  }

  remove(path: string): Promise<void> {
    return rm(path, { force: true });
  }

  async makeDirectory(directory: string): Promise<void> {
    await mkdir(directory, { recursive: true });
  }

  async syncDirectory(directory: string): Promise<void> {
    const handle = await open(directory, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
