import { CheckpointFile } from './checkpoint-file.js';
import { joinPath, type FileSystem } from './file-system.js';
import { listSegmentBases, openSegment, segmentName } from './segments.js';

/**
 * Cutting the log at a position touches several files (later segments removed, one segment
 * shortened, the checkpoint lowered), and a crash can stop it half way. So it is done under an
 * intent: `log.truncate` records the position first (synced), every step is idempotent, and an
 * open that finds the intent finishes the job before anything else. Without it a crash could
 * leave removed segments back (the directory not yet synced) behind a shortened one, or a
 * checkpoint past the end of the log.
 */
export const TRUNCATE_INTENT_FILE = 'log.truncate';
export const CHECKPOINT_FILE = 'log.checkpoint';

export async function truncateLogFiles(fileSystem: FileSystem, directory: string, position: number): Promise<void> {
  const intent = new CheckpointFile(fileSystem, directory, TRUNCATE_INTENT_FILE);
  await intent.write(position, { sync: true });
  await completeTruncation(fileSystem, directory, position);
}

/** Finishes a truncation whose intent was recorded, if there is one. Returns its position. */
export async function completePendingTruncation(fileSystem: FileSystem, directory: string): Promise<number | undefined> {
  const position = await new CheckpointFile(fileSystem, directory, TRUNCATE_INTENT_FILE).read();
  if (position === undefined) {
    // A damaged intent (torn while being written) never got to change anything: drop it.
    if (await fileSystem.exists(joinPath(directory, TRUNCATE_INTENT_FILE))) {
      await fileSystem.remove(joinPath(directory, TRUNCATE_INTENT_FILE));
      await fileSystem.syncDirectory(directory);
    }
    return undefined;
  }
  await completeTruncation(fileSystem, directory, position);
  return position;
}

async function completeTruncation(fileSystem: FileSystem, directory: string, position: number): Promise<void> {
  const checkpoint = new CheckpointFile(fileSystem, directory, CHECKPOINT_FILE);
  const current = await checkpoint.read();
  if (current === undefined || current > position) await checkpoint.write(position, { sync: true });
  const bases = await listSegmentBases(fileSystem, directory);
  // Newest first, so that whatever survives a crash in between is still a contiguous prefix.
  for (const base of [...bases].reverse()) {
    if (base > position || (base === position && base !== bases[0])) await fileSystem.remove(joinPath(directory, segmentName(base)));
  }
  await fileSystem.syncDirectory(directory);
  const kept = bases.filter((base) => base < position || base === bases[0]).at(-1);
  if (kept !== undefined) {
    const segment = await openSegment(fileSystem, directory, kept, false);
    try {
      if (segment.basePosition + segment.sizeBytes > position) {
        await segment.file.truncate(position - segment.basePosition);
        await segment.file.datasync();
      }
    } finally {
      await segment.file.close();
    }
  }
  await fileSystem.remove(joinPath(directory, TRUNCATE_INTENT_FILE));
  await fileSystem.syncDirectory(directory);
}
