/**
 * The one registry of Chronicle's errors. Every error a client can see has a stable code, and each
 * code is mapped here — and only here — to its gRPC status, the KurrentDB `exception` trailer the
 * official clients switch on, and its HTTP status. Nothing anywhere matches on message text.
 */
export const GrpcStatus = {
  Cancelled: 1,
  InvalidArgument: 3,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

export interface ErrorMapping {
  grpcStatus: number;
  /** Value of the `exception` trailer the KurrentDB clients map to typed errors, if any. */
  kurrentException?: string;
  httpStatus: number;
}

export const ERROR_REGISTRY = {
  WRONG_EXPECTED_VERSION: { grpcStatus: GrpcStatus.FailedPrecondition, kurrentException: 'wrong-expected-version', httpStatus: 409 },
  STREAM_NOT_FOUND: { grpcStatus: GrpcStatus.NotFound, kurrentException: 'stream-not-found', httpStatus: 404 },
  STREAM_DELETED: { grpcStatus: GrpcStatus.FailedPrecondition, kurrentException: 'stream-deleted', httpStatus: 410 },
  MAXIMUM_APPEND_SIZE_EXCEEDED: { grpcStatus: GrpcStatus.InvalidArgument, kurrentException: 'maximum-append-size-exceeded', httpStatus: 413 },
  EVENT_ID_CONFLICT: { grpcStatus: GrpcStatus.AlreadyExists, httpStatus: 409 },
  INVALID_ARGUMENT: { grpcStatus: GrpcStatus.InvalidArgument, httpStatus: 400 },
  NOT_LEADER: { grpcStatus: GrpcStatus.NotFound, kurrentException: 'not-leader', httpStatus: 503 },
  ACCESS_DENIED: { grpcStatus: GrpcStatus.PermissionDenied, kurrentException: 'access-denied', httpStatus: 403 },
  NO_QUORUM: { grpcStatus: GrpcStatus.Unavailable, httpStatus: 503 },
  STORE_UNAVAILABLE: { grpcStatus: GrpcStatus.Unavailable, httpStatus: 503 },
  STORAGE_FAILURE: { grpcStatus: GrpcStatus.Internal, httpStatus: 500 },
  PERSISTENT_SUBSCRIPTION_NOT_FOUND: { grpcStatus: GrpcStatus.NotFound, kurrentException: 'persistent-subscription-does-not-exist', httpStatus: 404 },
  PERSISTENT_SUBSCRIPTION_EXISTS: { grpcStatus: GrpcStatus.AlreadyExists, kurrentException: 'persistent-subscription-exists', httpStatus: 409 },
  MAXIMUM_SUBSCRIBERS_REACHED: { grpcStatus: GrpcStatus.FailedPrecondition, kurrentException: 'maximum-subscribers-reached', httpStatus: 409 },
  PERSISTENT_SUBSCRIPTION_DROPPED: { grpcStatus: GrpcStatus.Cancelled, kurrentException: 'persistent-subscription-dropped', httpStatus: 410 },
  ROUTE_NOT_FOUND: { grpcStatus: GrpcStatus.Unimplemented, httpStatus: 404 },
  UNSUPPORTED_MEDIA_TYPE: { grpcStatus: GrpcStatus.InvalidArgument, httpStatus: 415 },
  SLOW_CONSUMER: { grpcStatus: GrpcStatus.ResourceExhausted, httpStatus: 429 },
  INTERNAL_ERROR: { grpcStatus: GrpcStatus.Internal, httpStatus: 500 },
} as const satisfies Record<string, ErrorMapping>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

/** Base class of every error Chronicle reports to a caller. */
export class ChronicleError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Structured facts for the protocol layers (current revision, stream name, limits...). */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'ChronicleError';
  }

  get mapping(): ErrorMapping {
    return ERROR_REGISTRY[this.code];
  }
}

/** What a stream was found to be when an expected state did not hold. */
export type ActualStreamState = { kind: 'no-stream' } | { kind: 'revision'; revision: number };

export class WrongExpectedVersionError extends ChronicleError {
  constructor(
    readonly stream: string,
    /** The expected state in words ('no stream', 'revision 4', ...). */
    readonly expected: string,
    readonly actual: ActualStreamState,
    /** The expected state as given: 'any' | 'no_stream' | 'stream_exists' | a revision. */
    readonly expectedState: 'any' | 'no_stream' | 'stream_exists' | number | bigint,
    operation = 'append to',
  ) {
    const actualText = actual.kind === 'no-stream' ? 'the stream does not exist' : `the stream is at revision ${actual.revision}`;
    super('WRONG_EXPECTED_VERSION', `${operation} '${stream}' expected ${expected}, but ${actualText}`, { stream, expected, actual });
    this.name = 'WrongExpectedVersionError';
  }
}

