import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LogCorruptionError } from '../../src/storage/errors.js';
import type { FileSystem } from '../../src/storage/file-system.js';
import { Log } from '../../src/storage/log.js';
import { MemoryFileSystem } from '../../src/storage/memory-file-system.js';
import { NodeFileSystem } from '../../src/storage/node-file-system.js';
import { RecordType } from '../../src/storage/record-frame.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';

const payload = (text: string) => Buffer.from(text, 'utf8');
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

/** The same contract, run over every file system the log can sit on. */
const implementations: { name: string; make: () => Promise<{ fileSystem: FileSystem; directory: string }> }[] = [
  { name: 'memory', make: async () => ({ fileSystem: new MemoryFileSystem(), directory: '/db/log' }) },
  {
    name: 'node fs',
    make: async () => {
      const temp = await makeTempDirectory();
      cleanups.push(temp.remove);
      return { fileSystem: new NodeFileSystem(), directory: `${temp.path}/log` };
    },
  },
];
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

for (const { name, make } of implementations) {
  describe(`log over ${name}`, () => {
    it('assigns positions as byte offsets and reads records back', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory });
      const first = log.append(RecordType.Events, 1, 1, payload('one'));
      const second = log.append(RecordType.Events, 1, 2, payload('two'));
      assert.equal(first.position, 0);
      assert.equal(second.position, first.end);
      await Promise.all([first.durable, second.durable]);
      const records = await log.read(0, 1 << 20);
      assert.deepEqual(records.map((record) => [record.position, record.index, text(record.payload)]), [
        [0, 1, 'one'],
        [first.end, 2, 'two'],
      ]);
      assert.equal(text((await log.readRecord(second.position)).payload), 'two');
      const backwards = await log.readBackward(log.writtenPosition, 1 << 20);
      assert.deepEqual(backwards.map((record) => text(record.payload)), ['two', 'one']);
      await log.close();
    });

    it('survives close and reopen with the same records and last term/index', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory });
      for (let i = 1; i <= 50; i++) log.append(RecordType.Events, 3, i, payload(`record ${i}`));
      await log.sync();
      const end = log.tailPosition;
      await log.close();
      const reopened = await Log.open({ fileSystem, directory });
      assert.equal(reopened.tailPosition, end);
      assert.deepEqual(reopened.lastRecord && { term: reopened.lastRecord.term, index: reopened.lastRecord.index }, { term: 3, index: 50 });
      const records = await reopened.read(0, 1 << 20);
      assert.equal(records.length, 50);
      assert.equal(text(records[49]!.payload), 'record 50');
      await reopened.close();
    });

    it('rolls over to new segments whose names are their start positions, and reads across them', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory, segmentSizeBytes: 256 });
      const tickets = [];
      for (let i = 0; i < 40; i++) tickets.push(log.append(RecordType.Events, 1, i + 1, payload(`segment test ${i}`)));
      await Promise.all(tickets.map((ticket) => ticket.durable));
      const segments = log.describeSegments();
      assert.ok(segments.length > 3, `expected several segments, got ${segments.length}`);
      for (let i = 1; i < segments.length; i++) {
        assert.equal(segments[i]!.basePosition, segments[i - 1]!.basePosition + segments[i - 1]!.sizeBytes);
      }
      const forwards = await log.read(0, 1 << 20);
      assert.equal(forwards.length, 40);
      const backwards = await log.readBackward(log.writtenPosition, 1 << 20);
      assert.deepEqual(backwards.map((record) => record.index), forwards.map((record) => record.index).reverse());
      await log.close();
      const reopened = await Log.open({ fileSystem, directory, segmentSizeBytes: 256 });
      assert.equal((await reopened.read(0, 1 << 20)).length, 40);
      await reopened.close();
    });

    it('truncates a suffix, across segments, and appends after it', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory, segmentSizeBytes: 200 });
      const tickets = [];
      for (let i = 0; i < 20; i++) tickets.push(log.append(RecordType.Events, 1, i + 1, payload(`r${i}`)));
      await log.sync();
      const cut = tickets[7]!.position;
      await log.truncateSuffix(cut);
      assert.equal(log.tailPosition, cut);
      assert.equal(log.lastRecord?.index, 7);
      const replacement = log.append(RecordType.Events, 2, 8, payload('new eighth'));
      await replacement.durable;
      assert.equal(replacement.position, cut);
      const records = await log.read(0, 1 << 20);
      assert.deepEqual(records.map((record) => record.term), [1, 1, 1, 1, 1, 1, 1, 2]);
      await log.close();
      const reopened = await Log.open({ fileSystem, directory, segmentSizeBytes: 200 });
      assert.equal(text((await reopened.readRecord(cut)).payload), 'new eighth');
      assert.equal(reopened.tailPosition, replacement.end);
      await reopened.close();
    });

    it('refuses appends while it truncates', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory });
      const tickets = [1, 2, 3].map((i) => log.append(RecordType.Events, 1, i, payload(`r${i}`)));
      await log.sync();
      const truncation = log.truncateSuffix(tickets[1]!.position);
      assert.throws(() => log.append(RecordType.Events, 1, 9, payload('during')), /truncated/);
      await truncation;
      const after = log.append(RecordType.Events, 2, 2, payload('after'));
      await after.durable;
      assert.equal(after.position, tickets[1]!.position);
      assert.deepEqual((await log.read(0, 1 << 20)).map((record) => text(record.payload)), ['r1', 'after']);
      await log.close();
    });

    it('refuses to truncate at a position that is not a record boundary', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory });
      const ticket = log.append(RecordType.Events, 1, 1, payload('boundary'));
      log.append(RecordType.Events, 1, 2, payload('next'));
      await log.sync();
      await assert.rejects(log.truncateSuffix(ticket.position + 5));
      assert.equal((await log.read(0, 1 << 20)).length, 2);
      await log.close();
    });

    it('reads a record larger than one read window', async () => {
      const { fileSystem, directory } = await make();
      const log = await Log.open({ fileSystem, directory });
      const big = Buffer.alloc(300 * 1024, 0x61);
      log.append(RecordType.Events, 1, 1, payload('small'));
      const ticket = log.append(RecordType.Events, 1, 2, big);
      log.append(RecordType.Events, 1, 3, payload('after'));
      await log.sync();
      const records = await log.read(0, 1024);
      assert.equal(records.length, 1, 'a small budget stops after the first record');
      const all = await log.read(0, 1 << 22);
      assert.equal(all[1]!.payload.byteLength, big.byteLength);
      assert.equal((await log.readRecord(ticket.position)).payload.byteLength, big.byteLength);
      const backwards = await log.readBackward(log.writtenPosition, 1 << 22);
      assert.deepEqual(backwards.map((record) => record.index), [3, 2, 1]);
      await log.close();
    });
  });
}

