import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { appendFile, cp, readdir, readFile, readlink, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LogCorruptionError } from '../../src/storage/errors.js';
import { encodeFrame } from '../../src/storage/record-frame.js';
import { EventStore, type EventStoreOptions } from '../../src/store/event-store.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import {
  appendToEachStream,
  assertHoldsAcknowledged,
  frameLocations,
  populateStore,
  readCheckpoint,
  runChronicle,
  runWriterAndKill,
  segmentPaths,
  xorByte,
  type Acknowledgement,
  type FrameLocation,
} from './crash-support.js';

let root: { path: string; remove: () => Promise<void> };
let caseNumber = 0;

/** A fresh, empty store directory for one case, under the file's temp root. */
function caseDirectory(): string {
  return join(root.path, `case-${++caseNumber}`);
}

async function copyDatabase(from: string): Promise<string> {
  const to = caseDirectory();
  await cp(from, to, { recursive: true });
  return to;
}

/** The same frame in a copy of the database it was found in. */
function inCopy(frame: FrameLocation, from: string, to: string): FrameLocation {
  return { ...frame, segmentPath: frame.segmentPath.replace(from, to) };
}

function checkpointPath(directory: string): string {
  return join(directory, 'log', 'log.checkpoint');
}

async function openStore(directory: string, options: Partial<EventStoreOptions> = {}): Promise<{ store: EventStore; messages: string[] }> {
  const messages: string[] = [];
  const store = await EventStore.open({ directory, log: (message) => messages.push(message), ...options });
  return { store, messages };
}

/** Opens, checks the acknowledged events, appends once to every stream, and checks again after a clean reopen. */
async function assertRecoversAndTakesWrites(directory: string, acknowledged: readonly Acknowledgement[], options: Partial<EventStoreOptions> = {}): Promise<string[]> {
  const { store, messages } = await openStore(directory, options);
  let written: Acknowledgement[];
  try {
    const lastRevisions = await assertHoldsAcknowledged(store, acknowledged);
    written = await appendToEachStream(store, lastRevisions);
  } finally {
    await store.close();
  }
  const reopened = await openStore(directory, options);
  try {
    await assertHoldsAcknowledged(reopened.store, [...acknowledged, ...written]);
  } finally {
    await reopened.store.close();
  }
  return messages;
}

function assertNamesDamagedFrame(error: unknown, frame: FrameLocation): true {
  assert.ok(error instanceof LogCorruptionError, `expected a LogCorruptionError, got ${String(error)}`);
  assert.equal(error.file, frame.segmentPath, error.message);
  assert.equal(error.fileOffset, frame.fileOffset, error.message);
  assert.equal(error.logPosition, frame.position, error.message);
  assert.ok(error.message.includes(`${frame.segmentPath} at byte ${frame.fileOffset}`), error.message);
  return true;
}

/** Where a flip lands in a frame: header fields, payload and the trailing length. */
const FLIPS: { name: string; offsetIn: (frame: FrameLocation) => number }[] = [
  { name: 'length, low byte', offsetIn: () => 0 },
  { name: 'length, high byte', offsetIn: () => 3 },
  { name: 'CRC', offsetIn: () => 5 },
  { name: 'record type', offsetIn: () => 8 },
  { name: 'term', offsetIn: () => 12 },
  { name: 'index', offsetIn: () => 20 },
  { name: 'payload', offsetIn: (frame) => Math.floor(frame.length / 2) },
  { name: 'trailing length, low byte', offsetIn: (frame) => frame.length - 4 },
  { name: 'trailing length, high byte', offsetIn: (frame) => frame.length - 1 },
];

async function flip(frame: FrameLocation, offsetInFrame: number): Promise<void> {
  await xorByte(frame.segmentPath, frame.fileOffset + offsetInFrame);
}

