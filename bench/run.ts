/**
 * `npm run bench`: the storage engine's throughput and latency, in-process, with an fdatasync
 * before every acknowledgement, printed beside the raw limits of the same disk measured in the
 * same run; then the HTTP API's appends beside gRPC's (bench/http.ts). Options: --dir DIR (default bench/.data), --seconds N per scenario (default 3),
 * --rebuild-events N (default 1000000), --rounds N (default 3; the median round is reported),
 * --quick (short runs, for a smoke check).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EventStore } from '../src/store/event-store.js';
import { runHttpBenchmark } from './http.js';
import { measureRawDisk, type RawDiskLimits } from './raw-disk.js';
import { BenchArguments } from './arguments.js';

interface AppendScenario {
  writers: number;
  eventsPerAppend: number;
  eventBytes: number;
}

interface AppendFigures {
  appendsPerSecond: number;
  eventsPerSecond: number;
  megabytesPerSecond: number;
  latencyMsP50: number;
  latencyMsP99: number;
  appendsPerFsync: number;
}

const USAGE = `
node --expose-gc dist/bench/run.js [options]   (the storage part of npm run bench)

  --dir PATH             where the stores are made (default bench/.data)
  --seconds N            each append scenario runs N seconds (default 3)
  --rounds N             rounds of the append scenarios; figures are medians (default 3)
  --rebuild-events N     events in the index-rebuild measurement (default 1000000)
  --quick                0.3 s scenarios, one round, 50,000 events to rebuild
  --help                 this text
`;
const bench = new BenchArguments(USAGE);
const { values } = bench.parse({
  options: {
    help: { type: 'boolean', short: 'h' },
    dir: { type: 'string', default: 'bench/.data' },
    seconds: { type: 'string', default: '3' },
    'rebuild-events': { type: 'string', default: '1000000' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
  },
});
const quick = values.quick ?? false;
const scenarioMs = quick ? 300 : bench.positiveNumber('seconds', values.seconds) * 1000;
const rebuildEvents = quick ? 50_000 : bench.integer('rebuild-events', values['rebuild-events'], 1);
const roundCount = quick ? 1 : bench.integer('rounds', values.rounds, 1);
const baseDirectory = resolve(values.dir ?? 'bench/.data');

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

async function freshStore(name: string): Promise<{ store: EventStore; directory: string }> {
  const directory = join(baseDirectory, name);
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
  return { store: await EventStore.open({ directory }), directory };
}

async function runAppends(scenario: AppendScenario): Promise<AppendFigures> {
  const { store, directory } = await freshStore(`appends-${scenario.writers}-${scenario.eventsPerAppend}-${scenario.eventBytes}`);
  const data = new Uint8Array(scenario.eventBytes).fill(0x61);
  const batch = Array.from({ length: scenario.eventsPerAppend }, () => ({ type: 'BenchEvent', data, contentType: 'application/octet-stream' as const }));
  const latencies: number[] = [];
  let appends = 0;
  const flushesBefore = store.stats.log.flushes;
  const deadline = performance.now() + scenarioMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: scenario.writers }, async (_, writer) => {
      const stream = `bench-${writer}`;
      while (performance.now() < deadline) {
        const begin = performance.now();
        await store.appendToStream(stream, batch);
        latencies.push(performance.now() - begin);
        appends++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const flushes = store.stats.log.flushes - flushesBefore;
  await store.close();
  await rm(directory, { recursive: true, force: true });
  const sorted = Float64Array.from(latencies).sort();
  return {
    appendsPerSecond: appends / seconds,
    eventsPerSecond: (appends * scenario.eventsPerAppend) / seconds,
    megabytesPerSecond: (appends * scenario.eventsPerAppend * scenario.eventBytes) / (1024 * 1024) / seconds,
    latencyMsP50: percentile(sorted, 0.5),
    latencyMsP99: percentile(sorted, 0.99),
    appendsPerFsync: appends / Math.max(1, flushes),
  };
}

/** Fills a store with `events` events of 200 B in 100-event appends over 1000 streams. */
async function fill(store: EventStore, events: number): Promise<void> {
  const data = new Uint8Array(200).fill(0x62);
  const batch = Array.from({ length: 100 }, () => ({ type: 'Filled', data, contentType: 'application/octet-stream' as const }));
  const writers = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < events) {
        const stream = `fill-${(next / 100) % 1000}`;
        next += 100;
        await store.appendToStream(stream, batch);
      }
    }),
  );
}

