import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { INDEX_FORMAT_VERSION, type IndexBackend, type RevisionRun } from '../../src/storage/index-backend.js';
import { LmdbIndexBackend } from '../../src/storage/lmdb-index-backend.js';
import { MemoryIndexBackend } from '../../src/storage/memory-index-backend.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const backends: { name: string; open: () => Promise<IndexBackend> }[] = [
  { name: 'memory', open: async () => new MemoryIndexBackend() },
  {
    name: 'lmdb',
    open: async () => {
      const temp = await makeTempDirectory();
      cleanups.push(temp.remove);
      return LmdbIndexBackend.open(temp.path);
    },
  },
];

function run(streamId: number, firstRevision: number, count: number): RevisionRun {
  return {
    streamId,
    firstRevision,
    recordPositions: Array.from({ length: count }, (_, i) => (firstRevision + i) * 100 + streamId),
    entryOffsets: Array.from({ length: count }, (_, i) => 8 + i),
  };
}

const meta = { formatVersion: INDEX_FORMAT_VERSION, checkpoint: 1234, lastTerm: 1, lastIndex: 9, nextStreamId: 4 };

for (const { name, open } of backends) {
  describe(`index backend: ${name}`, () => {
    it('stores streams, runs and meta in one commit', async () => {
      const backend = await open();
      assert.equal(backend.getMeta(), undefined);
      const streams = new Map([['orders', { id: 1, lastRevision: 4, lastCommitPosition: 500, tombstoned: false, metadataJson: '{"$maxCount":3}' }]]);
      await backend.commit(streams, [run(1, 0, 5)], meta);
      assert.deepEqual(backend.getStream('orders'), streams.get('orders'));
      assert.equal(backend.getStream('missing'), undefined);
      assert.deepEqual(backend.getMeta(), meta);
      await backend.close();
    });

    it('finds the run holding a revision, then the following runs', async () => {
      const backend = await open();
      await backend.commit(new Map(), [run(1, 0, 3), run(1, 3, 2), run(1, 5, 4), run(2, 0, 1), run(10, 0, 2)], meta);
      const starts = (runs: RevisionRun[]) => runs.map((r) => `${r.streamId}:${r.firstRevision}`);
      assert.deepEqual(starts(backend.runsFrom(1, 0, 'forwards', 10)), ['1:0', '1:3', '1:5']);
      assert.deepEqual(starts(backend.runsFrom(1, 4, 'forwards', 10)), ['1:3', '1:5']);
      assert.deepEqual(starts(backend.runsFrom(1, 4, 'forwards', 1)), ['1:3']);
      assert.deepEqual(starts(backend.runsFrom(1, 100, 'forwards', 10)), ['1:5']);
      assert.deepEqual(starts(backend.runsFrom(1, 6, 'backwards', 10)), ['1:5', '1:3', '1:0']);
      assert.deepEqual(starts(backend.runsFrom(1, 2, 'backwards', 10)), ['1:0']);
      assert.deepEqual(starts(backend.runsFrom(1, 6, 'backwards', 2)), ['1:5', '1:3']);
      assert.deepEqual(starts(backend.runsFrom(3, 0, 'forwards', 10)), []);
      const [first] = backend.runsFrom(1, 5, 'forwards', 1);
      assert.deepEqual(first, run(1, 5, 4));
      await backend.close();
    });

    it('clears everything', async () => {
      const backend = await open();
      await backend.commit(new Map([['s', { id: 1, lastRevision: 0, lastCommitPosition: 0, tombstoned: false, metadataJson: null }]]), [run(1, 0, 1)], meta);
      await backend.clear();
      assert.equal(backend.getStream('s'), undefined);
      assert.equal(backend.getMeta(), undefined);
      assert.deepEqual(backend.runsFrom(1, 0, 'forwards', 10), []);
      await backend.close();
    });
  });
}
