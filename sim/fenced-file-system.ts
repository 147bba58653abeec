import type { FileSystem, LogFile } from '../src/storage/file-system.js';

/**
 * One incarnation's view of a node's disk. When the incarnation crashes, its code may still be
 * running (promises settling after the crash); fencing makes every later call fail, so a dead
 * process never writes into the disk its next incarnation recovers from.
 */
export class FencedFileSystem implements FileSystem {
  private fenced = false;

  constructor(private readonly inner: FileSystem) {}

  fence(): void {
    this.fenced = true;
  }

  private check(): void {
    if (this.fenced) throw Object.assign(new Error('the process crashed: its file system is gone'), { code: 'EBADF' });
  }

  async open(path: string, options: { create: boolean }): Promise<LogFile> {
    this.check();
    const file = await this.inner.open(path, options);
    this.check();
    const guard = (): void => this.check();
    return {
      path: file.path,
      write: async (chunks, position) => (guard(), file.write(chunks, position)),
      read: async (into, offset, length, position) => (guard(), file.read(into, offset, length, position)),
      readSync: (into, offset, length, position) => (guard(), file.readSync(into, offset, length, position)),
      datasync: async () => (guard(), file.datasync()),
      truncate: async (sizeBytes) => (guard(), file.truncate(sizeBytes)),
      size: async () => (guard(), file.size()),
      close: async () => file.close(),
    };
  }

  async list(directory: string): Promise<string[]> {
    this.check();
    return this.inner.list(directory);
  }

  async exists(path: string): Promise<boolean> {
    this.check();
    return this.inner.exists(path);
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    this.check();
    return this.inner.rename(fromPath, toPath);
  }

  async remove(path: string): Promise<void> {
    this.check();
    return this.inner.remove(path);
  }

  async makeDirectory(directory: string): Promise<void> {
    this.check();
    return this.inner.makeDirectory(directory);
  }

  async syncDirectory(directory: string): Promise<void> {
    this.check();
    return this.inner.syncDirectory(directory);
  }
}
