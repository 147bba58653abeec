import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventStore } from '../../src/store/event-store.js';
import type { RecordedEvent } from '../../src/store/types.js';
import type { WriterLine } from './fixtures/writer.js';

export const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/writer.js', import.meta.url));
export const CHRONICLE_BIN = fileURLToPath(new URL('../../../bin/chronicle', import.meta.url));

export type Acknowledgement = Extract<WriterLine, { kind: 'ack' }>;

export interface WriterRun {
  acknowledgements: Acknowledgement[];
  /** Where the writer's store stood right after it opened. */
  openedAt: number;
  stderr: string;
}

export interface WriterRunOptions {
  /** Kill once at least this many appends were acknowledged. */
  killAfterAcknowledgements: number;
  /** Then wait this long before the kill, so it lands at any point of a group commit, not just after an acknowledgement. */
  killDelayMs?: number;
  /** Kill this long after the spawn even if fewer appends were acknowledged (a kill during startup or recovery). */
  killAtMs?: number;
  /** Give up (and fail) if that many acknowledgements take longer than this. */
  maxWaitMs: number;
  writers?: number;
  streams?: number;
  segmentSizeBytes?: number;
}

/**
 * Runs the writer child on `directory` and SIGKILLs it by pid once enough appends are acknowledged.
 * Resolves after the child is gone and its stdout is drained, with every acknowledgement it printed.
 */
export async function runWriterAndKill(directory: string, options: WriterRunOptions): Promise<WriterRun> {
  const args = [WRITER_SCRIPT, '--db', directory, '--writers', String(options.writers ?? 16), '--streams', String(options.streams ?? 4)];
  if (options.segmentSizeBytes !== undefined) args.push('--segment-size', String(options.segmentSizeBytes));
  // The child's own limit only matters if this process dies without killing it.
  args.push('--max-run-ms', String(options.maxWaitMs + 10_000));
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  // Settles when the child is gone and its pipes are drained; a spawn error is reported through 'error' below.
  const exited = once(child, 'close').then(
    () => undefined,
    () => undefined,
  );
  const acknowledgements: Acknowledgement[] = [];
  let openedAt = -1;
  let stderr = '';
  let killed = false;
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  try {
    const enough = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${acknowledgements.length} of ${options.killAfterAcknowledgements} appends acknowledged in ${options.maxWaitMs} ms; stderr: ${stderr}`)),
        options.maxWaitMs,
      );
      const killTimer = options.killAtMs === undefined ? undefined : setTimeout(() => done(), options.killAtMs);
      const done = (error?: Error) => {
        clearTimeout(timer);
        clearTimeout(killTimer);
        if (error) reject(error);
        else resolve();
      };
      // Only text before a newline is a line: the kill may cut the last one short, and that part is dropped.
      let unfinished = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (unfinished + chunk).split('\n');
        unfinished = lines.pop()!;
        for (const text of lines) {
          let line: WriterLine;
          try {
            line = JSON.parse(text) as WriterLine;
          } catch {
            done(new Error(`the writer printed a line that is not JSON: ${text}`));
            return;
          }
          if (line.kind === 'opened') openedAt = line.position;
          else acknowledgements.push(line);
          if (acknowledgements.length === options.killAfterAcknowledgements) done();
        }
      });
      child.on('error', (error) => done(error));
      child.on('exit', (code, signal) => done(new Error(`the writer exited on its own (code ${code}, signal ${signal}); stderr: ${stderr}`)));
    });
    await enough;
    if (options.killDelayMs && options.killAtMs === undefined) await new Promise((resolve) => setTimeout(resolve, options.killDelayMs));
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the writer exited on its own before the kill (code ${child.exitCode}, signal ${child.signalCode}); stderr: ${stderr}`);
    }
    process.kill(child.pid!, 'SIGKILL');
    killed = true;
  } finally {
    if (!killed) killIfRunning(child.pid, child.exitCode, child.signalCode);
    // Whatever failed above, the child must be gone before its directory is inspected or removed.
    await withTimeout(exited, 10_000, 'the writer did not exit').catch(() => undefined);
  }
  return { acknowledgements, openedAt, stderr };
}

