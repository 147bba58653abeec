/**
 * Writes to one stream launched in the same event-loop turn (Promise.allSettled): fresh batches
 * with exact expected revisions, 'any' and the other states, exact retries of those batches racing
 * them, repeats of batches written earlier, soft deletes, the odd tombstone, and reads.
 *
 * The outcome must be linearizable: the successful writes, in commit order, form a chain in which
 * each one's expectation held and each append's revisions follow on; every refusal is justified
 * by some state of that chain; all copies of a batch that succeed report the same result and the
 * batch is in the stream once; reads see one of the chain's states; and the stream ends as the
 * chain says. In particular at most one batch wins per expected revision, and when every writer
 * expects the current revision, one of them wins.
 *
 * The check does not assume the store decides in call order, only that its outcome could have
 * happened in some order.
 *
 * A failure prints its seed and path; see support.ts for how to replay it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventIdConflictError, StreamDeletedError, WrongExpectedVersionError } from '../../src/errors.js';
import { MemoryFileSystem } from '../../src/storage/memory-file-system.js';
import { EventStore, type EventStoreOptions } from '../../src/store/event-store.js';
import type { AppendResult, DeleteResult, ExpectedState, RecordedEvent } from '../../src/store/types.js';
import { describeOutcome, errorName, plain, propertyParameters, uuidSource, withTrace, type Outcome } from './support.js';

const STREAM = 'hot';

type ExpectationSpec = { kind: 'exact'; delta: number } | { kind: 'any' } | { kind: 'no_stream' } | { kind: 'stream_exists' };

type WaveOp =
  | { kind: 'fresh'; count: number; expected: ExpectationSpec }
  /** A copy of the `of`-th fresh batch of this wave (modulo), launched in its own place in the turn. */
  | { kind: 'retry'; of: number; expected: 'same' | 'any' }
  /** A repeat of a batch an earlier wave wrote. */
  | { kind: 'oldRetry'; of: number; expected: 'same' | 'any' }
  | { kind: 'delete'; expected: ExpectationSpec }
  | { kind: 'tombstone'; expected: ExpectationSpec }
  | { kind: 'read' };

interface Wave {
  reopenBefore: boolean;
  ops: WaveOp[];
}

const expectationArb: fc.Arbitrary<ExpectationSpec> = fc.oneof(
  // Mostly exact revisions at or just past the current one: several writers race for each.
  { arbitrary: fc.record({ kind: fc.constant('exact' as const), delta: fc.constantFrom(-1, 0, 0, 0, 1, 1, 2, 3) }), weight: 6 },
  { arbitrary: fc.constant({ kind: 'any' as const }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'no_stream' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'stream_exists' as const }), weight: 1 },
);

const waveOpArb: fc.Arbitrary<WaveOp> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('fresh' as const), count: fc.integer({ min: 1, max: 3 }), expected: expectationArb }), weight: 10 },
  { arbitrary: fc.record({ kind: fc.constant('retry' as const), of: fc.nat(), expected: fc.constantFrom('same' as const, 'any' as const) }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('oldRetry' as const), of: fc.nat(), expected: fc.constantFrom('same' as const, 'any' as const) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), expected: expectationArb }), weight: 2 },
  // A tombstone ends the stream for every later wave, so it is rare.
  { arbitrary: fc.record({ kind: fc.constant('tombstone' as const), expected: expectationArb }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'read' as const }), weight: 2 },
);

const scenarioArb = fc.record({
  initialEvents: fc.nat(3),
  // Start soft-deleted, so that the first appends race to recreate the stream.
  initiallyDeleted: fc.boolean(),
  waves: fc.array(fc.record({ reopenBefore: fc.boolean(), ops: fc.array(waveOpArb, { minLength: 2, maxLength: 14 }) }), { minLength: 1, maxLength: 3 }),
});

interface StreamState {
  lastRevision: number;
  softDeleted: boolean;
  tombstoned: boolean;
  /** The first revision reads show: everything before a recreation stays hidden. */
  visibleFrom: number;
}

function exists(state: StreamState): boolean {
  return state.lastRevision >= 0 && !state.softDeleted;
}

function holds(expected: ExpectedState, state: StreamState): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream') return !exists(state);
  if (expected === 'stream_exists') return exists(state);
  return state.lastRevision === Number(expected);
}

function resolve(spec: ExpectationSpec, state: StreamState): ExpectedState {
  return spec.kind === 'exact' ? Math.max(0, state.lastRevision + spec.delta) : spec.kind;
}