/** A deterministic byte sequence that is not a frame. */
function noise(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

before(async () => {
  root = await makeTempDirectory('chronicle-crash-damage-');
});
after(async () => {
  await root.remove();
});

/**
 * A store a writer child was killed on, after a clean open and close: its checkpoint is where the
 * second writer opened it, so every record that writer made lies past the checkpoint and is
 * verified on the next open.
 */
interface KilledStore {
  directory: string;
  acknowledged: Acknowledgement[];
  checkpoint: number;
  /** Frames past the checkpoint, each followed by at least one more frame. */
  framesPastCheckpoint: FrameLocation[];
}

async function makeKilledStore(): Promise<KilledStore> {
  const directory = caseDirectory();
  const first = await runWriterAndKill(directory, { killAfterAcknowledgements: 200, maxWaitMs: 20_000 });
  const { store } = await openStore(directory);
  await store.close();
  const second = await runWriterAndKill(directory, { killAfterAcknowledgements: 200, maxWaitMs: 20_000 });
  const checkpoint = await readCheckpoint(directory);
  assert.equal(checkpoint, second.openedAt, 'the checkpoint should be where the second writer opened the store');
  const frames = await frameLocations(directory);
  const framesPastCheckpoint = frames.filter((frame) => frame.position >= checkpoint).slice(0, -1);
  assert.ok(framesPastCheckpoint.length >= 10, `only ${framesPastCheckpoint.length} frames past the checkpoint`);
  return { directory, acknowledged: [...first.acknowledgements, ...second.acknowledgements], checkpoint, framesPastCheckpoint };
}

describe('garbage after the last record', () => {
  const garbage: { name: string; bytes: Buffer }[] = [
    { name: 'zeros (a file extended without its data)', bytes: Buffer.alloc(4096) },
    { name: 'a repeated byte', bytes: Buffer.alloc(1000, 0xab) },
    { name: 'noise', bytes: noise(3000, 7) },
    { name: 'the first part of a frame', bytes: Buffer.from(encodeFrame(1, 1, 10_000, noise(5000, 11)).subarray(0, 1500)) },
  ];
  for (const { name, bytes } of garbage) {
    it(`is cut off on open: ${name}`, async () => {
      const directory = caseDirectory();
      const acknowledged = await populateStore(directory, { appendsPerStream: 30, streams: 3 });
      const [segment] = (await segmentPaths(directory)).slice(-1);
      const sizeBefore = (await stat(segment!)).size;
      await appendFile(segment!, bytes);

      const messages = await assertRecoversAndTakesWrites(directory, acknowledged);
      assert.ok(messages.some((message) => message.includes(`torn tail of ${bytes.byteLength} bytes at ${sizeBefore}`)), messages.join('\n'));
    });
  }

  it('is cut off on open after a kill -9, with records past the checkpoint verified', async () => {
    const killed = await makeKilledStore();
    const directory = await copyDatabase(killed.directory);
    const [segment] = (await segmentPaths(directory)).slice(-1);
    await appendFile(segment!, noise(777, 3));
    const messages = await assertRecoversAndTakesWrites(directory, killed.acknowledged);
    assert.ok(messages.some((message) => message.includes('torn tail of 777 bytes')), messages.join('\n'));
  });
});

describe('the last record cut short', () => {
  /**
   * Builds the disk image of a crash in the middle of writing one more record: a real store writes
   * it, then the checkpoint goes back to what it was before (the crash came before the clean close
   * that records it) and the record is cut `cut` bytes after its start. The record was never
   * acknowledged, so everything acknowledged must survive.
   */
  async function crashWhileWritingLastRecord(options: { cut: (frame: FrameLocation) => number; segmentSizeBytes?: number; appendsPerStream: number }) {
    const directory = caseDirectory();
    const storeOptions = options.segmentSizeBytes !== undefined ? { segmentSizeBytes: options.segmentSizeBytes } : {};
    const acknowledged = await populateStore(directory, { appendsPerStream: options.appendsPerStream, streams: 3, ...storeOptions });
    const checkpointBeforeTheWrite = await readFile(checkpointPath(directory));

    const { store } = await openStore(directory, storeOptions);
    const lastRevisions = await assertHoldsAcknowledged(store, acknowledged);
    const interrupted = await store.appendToStream('crash-0', [{ type: 'Interrupted', data: { padding: 'z'.repeat(500) } }], {
      expectedState: lastRevisions.get('crash-0')!,
    });
    await store.close();
    await writeFile(checkpointPath(directory), checkpointBeforeTheWrite);

    const torn = (await frameLocations(directory)).at(-1)!;
    assert.equal(torn.position, interrupted.position.commit);
    const cut = options.cut(torn);
    await truncate(torn.segmentPath, torn.fileOffset + cut);
    return { directory, acknowledged, torn, cut, storeOptions, revisionBefore: lastRevisions.get('crash-0')! };
  }

  const cuts: { name: string; cut: (frame: FrameLocation) => number }[] = [
    { name: 'inside the length field', cut: () => 2 },
    { name: 'inside the header', cut: () => 20 },
    { name: 'right after the header', cut: () => 28 },
    { name: 'in the middle', cut: (frame) => Math.floor(frame.length / 2) },
    { name: 'one byte short', cut: (frame) => frame.length - 1 },
  ];
  for (const { name, cut } of cuts) {
    it(`is cut off on open: cut ${name}`, async () => {
      const crash = await crashWhileWritingLastRecord({ cut, appendsPerStream: 30 });
      const { store, messages } = await openStore(crash.directory);
      try {
        assert.ok(messages.some((message) => message.includes(`torn tail of ${crash.cut} bytes at ${crash.torn.position}`)), messages.join('\n'));
        assert.equal(store.position, crash.torn.position);
        const lastRevisions = await assertHoldsAcknowledged(store, crash.acknowledged);
        assert.equal(lastRevisions.get('crash-0'), crash.revisionBefore, 'the interrupted write must not be visible');
        // The next write goes where the torn one was, at the revision the torn one would have had.
        const next = await store.appendToStream('crash-0', [{ type: 'AfterRecovery' }], { expectedState: crash.revisionBefore });
        assert.equal(next.nextExpectedRevision, crash.revisionBefore + 1);
        assert.equal(next.position.commit, crash.torn.position);
      } finally {
        await store.close();
      }
      await assertRecoversAndTakesWrites(crash.directory, crash.acknowledged);
    });
  }

  // One record per segment: the torn record is the whole of the last segment.
  for (const { name, cut } of [
    { name: 'to an empty file', cut: () => 0 },
    { name: 'in the middle', cut: (frame: FrameLocation) => Math.floor(frame.length / 2) },
  ]) {
    it(`is cut off on open when it is alone in its segment: cut ${name}`, async () => {
      const crash = await crashWhileWritingLastRecord({ cut, segmentSizeBytes: 1, appendsPerStream: 8 });
      assert.equal(crash.torn.fileOffset, 0, 'the torn record should start its own segment');
      await assertRecoversAndTakesWrites(crash.directory, crash.acknowledged, crash.storeOptions);
    });
  }

  it('is refused when the checkpoint says the cut bytes were durable', async () => {
    const directory = caseDirectory();
    await populateStore(directory, { appendsPerStream: 20, streams: 3 });
    const last = (await frameLocations(directory)).at(-1)!;
    const cutAt = last.fileOffset + Math.floor(last.length / 2);
    await truncate(last.segmentPath, cutAt);
    await assert.rejects(openStore(directory), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError, `expected a LogCorruptionError, got ${String(error)}`);
      assert.equal(error.file, last.segmentPath);
      assert.equal(error.fileOffset, cutAt);
      assert.ok(error.message.includes(last.segmentPath), error.message);
      return true;
    });
  });
});