function killIfRunning(pid: number | undefined, exitCode: number | null, signalCode: string | null): void {
  if (pid === undefined || exitCode !== null || signalCode !== null) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone between the check and the kill.
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} (after ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks the store against what its writers were told: every acknowledged event exactly once, at
 * its revision and commit position; each stream contiguous from revision 0; `$all` in position
 * order without duplicates and agreeing with the streams. Returns the last revision of each stream.
 */
export async function assertHoldsAcknowledged(store: EventStore, acknowledgements: readonly Acknowledgement[]): Promise<Map<string, number>> {
  const all = await store.readAll();
  assert.equal(all.isEnd, true);
  const seenIds = new Set<string>();
  const byStream = new Map<string, RecordedEvent[]>();
  let previous: RecordedEvent | undefined;
  for (const event of all.events) {
    assert.ok(!seenIds.has(event.id), `event ${event.id} appears twice in $all`);
    seenIds.add(event.id);
    if (previous) {
      assert.ok(event.position.commit >= previous.position.commit, `$all goes back from commit ${previous.position.commit} to ${event.position.commit}`);
      assert.ok(event.position.prepare > previous.position.prepare, `$all goes back from prepare ${previous.position.prepare} to ${event.position.prepare}`);
    }
    previous = event;
    const events = byStream.get(event.streamId) ?? [];
    assert.equal(event.revision, events.length, `${event.streamId}: $all has revision ${event.revision} where ${events.length} comes next`);
    events.push(event);
    byStream.set(event.streamId, events);
  }

  const lastRevisions = new Map<string, number>();
  for (const [stream, fromAll] of byStream) {
    const fromStream = await store.readStream(stream);
    assert.deepEqual(
      fromStream.map((event) => [event.revision, event.id, event.position.commit, event.position.prepare]),
      fromAll.map((event) => [event.revision, event.id, event.position.commit, event.position.prepare]),
      `${stream}: readStream and $all disagree`,
    );
    lastRevisions.set(stream, fromStream.length - 1);
  }

  for (const ack of acknowledgements) {
    const events = byStream.get(ack.stream) ?? [];
    ack.eventIds.forEach((id, i) => {
      const event = events[ack.firstRevision + i];
      assert.ok(event, `acknowledged ${ack.stream}@${ack.firstRevision + i} (${id}) is missing; the stream ends at ${events.length - 1}`);
      assert.equal(event.id, id, `${ack.stream}@${ack.firstRevision + i} holds ${event.id}, not the acknowledged ${id}`);
      assert.equal(event.position.commit, ack.commit, `${ack.stream}@${ack.firstRevision + i} is at commit ${event.position.commit}, acknowledged at ${ack.commit}`);
    });
  }
  return lastRevisions;
}

export interface FrameLocation {
  segmentPath: string;
  /** Byte offset of the frame in its segment file. */
  fileOffset: number;
  /** Position of the frame in the logical log. */
  position: number;
  length: number;
}

const SEGMENT_NAME = /^segment-(\d{20})\.log$/;

export async function segmentPaths(databaseDirectory: string): Promise<string[]> {
  const logDirectory = join(databaseDirectory, 'log');
  const names = (await readdir(logDirectory)).filter((name) => SEGMENT_NAME.test(name)).sort();
  return names.map((name) => join(logDirectory, name));
}

/** Walks the frames of every segment by their length fields; stops a segment at a frame that does not fit. */
export async function frameLocations(databaseDirectory: string): Promise<FrameLocation[]> {
  const frames: FrameLocation[] = [];
  for (const segmentPath of await segmentPaths(databaseDirectory)) {
    const base = Number(SEGMENT_NAME.exec(segmentPath.split('/').at(-1)!)![1]);
    const bytes = await readFile(segmentPath);
    for (let offset = 0; offset + 4 <= bytes.byteLength; ) {
      const length = bytes.readUInt32LE(offset);
      if (length < 32 || offset + length > bytes.byteLength) break;
      frames.push({ segmentPath, fileOffset: offset, position: base + offset, length });
      offset += length;
    }
  }
  return frames;
}

/** The position in `log/log.checkpoint`, read raw (its CRC is not checked). */
export async function readCheckpoint(databaseDirectory: string): Promise<number | undefined> {
  const path = join(databaseDirectory, 'log', 'log.checkpoint');
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes || bytes.byteLength < 8) return undefined;
  return bytes.readUInt32LE(0) + bytes.readUInt32LE(4) * 2 ** 32;
}

