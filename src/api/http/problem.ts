import { ChronicleError, ERROR_REGISTRY, InvalidArgumentError, type ErrorCode } from '../../errors.js';

/**
 * Errors as `application/problem+json` (RFC 9457). The status comes from the error registry, the
 * `code` is the registry's stable code, and the error's structured details travel as extension
 * members (a wrong expected version carries the stream's current revision, a not-leader error
 * where the leader is), so clients switch on `code`, never on the text.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
/** Seconds a client should wait before retrying a 503: about one election. */
export const RETRY_AFTER_SECONDS = 1;

/** 'WRONG_EXPECTED_VERSION' → 'Wrong expected version'. */
function titleOf(code: ErrorCode): string {
  const words = code.toLowerCase().split('_');
  return [words[0]!.charAt(0).toUpperCase() + words[0]!.slice(1), ...words.slice(1)].join(' ');
}

export function problemOf(error: ChronicleError, instance?: string): Problem {
  const status = ERROR_REGISTRY[error.code].httpStatus;
  const problem: Problem = {
    type: `urn:chronicle:error:${error.code.toLowerCase().replaceAll('_', '-')}`,
    title: titleOf(error.code),
    status,
    detail: error.message,
    code: error.code,
    ...(instance !== undefined ? { instance } : {}),
  };
  for (const [key, value] of Object.entries(error.details)) {
    // Keys like 'trailer:stream-name' are for the gRPC layer's trailers, not for HTTP clients.
    if (key in problem || key.includes(':')) continue;
    problem[key] = value;
  }
  // The current revision in the form ES-ExpectedVersion uses: -1 for "no stream".
  const actual = error.details.actual as { kind?: string; revision?: number } | undefined;
  if (error.code === 'WRONG_EXPECTED_VERSION' && actual) problem.currentRevision = actual.kind === 'revision' ? actual.revision : -1;
  return problem;
}

/** Headers that go with a problem: when to retry a 503, the current revision of a conflict. */
export function problemHeaders(problem: Problem): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store' };
  if (problem.status === 503) headers['retry-after'] = String(RETRY_AFTER_SECONDS);
  if (typeof problem.currentRevision === 'number') headers['es-currentversion'] = String(problem.currentRevision);
  return headers;
}

interface FrameworkError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
  validation?: unknown;
  validationContext?: unknown;
}

/**
 * Turns whatever a request failed with into a Chronicle error: the store's errors as they are,
 * fastify's refusals of malformed requests (schema validation, bad JSON, too large, unknown media
 * type) into the registry's codes. Anything else is an internal error, reported as such.
 */
export function asChronicleError(error: unknown, maxBodyBytes: number): ChronicleError {
  if (error instanceof ChronicleError) return error;
  const framework = (error ?? {}) as FrameworkError;
  const message = typeof framework.message === 'string' ? framework.message : String(error);
  if (framework.validation !== undefined) {
    const where = typeof framework.validationContext === 'string' ? framework.validationContext : 'request';
    return new InvalidArgumentError(`invalid ${where === 'querystring' ? 'query string' : where}: ${message}`);
  }
  switch (framework.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ChronicleError('MAXIMUM_APPEND_SIZE_EXCEEDED', `the request body is larger than the limit of ${maxBodyBytes} bytes`, { maxAppendSizeBytes: maxBodyBytes });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ChronicleError('UNSUPPORTED_MEDIA_TYPE', `${message}: send application/json (or application/vnd.eventstore.events+json), or application/octet-stream for one event's raw data`);
  }
  if (typeof framework.statusCode === 'number' && framework.statusCode >= 400 && framework.statusCode < 500) {
    return new InvalidArgumentError(message);
  }
  return new ChronicleError('INTERNAL_ERROR', 'the request failed inside the node; it is logged');
}