/** What a read of the stream in `state` returns: ids, or the name of the error. */
function visible(state: StreamState, ids: readonly string[]): string[] | string {
  if (state.tombstoned) return StreamDeletedError.name;
  if (!exists(state)) return 'StreamNotFoundError';
  return ids.slice(state.visibleFrom, state.lastRevision + 1);
}

/** One write of the wave and every call that makes it: an append batch and its copies, or a delete. */
interface Write {
  kind: 'append' | 'delete' | 'tombstone';
  ids: string[];
  copies: { index: number; expected: ExpectedState }[];
  /** The expectation the batch was first sent with (what a 'same' retry repeats). */
  expected: ExpectedState;
  /** Set for a batch an earlier wave wrote: its copies must answer with this, or be refused. */
  earlier?: EarlierBatch;
}

interface EarlierBatch {
  ids: string[];
  expected: ExpectedState;
  result: AppendResult;
  prior: StreamState;
}

type CallResult = AppendResult | DeleteResult | RecordedEvent[];

async function runScenario(scenario: { initialEvents: number; initiallyDeleted: boolean; waves: Wave[] }): Promise<void> {
  const fileSystem = new MemoryFileSystem();
  const options: EventStoreOptions = { fileSystem, directory: '/db', indexBackend: 'memory', newUuid: uuidSource(0xffff) };
  const newId = uuidSource(3);
  const trace: string[] = [];
  let store = await EventStore.open(options);
  const earlierBatches: EarlierBatch[] = [];
  try {
    // Every id the stream ever held, by revision (hidden ones included).
    const ids: string[] = [];
    for (let i = 0; i < scenario.initialEvents; i++) {
      const id = newId();
      ids.push(id);
      await store.appendToStream(STREAM, [{ id, type: 'Seed' }]);
    }
    let state: StreamState = { lastRevision: ids.length - 1, softDeleted: false, tombstoned: false, visibleFrom: 0 };
    if (scenario.initiallyDeleted) {
      await store.deleteStream(STREAM);
      state = { ...state, softDeleted: true };
    }

    for (const [waveIndex, wave] of scenario.waves.entries()) {
      if (wave.reopenBefore) {
        await store.close();
        store = await EventStore.open(options);
        trace.push(`wave ${waveIndex}: reopened`);
      }
      const s0 = state;
      const writes: Write[] = [];
      const calls: { index: number; label: string; run: () => Promise<CallResult> }[] = [];
      const call = (index: number, write: Write, expected: ExpectedState) => {
        write.copies.push({ index, expected });
        const label = `#${index} ${write.kind}${write.kind === 'append' ? ` [${write.ids.join(', ')}]` : ''} expecting ${String(expected)}`;
        const run = (): Promise<CallResult> => {
          if (write.kind === 'delete') return store.deleteStream(STREAM, { expectedState: expected });
          if (write.kind === 'tombstone') return store.tombstoneStream(STREAM, { expectedState: expected });
          return store.appendToStream(STREAM, write.ids.map((id) => ({ id, type: 'Raced', data: { id } })), { expectedState: expected });
        };
        calls.push({ index, label, run });
      };
      // Retries name fresh batches by position, and may come first: make those batches before the calls.
      const fresh: Write[] = [];
      for (const op of wave.ops) {
        if (op.kind !== 'fresh') continue;
        const write: Write = { kind: 'append', ids: Array.from({ length: op.count }, () => newId()), copies: [], expected: resolve(op.expected, s0) };
        fresh.push(write);
        writes.push(write);
      }
      let freshSeen = 0;
      for (const [index, op] of wave.ops.entries()) {
        switch (op.kind) {
          case 'fresh': {
            const write = fresh[freshSeen++]!;
            call(index, write, write.expected);
            break;
          }
          case 'retry': {
            if (fresh.length === 0) break;
            const write = fresh[op.of % fresh.length]!;
            call(index, write, op.expected === 'any' ? 'any' : write.expected);
            break;
          }
          case 'oldRetry': {
            if (earlierBatches.length === 0) break;
            const batch = earlierBatches[op.of % earlierBatches.length]!;
            let write = writes.find((candidate) => candidate.earlier === batch);
            if (!write) {
              write = { kind: 'append', ids: batch.ids, copies: [], expected: batch.expected, earlier: batch };
              writes.push(write);
            }
            call(index, write, op.expected === 'any' ? 'any' : batch.expected);
            break;
          }
          case 'delete':
          case 'tombstone': {
            const write: Write = { kind: op.kind, ids: [], copies: [], expected: resolve(op.expected, s0) };
            writes.push(write);
            call(index, write, write.expected);
            break;
          }
          case 'read':
            calls.push({ index, label: `#${index} read`, run: () => store.readStream(STREAM) });
            break;
        }
      }

      // The whole wave in one turn: every call starts before any of them can finish.
      const settled = await Promise.allSettled(calls.map((c) => c.run()));
      const outcomes = new Map<number, Outcome<CallResult>>();
      for (const [i, result] of settled.entries()) {
        const outcome: Outcome<CallResult> = result.status === 'fulfilled' ? { ok: true, value: result.value } : { ok: false, error: result.reason };
        outcomes.set(calls[i]!.index, outcome);
        const shown = outcome.ok && Array.isArray(outcome.value) ? `ok ${outcome.value.length} events` : describeOutcome(outcome);
        trace.push(`wave ${waveIndex} ${calls[i]!.label}: ${shown}`);
      }
      const outcomeOfCopy = (index: number) => outcomes.get(index) as Outcome<AppendResult | DeleteResult>;

      // The wave's writes that happened: every successful copy of one says the same thing.
      const winners: { write: Write; result: AppendResult | DeleteResult }[] = [];
      for (const write of writes) {
        if (write.earlier) continue;
        const results = write.copies.map((copy) => outcomeOfCopy(copy.index)).filter((outcome) => outcome.ok).map((outcome) => outcome.value);
        if (results.length === 0) continue;
        for (const result of results) assert.deepEqual(result, results[0], `copies of [${write.ids.join(', ')}] disagree on where the batch went`);
        winners.push({ write, result: results[0]! });
      }
      winners.sort((a, b) => a.result.position.commit - b.result.position.commit);

      // The chain: states s_0 .. s_n around the winners, in commit order.
      const states: StreamState[] = [s0];
      const chainIndex = new Map<Write, number>();
      const winnersByExpectedRevision = new Map<number, Set<Write>>();
      for (const [j, { write, result }] of winners.entries()) {
        const prior = states[j]!;
        chainIndex.set(write, j);
        const what = `wave ${waveIndex} ${write.kind} [${write.ids.join(', ')}]`;
        if (j > 0) assert.ok(result.position.commit > winners[j - 1]!.result.position.commit, `${what} shares a commit position with the write before it`);
        assert.ok(!prior.tombstoned, `${what} succeeded after a tombstone`);
        for (const copy of write.copies) {
          if (!outcomeOfCopy(copy.index).ok) continue;
          assert.ok(holds(copy.expected, prior), `#${copy.index} succeeded expecting ${String(copy.expected)} on a stream in state ${JSON.stringify(prior)}`);
          if (typeof copy.expected === 'number' && write.kind === 'append') {
            winnersByExpectedRevision.set(copy.expected, (winnersByExpectedRevision.get(copy.expected) ?? new Set<Write>()).add(write));
          }
        }
        let next: StreamState;
        if (write.kind === 'append') {
          assert.equal((result as AppendResult).nextExpectedRevision, prior.lastRevision + write.ids.length, `${what}: revisions do not follow the write before it`);
          // A recreation hides everything before it.
          const visibleFrom = prior.softDeleted ? prior.lastRevision + 1 : prior.visibleFrom;
          next = { lastRevision: prior.lastRevision + write.ids.length, softDeleted: false, tombstoned: false, visibleFrom };
          ids.push(...write.ids);
        } else if (write.kind === 'delete') {
          next = { ...prior, softDeleted: true };
        } else {
          next = { ...prior, tombstoned: true };
        }
        states.push(next);
      }
      for (const [revision, batches] of winnersByExpectedRevision) assert.ok(batches.size <= 1, `${batches.size} batches won expecting revision ${revision}`);

      // Every refusal is justified by a state the call could have met.
      for (const write of writes) {
        for (const copy of write.copies) {
          const outcome = outcomeOfCopy(copy.index);
          const what = `wave ${waveIndex} #${copy.index} ${write.kind} [${write.ids.join(', ')}] expecting ${String(copy.expected)}`;
          if (write.earlier) {
            // A repeat of an earlier batch: its result, unless refused for an expectation that did
            // not hold before that batch, or for a tombstone.
            const { result, prior } = write.earlier;
            if (outcome.ok) {
              assert.deepEqual(outcome.value, result, what);
              assert.ok(holds(copy.expected, prior), `${what}: a repeat was accepted though its expectation did not hold for the original`);
            } else if (outcome.error instanceof StreamDeletedError) {
              assert.ok(states.some((s) => s.tombstoned), `${what}: ${describeOutcome(outcome)}`);
            } else {
              // The semantics only say such a repeat is not an exact retry; either refusal fits.
              assert.ok([WrongExpectedVersionError.name, EventIdConflictError.name].includes(errorName(outcome.error)), `${what}: ${describeOutcome(outcome)}`);
              assert.ok(!holds(copy.expected, prior), `${what}: refused though its expectation held for the original: ${describeOutcome(outcome)}`);
            }
            continue;
          }
          if (outcome.ok) continue;
          // Before the batch's own write (or anywhere, if it never happened).
          const until = chainIndex.get(write) ?? states.length - 1;
          const before = states.slice(0, until + 1);
          if (outcome.error instanceof StreamDeletedError) {
            assert.ok(states.some((s) => s.tombstoned), `${what}: ${describeOutcome(outcome)} though the stream was never tombstoned`);
          } else if (outcome.error instanceof WrongExpectedVersionError) {
            assert.ok(
              before.some((s) => !s.tombstoned && !holds(copy.expected, s)),
              `${what} was refused, but the stream went through ${JSON.stringify(before)} before the write`,
            );
          } else if (outcome.error instanceof EventIdConflictError) {
            // A copy behind the batch's own write is a retry; one whose expectation did not hold
            // for that write may be refused either way.
            const at = chainIndex.get(write);
            assert.ok(at !== undefined && !holds(copy.expected, states[at]!), `${what}: ${describeOutcome(outcome)}`);
          } else {
            assert.fail(`${what}: ${describeOutcome(outcome)}`);
          }
        }
      }

      // The stream is the chain's last state.
      const final = states.at(-1)!;
      const read: RecordedEvent[] | string = await store.readStream(STREAM).catch((error: unknown) => errorName(error));
      const seen = Array.isArray(read) ? read.map((event) => event.id) : read;
      assert.deepEqual(seen, visible(final, ids), `wave ${waveIndex}: the stream after the wave`);
      if (Array.isArray(read)) {
        assert.deepEqual(read.map((event) => event.revision), read.map((_, i) => final.visibleFrom + i), 'revisions are not contiguous');
        for (const { write, result } of winners) {
          const last: RecordedEvent | undefined = read.find((event) => event.id === write.ids.at(-1));
          if (last) assert.deepEqual(last.position, result.position, `[${write.ids.join(', ')}] is not where its result said`);
        }
      }
      const inAll = (await store.readAll()).events.filter((event) => event.streamId === STREAM && event.type !== '$streamDeleted');
      assert.deepEqual(inAll.map((event) => event.id), ids, `wave ${waveIndex}: $all holds other events of ${STREAM}`);
      assert.deepEqual(inAll.map((event) => event.revision), ids.map((_, i) => i), `wave ${waveIndex}: revisions in $all are not contiguous from 0`);

      // Reads in the wave saw one of the chain's states.
      for (const c of calls) {
        if (!c.label.endsWith('read')) continue;
        const outcome = outcomes.get(c.index)!;
        const got = outcome.ok ? (outcome.value as RecordedEvent[]).map((event) => event.id) : errorName(outcome.error);
        const possible = states.map((s) => JSON.stringify(visible(s, ids)));
        assert.ok(possible.includes(JSON.stringify(got)), `${c.label} saw ${JSON.stringify(got)}, which is no state the stream went through`);
      }

      // This wave's batches are the earlier batches of the next.
      for (const [j, { write, result }] of winners.entries()) {
        if (write.kind === 'append') earlierBatches.push({ ids: write.ids, expected: write.expected, result: result as AppendResult, prior: states[j]! });
      }
      state = final;
    }

    // Everything again after a restart, from the log alone.
    const before = (await store.readAll()).events.map(plain);
    await store.close();
    store = await EventStore.open(options);
    assert.deepEqual((await store.readAll()).events.map(plain), before, 'a restart changed the log');
  } catch (error) {
    throw withTrace(error, trace);
  } finally {
    await store.close();
  }
}

describe('concurrent writes to one stream', () => {
  it('are linearizable: one winner per expected revision, retries never write twice', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, (scenario) => runScenario(scenario)),
      propertyParameters(2500),
    );
  });
});