async function runReads(): Promise<{ allEventsPerSecond: number; streamEventsPerSecond: number; events: number }> {
  const events = quick ? 50_000 : 500_000;
  const { store, directory } = await freshStore('reads');
  await fill(store, events);
  const collectGarbage = (globalThis as { gc?: () => void }).gc;
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  // $all: whole passes over the log, from the page cache (it was just written), in pages of 1000.
  const allRates: number[] = [];
  let read = 0;
  for (let round = 0; round < 3; round++) {
    collectGarbage?.();
    const started = performance.now();
    read = 0;
    let page = await store.readAll({ maxCount: 1000 });
    while (page.events.length > 0) {
      read += page.events.length;
      if (page.isEnd) break;
      page = await store.readAll({ maxCount: 1000, fromPosition: page.nextPosition });
    }
    allRates.push(read / ((performance.now() - started) / 1000));
  }
  // Streams: read 200 of the 1000 streams whole, forwards, in pages of 100 events.
  const streamRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    collectGarbage?.();
    const started = performance.now();
    let streamEvents = 0;
    for (let stream = round * 200; stream < round * 200 + 200; stream++) {
      let from = 0;
      for (;;) {
        const slice = await store.readStream(`fill-${stream}`, { fromRevision: from, maxCount: 100 });
        streamEvents += slice.length;
        if (slice.length < 100) break;
        from = slice.at(-1)!.revision + 1;
      }
    }
    streamRates.push(streamEvents / ((performance.now() - started) / 1000));
  }
  const allEventsPerSecond = median(allRates);
  const streamEventsPerSecond = median(streamRates);
  await store.close();
  await rm(directory, { recursive: true, force: true });
  return { allEventsPerSecond, streamEventsPerSecond, events: read };
}

async function runRebuild(): Promise<{ events: number; seconds: number; eventsPerSecond: number }> {
  const { store, directory } = await freshStore('rebuild');
  await fill(store, rebuildEvents);
  await store.close();
  await rm(join(directory, 'index'), { recursive: true, force: true });
  const started = performance.now();
  const reopened = await EventStore.open({ directory });
  const seconds = (performance.now() - started) / 1000;
  const [last] = await reopened.readStream('fill-0', { direction: 'backwards', maxCount: 1 });
  if (!last) throw new Error('rebuild lost the data');
  await reopened.close();
  await rm(directory, { recursive: true, force: true });
  return { events: rebuildEvents, seconds, eventsPerSecond: rebuildEvents / seconds };
}

const format = (value: number, digits = 0) => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  await mkdir(baseDirectory, { recursive: true });
  console.log(`# Chronicle storage benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${scenarioMs} ms per append round, median of ${roundCount} rounds, data in ${baseDirectory}\n`);
  const raw: RawDiskLimits = await measureRawDisk(baseDirectory, quick ? 300 : 2000);
  console.log(`Raw disk (same run): ${format(raw.fdatasyncWritesPerSecond)} 4 KiB write+fdatasync/s; ${format(raw.sequentialMegabytesPerSecond)} MB/s sequential with an fdatasync per MiB\n`);

  console.log('| writers | events/append | event size | appends/s | events/s | MB/s | p50 ms | p99 ms | appends per fsync | appends/s ÷ raw fsync/s | MB/s ÷ raw MB/s |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const scenarios: AppendScenario[] = [];
  for (const eventBytes of [200, 4096]) {
    for (const eventsPerAppend of [1, 10]) {
      for (const writers of [1, 8, 64]) scenarios.push({ writers, eventsPerAppend, eventBytes });
    }
  }
  scenarios.push({ writers: 8, eventsPerAppend: 100, eventBytes: 200 });
  for (const scenario of scenarios) {
    // Each scenario runs `rounds` times; the round with the median throughput is reported whole.
    const rounds: AppendFigures[] = [];
    for (let round = 0; round < roundCount; round++) rounds.push(await runAppends(scenario));
    rounds.sort((a, b) => a.appendsPerSecond - b.appendsPerSecond);
    const figures = rounds[Math.floor(rounds.length / 2)]!;
    console.log(
      `| ${scenario.writers} | ${scenario.eventsPerAppend} | ${scenario.eventBytes === 200 ? '200 B' : '4 KiB'} | ${format(figures.appendsPerSecond)} | ${format(figures.eventsPerSecond)} | ${format(figures.megabytesPerSecond, 1)} | ${format(figures.latencyMsP50, 2)} | ${format(figures.latencyMsP99, 2)} | ${format(figures.appendsPerFsync, 1)} | ${format(figures.appendsPerSecond / raw.fdatasyncWritesPerSecond, 2)} | ${format(figures.megabytesPerSecond / raw.sequentialMegabytesPerSecond, 3)} |`,
    );
  }

  const reads = await runReads();
  console.log(`\nReads over ${format(reads.events)} events of 200 B (page cache, median of 3 passes): $all ${format(reads.allEventsPerSecond)} events/s; streams ${format(reads.streamEventsPerSecond)} events/s`);
  const rebuild = await runRebuild();
  console.log(
    `Index rebuild: ${format(rebuild.events)} events in ${format(rebuild.seconds, 2)} s = ${format(rebuild.eventsPerSecond)} events/s (${format(rebuild.seconds / (rebuild.events / 1e6), 2)} s per million)`,
  );
  await rm(baseDirectory, { recursive: true, force: true });
  await runHttpBenchmark(scenarioMs);
}

await main();
