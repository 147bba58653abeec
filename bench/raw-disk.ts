import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The raw limits of the disk under the benchmark, measured from Node in the same run as the
 * store's figures so that ratios compare like with like.
 */
export interface RawDiskLimits {
  /** 4 KiB positional write + fdatasync, one after another. */
  fdatasyncWritesPerSecond: number;
  /** Sequential 1 MiB writes with an fdatasync after each. */
  sequentialMegabytesPerSecond: number;
}

export async function measureRawDisk(directory: string, durationMs: number): Promise<RawDiskLimits> {
  const path = join(directory, 'raw-disk.bin');
  const handle = await open(path, 'w+');
  try {
    const small = Buffer.alloc(4096, 0x5a);
    let writes = 0;
    let position = 0;
    let started = performance.now();
    while (performance.now() - started < durationMs) {
      await handle.write(small, 0, small.byteLength, position);
      await handle.datasync();
      position += small.byteLength;
      writes++;
    }
    const fdatasyncWritesPerSecond = writes / ((performance.now() - started) / 1000);

    const chunk = Buffer.alloc(1024 * 1024, 0xa5);
    await handle.truncate(0);
    position = 0;
    started = performance.now();
    while (performance.now() - started < durationMs) {
      await handle.write(chunk, 0, chunk.byteLength, position);
      await handle.datasync();
      position += chunk.byteLength;
    }
    const sequentialMegabytesPerSecond = position / (1024 * 1024) / ((performance.now() - started) / 1000);
    return { fdatasyncWritesPerSecond, sequentialMegabytesPerSecond };
  } finally {
    await handle.close();
    await rm(path, { force: true });
  }
}
