/**
 * `npm run bench:client`: appends through the wire protocol, each figure beside a reference
 * measured in the same run.
 *
 * 1. What users get: the official client (@kurrent/kurrentdb-client, BatchAppend path) against
 *    a Chronicle node, and against a no-op protocol stub that answers every BatchAppend at once,
 *    each in its own process. The ratio says how much of the client's ceiling the server leaves
 *    on the table.
 * 2. Server capacity: a lean load generator (BatchAppend frames encoded before the clock starts,
 *    one HTTP/2 session) against the node, with the node's CPU time per acknowledged append.
 *
 * 3. PostgreSQL, when installed (Debian's `postgresql`): a table with a unique (stream, version)
 *    key, one INSERT transaction per append through `pg`, fsync and synchronous_commit on, the
 *    same appends in flight — the store users would otherwise pick, on the same disk, same run.
 *
 * Options: `USAGE` below (`--help`); `--stub in-client` runs the stubs on the client's thread, as
 * before 2026-11-22.
 *
 * Part 1 also measures a second reference, the durable stub: the same stub, except that it
 * writes each turn's events to a file and answers them after an fdatasync, one at a time as a
 * group commit does. It is the least any durable server does, so Chronicle ÷ durable stub says
 * how much of the gap to the no-op stub is the store, and how much is the disk in the loop.
 * With `--stub-cpu 8,16`, more durable stubs that also spend that many microseconds of CPU on
 * their main thread per append: the client's rate against a server as a function of what the
 * server spends per append, in the same run, beside Chronicle's own CPU per append.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KurrentDBClient, binaryEvent } from '@kurrent/kurrentdb-client';
import pg from 'pg';
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { frameMessage, MessageDeframer } from '../src/api/grpc/framing.js';
import { GrpcServer } from '../src/api/grpc/grpc-server.js';
import { registerNodeServices } from '../src/api/grpc/node-services.js';
import { codecOf, streamIdentifier, uuidToMessage, type Message } from '../src/api/grpc/protocol.js';
import { BenchArguments } from './arguments.js';
import { cpuMicros } from './process-cpu.js';

const USAGE = `
npm run bench:client -- [options]   (or: node dist/bench/client.js [options])

  --seconds N        each scenario runs N seconds (default 3)
  --scenario 64x1    only this many appends in flight × events per append (repeatable; default all
                     of 1, 8, 64 × 1, 100)
  --sections 1,2     only these parts: 1 official client vs stubs, 2 lean generator, 3 PostgreSQL,
                     4 reads and fan-out (default 1,2,3,4)
  --repeat N         part 1: N alternating runs of each side; medians, and the median pair ratio
                     (default 1)
  --stub in-client   run the stubs inside this process, on the client's thread (default: process)
  --stub-cpu 8,16    part 1: also durable stubs that spend this many µs of CPU per append
  --quick            0.5 s scenarios
  --help             this text
`;
const bench = new BenchArguments(USAGE);
const { values } = bench.parse({
  options: {
    help: { type: 'boolean', short: 'h' },
    seconds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    scenario: { type: 'string', multiple: true },
    sections: { type: 'string', default: '1,2,3,4' },
    repeat: { type: 'string', default: '1' },
    stub: { type: 'string', default: 'process' },
    'serve-stub': { type: 'string' },
    'stub-log': { type: 'string' },
    'stub-cpu': { type: 'string' },
    'stub-cpu-us': { type: 'string' },
  },
});
if (values.stub !== 'process' && values.stub !== 'in-client') bench.fail(`--stub must be 'process' or 'in-client', not '${values.stub}'`);
for (const scenario of values.scenario ?? []) {
  if (!/^(1|8|64)x(1|100)$/.test(scenario)) bench.fail(`--scenario must be one of 1x1, 8x1, 64x1, 1x100, 8x100, 64x100, not '${scenario}'`);
}
const repeats = bench.integer('repeat', values.repeat, 1);
const stubCpuMicros = values['stub-cpu'] === undefined ? [] : values['stub-cpu'].split(',').map((micros) => bench.positiveNumber('stub-cpu', micros.trim()));
const sections = new Set(values.sections.split(',').map((section) => section.trim()));
const scenarioMs = values.quick ? 500 : bench.positiveNumber('seconds', values.seconds) * 1000;
const EVENT_BYTES = 200;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A Chronicle node in its own process, so its CPU time can be read from /proc. */
async function startChronicle(): Promise<{ port: number; child: ChildProcess; stop: () => Promise<void>; directory: string }> {
  const directory = await mkdtemp(join(tmpdir(), 'chronicle-bench-'));
  const port = await freePort();
  const child = spawn(process.execPath, [process.env.BENCH_NODE_SCRIPT ?? 'bin/chronicle', '--insecure', '--db', directory, '--ext-http-port', String(port), '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await waitForPort(port);
  return {
    port,
    child,
    directory,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.once('connect', () => {
        session.close();
        resolve(true);
      });
      session.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * The reference, in its own process like the node (`--stub process`, the default), or inside
 * the client's process (`--stub in-client`), where serving it takes the client's own thread.
 */
async function startStub(durable = false, cpuMicrosPerAppend = 0): Promise<{ port: number; pid: number | undefined; stop: () => Promise<void> }> {
  const logDirectory = durable ? await mkdtemp(join(tmpdir(), 'chronicle-bench-stub-')) : undefined;
  const logPath = logDirectory ? join(logDirectory, 'events.log') : undefined;
  if (values.stub === 'in-client') {
    const stub = await serveStub(0, logPath, cpuMicrosPerAppend);
    return {
      port: stub.port,
      // Its CPU time is the client's: not measured apart.
      pid: undefined,
      stop: async () => {
        await stub.stop();
        if (logDirectory) await rm(logDirectory, { recursive: true, force: true });
      },
    };
  }
  const port = await freePort();
  const stubArguments = ['--serve-stub', String(port), ...(logPath ? ['--stub-log', logPath] : []), ...(cpuMicrosPerAppend > 0 ? ['--stub-cpu-us', String(cpuMicrosPerAppend)] : [])];
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...stubArguments], { stdio: ['ignore', 'inherit', 'inherit'] });
  const killStub = () => child.kill('SIGKILL');
  process.once('exit', killStub);
  await waitForPort(port);
  return {
    port,
    pid: child.pid,
    stop: async () => {
      process.off('exit', killStub);
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      if (logDirectory) await rm(logDirectory, { recursive: true, force: true });
    },
  };
}

/**
 * The reference: answers every BatchAppend at once and stores nothing — or, given a log file,
 * the durable reference: the events that arrived during one turn (or during the previous
 * fdatasync) are written to the file, one fdatasync makes them durable, then they are answered.
 * `cpuMicrosPerAppend` > 0 makes it busy that long on its main thread for each append it takes,
 * a stand-in for what a real store spends (validation, indexing, encoding).
 */
async function serveStub(port: number, logPath?: string, cpuMicrosPerAppend = 0): Promise<{ port: number; stop: () => Promise<void> }> {
  const log = logPath ? await open(logPath, 'a') : undefined;
  let group: { bytes: Uint8Array[]; answers: (() => void)[] } = { bytes: [], answers: [] };
  let flushScheduled = false;
  let flushing = false;
  const flush = async (): Promise<void> => {
    if (!log || flushing || group.bytes.length + group.answers.length === 0) return;
    flushing = true;
    const { bytes, answers } = group;
    group = { bytes: [], answers: [] };
    writeSync(log.fd, Buffer.concat(bytes));
    await log.datasync();
    flushing = false;
    void flush();
    for (const answer of answers) answer();
  };
  const server = new GrpcServer({ maxReceiveMessageBytes: 64 * 1024 * 1024 });
  server.addMethod({
    kind: 'bidi',
    path: '/event_store.client.streams.Streams/BatchAppend',
    request: codecOf('event_store.client.streams.BatchAppendReq'),
    response: codecOf('event_store.client.streams.BatchAppendResp'),
    handle: async (requests, responses) => {
      responses.sendHeaders();
      for await (const request of requests) {
        if (cpuMicrosPerAppend > 0 && request.is_final) spendCpu(cpuMicrosPerAppend);
        const answer = () => void responses.send({ correlation_id: request.correlation_id, success: { current_revision: 0, position: { commit_position: 0, prepare_position: 0 } } });
        if (!log) {
          if (request.is_final) answer();
          continue;
        }
        for (const proposed of request.proposed_messages ?? []) group.bytes.push(proposed.data ?? new Uint8Array(0));
        if (request.is_final) group.answers.push(answer);
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(() => {
            flushScheduled = false;
            void flush();
          });
        }
      }
    },
  });
  registerNodeServices(server, { instanceId: randomUUID(), advertisedHost: '127.0.0.1', advertisedPort: 0, version: '24.10.0' }, undefined);
  const address = await server.listen('127.0.0.1', port);
  return {
    port: address.port,
    stop: async () => {
      await server.close();
      await log?.close();
    },
  };
}

/** Keeps the thread busy for `micros` µs: the cost of work, without the work. */
function spendCpu(micros: number): void {
  const until = performance.now() + micros / 1000;
  while (performance.now() < until);
}

/** The official client's appends per second against the server on `port`, and that server's CPU per append when its pid is known. */
async function officialClient(port: number, serverPid: number | undefined, inFlight: number, eventsPerAppend: number): Promise<{ rate: number; serverCpuMicrosPerAppend: number }> {
  const client = KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${String(port)}?tls=false`;
  const data = new Uint8Array(EVENT_BYTES).fill(0x61);
  await client.appendToStream('warm-up', [binaryEvent({ type: 'WarmUp', data })]);
  let appends = 0;
  const cpuBefore = serverPid === undefined ? 0 : cpuMicros(serverPid);
  const started = performance.now();
  const deadline = started + scenarioMs;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, writer) => {
      while (performance.now() < deadline) {
        await client.appendToStream(`client-${writer}`, Array.from({ length: eventsPerAppend }, () => binaryEvent({ type: 'BenchEvent', data })));
        appends++;
      }
    }),
  );
  const rate = appends / ((performance.now() - started) / 1000);
  const serverCpuMicrosPerAppend = serverPid === undefined ? Number.NaN : (cpuMicros(serverPid) - cpuBefore) / appends;
  await client.dispose();
  return { rate, serverCpuMicrosPerAppend };
}

/** Pre-encoded BatchAppend requests over one HTTP/2 stream, `inFlight` unanswered at any time. */
async function leanGenerator(port: number, inFlight: number, eventsPerAppend: number): Promise<{ rate: number; appends: number }> {
  const codec = codecOf('event_store.client.streams.BatchAppendReq');
  const responseCodec = codecOf('event_store.client.streams.BatchAppendResp');
  const data = Buffer.alloc(EVENT_BYTES, 0x62);
  // Every append needs its own event ids (repeated ids would be idempotent retries that write
  // nothing), so enough frames for the whole scenario are encoded up front.
  const frames: Buffer[] = [];
  // Above the fastest rates seen on the development machine (56k/s with one event per append).
  const frameCount = Math.ceil(((eventsPerAppend === 1 ? 100_000 : 1_500) * scenarioMs) / 1000);
  for (let i = 0; i < frameCount; i++) {
    const request: Message = {
      correlation_id: uuidToMessage(randomUUID(), false),
      options: { stream_identifier: streamIdentifier(`lean-${i % 64}`), any: {} },
      proposed_messages: Array.from({ length: eventsPerAppend }, () => ({
        id: uuidToMessage(randomUUID(), false),
        metadata: { type: 'BenchEvent', 'content-type': 'application/octet-stream' },
        data,
      })),
      is_final: true,
    };
    frames.push(frameMessage(codec.encode(request)));
  }
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const stream = session.request({ ':method': 'POST', ':path': '/event_store.client.streams.Streams/BatchAppend', 'content-type': 'application/grpc', te: 'trailers' });
  const deframer = new MessageDeframer(1 << 26);
  let sent = 0;
  let acknowledged = 0;
  const started = performance.now();
  const deadline = started + scenarioMs;
  await new Promise<void>((resolve, reject) => {
    const sendOne = () => {
      if (sent < frames.length) stream.write(frames[sent++]);
    };
    stream.on('data', (chunk: Buffer) => {
      for (const bytes of deframer.push(chunk)) {
        const response = responseCodec.decode(bytes);
        if (response.result !== 'success') return reject(new Error(`append failed: ${JSON.stringify(response.error)}`));
        acknowledged++;
        if (performance.now() < deadline && sent < frames.length) sendOne();
        else if (acknowledged === sent) resolve();
      }
    });
    stream.on('error', reject);
    for (let i = 0; i < inFlight; i++) sendOne();
  });
  const rate = acknowledged / ((performance.now() - started) / 1000);
  stream.close();
  session.close();
  return { rate, appends: acknowledged };
}

/** A CPU figure, or a dash where it was not measured (a stub inside the client's process). */
const formatCpu = (micros: number) => (Number.isNaN(micros) ? '—' : format(micros, 1));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const format = (value: number, digits = 0) => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  console.log(`# Chronicle client-level benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${scenarioMs} ms per scenario, events of ${EVENT_BYTES} B, fdatasync before every acknowledgement\n`);
  const scenarios = [
    { inFlight: 1, eventsPerAppend: 1 },
    { inFlight: 8, eventsPerAppend: 1 },
    { inFlight: 64, eventsPerAppend: 1 },
    { inFlight: 1, eventsPerAppend: 100 },
    { inFlight: 8, eventsPerAppend: 100 },
    { inFlight: 64, eventsPerAppend: 100 },
  ].filter(({ inFlight, eventsPerAppend }) => !values.scenario || values.scenario.includes(`${inFlight}x${eventsPerAppend}`));

  const node = await startChronicle();
  if (sections.has('1')) {
    console.log('## 1. The official client (@kurrent/kurrentdb-client, BatchAppend): Chronicle vs a no-op stub, and vs a stub that only writes and fdatasyncs\n');
    const spendingHeaders = stubCpuMicros.map((micros) => ` durable stub + ${micros} µs CPU/append: appends/s | ÷ no-op stub | server CPU µs/append |`).join('');
    console.log(`| in flight | events/append | Chronicle appends/s | no-op stub appends/s | ratio | durable stub appends/s | durable ÷ no-op stub | Chronicle ÷ durable stub | server CPU µs/append: Chronicle | durable stub |${spendingHeaders}`);
    console.log(`|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${'---:|---:|---:|'.repeat(stubCpuMicros.length)}`);
    const stub = await startStub();
    const durableStub = await startStub(true);
    const spendingStubs = [];
    for (const micros of stubCpuMicros) spendingStubs.push(await startStub(true, micros));
    for (const { inFlight, eventsPerAppend } of scenarios) {
      const chronicleRuns: { rate: number; serverCpuMicrosPerAppend: number }[] = [];
      const referenceRuns: number[] = [];
      const durableRuns: { rate: number; serverCpuMicrosPerAppend: number }[] = [];
      const spendingRuns = spendingStubs.map(() => [] as { rate: number; serverCpuMicrosPerAppend: number; ratio: number }[]);
      const ratios: number[] = [];
      const durableRatios: number[] = [];
      const durableToNoOp: number[] = [];
      for (let run = 0; run < repeats; run++) {
        const chronicle = await officialClient(node.port, node.child.pid, inFlight, eventsPerAppend);
        const reference = await officialClient(stub.port, stub.pid, inFlight, eventsPerAppend);
        const durable = await officialClient(durableStub.port, durableStub.pid, inFlight, eventsPerAppend);
        for (const [i, spending] of spendingStubs.entries()) {
          const measured = await officialClient(spending.port, spending.pid, inFlight, eventsPerAppend);
          spendingRuns[i]!.push({ ...measured, ratio: measured.rate / reference.rate });
        }
        chronicleRuns.push(chronicle);
        referenceRuns.push(reference.rate);
        durableRuns.push(durable);
        // Each set ran back to back: its ratios are untouched by the machine's drift between sets.
        ratios.push(chronicle.rate / reference.rate);
        durableRatios.push(chronicle.rate / durable.rate);
        durableToNoOp.push(durable.rate / reference.rate);
      }
      const spendingCells = spendingRuns
        .map((runs) => ` ${format(median(runs.map((run) => run.rate)))} | ${format(median(runs.map((run) => run.ratio)), 2)} | ${formatCpu(median(runs.map((run) => run.serverCpuMicrosPerAppend)))} |`)
        .join('');
      console.log(
        `| ${inFlight} | ${eventsPerAppend} | ${format(median(chronicleRuns.map((run) => run.rate)))} | ${format(median(referenceRuns))} | ${format(median(ratios), 2)} | ${format(median(durableRuns.map((run) => run.rate)))} | ${format(median(durableToNoOp), 2)} | ${format(median(durableRatios), 2)} | ${formatCpu(median(chronicleRuns.map((run) => run.serverCpuMicrosPerAppend)))} | ${formatCpu(median(durableRuns.map((run) => run.serverCpuMicrosPerAppend)))} |${spendingCells}`,
      );
    }
    await stub.stop();
    await durableStub.stop();
    for (const spending of spendingStubs) await spending.stop();
  }

  if (sections.has('2')) {
    console.log('\n## 2. Server capacity: lean BatchAppend generator (one HTTP/2 session, frames pre-encoded)\n');
    console.log('| in flight | events/append | appends/s | events/s | server CPU µs per append |');
    console.log('|---:|---:|---:|---:|---:|');
    const pid = node.child.pid!;
    for (const { inFlight, eventsPerAppend } of scenarios) {
      const before = cpuMicros(pid);
      const { rate, appends } = await leanGenerator(node.port, inFlight, eventsPerAppend);
      const cpuPerAppend = (cpuMicros(pid) - before) / appends;
      console.log(`| ${inFlight} | ${eventsPerAppend} | ${format(rate)} | ${format(rate * eventsPerAppend)} | ${format(cpuPerAppend, 1)} |`);
    }
  }

  if (sections.has('3')) {
    console.log('\n## 3. PostgreSQL, same appends in flight (one INSERT transaction per append, fsync on)\n');
    const postgres = await startPostgres();
    if (!postgres) {
      console.log('PostgreSQL is not installed (Debian: apt-get install postgresql); skipped.');
    } else {
      console.log('| in flight | events/append | PostgreSQL appends/s | Chronicle (lean generator) appends/s | Chronicle ÷ PostgreSQL |');
      console.log('|---:|---:|---:|---:|---:|');
      for (const { inFlight, eventsPerAppend } of scenarios) {
        const postgresRate = await postgresAppends(postgres.port, inFlight, eventsPerAppend);
        const { rate } = await leanGenerator(node.port, inFlight, eventsPerAppend);
        console.log(`| ${inFlight} | ${eventsPerAppend} | ${format(postgresRate)} | ${format(rate)} | ${format(rate / postgresRate, 2)} |`);
      }
      await postgres.stop();
    }
  }

  if (sections.has('4')) {
    console.log('\n## 4. Reads and fan-out through the official client\n');
    const readRate = await readAllThroughClient(node.port);
    console.log(`readAll over the whole log (official client): ${format(readRate)} events/s`);
    const lag = await fanOut(node.port, 100, 2000);
    console.log(`100 catch-up subscribers to $all, one writer appending 2,000 events: delivery lag p50 ${format(lag.p50, 2)} ms, p99 ${format(lag.p99, 2)} ms (append sent → event delivered, over every subscriber and event)`);
  }
  await node.stop();
}

/** A throw-away PostgreSQL cluster in a temp directory, run as the `postgres` user (it refuses root). */
async function startPostgres(): Promise<{ port: number; stop: () => Promise<void> } | undefined> {
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql') : [];
  const bin = versions.length > 0 ? `/usr/lib/postgresql/${versions.sort().at(-1)}/bin` : undefined;
  if (!bin) return undefined;
  const directory = await mkdtemp(join(tmpdir(), 'chronicle-bench-pg-'));
  const port = await freePort();
  const asPostgres = (command: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', `${bin}/${command}`, ...args], { stdio: 'pipe' });
  execFileSync('chown', ['postgres', directory]);
  asPostgres('initdb', ['-D', `${directory}/data`, '-A', 'trust', '-U', 'postgres']);
  asPostgres('pg_ctl', ['-D', `${directory}/data`, '-o', `-p ${port} -k ${directory} -c fsync=on -c synchronous_commit=on -c max_connections=100`, '-l', `${directory}/log`, '-w', 'start']);
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await client.connect();
  await client.query('CREATE TABLE events (stream text NOT NULL, version bigint NOT NULL, id uuid NOT NULL, type text NOT NULL, data bytea NOT NULL, PRIMARY KEY (stream, version))');
  await client.end();
  return {
    port,
    stop: async () => {
      asPostgres('pg_ctl', ['-D', `${directory}/data`, '-m', 'fast', '-w', 'stop']);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Appends as PostgreSQL users write them: each a transaction inserting the events at the next versions. */
async function postgresAppends(port: number, inFlight: number, eventsPerAppend: number): Promise<number> {
  const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', max: inFlight });
  const data = Buffer.alloc(EVENT_BYTES, 0x64);
  const prefix = randomUUID().slice(0, 8);
  let appends = 0;
  const started = performance.now();
  const deadline = started + scenarioMs;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, writer) => {
      const stream = `pg-${prefix}-${writer}`;
      let version = 0;
      while (performance.now() < deadline) {
        const values: unknown[] = [];
        const rows: string[] = [];
        for (let i = 0; i < eventsPerAppend; i++) {
          const base = i * 5;
          rows.push(`($${base + 1}, $${base + 2}, $${base + 3}, $${base + 4}, $${base + 5})`);
          values.push(stream, version++, randomUUID(), 'BenchEvent', data);
        }
        await pool.query(`INSERT INTO events (stream, version, id, type, data) VALUES ${rows.join(', ')}`, values);
        appends++;
      }
    }),
  );
  const rate = appends / ((performance.now() - started) / 1000);
  await pool.end();
  return rate;
}

async function readAllThroughClient(port: number): Promise<number> {
  const client = KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${String(port)}?tls=false`;
  let events = 0;
  const started = performance.now();
  for await (const resolved of client.readAll({ maxCount: 200_000 })) {
    if (resolved.event) events++;
  }
  const rate = events / ((performance.now() - started) / 1000);
  await client.dispose();
  return rate;
}

/** Latency from sending an append to its delivery, over `subscribers` $all subscriptions. */
async function fanOut(port: number, subscribers: number, appends: number): Promise<{ p50: number; p99: number }> {
  const client = KurrentDBClient.connectionString`kurrentdb://127.0.0.1:${String(port)}?tls=false`;
  const sentAt = new Map<string, number>();
  const lags: number[] = [];
  let delivered = 0;
  const total = subscribers * appends;
  let allDelivered!: () => void;
  const done = new Promise<void>((resolve) => (allDelivered = resolve));
  const subscriptions = Array.from({ length: subscribers }, () => {
    const subscription = client.subscribeToAll({ fromPosition: 'end', filter: { filterOn: 'streamName', prefixes: ['fan-out'] } as never });
    subscription.on('data', (resolved: { event?: { id: string } }) => {
      const at = resolved.event && sentAt.get(resolved.event.id);
      if (at !== undefined) lags.push(performance.now() - at);
      if (++delivered === total) allDelivered();
    });
    return subscription;
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const data = new Uint8Array(EVENT_BYTES).fill(0x63);
  for (let i = 0; i < appends; i++) {
    const event = binaryEvent({ type: 'FanOut', data });
    // Timed from the append's start: the event can reach a subscriber before its ack reaches the writer.
    sentAt.set(event.id, performance.now());
    await client.appendToStream('fan-out', [event]);
  }
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 30_000))]);
  for (const subscription of subscriptions) await subscription.unsubscribe();
  await client.dispose();
  const sorted = Float64Array.from(lags).sort();
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99) };
}

if (values['serve-stub'] !== undefined) {
  const stub = await serveStub(Number(values['serve-stub']), values['stub-log'], values['stub-cpu-us'] === undefined ? 0 : Number(values['stub-cpu-us']));
  process.once('SIGTERM', () => void stub.stop().then(() => process.exit(0)));
} else {
  await main();
}