describe('a flipped byte in a record followed by others', () => {
  let killed: KilledStore;
  before(async () => {
    killed = await makeKilledStore();
  });

  for (const { name, offsetIn } of FLIPS) {
    it(`is refused on open after a kill -9 (record past the checkpoint): ${name}`, async () => {
      const directory = await copyDatabase(killed.directory);
      const frames = killed.framesPastCheckpoint;
      const damaged = inCopy(frames[Math.floor(frames.length / 2)]!, killed.directory, directory);
      await flip(damaged, offsetIn(damaged));
      await assert.rejects(openStore(directory), (error: unknown) => assertNamesDamagedFrame(error, damaged));
    });
  }

  describe('in a sealed segment of a cleanly closed store without its checkpoint (a full scan)', () => {
    const segmentSizeBytes = 16 * 1024;
    let closed: { directory: string; frames: FrameLocation[] };
    before(async () => {
      const directory = caseDirectory();
      await populateStore(directory, { appendsPerStream: 40, streams: 3, segmentSizeBytes });
      assert.ok((await segmentPaths(directory)).length >= 3, 'the store should span several segments');
      closed = { directory, frames: await frameLocations(directory) };
    });

    const targets: { name: string; pick: (frames: FrameLocation[]) => FrameLocation }[] = [
      { name: 'a record inside the first segment', pick: (frames) => frames[3]! },
      { name: 'the last record of the first segment', pick: (frames) => frames[frames.findIndex((frame) => frame.fileOffset === 0 && frame.position > 0) - 1]! },
    ];
    for (const target of targets) {
      for (const { name, offsetIn } of FLIPS) {
        it(`is refused on open: ${target.name}, ${name}`, async () => {
          const directory = await copyDatabase(closed.directory);
          await rm(checkpointPath(directory));
          const damaged = inCopy(target.pick(closed.frames), closed.directory, directory);
          await flip(damaged, offsetIn(damaged));
          await assert.rejects(openStore(directory, { segmentSizeBytes }), (error: unknown) => assertNamesDamagedFrame(error, damaged));
        });
      }
    }
  });

  describe('before the checkpoint of a cleanly closed store', () => {
    // Open verifies only past the checkpoint, so this damage may go unnoticed until the record is
    // read. Either way it must surface as a LogCorruptionError naming the record, never as other data.
    let closed: { directory: string; frames: FrameLocation[] };
    before(async () => {
      const directory = caseDirectory();
      await populateStore(directory, { appendsPerStream: 30, streams: 3 });
      closed = { directory, frames: await frameLocations(directory) };
      assert.equal(await readCheckpoint(directory), closed.frames.at(-1)!.position + closed.frames.at(-1)!.length);
    });

    const targets: { name: string; pick: (frames: FrameLocation[]) => FrameLocation }[] = [
      { name: 'a record in the middle', pick: (frames) => frames[Math.floor(frames.length / 2)]! },
      { name: 'the last record', pick: (frames) => frames.at(-1)! },
    ];
    for (const target of targets) {
      for (const { name, offsetIn } of FLIPS) {
        it(`is reported as corruption of that record: ${target.name}, ${name}`, async () => {
          const directory = await copyDatabase(closed.directory);
          const damaged = inCopy(target.pick(closed.frames), closed.directory, directory);
          await flip(damaged, offsetIn(damaged));
          let store: EventStore;
          try {
            ({ store } = await openStore(directory));
          } catch (error) {
            assertNamesDamagedFrame(error, damaged);
            return;
          }
          try {
            await assert.rejects(store.readAll(), (error: unknown) => assertNamesDamagedFrame(error, damaged));
          } finally {
            await store.close();
          }
        });
      }
    }
  });
});

