/**
 * "Any prefix of the log recovers to a consistent state." Random appends run against a store on a
 * MemoryFileSystem; at a random moment, often with appends still in flight, the machine crashes
 * (unsynced bytes are lost, the last unsynced write possibly torn); the store reopens. What comes
 * back must be exactly what was there before the round plus a prefix of the writes attempted in it,
 * every acknowledged write among them at its acknowledged revision and position, and the store
 * must take further writes, retries included.
 *
 * The writes of a round are launched without waiting for each other. The store decides them in
 * the order they are made (it validates each against the state including the writes still in
 * flight), so the order of the calls is the order of the log; the test predicts revisions from it.
 *
 * A failure prints its seed and path; see support.ts for how to replay it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StorageFailureError, WrongExpectedVersionError } from '../../src/errors.js';
import type { FileSystem, LogFile } from '../../src/storage/file-system.js';
import { MemoryFileSystem } from '../../src/storage/memory-file-system.js';
import { EventStore, type EventStoreOptions } from '../../src/store/event-store.js';
import type { AppendResult, ExpectedState } from '../../src/store/types.js';
import { describeOutcome, errorName, outcomeOf, plain, propertyParameters, uuidSource, withTrace, type Outcome, type PlainEvent } from './support.js';

const STREAMS = ['red', 'green', 'blue'] as const;

type Step =
  | { kind: 'launch'; stream: number; count: number; expectation: 'any' | 'right' | 'wrong' }
  /** Yields for that many promise reactions: shifts the next step relative to the store's own continuations. */
  | { kind: 'microtasks'; count: number }
  /** Lets a scheduled group commit start. */
  | { kind: 'turn' }
  /** Waits until every write launched so far has settled: the crash then finds the store idle. */
  | { kind: 'settle' };

interface Round {
  steps: Step[];
  /**
   * Between two steps of the script, or right after the n-th file operation of the round (a write,
   * fdatasync, truncate or directory sync): the memory file system applies each operation at once,
   * so only a crash from inside the I/O path can land between a write and its fdatasync.
   */
  crash: { kind: 'step'; at: number } | { kind: 'io'; after: number };
  tear: { keepFraction: number } | null;
  /** Appends launched after the crash, before the store notices: none may survive it. */
  afterCrash: { stream: number; count: number }[];
  /** A second crash right after the n-th file operation of the recovery (cutting the torn tail, the checkpoint). */
  crashDuringRecovery: { after: number; tear: { keepFraction: number } | null } | null;
}

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('launch' as const),
      stream: fc.integer({ min: 0, max: STREAMS.length - 1 }),
      count: fc.integer({ min: 1, max: 3 }),
      expectation: fc.constantFrom('any' as const, 'any' as const, 'right' as const, 'wrong' as const),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ kind: fc.constant('microtasks' as const), count: fc.integer({ min: 1, max: 6 }) }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'turn' as const }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'settle' as const }), weight: 1 },
);

// Whole percentages: fc.double would mostly pick fractions too small to keep a single byte.
const tearArb = fc.option(fc.record({ keepFraction: fc.integer({ min: 0, max: 99 }).map((percent) => percent / 100) }), { nil: null });

const roundArb: fc.Arbitrary<Round> = fc
  .record({
    steps: fc.array(stepArb, { minLength: 1, maxLength: 25 }),
    crash: fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('step' as const), at: fc.nat() }), weight: 1 },
      { arbitrary: fc.record({ kind: fc.constant('io' as const), after: fc.integer({ min: 1, max: 8 }) }), weight: 2 },
    ),
    tear: tearArb,
    afterCrash: fc.array(fc.record({ stream: fc.integer({ min: 0, max: STREAMS.length - 1 }), count: fc.integer({ min: 1, max: 2 }) }), { maxLength: 2 }),
    crashDuringRecovery: fc.option(fc.record({ after: fc.integer({ min: 1, max: 4 }), tear: tearArb }), { nil: null, freq: 4 }),
  })
  .map((round) => (round.crash.kind === 'step' ? { ...round, crash: { kind: 'step' as const, at: round.crash.at % (round.steps.length + 1) } } : round));

const configArb = fc.record({
  // Tiny segments make flushes cross segment files, so crashes also hit segment creation.
  segmentSizeBytes: fc.constantFrom(undefined, 300, 1200),
  rounds: fc.array(roundArb, { minLength: 1, maxLength: 3 }),
});

interface Attempt {
  stream: string;
  ids: string[];
  /** Revisions the write gets if the log keeps it (from the order of the calls). */
  firstRevision: number;
  expected: ExpectedState;
  outcome?: Outcome<AppendResult>;
  label: string;
}