export async function xorByte(path: string, fileOffset: number, mask = 0x5a): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, fileOffset);
    byte[0]! ^= mask;
    await file.write(byte, 0, 1, fileOffset);
  } finally {
    await file.close();
  }
}

/**
 * Fills a store in this process with sequential appends to `streams` streams (the streams in
 * parallel, so group commits carry several records) and closes it cleanly. Returns what was acknowledged.
 */
export async function populateStore(
  directory: string,
  options: { appendsPerStream: number; streams: number; segmentSizeBytes?: number },
): Promise<Acknowledgement[]> {
  const store = await EventStore.open({ directory, ...(options.segmentSizeBytes !== undefined ? { segmentSizeBytes: options.segmentSizeBytes } : {}) });
  const acknowledgements: Acknowledgement[] = [];
  try {
    await Promise.all(
      Array.from({ length: options.streams }, async (_, streamNumber) => {
        const stream = `crash-${streamNumber}`;
        let lastRevision = -1;
        for (let i = 0; i < options.appendsPerStream; i++) {
          const ids = Array.from({ length: 1 + (i % 2) }, () => randomUUID());
          const events = ids.map((id) => ({ id, type: 'Populated', data: { i, padding: 'y'.repeat((i * 37) % 300) } }));
          const result = await store.appendToStream(stream, events, { expectedState: lastRevision < 0 ? 'no_stream' : lastRevision });
          acknowledgements.push({ kind: 'ack', stream, firstRevision: lastRevision + 1, commit: result.position.commit, eventIds: ids });
          lastRevision = result.nextExpectedRevision;
        }
      }),
    );
  } finally {
    await store.close();
  }
  return acknowledgements;
}

/** Appends one event to every stream at its current revision; returns the acknowledgements. */
export async function appendToEachStream(store: EventStore, lastRevisions: ReadonlyMap<string, number>): Promise<Acknowledgement[]> {
  const acknowledgements: Acknowledgement[] = [];
  for (const [stream, last] of lastRevisions) {
    const id = randomUUID();
    const result = await store.appendToStream(stream, [{ id, type: 'AfterRecovery' }], { expectedState: last });
    assert.equal(result.nextExpectedRevision, last + 1, `${stream}: the append after recovery got revision ${result.nextExpectedRevision}`);
    acknowledgements.push({ kind: 'ack', stream, firstRevision: last + 1, commit: result.position.commit, eventIds: [id] });
  }
  return acknowledgements;
}

export interface ChronicleRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `chronicle` command (bin/chronicle) with a time limit. */
export async function runChronicle(args: readonly string[], timeoutMs = 15_000): Promise<ChronicleRun> {
  const child = spawn(process.execPath, [CHRONICLE_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  try {
    const [code] = (await withTimeout(once(child, 'close'), timeoutMs, `chronicle ${args.join(' ')} did not finish`)) as [number | null];
    return { code, stdout, stderr };
  } finally {
    killIfRunning(child.pid, child.exitCode, child.signalCode);
  }
}