describe('the repair path: chronicle verify, then chronicle repair --truncate-at', () => {
  async function verifyReportsDamageAt(directory: string, damaged: FrameLocation): Promise<void> {
    const verify = await runChronicle(['verify', '--db', directory]);
    assert.equal(verify.code, 1, `verify should fail; stdout: ${verify.stdout} stderr: ${verify.stderr}`);
    assert.ok(verify.stderr.includes(`damaged: ${damaged.segmentPath} at byte ${damaged.fileOffset} (log position ${damaged.position})`), verify.stderr);
    assert.ok(verify.stderr.includes(`intact, up to position ${damaged.position}`), verify.stderr);
  }

  /** What $all holds before `position` in an undamaged copy of the store: what a repair must keep. */
  async function eventsBefore(undamaged: string, position: number, options: Partial<EventStoreOptions>): Promise<string[]> {
    const { store } = await openStore(await copyDatabase(undamaged), options);
    try {
      const all = await store.readAll();
      return all.events.filter((event) => event.position.commit < position).map((event) => `${event.id}@${event.position.commit}/${event.position.prepare}`);
    } finally {
      await store.close();
    }
  }

  async function repairAndCheck(
    directory: string,
    damaged: FrameLocation,
    expected: { acknowledged: readonly Acknowledgement[]; events: readonly string[] },
    options: Partial<EventStoreOptions> = {},
  ): Promise<void> {
    await verifyReportsDamageAt(directory, damaged);

    const refused = await runChronicle(['repair', '--db', directory, '--truncate-at', String(damaged.position + 1)]);
    assert.equal(refused.code, 1, `repair at a position verify did not report should be refused; ${refused.stdout} ${refused.stderr}`);
    await verifyReportsDamageAt(directory, damaged);

    const repair = await runChronicle(['repair', '--db', directory, '--truncate-at', String(damaged.position)]);
    assert.equal(repair.code, 0, `repair failed; stdout: ${repair.stdout} stderr: ${repair.stderr}`);
    const verifyAgain = await runChronicle(['verify', '--db', directory]);
    assert.equal(verifyAgain.code, 0, verifyAgain.stderr);
    assert.ok(verifyAgain.stdout.includes(`the log ends at position ${damaged.position}`), verifyAgain.stdout);

    const beforeDamage = expected.acknowledged.filter((ack) => ack.commit < damaged.position);
    const { store } = await openStore(directory, options);
    try {
      assert.equal(store.position, damaged.position);
      await assertHoldsAcknowledged(store, beforeDamage);
      const all = await store.readAll();
      assert.deepEqual(
        all.events.map((event) => `${event.id}@${event.position.commit}/${event.position.prepare}`),
        expected.events,
        'the repaired store should hold exactly the events before the damaged record',
      );
    } finally {
      await store.close();
    }
    await assertRecoversAndTakesWrites(directory, beforeDamage, options);
  }

  it('recovers the records before a flipped byte found after a kill -9', async () => {
    const killed = await makeKilledStore();
    const directory = await copyDatabase(killed.directory);
    const damaged = inCopy(killed.framesPastCheckpoint[Math.floor(killed.framesPastCheckpoint.length / 2)]!, killed.directory, directory);
    const events = await eventsBefore(killed.directory, damaged.position, {});
    await flip(damaged, Math.floor(damaged.length / 2));
    await assert.rejects(openStore(directory), (error: unknown) => assertNamesDamagedFrame(error, damaged));
    await repairAndCheck(directory, damaged, { acknowledged: killed.acknowledged, events });
  });

  it('recovers the records before damage in a sealed segment, dropping the later segments', async () => {
    const segmentSizeBytes = 16 * 1024;
    const directory = caseDirectory();
    const acknowledged = await populateStore(directory, { appendsPerStream: 40, streams: 3, segmentSizeBytes });
    const segmentsBefore = await segmentPaths(directory);
    assert.ok(segmentsBefore.length >= 3);
    const damaged = (await frameLocations(directory))[5]!;
    const events = await eventsBefore(directory, damaged.position, { segmentSizeBytes });
    await rm(checkpointPath(directory));
    await flip(damaged, 5);
    await assert.rejects(openStore(directory, { segmentSizeBytes }), (error: unknown) => assertNamesDamagedFrame(error, damaged));
    await repairAndCheck(directory, damaged, { acknowledged, events }, { segmentSizeBytes });
    const segmentsAfter = await segmentPaths(directory);
    assert.equal(segmentsAfter[0], segmentsBefore[0]);
    assert.ok(segmentsAfter.length < segmentsBefore.length, 'the segments after the damage should be gone');
  });
});