describe('group commit', () => {
  it('carries every append of one event-loop turn in one fdatasync', async () => {
    const fileSystem = new MemoryFileSystem();
    const log = await Log.open({ fileSystem, directory: '/db/log' });
    const before = fileSystem.datasyncCount;
    const tickets = Array.from({ length: 100 }, (_, i) => log.append(RecordType.Events, 1, i + 1, payload(`e${i}`)));
    await Promise.all(tickets.map((ticket) => ticket.durable));
    assert.equal(fileSystem.datasyncCount - before, 1);
    assert.equal(log.stats.flushes, 1);
    assert.equal(log.durablePosition, tickets[99]!.end);
    await log.close();
  });

  it('reports nothing durable before its fdatasync returned', async () => {
    const fileSystem = new MemoryFileSystem();
    const log = await Log.open({ fileSystem, directory: '/db/log' });
    const ticket = log.append(RecordType.Events, 1, 1, payload('x'));
    let durable = false;
    void ticket.durable.then(() => (durable = true));
    assert.equal(log.durablePosition, 0);
    await new Promise((resolve) => setImmediate(resolve));
    await ticket.durable;
    assert.equal(durable, true);
    fileSystem.crash();
    const reopened = await Log.open({ fileSystem, directory: '/db/log' });
    assert.equal(reopened.tailPosition, ticket.end, 'a record reported durable survives a crash');
    await reopened.close();
  });

  it('starts the fdatasync of records that arrived during the previous one before that batch is answered', async () => {
    const fileSystem = new MemoryFileSystem();
    const log = await Log.open({ fileSystem, directory: '/db/log' });
    await log.append(RecordType.Events, 1, 1, payload('warm')).durable;
    const events: string[] = [];
    let second: Promise<void> | undefined;
    fileSystem.beforeDatasync = () => {
      events.push(`fdatasync ${log.durablePosition}`);
      // A record arrives while the first batch's fdatasync is in progress.
      second ??= log.append(RecordType.Events, 1, 3, payload('during')).durable;
    };
    const first = log.append(RecordType.Events, 1, 2, payload('first'));
    const answered = first.durable.then(async () => {
      events.push('answering the first batch');
      // What answering costs (a few promise hops: apply, encode, send) overlaps the next fdatasync.
      for (let hop = 0; hop < 5; hop++) await null;
      events.push('first batch answered');
    });
    await Promise.all([answered, second]);
    assert.deepEqual(events, [`fdatasync ${first.position}`, 'answering the first batch', `fdatasync ${first.end}`, 'first batch answered']);
    await log.close();
  });

  it('fails every pending and later append once an fdatasync fails, and reports it once', async () => {
    const fileSystem = new MemoryFileSystem();
    const failures: Error[] = [];
    const log = await Log.open({ fileSystem, directory: '/db/log', onFailure: (error) => failures.push(error) });
    await log.append(RecordType.Events, 1, 1, payload('fine')).durable;
    fileSystem.failDatasyncWith = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    const doomed = [log.append(RecordType.Events, 1, 2, payload('a')), log.append(RecordType.Events, 1, 3, payload('b'))];
    for (const ticket of doomed) await assert.rejects(ticket.durable, /EIO/);
    assert.throws(() => log.append(RecordType.Events, 1, 4, payload('c')), /failed/);
    assert.equal(failures.length, 1);
  });
});