/**
 * One process's view of the machine's disk. A crash kills the process, so once `kill` is called
 * every further I/O of the old store fails: left alone, the abandoned store would go on writing
 * to the rebooted disk (a new segment file, a checkpoint), which no crashed process can do.
 * It also reports every operation that changes durable state, so a crash can land right after it.
 */
class ProcessFileSystem implements FileSystem {
  private dead = false;
  onOperation: ((what: string) => void) | undefined;

  constructor(private readonly disk: MemoryFileSystem) {}

  kill(): void {
    this.dead = true;
  }

  private alive(): void {
    if (this.dead) throw Object.assign(new Error('EIO: the process crashed'), { code: 'EIO' });
  }

  private report(what: string): void {
    this.onOperation?.(what);
  }

  async open(path: string, options: { create: boolean }): Promise<LogFile> {
    this.alive();
    const file = await this.disk.open(path, options);
    return {
      path: file.path,
      write: async (chunks, position) => {
        this.alive();
        await file.write(chunks, position);
        this.report(`write ${path}`);
      },
      read: async (into, offset, length, position) => {
        this.alive();
        return file.read(into, offset, length, position);
      },
      readSync: (into, offset, length, position) => {
        this.alive();
        return file.readSync(into, offset, length, position);
      },
      datasync: async () => {
        this.alive();
        await file.datasync();
        this.report(`datasync ${path}`);
      },
      truncate: async (sizeBytes) => {
        this.alive();
        await file.truncate(sizeBytes);
        this.report(`truncate ${path}`);
      },
      size: async () => {
        this.alive();
        return file.size();
      },
      close: () => file.close(),
    };
  }

  async list(directory: string): Promise<string[]> {
    this.alive();
    return this.disk.list(directory);
  }

  async exists(path: string): Promise<boolean> {
    this.alive();
    return this.disk.exists(path);
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    this.alive();
    await this.disk.rename(fromPath, toPath);
    this.report(`rename ${fromPath}`);
  }

  async remove(path: string): Promise<void> {
    this.alive();
    await this.disk.remove(path);
    this.report(`remove ${path}`);
  }

  async makeDirectory(directory: string): Promise<void> {
    this.alive();
    await this.disk.makeDirectory(directory);
  }

  async syncDirectory(directory: string): Promise<void> {
    this.alive();
    await this.disk.syncDirectory(directory);
    this.report(`syncDirectory ${directory}`);
  }
}

