import type { FileSystem } from './file-system.js';
import { DEFAULT_MAX_FRAME_BYTES } from './log.js';
import { findFirstDamage } from './log-recovery.js';
import { truncateLogFiles } from './log-truncation.js';
import { listSegmentBases, openSegment } from './segments.js';

export interface LogVerification {
  records: number;
  /** Position just past the last valid record before any damage. */
  validEnd: number;
  /** The first damage found, if any. */
  damage?: { file: string; fileOffset: number; position: number; detail: string };
}

/**
 * Reads and checks every record of the log, from the first segment to the last, without
 * changing anything. `chronicle verify` runs it; recovery on open only checks the tail.
 */
export async function verifyLog(fileSystem: FileSystem, directory: string, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Promise<LogVerification> {
  let records = 0;
  let validEnd = 0;
  const bases = await listSegmentBases(fileSystem, directory);
  for (const base of bases) {
    const segment = await openSegment(fileSystem, directory, base, false);
    try {
      if (base !== validEnd && records > 0) {
        return { records, validEnd, damage: { file: segment.file.path, fileOffset: 0, position: base, detail: `segment starts at ${base}, the previous one ends at ${validEnd}` } };
      }
      const found = await findFirstDamage(segment, 0, segment.sizeBytes, maxFrameBytes);
      records += found.validFrames;
      validEnd = base + found.validEndOffset;
      if (found.damage) {
        return { records, validEnd, damage: { file: segment.file.path, fileOffset: found.damage.offset, position: base + found.damage.offset, detail: found.damage.detail } };
      }
    } finally {
      await segment.file.close();
    }
  }
  return { records, validEnd };
}

/**
 * Cuts the log at `position` (the end of its valid part), deleting later segments. An operator's
 * explicit repair: what lies after the damage is lost, so it is never done automatically.
 */
export async function truncateLogAt(fileSystem: FileSystem, directory: string, position: number): Promise<void> {
  await truncateLogFiles(fileSystem, directory, position);
}
