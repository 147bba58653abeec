import { joinPath, type FileSystem, type LogFile } from './file-system.js';

/**
 * A segment is one file of the log. Its name is the logical position of its first byte, so
 * positions are contiguous across segments: a segment starts exactly where the previous one ends.
 */
export interface Segment {
  basePosition: number;
  file: LogFile;
  /** Bytes in the file. */
  sizeBytes: number;
}

const SEGMENT_NAME = /^segment-(\d{20})\.log$/;

export function segmentName(basePosition: number): string {
  return `segment-${String(basePosition).padStart(20, '0')}.log`;
}

export function parseSegmentName(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

export async function listSegmentBases(fileSystem: FileSystem, directory: string): Promise<number[]> {
  const bases: number[] = [];
  for (const name of await fileSystem.list(directory)) {
    const base = parseSegmentName(name);
    if (base !== undefined) bases.push(base);
  }
  return bases.sort((a, b) => a - b);
}

export async function openSegment(fileSystem: FileSystem, directory: string, basePosition: number, create: boolean): Promise<Segment> {
  const file = await fileSystem.open(joinPath(directory, segmentName(basePosition)), { create });
  return { basePosition, file, sizeBytes: await file.size() };
}

/** Index of the segment holding `position` (the last segment whose base is ≤ position). */
export function findSegmentIndex(segments: readonly Segment[], position: number): number {
  let low = 0;
  let high = segments.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (segments[middle]!.basePosition <= position) low = middle;
    else high = middle - 1;
  }
  return low;
}
