/**
 * Shared plumbing of the property tests: run parameters, deterministic ids, outcome capture and
 * a stable form of recorded events for comparisons.
 *
 * Replaying a failure: fast-check prints `{ seed, path }` of the failing run. Either put them into
 * the `fc.assert` call (`fc.assert(property, { seed: 12345, path: "3:1:0", endOnFailure: true })`)
 * or, without editing the test, set them in the environment:
 *   FC_SEED=12345 FC_PATH=3:1:0 node --test dist/test/property/store-model.property.test.js
 * FC_NUM_RUNS overrides the number of runs (a long soak: FC_NUM_RUNS=5000).
 */
import type { Parameters } from 'fast-check';
import type { RecordedEvent } from '../../src/store/types.js';

export function propertyParameters<T>(defaultRuns: number): Parameters<T> {
  const parameters: Parameters<T> = {
    numRuns: Number(process.env.FC_NUM_RUNS ?? defaultRuns),
    // The failing assertion's message goes into the report, which is all node:test prints.
    includeErrorInReport: true,
    // Shrinking a long failing run can take minutes; past this, the failure is reported as shrunk so far.
    interruptAfterTimeLimit: 120_000,
  };
  if (process.env.FC_SEED !== undefined) {
    parameters.seed = Number(process.env.FC_SEED);
    // A path only means something together with the seed it came from.
    if (process.env.FC_PATH !== undefined) parameters.path = process.env.FC_PATH;
    parameters.endOnFailure = true;
  }
  return parameters;
}

/**
 * Counter-based UUIDs. Generated ids must be a function of the run, not of the wall clock or
 * `randomUUID`, or fast-check could not replay and shrink a failure. `namespace` keeps the ids
 * the test chooses apart from the ids the store generates for its system events.
 */
export function uuidSource(namespace: number): () => string {
  let next = 0;
  return () => {
    next++;
    const ns = namespace.toString(16).padStart(8, '0');
    return `${ns}-0000-4000-8000-${next.toString(16).padStart(12, '0')}`;
  };
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export async function outcomeOf<T>(action: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await action() };
  } catch (error) {
    return { ok: false, error };
  }
}

export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : `non-error ${String(error)}`;
}

export function describeOutcome(outcome: Outcome<unknown>): string {
  if (outcome.ok) return `ok ${JSON.stringify(outcome.value)}`;
  const error = outcome.error;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** A recorded event as plain data: the store hands out Buffers or Uint8Arrays depending on the path. */
export interface PlainEvent {
  streamId: string;
  revision: number;
  id: string;
  type: string;
  data: string;
  metadata: string;
  contentType: string;
  createdMicros: number;
  commit: number;
  prepare: number;
}

export function plain(event: RecordedEvent): PlainEvent {
  return {
    streamId: event.streamId,
    revision: event.revision,
    id: event.id,
    type: event.type,
    data: Buffer.from(event.data).toString('hex'),
    metadata: Buffer.from(event.metadata).toString('hex'),
    contentType: event.contentType,
    createdMicros: event.createdMicros,
    commit: event.position.commit,
    prepare: event.position.prepare,
  };
}

/** Strict (commit, prepare) order, the order of the global log. */
export function positionBefore(a: { commit: number; prepare: number }, b: { commit: number; prepare: number }): boolean {
  return a.commit < b.commit || (a.commit === b.commit && a.prepare < b.prepare);
}

/**
 * Adds the run's trace to a failure. fast-check reports an error by its `stack`, which was built
 * from the message at construction, so both are rewritten.
 */
export function withTrace(error: unknown, trace: readonly string[]): unknown {
  if (!(error instanceof Error)) return error;
  const frames = (error.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at '));
  error.message += `\ntrace:\n  ${trace.join('\n  ')}`;
  error.stack = [`${error.name}: ${error.message}`, ...frames].join('\n');
  return error;
}
