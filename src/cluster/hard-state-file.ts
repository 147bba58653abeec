import { crc32c } from '@node-rs/crc32';
import type { HardState } from '../consensus/types.js';
import { joinPath, type FileSystem } from '../storage/file-system.js';
import { readUint64, writeUint64 } from '../storage/record-frame.js';

const SLOT_BYTES = 512;
const MAGIC = 0x52535441; // "RSTA"
const MAX_VOTED_FOR_BYTES = SLOT_BYTES - 32;

/**
 * The Raft term and vote, which must be durable before a vote or a message of a new term leaves
 * the node. Two slots written alternately, each with a sequence number and a CRC: a write torn by
 * a crash damages only the slot being written, and the other still holds the previous state.
 */
export class HardStateFile {
  private sequence = 0;

  private constructor(
    private readonly fileSystem: FileSystem,
    private readonly path: string,
    private readonly directory: string,
  ) {}

  static async open(fileSystem: FileSystem, directory: string): Promise<{ file: HardStateFile; state: HardState | undefined }> {
    await fileSystem.makeDirectory(directory);
    const file = new HardStateFile(fileSystem, joinPath(directory, 'raft-state'), directory);
    const state = await file.readNewest();
    return { file, state };
  }

  private async readNewest(): Promise<HardState | undefined> {
    if (!(await this.fileSystem.exists(this.path))) return undefined;
    const handle = await this.fileSystem.open(this.path, { create: false });
    try {
      const bytes = new Uint8Array(SLOT_BYTES * 2);
      const read = await handle.read(bytes, 0, bytes.byteLength, 0);
      let best: { sequence: number; state: HardState } | undefined;
      for (let slot = 0; slot < 2; slot++) {
        if (read < (slot + 1) * SLOT_BYTES) break;
        const decoded = decodeSlot(bytes.subarray(slot * SLOT_BYTES, (slot + 1) * SLOT_BYTES));
        if (decoded && (!best || decoded.sequence > best.sequence)) best = decoded;
      }
      if (best) this.sequence = best.sequence;
      return best?.state;
    } finally {
      await handle.close();
    }
  }

  /** Writes the state; durable when `sync` (only the simulator's broken variant skips it). */
  async write(state: HardState, options: { sync: boolean } = { sync: true }): Promise<void> {
    this.sequence++;
    const slot = encodeSlot(this.sequence, state);
    const existed = await this.fileSystem.exists(this.path);
    const handle = await this.fileSystem.open(this.path, { create: true });
    try {
      await handle.write([slot], (this.sequence % 2) * SLOT_BYTES);
      if (options.sync) await handle.datasync();
    } finally {
      await handle.close();
    }
    if (!existed && options.sync) await this.fileSystem.syncDirectory(this.directory);
  }
}

function encodeSlot(sequence: number, state: HardState): Uint8Array {
  const votedFor = new TextEncoder().encode(state.votedFor ?? '');
  if (votedFor.byteLength > MAX_VOTED_FOR_BYTES) throw new RangeError(`a node id may be at most ${MAX_VOTED_FOR_BYTES} bytes`);
  const slot = new Uint8Array(SLOT_BYTES);
  const view = new DataView(slot.buffer);
  writeUint64(view, 0, sequence);
  writeUint64(view, 8, state.term);
  view.setUint16(16, state.votedFor === undefined ? 0xffff : votedFor.byteLength, true);
  slot.set(votedFor, 24);
  view.setUint32(SLOT_BYTES - 8, MAGIC, true);
  view.setUint32(SLOT_BYTES - 4, crc32c(slot.subarray(0, SLOT_BYTES - 4)), true);
  return slot;
}

function decodeSlot(slot: Uint8Array): { sequence: number; state: HardState } | undefined {
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (view.getUint32(SLOT_BYTES - 8, true) !== MAGIC) return undefined;
  if (view.getUint32(SLOT_BYTES - 4, true) !== crc32c(slot.subarray(0, SLOT_BYTES - 4))) return undefined;
  const length = view.getUint16(16, true);
  const votedFor = length === 0xffff ? undefined : new TextDecoder().decode(slot.subarray(24, 24 + length));
  return { sequence: readUint64(view, 0), state: { term: readUint64(view, 8), votedFor } };
}