describe('recovery', () => {
  const directory = '/db/log';

  it('makes what a killed process left in the page cache durable before trusting it', async () => {
    const fileSystem = new MemoryFileSystem();
    const log = await Log.open({ fileSystem, directory });
    await log.append(RecordType.Events, 1, 1, payload('durable')).durable;
    // The fsync of the next record never completes: the process dies, the page cache keeps it.
    fileSystem.failDatasyncWith = new Error('EIO');
    await assert.rejects(log.append(RecordType.Events, 1, 2, payload('only cached')).durable);
    fileSystem.failDatasyncWith = undefined;
    const restarted = await Log.open({ fileSystem, directory });
    assert.equal((await restarted.read(0, 1 << 20)).length, 2, 'the cached record is valid and is kept');
    fileSystem.crash();
    const afterPowerLoss = await Log.open({ fileSystem, directory });
    assert.equal((await afterPowerLoss.read(0, 1 << 20)).length, 2, 'and it was made durable by the recovery');
    await afterPowerLoss.close();
  });

  async function logWith(count: number): Promise<{ fileSystem: MemoryFileSystem; ends: number[]; segment: string }> {
    const fileSystem = new MemoryFileSystem();
    const log = await Log.open({ fileSystem, directory });
    const tickets = Array.from({ length: count }, (_, i) => log.append(RecordType.Events, 1, i + 1, payload(`record number ${i}`)));
    await log.sync();
    await log.close();
    return { fileSystem, ends: tickets.map((ticket) => ticket.end), segment: `${directory}/segment-00000000000000000000.log` };
  }

  it('loses unsynced records in a crash and keeps synced ones', async () => {
    const fileSystem = new MemoryFileSystem();
    const log = await Log.open({ fileSystem, directory });
    const synced = log.append(RecordType.Events, 1, 1, payload('synced'));
    await synced.durable;
    log.append(RecordType.Events, 1, 2, payload('in flight'));
    fileSystem.crash();
    const reopened = await Log.open({ fileSystem, directory });
    assert.equal(reopened.tailPosition, synced.end);
    await reopened.close();
  });

  it('cuts off a torn last write at every tear length', async () => {
    for (const keepFraction of [0.01, 0.1, 0.3, 0.5, 0.9, 0.99]) {
      const fileSystem = new MemoryFileSystem();
      const log = await Log.open({ fileSystem, directory });
      const synced = log.append(RecordType.Events, 1, 1, payload('synced'));
      await synced.durable;
      // The power fails after the next write and before its fdatasync.
      fileSystem.beforeDatasync = () => fileSystem.crash({ tearLastWrite: { keepFraction } });
      const lost = [log.append(RecordType.Events, 1, 2, Buffer.alloc(500, 1)), log.append(RecordType.Events, 1, 3, Buffer.alloc(500, 2))];
      for (const ticket of lost) await assert.rejects(ticket.durable);
      fileSystem.beforeDatasync = undefined;
      const reopened = await Log.open({ fileSystem, directory });
      // A tear keeps a prefix of the write: whole records in it may survive, a partial one never.
      const wholeRecordsKept = Math.floor((keepFraction * 1064) / 532);
      assert.equal(reopened.tailPosition, synced.end + wholeRecordsKept * 532, `keepFraction ${keepFraction}`);
      assert.equal(reopened.stats.recoveredTornBytes > 0, (keepFraction * 1064) % 532 >= 1);
      const again = reopened.append(RecordType.Events, 1, 2 + wholeRecordsKept, payload('after recovery'));
      await again.durable;
      assert.equal((await reopened.read(0, 1 << 20)).length, 2 + wholeRecordsKept);
      await reopened.close();
    }
  });

  it('cuts off garbage after the last record', async () => {
    const { fileSystem, ends, segment } = await logWith(10);
    fileSystem.appendDurable(segment, Buffer.from('this is not a record at all'));
    const log = await Log.open({ fileSystem, directory });
    assert.equal(log.tailPosition, ends.at(-1));
    await log.close();
  });

  it('refuses a flipped byte in a record that other records follow, naming file and offset', async () => {
    const { fileSystem, ends, segment } = await logWith(10);
    await fileSystem.remove(`${directory}/log.checkpoint`);
    fileSystem.flipByte(segment, ends[3]! + 40);
    await assert.rejects(Log.open({ fileSystem, directory }), (error: unknown) => {
      assert.ok(error instanceof LogCorruptionError);
      assert.equal(error.file, segment);
      assert.equal(error.fileOffset, ends[3]);
      assert.match(error.message, /segment-00000000000000000000\.log at byte \d+/);
      return true;
    });
  });

  it('refuses a complete last record whose CRC fails: a torn write cannot look like that', async () => {
    const { fileSystem, ends, segment } = await logWith(5);
    await fileSystem.remove(`${directory}/log.checkpoint`);
    fileSystem.flipByte(segment, ends[3]! + 35);
    await assert.rejects(Log.open({ fileSystem, directory }), LogCorruptionError);
  });

  it('refuses a damaged length field when valid records follow it', async () => {
    const { fileSystem, ends, segment } = await logWith(10);
    await fileSystem.remove(`${directory}/log.checkpoint`);
    fileSystem.flipByte(segment, ends[5]! + 2, 0xff);
    await assert.rejects(Log.open({ fileSystem, directory }), LogCorruptionError);
  });

  it('refuses a log whose checkpoint is past its end (bytes went missing)', async () => {
    const { fileSystem, segment } = await logWith(10);
    const file = await fileSystem.open(segment, { create: false });
    await file.truncate(100);
    await file.datasync();
    await file.close();
    await assert.rejects(Log.open({ fileSystem, directory }), /checkpoint says/);
  });

  it('only reads from the checkpoint on: records before it are not re-verified at open', async () => {
    const { fileSystem, ends, segment } = await logWith(10);
    fileSystem.flipByte(segment, ends[2]! + 40);
    const log = await Log.open({ fileSystem, directory });
    assert.equal(log.stats.recoveredRecordsVerified, 0);
    await assert.rejects(log.readRecord(ends[2]!), LogCorruptionError, 'a read still verifies the CRC');
    await log.close();
  });
});

