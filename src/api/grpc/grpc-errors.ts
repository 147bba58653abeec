import { ChronicleError, GrpcStatus, NotLeaderError, StreamDeletedError, WrongExpectedVersionError, MaximumAppendSizeExceededError } from '../../errors.js';
import type { ExpectedState } from '../../store/expected-state.js';

/** An error that already knows its gRPC status (transport-level problems, protocol misuse). */
export class GrpcCallError extends Error {
  constructor(
    readonly grpcStatus: number,
    message: string,
    readonly trailers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GrpcCallError';
  }
}

export interface GrpcErrorReply {
  grpcStatus: number;
  message: string;
  /** Extra trailers: the KurrentDB `exception` key and the facts each exception carries. */
  trailers: Record<string, string>;
}

/**
 * The one place an error becomes a gRPC status and trailers. Chronicle's errors map through the
 * error registry; the KurrentDB clients read `exception` and its companion keys to build their
 * typed errors, so those keys are set exactly as they expect.
 */
export function toGrpcError(error: unknown): GrpcErrorReply {
  if (error instanceof GrpcCallError) return { grpcStatus: error.grpcStatus, message: error.message, trailers: error.trailers };
  if (error instanceof NotLeaderError && !error.leader) {
    // The clients need the leader's endpoint with "not-leader" (they crash without it): when no
    // leader is known there is nowhere to send them, so this is "unavailable, retry".
    return { grpcStatus: GrpcStatus.Unavailable, message: error.message, trailers: {} };
  }
  if (error instanceof ChronicleError) {
    const mapping = error.mapping;
    const trailers: Record<string, string> = {};
    if (mapping.kurrentException) trailers.exception = mapping.kurrentException;
    if (error instanceof WrongExpectedVersionError) {
      // The clients read these with BigInt(): decimal, with KurrentDB's numbers for the states,
      // and no actual-version at all for a stream that does not exist.
      trailers['stream-name'] = headerSafe(error.stream);
      trailers['expected-version'] = expectedVersionNumber(error.expectedState);
      if (error.actual.kind === 'revision') trailers['actual-version'] = String(error.actual.revision);
    } else if (error instanceof StreamDeletedError) {
      trailers['stream-name'] = headerSafe(error.stream);
    } else if (error instanceof NotLeaderError && error.leader) {
      trailers['leader-endpoint-host'] = error.leader.host;
      trailers['leader-endpoint-port'] = String(error.leader.port);
    } else if (error instanceof MaximumAppendSizeExceededError) {
      trailers['maximum-append-size'] = String(error.maxAppendSizeBytes);
    }
    for (const [key, value] of Object.entries(error.details)) {
      if (key.startsWith('trailer:') && typeof value === 'string') trailers[key.slice('trailer:'.length)] = value;
    }
    return { grpcStatus: mapping.grpcStatus, message: error.message, trailers };
  }
  return { grpcStatus: GrpcStatus.Internal, message: 'internal error', trailers: {} };
}

/** KurrentDB's numeric form of an expected state: -2 any, -1 no stream, -4 stream exists, or the revision. */
function expectedVersionNumber(expected: ExpectedState): string {
  switch (expected) {
    case 'any':
      return '-2';
    case 'no_stream':
      return '-1';
    case 'stream_exists':
      return '-4';
    default:
      return String(expected);
  }
}

/**
 * Trailer values travel as header text: printable ASCII passes as is, anything else (non-ASCII
 * names, control characters) is percent-encoded, so the key is never dropped or garbled.
 */
function headerSafe(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value);
}
