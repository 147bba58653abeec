import { crc32c } from '@node-rs/crc32';
import { joinPath, type FileSystem } from './file-system.js';
import { readUint64, writeUint64 } from './record-frame.js';

const CHECKPOINT_MAGIC = 0x43484b50; // "CHKP"
const CHECKPOINT_BYTES = 16;

/**
 * A 16-byte file holding one log position (u64 position, CRC32C, magic), overwritten in place.
 * It is only ever written with a position that was already durable, so a stale value is safe;
 * a damaged one reads as "no checkpoint".
 */
export class CheckpointFile {
  constructor(
    private readonly fileSystem: FileSystem,
    private readonly directory: string,
    private readonly name: string,
  ) {}

  get path(): string {
    return joinPath(this.directory, this.name);
  }

  async read(): Promise<number | undefined> {
    if (!(await this.fileSystem.exists(this.path))) return undefined;
    const file = await this.fileSystem.open(this.path, { create: false });
    try {
      const bytes = new Uint8Array(CHECKPOINT_BYTES);
      const read = await file.read(bytes, 0, CHECKPOINT_BYTES, 0);
      if (read !== CHECKPOINT_BYTES) return undefined;
      const view = new DataView(bytes.buffer);
      if (view.getUint32(12, true) !== CHECKPOINT_MAGIC) return undefined;
      if (view.getUint32(8, true) !== crc32c(bytes.subarray(0, 8))) return undefined;
      return readUint64(view, 0);
    } finally {
      await file.close();
    }
  }

  async write(position: number, options: { sync: boolean }): Promise<void> {
    const bytes = new Uint8Array(CHECKPOINT_BYTES);
    const view = new DataView(bytes.buffer);
    writeUint64(view, 0, position);
    view.setUint32(8, crc32c(bytes.subarray(0, 8)), true);
    view.setUint32(12, CHECKPOINT_MAGIC, true);
    const existed = await this.fileSystem.exists(this.path);
    const file = await this.fileSystem.open(this.path, { create: true });
    try {
      await file.write([bytes], 0);
      if (options.sync) await file.datasync();
    } finally {
      await file.close();
    }
    if (!existed) await this.fileSystem.syncDirectory(this.directory);
  }
}