async function waitTurn(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Groups `$all` into writes: one write per commit position. */
function writesOf(events: readonly PlainEvent[]): PlainEvent[][] {
  const writes: PlainEvent[][] = [];
  for (const event of events) {
    const last = writes.at(-1);
    if (last && last[0]!.commit === event.commit) last.push(event);
    else writes.push([event]);
  }
  return writes;
}

async function runScenario(config: { segmentSizeBytes: number | undefined; rounds: Round[] }): Promise<void> {
  const disk = new MemoryFileSystem();
  let current = new ProcessFileSystem(disk);
  const optionsFor = (fileSystem: FileSystem): EventStoreOptions => ({
    fileSystem,
    directory: '/db',
    indexBackend: 'memory',
    newUuid: uuidSource(0xffff),
    ...(config.segmentSizeBytes === undefined ? {} : { segmentSizeBytes: config.segmentSizeBytes }),
  });
  const newId = uuidSource(2);
  const trace: string[] = [];
  const allAttempts: Attempt[] = [];
  let store = await EventStore.open(optionsFor(current));
  let baseline: PlainEvent[] = [];
  try {
    for (const [roundIndex, round] of config.rounds.entries()) {
      // What the log will say once every write in flight is in: each stream's last revision.
      const predicted = new Map<string, number>();
      for (const event of baseline) predicted.set(event.streamId, event.revision);
      const attempts: Attempt[] = [];
      const refused: Attempt[] = [];
      const lost: Attempt[] = [];
      const inFlight: Promise<unknown>[] = [];
      const launch = (stream: string, count: number, expectedState: ExpectedState, list: Attempt[]) => {
        const ids = Array.from({ length: count }, () => newId());
        const attempt: Attempt = {
          stream,
          ids,
          firstRevision: (predicted.get(stream) ?? -1) + 1,
          expected: expectedState,
          label: `round ${roundIndex} ${stream} [${ids.join(', ')}] expecting ${String(expectedState)}`,
        };
        list.push(attempt);
        trace.push(`launch ${attempt.label}`);
        inFlight.push(
          outcomeOf(() => store.appendToStream(stream, ids.map((id) => ({ id, type: 'Written', data: { id } })), { expectedState })).then((outcome) => {
            attempt.outcome = outcome;
            trace.push(`settled ${attempt.label}: ${describeOutcome(outcome)}`);
          }),
        );
        return attempt;
      };
      let crashed = false;
      const crash = (when: string) => {
        if (crashed) return;
        crashed = true;
        trace.push(`crash ${when} ${JSON.stringify(round.tear)}`);
        current.kill();
        disk.crash(round.tear ? { tearLastWrite: round.tear } : {});
      };
      let operations = 0;
      const { crash: crashPoint } = round;
      current.onOperation = (what) => {
        if (crashPoint.kind === 'io' && ++operations === crashPoint.after) crash(`after ${what}`);
      };

      for (const [index, step] of round.steps.entries()) {
        if (crashPoint.kind === 'step' && index === crashPoint.at) crash(`before step ${index}`);
        const afterCrash = crashed;
        switch (step.kind) {
          case 'launch': {
            const stream = STREAMS[step.stream]!;
            if (afterCrash) {
              launch(stream, step.count, 'any', lost);
              break;
            }
            const last = predicted.get(stream) ?? -1;
            if (step.expectation === 'wrong') {
              launch(stream, step.count, last + 1, refused);
              break;
            }
            const expected: ExpectedState = step.expectation === 'any' ? 'any' : last < 0 ? 'no_stream' : last;
            launch(stream, step.count, expected, attempts);
            predicted.set(stream, last + step.count);
            break;
          }
          case 'microtasks':
            for (let i = 0; i < step.count; i++) await Promise.resolve();
            break;
          case 'turn':
            await waitTurn();
            break;
          case 'settle':
            await Promise.all(inFlight);
            break;
        }
      }
      // A crash point the round never reached becomes a crash at its end.
      crash('at the end of the round');
      for (const extra of round.afterCrash) launch(STREAMS[extra.stream]!, extra.count, 'any', lost);
      await Promise.all(inFlight);

      for (const attempt of refused) {
        assert.ok(!attempt.outcome!.ok && attempt.outcome!.error instanceof WrongExpectedVersionError, `${attempt.label}: ${describeOutcome(attempt.outcome!)}`);
      }
      for (const attempt of lost) {
        assert.ok(
          !attempt.outcome!.ok && attempt.outcome!.error instanceof StorageFailureError,
          `${attempt.label} was made after the crash, so it cannot be durable: ${describeOutcome(attempt.outcome!)}`,
        );
      }
      for (const attempt of attempts) {
        const outcome = attempt.outcome!;
        if (outcome.ok) {
          assert.equal(outcome.value.nextExpectedRevision, attempt.firstRevision + attempt.ids.length - 1, `${attempt.label}: revision`);
        } else {
          assert.ok(outcome.error instanceof StorageFailureError, `${attempt.label}: ${describeOutcome(outcome)}`);
        }
      }

      if (round.crashDuringRecovery) {
        const { after, tear } = round.crashDuringRecovery;
        const recovering = (current = new ProcessFileSystem(disk));
        let operations = 0;
        let crashedAgain = false;
        recovering.onOperation = (what) => {
          if (++operations !== after) return;
          crashedAgain = true;
          trace.push(`crash during recovery after ${what} ${JSON.stringify(tear)}`);
          recovering.kill();
          disk.crash(tear ? { tearLastWrite: tear } : {});
        };
        const interrupted = await outcomeOf(() => EventStore.open(optionsFor(recovering)));
        recovering.onOperation = undefined;
        // Whether or not the open got to the end, a crashed process's store is abandoned.
        if (!crashedAgain) assert.ok(interrupted.ok, `reopening after the crash of round ${roundIndex}: ${describeOutcome(interrupted)}`);
        if (!crashedAgain && interrupted.ok) await interrupted.value.close();
      }
      current = new ProcessFileSystem(disk);
      const reopened = await outcomeOf(() => EventStore.open(optionsFor(current)));
      assert.ok(reopened.ok, `reopening after the crash of round ${roundIndex}: ${describeOutcome(reopened)}`);
      store = reopened.value;
      const recovered = (await store.readAll()).events.map(plain);
      trace.push(`recovered ${recovered.length} events (baseline ${baseline.length})`);
      const acknowledged = attempts.filter((attempt) => attempt.outcome!.ok).length;
      const kept = writesOf(recovered.slice(baseline.length)).length;
      if (store.stats.log.recoveredTornBytes > 0) coverage.tornTails++;
      if (kept > acknowledged) coverage.keptUnacknowledged++;
      if (kept < attempts.length && acknowledged > 0) coverage.lostAfterAcknowledged++;

      assert.deepEqual(recovered.slice(0, baseline.length), baseline, 'what was durable before the round changed');
      const writes = writesOf(recovered.slice(baseline.length));
      assert.ok(writes.length <= attempts.length, `${writes.length} writes recovered, only ${attempts.length} were attempted`);
      for (const [i, write] of writes.entries()) {
        const attempt = attempts[i]!;
        const what = `recovered write ${i} (${attempt.label})`;
        assert.deepEqual(
          write.map((event) => [event.streamId, event.id, event.revision]),
          attempt.ids.map((id, k) => [attempt.stream, id, attempt.firstRevision + k]),
          `${what}: the log holds something other than the next write attempted`,
        );
      }
      for (const [i, attempt] of attempts.entries()) {
        const outcome = attempt.outcome!;
        if (!outcome.ok) continue;
        const write = writes[i];
        assert.ok(write, `${attempt.label} was acknowledged but is gone after the crash`);
        const last = write.at(-1)!;
        assert.deepEqual({ commit: last.commit, prepare: last.prepare }, outcome.value.position, `${attempt.label}: position`);
      }
      for (const name of STREAMS) {
        const inAll = recovered.filter((event) => event.streamId === name);
        const read = await outcomeOf(() => store.readStream(name));
        if (inAll.length === 0) assert.ok(!read.ok && errorName(read.error) === 'StreamNotFoundError', `${name}: ${describeOutcome(read)}`);
        else assert.deepEqual(read.ok ? read.value.map(plain) : describeOutcome(read), inAll, `${name}: readStream and $all disagree`);
      }
      allAttempts.push(...attempts, ...lost);
      baseline = recovered;
    }

    // Every write, lost or kept, retried: a kept one, retried with the expectation it was made
    // with (a client that never heard back), answers with where it is; a lost one is written now
    // (with 'any': the stream has moved on since); either way it is in the log exactly once.
    const positionOf = new Map(baseline.map((event) => [event.id, event]));
    for (const attempt of allAttempts) {
      const kept = positionOf.get(attempt.ids[0]!);
      const retry = await outcomeOf(() =>
        store.appendToStream(attempt.stream, attempt.ids.map((id) => ({ id, type: 'Written', data: { id } })), { expectedState: kept ? attempt.expected : 'any' }),
      );
      trace.push(`retry ${attempt.label}: ${describeOutcome(retry)}`);
      assert.ok(retry.ok, `retrying ${attempt.label}: ${describeOutcome(retry)}`);
      if (kept) {
        const last = positionOf.get(attempt.ids.at(-1)!)!;
        assert.deepEqual(retry.value, { nextExpectedRevision: last.revision, position: { commit: last.commit, prepare: last.prepare } }, `retrying ${attempt.label}`);
      }
    }
    for (const name of STREAMS) {
      const events = await outcomeOf(() => store.readStream(name));
      const last = events.ok ? events.value.at(-1)!.revision : -1;
      const next = await outcomeOf(() => store.appendToStream(name, [{ id: newId(), type: 'Written' }], { expectedState: last < 0 ? 'no_stream' : last }));
      assert.ok(next.ok, `a fresh append to ${name}: ${describeOutcome(next)}`);
    }
    const final = (await store.readAll()).events.map(plain);
    const ids = final.map((event) => event.id);
    assert.equal(new Set(ids).size, ids.length, 'an event is in the log twice');
    for (const attempt of allAttempts) for (const id of attempt.ids) assert.ok(ids.includes(id), `${attempt.label}: event ${id} is missing after its retry`);
    for (const name of STREAMS) {
      const revisions = final.filter((event) => event.streamId === name).map((event) => event.revision);
      assert.deepEqual(revisions, revisions.map((_, i) => i), `${name}: revisions are not contiguous from 0`);
    }
    await store.close();
    store = await EventStore.open(optionsFor(current));
    assert.deepEqual((await store.readAll()).events.map(plain), final, 'a clean restart changed the log');
  } catch (error) {
    throw withTrace(error, trace);
  } finally {
    await store.close().catch(() => undefined);
  }
}

/**
 * How often the interesting crashes happened. A crash that always lands between flushes would let
 * the property pass without ever testing a torn tail, so the test checks it saw each kind.
 */
const coverage = { tornTails: 0, keptUnacknowledged: 0, lostAfterAcknowledged: 0 };

describe('crash recovery', () => {
  it('recovers any prefix of the log to a consistent state', async () => {
    const parameters = propertyParameters<[Parameters<typeof runScenario>[0]]>(2000);
    await fc.assert(
      fc.asyncProperty(configArb, (config) => runScenario(config)),
      parameters,
    );
    // A replay or a short run need not meet every kind.
    if (parameters.seed === undefined && (parameters.numRuns ?? 0) >= 500) {
      for (const [kind, count] of Object.entries(coverage)) assert.ok(count > 0, `no run produced a crash of kind ${kind}: ${JSON.stringify(coverage)}`);
    }
  });
});
