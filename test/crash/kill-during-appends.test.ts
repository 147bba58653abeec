import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventStore } from '../../src/store/event-store.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { appendToEachStream, assertHoldsAcknowledged, runWriterAndKill, segmentPaths, type Acknowledgement } from './crash-support.js';

// Small segments, so the rounds also cross segment boundaries and recover over sealed segments.
const SEGMENT_SIZE_BYTES = 64 * 1024;
const ROUNDS = 3;
const STREAMS = 4;

describe('kill -9 during concurrent appends', () => {
  let directory: { path: string; remove: () => Promise<void> };
  before(async () => {
    directory = await makeTempDirectory('chronicle-crash-kill-');
  });
  after(async () => {
    await directory.remove();
  });

  it(`keeps every acknowledged append across ${ROUNDS} kills of the same store`, async () => {
    const acknowledged: Acknowledgement[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // A different kill point each round: the crash lands at another place in the group commit.
      const killAfter = 300 + Math.floor(Math.random() * 200);
      const run = await runWriterAndKill(directory.path, {
        killAfterAcknowledgements: killAfter,
        killDelayMs: Math.random() * 10,
        maxWaitMs: 20_000,
        writers: 16,
        streams: STREAMS,
        segmentSizeBytes: SEGMENT_SIZE_BYTES,
      });
      assert.ok(run.acknowledgements.length >= killAfter, `round ${round}: ${run.acknowledgements.length} acknowledgements`);
      acknowledged.push(...run.acknowledgements);

      const store = await EventStore.open({ directory: directory.path, segmentSizeBytes: SEGMENT_SIZE_BYTES });
      try {
        const lastRevisions = await assertHoldsAcknowledged(store, acknowledged);
        assert.equal(lastRevisions.size, STREAMS, `round ${round}: streams ${[...lastRevisions.keys()].join(', ')}`);
        // The recovered store takes writes that continue each stream where it stopped.
        if (round === ROUNDS) acknowledged.push(...(await appendToEachStream(store, lastRevisions)));
      } finally {
        await store.close();
      }
    }
    const reopened = await EventStore.open({ directory: directory.path, segmentSizeBytes: SEGMENT_SIZE_BYTES });
    try {
      await assertHoldsAcknowledged(reopened, acknowledged);
    } finally {
      await reopened.close();
    }
    assert.ok((await segmentPaths(directory.path)).length > 1, 'the rounds were meant to span several segments');
  });

  it('keeps every acknowledged append when kills also land during startup and recovery', async () => {
    const startup = await makeTempDirectory('chronicle-crash-startup-');
    try {
      const acknowledged: Acknowledgement[] = [];
      // Kill times spread from before the store is open to well into the appends: some kills hit
      // log recovery, the index rebuild or the checkpoint write of the previous kill's recovery.
      for (let kill = 0; kill < 10; kill++) {
        const run = await runWriterAndKill(startup.path, {
          killAfterAcknowledgements: 200,
          killAtMs: Math.random() * 400,
          maxWaitMs: 20_000,
          segmentSizeBytes: SEGMENT_SIZE_BYTES,
        });
        acknowledged.push(...run.acknowledgements);
      }
      const store = await EventStore.open({ directory: startup.path, segmentSizeBytes: SEGMENT_SIZE_BYTES });
      try {
        const lastRevisions = await assertHoldsAcknowledged(store, acknowledged);
        acknowledged.push(...(await appendToEachStream(store, lastRevisions)));
      } finally {
        await store.close();
      }
      const reopened = await EventStore.open({ directory: startup.path, segmentSizeBytes: SEGMENT_SIZE_BYTES });
      try {
        await assertHoldsAcknowledged(reopened, acknowledged);
      } finally {
        await reopened.close();
      }
    } finally {
      await startup.remove();
    }
  });
});