export class StreamNotFoundError extends ChronicleError {
  constructor(readonly stream: string) {
    super('STREAM_NOT_FOUND', `stream '${stream}' was not found`, { stream });
    this.name = 'StreamNotFoundError';
  }
}

export class StreamDeletedError extends ChronicleError {
  constructor(readonly stream: string) {
    super('STREAM_DELETED', `stream '${stream}' is deleted (tombstoned) and can be neither read nor written`, { stream });
    this.name = 'StreamDeletedError';
  }
}

export class MaximumAppendSizeExceededError extends ChronicleError {
  constructor(
    readonly sizeBytes: number,
    readonly maxAppendSizeBytes: number,
    what: string,
    /** Whether one event or the whole append is over its limit. */
    readonly scope: 'event' | 'append' = 'append',
  ) {
    super('MAXIMUM_APPEND_SIZE_EXCEEDED', `${what} is ${sizeBytes} bytes, over the limit of ${maxAppendSizeBytes} bytes`, {
      sizeBytes,
      maxAppendSizeBytes,
    });
    this.name = 'MaximumAppendSizeExceededError';
  }
}

export class EventIdConflictError extends ChronicleError {
  constructor(readonly stream: string, detail: string) {
    super('EVENT_ID_CONFLICT', `append to '${stream}' reuses event ids of an earlier write: ${detail}`, { stream });
    this.name = 'EventIdConflictError';
  }
}

export class InvalidArgumentError extends ChronicleError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('INVALID_ARGUMENT', message, details);
    this.name = 'InvalidArgumentError';
  }
}

export class StoreUnavailableError extends ChronicleError {
  constructor(message: string) {
    super('STORE_UNAVAILABLE', message);
    this.name = 'StoreUnavailableError';
  }
}

export class StorageFailureError extends ChronicleError {
  constructor(message: string, override readonly cause: unknown) {
    super('STORAGE_FAILURE', message);
    this.name = 'StorageFailureError';
  }
}

/** A write or a leader read reached a node that does not lead; the leader's endpoint, when known, lets clients reconnect. */
export class NotLeaderError extends ChronicleError {
  constructor(
    message: string,
    readonly leader: { host: string; port: number } | undefined,
  ) {
    super('NOT_LEADER', message, leader ? { leaderHost: leader.host, leaderPort: leader.port } : {});
    this.name = 'NotLeaderError';
  }
}

/** No quorum answered within the bound: the write's outcome is unknown (retry it with the same event ids). */
export class NoQuorumError extends ChronicleError {
  constructor(message: string) {
    super('NO_QUORUM', message);
    this.name = 'NoQuorumError';
  }
}

/** The facts every persistent-subscription error carries (the clients build their typed errors from these trailers). */
function groupDetails(stream: string, group: string): Record<string, unknown> {
  const safe = (value: string) => (/^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value));
  return { stream, group, 'trailer:stream-name': safe(stream), 'trailer:group-name': safe(group) };
}

export class PersistentSubscriptionNotFoundError extends ChronicleError {
  constructor(stream: string, group: string) {
    super('PERSISTENT_SUBSCRIPTION_NOT_FOUND', `no persistent subscription group '${group}' on '${stream}'`, groupDetails(stream, group));
    this.name = 'PersistentSubscriptionNotFoundError';
  }
}

export class PersistentSubscriptionExistsError extends ChronicleError {
  constructor(stream: string, group: string) {
    super('PERSISTENT_SUBSCRIPTION_EXISTS', `the persistent subscription group '${group}' on '${stream}' already exists`, groupDetails(stream, group));
    this.name = 'PersistentSubscriptionExistsError';
  }
}

export class MaximumSubscribersReachedError extends ChronicleError {
  constructor(stream: string, group: string, max: number) {
    super('MAXIMUM_SUBSCRIBERS_REACHED', `the persistent subscription group '${group}' on '${stream}' already has its maximum of ${max} consumers`, groupDetails(stream, group));
    this.name = 'MaximumSubscribersReachedError';
  }
}

export class PersistentSubscriptionDroppedError extends ChronicleError {
  constructor(stream: string, group: string, reason: string) {
    super('PERSISTENT_SUBSCRIPTION_DROPPED', `the consumer of '${group}' on '${stream}' was dropped: ${reason}`, groupDetails(stream, group));
    this.name = 'PersistentSubscriptionDroppedError';
  }
}

/** A subscriber that stopped taking data while events waited for it: dropped to keep memory bounded. */
export class SlowConsumerError extends ChronicleError {
  constructor(message: string) {
    super('SLOW_CONSUMER', message);
    this.name = 'SlowConsumerError';
  }
}