describe('a refused open', () => {
  /** Files under `directory` this process holds open (Linux: /proc/self/fd). */
  async function openFilesUnder(directory: string): Promise<string[]> {
    const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
    return targets.filter((target) => target.startsWith(`${directory}/`));
  }
  const skip = existsSync('/proc/self/fd') ? false : 'needs /proc/self/fd';

  // A node that is refused may be retried by a supervisor in the same process; each refusal must
  // not pin the log's files or the index.
  it('leaves no file of the store open when log recovery refuses', { skip }, async () => {
    const killed = await makeKilledStore();
    const directory = await copyDatabase(killed.directory);
    const damaged = inCopy(killed.framesPastCheckpoint[0]!, killed.directory, directory);
    await flip(damaged, 5);
    await assert.rejects(openStore(directory), LogCorruptionError);
    assert.deepEqual(await openFilesUnder(directory), []);
  });

  it('leaves no file of the store open when the damage is found after the log opened', { skip }, async () => {
    const directory = caseDirectory();
    await populateStore(directory, { appendsPerStream: 30, streams: 3 });
    const frames = await frameLocations(directory);
    const damaged = frames[Math.floor(frames.length / 2)]!;
    await flip(damaged, Math.floor(damaged.length / 2));
    await assert.rejects(openStore(directory), LogCorruptionError);
    assert.deepEqual(await openFilesUnder(directory), []);
  });
});