describe('truncation under crashes', () => {
  const directory = '/db/log';

  it('ends at the truncation point or before it started, whenever the power fails during it', async () => {
    for (let crashAt = 1; crashAt <= 12; crashAt++) {
      const fileSystem = new MemoryFileSystem();
      const log = await Log.open({ fileSystem, directory, segmentSizeBytes: 100 });
      const tickets = Array.from({ length: 12 }, (_, i) => log.append(RecordType.Events, 1, i + 1, payload(`record ${i}`)));
      await log.sync();
      let syncs = 0;
      fileSystem.beforeDatasync = () => {
        if (++syncs === crashAt) fileSystem.crash();
      };
      const cut = tickets[4]!.position;
      await log.truncateSuffix(cut).catch(() => undefined);
      fileSystem.beforeDatasync = undefined;
      const reopened = await Log.open({ fileSystem, directory, segmentSizeBytes: 100 });
      const indexes = (await reopened.read(0, 1 << 20)).map((record) => record.index);
      const complete = Array.from({ length: 12 }, (_, i) => i + 1);
      assert.ok(
        JSON.stringify(indexes) === JSON.stringify(complete.slice(0, 4)) || JSON.stringify(indexes) === JSON.stringify(complete),
        `crash at datasync ${crashAt}: recovered ${JSON.stringify(indexes)}`,
      );
      await reopened.close();
    }
  });
});
