import { InvalidArgumentError, type ActualStreamState } from '../errors.js';

/**
 * What an append, delete or metadata write expects of its stream:
 * 'any' — no check; 'no_stream' — the stream does not exist (never written, or soft-deleted);
 * 'stream_exists' — it has events; a number — its last revision is exactly that.
 */
export type ExpectedState = 'any' | 'no_stream' | 'stream_exists' | number | bigint;

/** The facts about a stream the write path decides on. */
export interface StreamView {
  /** -1 when the stream has never had an event. */
  lastRevision: number;
  tombstoned: boolean;
  softDeleted: boolean;
}

export const EMPTY_STREAM_VIEW: StreamView = Object.freeze({ lastRevision: -1, tombstoned: false, softDeleted: false });

export function streamExists(view: StreamView): boolean {
  return view.lastRevision >= 0 && !view.softDeleted;
}

/** Normalises and validates an expected state given by a caller. */
export function parseExpectedState(expected: unknown): ExpectedState {
  if (expected === undefined) return 'any';
  if (expected === 'any' || expected === 'no_stream' || expected === 'stream_exists') return expected;
  if (typeof expected === 'bigint') {
    if (expected < 0n || expected > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`expected revision ${expected} is out of range`);
    return Number(expected);
  }
  if (typeof expected === 'number' && Number.isSafeInteger(expected) && expected >= 0) return expected;
  throw new InvalidArgumentError(
    `expected state must be 'any', 'no_stream', 'stream_exists' or a revision (a non-negative integer), not ${JSON.stringify(String(expected))}`,
  );
}

export function describeExpectedState(expected: ExpectedState): string {
  return typeof expected === 'string' ? expected.replace('_', ' ') : `revision ${expected}`;
}

export function actualStateOf(view: StreamView): ActualStreamState {
  return streamExists(view) ? { kind: 'revision', revision: view.lastRevision } : { kind: 'no-stream' };
}

/**
 * Does `expected` hold for a stream in state `view`? A soft-deleted stream counts as absent, but
 * an exact expected revision equal to its last revision also holds: its revisions continue.
 */
export function expectedStateHolds(expected: ExpectedState, view: StreamView): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no_stream':
      return !streamExists(view);
    case 'stream_exists':
      return streamExists(view);
    default:
      return view.lastRevision === Number(expected) && view.lastRevision >= 0;
  }
}
