/**
 * `npm run bench:cluster`: what replication costs and how long a failover takes, each figure
 * beside a reference measured in the same run. Every node runs in its own process on 127.0.0.1
 * with `--db` in a temp directory (an fdatasync before every acknowledgement).
 *
 * 1. Appends through the lean load generator (BatchAppend frames encoded before the clock starts,
 *    one HTTP/2 session; one event of 200 B per append) with 1, 8 and 64 in flight, against a
 *    single node and against the leader of a 3-node cluster: throughput, latency p50/p99, the
 *    ratio cluster ÷ single, and server CPU per acknowledged append (leader and followers).
 *    With `--ceiling`, a third side per pair: the single node again, with two processes beside it
 *    that only burn as much CPU as the two followers used in the cluster run just before (in
 *    slices of 0.4 ms). The cluster cannot beat that figure on this machine however cheap
 *    replication were for its leader: it is the ceiling of the ratio that sharing the cores sets.
 * 2. etcd, when installed (Debian's `etcd-server`): a 3-node etcd cluster on loopback, puts of
 *    200 B values to its leader through the HTTP gateway (`POST /v3/kv/put`, keep-alive
 *    connections with each request encoded once), 64 in flight, beside the Chronicle cluster.
 * 3. Failover: a fresh 3-node cluster per run; two writers append continuously, one append in
 *    flight each, retrying every failed write: the lean generator (following "not leader" hints,
 *    else trying the next node) and the official client through a gossip-seed connection string.
 *    The leader is `kill -9`ed; measured is the time from the kill to each writer's first
 *    acknowledged write that was sent after the kill, and when a new leader shows in gossip.
 *
 * Options: `USAGE` below (`--help`). BENCH_NODE_SCRIPT names the script that starts a node (default: a
 * tiny entry next to this build's src/cli/main.js, so a rebuild of dist/ elsewhere does not matter).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import { connect as connectTcp, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KurrentDBClient, binaryEvent } from '@kurrent/kurrentdb-client';
import { frameMessage, MessageDeframer } from '../src/api/grpc/framing.js';
import { codecOf, streamIdentifier, uuidToMessage, type Message } from '../src/api/grpc/protocol.js';
import { BenchArguments } from './arguments.js';
import { cpuMicros } from './process-cpu.js';

const USAGE = `
npm run bench:cluster -- [options]   (or: node dist/bench/cluster.js [options])

  --seconds N         each throughput scenario runs N seconds (default 3)
  --writers 1,8,64    the appends in flight to measure (default 1,8,64)
  --repeat N          N alternating runs of single node and cluster per writer count; figures are
                      medians, the ratio the median of each pair's ratio (default 1)
  --failover-runs N   leader kills to time, 0 to skip them (default 10)
  --ceiling           also measure the single node beside two processes that burn the followers'
                      CPU: the ratio's ceiling on this machine with replication free for the leader
  --quick             0.5 s scenarios and 3 failover runs
  --help              this text
`;
const bench = new BenchArguments(USAGE);
const { values } = bench.parse({
  options: {
    seconds: { type: 'string', default: '3' },
    'failover-runs': { type: 'string' },
    quick: { type: 'boolean', default: false },
    writers: { type: 'string', default: '1,8,64' },
    repeat: { type: 'string', default: '1' },
    ceiling: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
const scenarioMs = values.quick ? 500 : bench.positiveNumber('seconds', values.seconds) * 1000;
const failoverRuns = bench.integer('failover-runs', values['failover-runs'] ?? (values.quick ? '3' : '10'), 0);
const WRITER_COUNTS = values.writers.split(',').map((count) => bench.integer('writers', count.trim(), 1));
const repeats = bench.integer('repeat', values.repeat, 1);

const EVENT_BYTES = 200;
const ETCD_IN_FLIGHT = 64;
/** Bounds on every wait: a node that does not come up, elect or answer fails the run, never hangs it. */
const NODE_START_MS = 20_000;
const LEADER_WAIT_MS = 30_000;
const FAILOVER_BOUND_MS = 30_000;
const ATTEMPT_TIMEOUT_MS = 3_000;
const STOP_GRACE_MS = 5_000;
/** A failed write that failed at once (connection refused, "not leader") is retried after this pause, so the retry loop cannot spin. */
const RETRY_PAUSE_MS = 5;
const FAILOVER_WARM_UP_MS = values.quick ? 300 : 1_000;

// ---------------------------------------------------------------------------------------------
// Processes and scratch space: everything started is registered, and killed by pid at exit.

const liveChildren = new Set<ChildProcess>();
let scratchRoot: string | undefined;

process.on('exit', () => {
  for (const child of liveChildren) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (scratchRoot) rmSync(scratchRoot, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

interface ServerProcess {
  name: string;
  pid: number;
  exited: Promise<void>;
  isRunning(): boolean;
  logTail(): string;
}

function spawnServer(name: string, command: string, args: string[]): ServerProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`cannot start ${name} (${command})`);
  liveChildren.add(child);
  // Output is kept (the last lines, for an error message) and never printed: the report stays compact.
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(chunk.toString('utf8'));
    if (tail.length > 40) tail.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      liveChildren.delete(child);
      resolve();
    });
  });
  return {
    name,
    pid: child.pid,
    exited,
    isRunning: () => child.exitCode === null && child.signalCode === null,
    logTail: () => tail.join('').split('\n').slice(-15).join('\n'),
  };
}

/** SIGTERM, then SIGKILL if it has not exited within the grace period. */
async function stopServer(server: ServerProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (server.isRunning()) {
    process.kill(server.pid, 'SIGTERM');
    await Promise.race([server.exited, sleep(graceMs)]);
  }
  if (server.isRunning()) {
    process.kill(server.pid, 'SIGKILL');
    await Promise.race([server.exited, sleep(2_000)]);
  }
}

async function freePorts(count: number): Promise<number[]> {
  // All listening at once, so the ports are distinct.
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string, pollMs = 25): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await condition()) return;
    await sleep(pollMs);
  }
  if (await condition()) return;
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------------------------
// Chronicle nodes and clusters.

interface ChronicleNode {
  server: ServerProcess;
  externalPort: number;
  /** The internal HTTP (gossip) port; 0 for a single node, which has none. */
  gossipPort: number;
  directory: string;
}

/** The script a node runs: BENCH_NODE_SCRIPT, or a tiny entry importing this build's CLI. */
function nodeScript(scratch: string): string {
  if (process.env.BENCH_NODE_SCRIPT) return process.env.BENCH_NODE_SCRIPT;
  const cli = new URL('../src/cli/main.js', import.meta.url);
  if (!existsSync(cli)) throw new Error(`${fileURLToPath(cli)} is missing: build first`);
  const entry = join(scratch, 'chronicle-node.mjs');
  writeFileSync(entry, `import { main } from ${JSON.stringify(cli.href)};\nawait main(process.argv);\n`);
  return entry;
}

async function startChronicle(scratch: string, script: string, label: string, size: 1 | 3): Promise<ChronicleNode[]> {
  const ports = await freePorts(size * 3);
  const plan = Array.from({ length: size }, (_, i) => ({
    intTcpPort: ports[i * 3]!,
    intHttpPort: ports[i * 3 + 1]!,
    extHttpPort: ports[i * 3 + 2]!,
    directory: join(scratch, `${label}-node${i + 1}`),
  }));
  const nodes: ChronicleNode[] = [];
  try {
    for (const [i, node] of plan.entries()) {
      await mkdir(node.directory, { recursive: true });
      const args = ['--insecure', '--db', node.directory, '--log-level', 'warn', '--ext-ip', '127.0.0.1', `--ext-http-port=${node.extHttpPort}`];
      if (size > 1) {
        const seeds = plan.filter((other) => other !== node).map((other) => `127.0.0.1:${other.intHttpPort}`);
        args.push('--int-ip', '127.0.0.1', `--int-tcp-port=${node.intTcpPort}`, `--int-http-port=${node.intHttpPort}`, `--cluster-size=${size}`, '--discover-via-dns=false', `--gossip-seed=${seeds.join(',')}`);
      }
      const server = spawnServer(`${label} node ${i + 1}`, process.execPath, [script, ...args]);
      nodes.push({ server, externalPort: node.extHttpPort, gossipPort: size > 1 ? node.intHttpPort : 0, directory: node.directory });
    }
    for (const node of nodes) await waitForHttp2(node, NODE_START_MS);
    return nodes;
  } catch (error) {
    await stopChronicle(nodes, 0);
    throw error;
  }
}

async function stopChronicle(nodes: ChronicleNode[], graceMs = STOP_GRACE_MS): Promise<void> {
  await Promise.all(nodes.map((node) => stopServer(node.server, graceMs)));
  await Promise.all(nodes.map((node) => rm(node.directory, { recursive: true, force: true })));
}

async function waitForHttp2(node: ChronicleNode, timeoutMs: number): Promise<void> {
  const canConnect = () =>
    new Promise<boolean>((resolve) => {
      const session = http2.connect(`http://127.0.0.1:${node.externalPort}`);
      session.once('connect', () => {
        session.close();
        resolve(true);
      });
      session.once('error', () => resolve(false));
    });
  try {
    await waitFor(async () => {
      if (!node.server.isRunning()) throw new Error(`exited at start-up`);
      return canConnect();
    }, timeoutMs, `${node.server.name} listening on ${node.externalPort}`, 100);
  } catch (error) {
    throw new Error(`${node.server.name}: ${(error as Error).message}\n${node.server.logTail()}`);
  }
}

interface GossipMember {
  id: string;
  state: string;
  isAlive: boolean;
  externalHttp: { host: string; port: number };
}

/** The node's own state as it reports it in its gossip answer (its view of itself is current). */
async function selfState(node: ChronicleNode): Promise<string | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${node.gossipPort}/gossip`, { signal: AbortSignal.timeout(500) });
    const body = (await response.json()) as { members?: GossipMember[] };
    return body.members?.find((member) => member.id === `127.0.0.1:${node.gossipPort}`)?.state;
  } catch {
    return undefined;
  }
}

async function waitForLeader(nodes: ChronicleNode[], timeoutMs: number): Promise<ChronicleNode> {
  let leader: ChronicleNode | undefined;
  let states: (string | undefined)[] = [];
  try {
    await waitFor(async () => {
      const running = nodes.filter((node) => node.server.isRunning());
      states = await Promise.all(running.map(selfState));
      leader = running[states.indexOf('Leader')];
      return leader !== undefined;
    }, timeoutMs, 'a leader in gossip');
  } catch {
    throw new Error(`no leader within ${timeoutMs} ms (states: ${states.join(', ')})\n${nodes.map((node) => `${node.server.name}:\n${node.server.logTail()}`).join('\n')}`);
  }
  return leader!;
}

// ---------------------------------------------------------------------------------------------
// The lean generator: BatchAppend frames over HTTP/2, no client library in the way.

const appendCodec = codecOf('event_store.client.streams.BatchAppendReq');
const appendResponseCodec = codecOf('event_store.client.streams.BatchAppendResp');
const eventData = Buffer.alloc(EVENT_BYTES, 0x62);
const BATCH_APPEND_PATH = '/event_store.client.streams.Streams/BatchAppend';
const batchAppendHeaders = { ':method': 'POST', ':path': BATCH_APPEND_PATH, 'content-type': 'application/grpc', te: 'trailers' };

/** One append of one event, `any` expected state, as a gRPC frame; `correlationId` names its answer. */
function encodeAppend(stream: string, correlationId: string): Buffer {
  const request: Message = {
    correlation_id: uuidToMessage(correlationId, false),
    options: { stream_identifier: streamIdentifier(stream), any: {} },
    proposed_messages: [{ id: uuidToMessage(randomUUID(), false), metadata: { type: 'BenchEvent', 'content-type': 'application/octet-stream' }, data: eventData }],
    is_final: true,
  };
  return frameMessage(appendCodec.encode(request));
}

/** A gRPC status other than OK in headers or trailers: the call was refused or failed. */
function callFailure(headers: http2.IncomingHttpHeaders): { reason: string; leaderPort: number | undefined } | undefined {
  const status = headers['grpc-status'];
  if (status === undefined || status === '0') return undefined;
  const message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
  const leaderPort = Number(headers['leader-endpoint-port']);
  return { reason: `gRPC status ${String(status)}: ${message}`, leaderPort: Number.isInteger(leaderPort) && leaderPort > 0 ? leaderPort : undefined };
}

interface LoadResult {
  perSecond: number;
  operations: number;
  latencyMsP50: number;
  latencyMsP99: number;
  /** The pre-encoded requests ran out before the scenario's time: the figure is a lower bound. */
  ranOut: boolean;
}

function percentile(sortedMs: Float64Array, fraction: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction))] ?? Number.NaN;
}

function loadResult(operations: number, elapsedMs: number, latenciesMs: number[], ranOut: boolean): LoadResult {
  const sorted = Float64Array.from(latenciesMs).sort();
  return { perSecond: operations / (elapsedMs / 1000), operations, latencyMsP50: percentile(sorted, 0.5), latencyMsP99: percentile(sorted, 0.99), ranOut };
}

/** Pre-encoded BatchAppend requests over one HTTP/2 stream, `inFlight` unanswered at any time. */
async function leanLoad(port: number, inFlight: number, durationMs: number): Promise<LoadResult> {
  // Every append needs its own event id (a repeated id would be an idempotent retry that writes
  // nothing), so the frames for the whole scenario are encoded before the clock starts.
  // Above what this machine's fastest single node has done (56k/s at 64 in flight, 2026-11-22),
  // so that running out of frames stays the exception the report flags.
  const ratePerSecondMax = inFlight === 1 ? 20_000 : 100_000;
  const frameCount = Math.ceil((ratePerSecondMax * durationMs) / 1000);
  const ids: string[] = [];
  const frames: Buffer[] = [];
  for (let i = 0; i < frameCount; i++) {
    ids.push(randomUUID());
    frames.push(encodeAppend(`lean-${i % 64}`, ids[i]!));
  }
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined); // Reported through the stream.
  const stream = session.request(batchAppendHeaders);
  const deframer = new MessageDeframer(1 << 26);
  const sentAtMs = new Map<string, number>();
  const latenciesMs: number[] = [];
  let sent = 0;
  let acknowledged = 0;
  let finished = false;
  const started = performance.now();
  const deadline = started + durationMs;
  let endedAt = started;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        finished = true;
        reject(error);
      };
      timer = setTimeout(() => fail(new Error(`lean load on ${port}: no end within ${durationMs + 15_000} ms`)), durationMs + 15_000);
      const sendOne = () => {
        const i = sent++;
        sentAtMs.set(ids[i]!, performance.now());
        stream.write(frames[i]);
      };
      const onHeaders = (headers: http2.IncomingHttpHeaders) => {
        const failure = callFailure(headers);
        if (failure) fail(new Error(`lean load on ${port}: ${failure.reason}`));
      };
      stream.on('response', onHeaders);
      stream.on('trailers', onHeaders);
      stream.on('data', (chunk: Buffer) => {
        for (const bytes of deframer.push(chunk)) {
          const response = appendResponseCodec.decode(bytes);
          if (response.result !== 'success') return fail(new Error(`append failed: ${JSON.stringify(response.error)}`));
          const now = performance.now();
          const id = String((response.correlation_id as { string?: string } | undefined)?.string);
          const at = sentAtMs.get(id);
          if (at !== undefined) {
            latenciesMs.push(now - at);
            sentAtMs.delete(id);
          }
          acknowledged++;
          if (now < deadline && sent < frames.length) sendOne();
          else if (acknowledged === sent) {
            finished = true;
            endedAt = now;
            resolve();
          }
        }
      });
      stream.on('error', fail);
      stream.on('close', () => {
        if (!finished) fail(new Error(`lean load on ${port}: the call ended after ${acknowledged} of ${sent} answers`));
      });
      for (let i = 0; i < inFlight; i++) sendOne();
    });
  } finally {
    clearTimeout(timer);
    stream.close();
    session.close();
  }
  return loadResult(acknowledged, endedAt - started, latenciesMs, sent === frames.length);
}

/** HTTP/2 sessions by port, reopened after they fail: the failover writer's connections. */
class SessionPool {
  private readonly sessions = new Map<number, http2.ClientHttp2Session>();

  get(port: number): http2.ClientHttp2Session {
    const existing = this.sessions.get(port);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const forget = () => {
      if (this.sessions.get(port) === session) this.sessions.delete(port);
    };
    session.on('error', forget);
    session.on('close', forget);
    session.on('goaway', forget);
    this.sessions.set(port, session);
    return session;
  }

  close(): void {
    for (const session of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }
}

type AttemptResult = { ok: true } | { ok: false; reason: string; leaderPort: number | undefined };

/** One BatchAppend call carrying one append; settles on its answer, a refusal, an error or the timeout. */
function appendOnce(pool: SessionPool, port: number, frame: Buffer, timeoutMs: number): Promise<AttemptResult> {
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = pool.get(port).request(batchAppendHeaders);
    } catch (error) {
      resolve({ ok: false, reason: (error as Error).message, leaderPort: undefined });
      return;
    }
    const deframer = new MessageDeframer(1 << 20);
    let settled = false;
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout', leaderPort: undefined }), timeoutMs);
    const onHeaders = (headers: http2.IncomingHttpHeaders) => {
      const failure = callFailure(headers);
      if (failure) finish({ ok: false, ...failure });
    };
    stream.on('response', onHeaders);
    stream.on('trailers', onHeaders);
    stream.on('data', (chunk: Buffer) => {
      for (const bytes of deframer.push(chunk)) {
        const response = appendResponseCodec.decode(bytes);
        finish(response.result === 'success' ? { ok: true } : { ok: false, reason: JSON.stringify(response.error), leaderPort: undefined });
      }
    });
    stream.on('error', (error) => finish({ ok: false, reason: error.message, leaderPort: undefined }));
    stream.on('close', () => finish({ ok: false, reason: 'the call ended without an answer', leaderPort: undefined }));
    stream.end(frame);
  });
}

/** Appends until one is acknowledged (a new leader takes writes once its first entry commits). */
async function waitUntilWritable(pool: SessionPool, port: number, timeoutMs: number): Promise<void> {
  let last: AttemptResult | undefined;
  const frame = encodeAppend('bench-warm-up', randomUUID());
  try {
    await waitFor(async () => (last = await appendOnce(pool, port, frame, ATTEMPT_TIMEOUT_MS)).ok, timeoutMs, `a write acknowledged by ${port}`);
  } catch (error) {
    throw new Error(`${(error as Error).message}; last: ${last && !last.ok ? last.reason : '-'}`);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Single node vs 3-node cluster.

interface ThroughputRow {
  writers: number;
  single: LoadResult;
  cluster: LoadResult;
  /** Cluster ÷ single throughput. */
  ratio: number;
  singleCpuMicrosPerAppend: number;
  leaderCpuMicrosPerAppend: number;
  followersCpuMicrosPerAppend: number;
  /** With --ceiling: the single node beside two processes burning the followers' CPU. */
  ceiling?: { single: LoadResult; ratio: number; cpuMicrosPerAppend: number };
}

/** CPU time the given processes spent during `run`, per operation it reports. */
async function withCpu<T extends { operations: number }>(pids: number[], run: () => Promise<T>): Promise<{ result: T; cpuMicrosPerOperation: number[] }> {
  const before = pids.map(cpuMicros);
  const result = await run();
  return { result, cpuMicrosPerOperation: pids.map((pid, i) => (cpuMicros(pid) - before[i]!) / result.operations) };
}

async function compareSingleAndCluster(single: ChronicleNode, leader: ChronicleNode, followers: ChronicleNode[]): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const writers of WRITER_COUNTS) {
    // Alternating single and cluster, so drift on a shared machine hits both alike; with --repeat,
    // each figure is the median of the runs and the ratio the median of each pair's ratio.
    const runs: ThroughputRow[] = [];
    for (let run = 0; run < repeats; run++) {
      const singleRun = await withCpu([single.server.pid], () => leanLoad(single.externalPort, writers, scenarioMs));
      const clusterRun = await withCpu([leader.server.pid, ...followers.map((node) => node.server.pid)], () => leanLoad(leader.externalPort, writers, scenarioMs));
      const [leaderCpu, ...followerCpu] = clusterRun.cpuMicrosPerOperation;
      const followersCpuMicrosPerAppend = followerCpu.reduce((sum, value) => sum + value, 0) / followerCpu.length;
      let ceiling: ThroughputRow['ceiling'];
      if (values.ceiling) {
        const followerCores = (followersCpuMicrosPerAppend * clusterRun.result.perSecond) / 1e6;
        const burners = followers.map((_, i) => startCpuBurner(`burner-${i + 1}`, followerCores));
        try {
          const beside = await withCpu([single.server.pid], () => leanLoad(single.externalPort, writers, scenarioMs));
          ceiling = { single: beside.result, ratio: beside.result.perSecond / singleRun.result.perSecond, cpuMicrosPerAppend: beside.cpuMicrosPerOperation[0]! };
        } finally {
          for (const burner of burners) await stopServer(burner);
        }
      }
      runs.push({
        writers,
        single: singleRun.result,
        cluster: clusterRun.result,
        ratio: clusterRun.result.perSecond / singleRun.result.perSecond,
        singleCpuMicrosPerAppend: singleRun.cpuMicrosPerOperation[0]!,
        leaderCpuMicrosPerAppend: leaderCpu!,
        followersCpuMicrosPerAppend,
        ...(ceiling ? { ceiling } : {}),
      });
    }
    rows.push(medianRow(runs));
  }
  return rows;
}

/** Busy CPU per turn of a burner: about the grain of a follower's work at 64 in flight. */
const BURN_SLICE_MS = 0.4;

/**
 * A process that keeps `cores` of one CPU busy on average (0.3 = 30 %) and does nothing else: a
 * stand-in for a follower's share of the machine, without its replication traffic. It sleeps
 * between slices for as long as keeps its total on the target (timers only have millisecond
 * resolution, so a fixed period would miss it).
 */
function startCpuBurner(name: string, cores: number): ServerProcess {
  const share = Math.min(Math.max(cores, 0.01), 1);
  const program = [
    `const share = ${share}, slice = ${BURN_SLICE_MS}, started = performance.now();`,
    'let busy = 0;',
    'const burn = () => {',
    '  const from = performance.now();',
    '  while (performance.now() - from < slice);',
    '  busy += performance.now() - from;',
    '  setTimeout(burn, Math.max(0, busy / share - (performance.now() - started)));',
    '};',
    'burn();',
  ].join('\n');
  return spawnServer(name, process.execPath, ['-e', program]);
}

/** A load result whose every field is the median of that field over `results`. */
function medianLoad(results: LoadResult[]): LoadResult {
  const of = (pick: (result: LoadResult) => number): number => median(results.map(pick))!;
  return {
    perSecond: of((result) => result.perSecond),
    operations: of((result) => result.operations),
    latencyMsP50: of((result) => result.latencyMsP50),
    latencyMsP99: of((result) => result.latencyMsP99),
    ranOut: results.some((result) => result.ranOut),
  };
}

/** Each column's median over the runs of one writer count (the load results' too, field by field). */
function medianRow(runs: ThroughputRow[]): ThroughputRow {
  const of = (pick: (row: ThroughputRow) => number): number => median(runs.map(pick))!;
  const ceilings = runs.flatMap((row) => (row.ceiling ? [row.ceiling] : []));
  return {
    writers: runs[0]!.writers,
    single: medianLoad(runs.map((row) => row.single)),
    cluster: medianLoad(runs.map((row) => row.cluster)),
    ratio: of((row) => row.ratio),
    singleCpuMicrosPerAppend: of((row) => row.singleCpuMicrosPerAppend),
    leaderCpuMicrosPerAppend: of((row) => row.leaderCpuMicrosPerAppend),
    followersCpuMicrosPerAppend: of((row) => row.followersCpuMicrosPerAppend),
    ...(ceilings.length > 0
      ? { ceiling: { single: medianLoad(ceilings.map((c) => c.single)), ratio: median(ceilings.map((c) => c.ratio))!, cpuMicrosPerAppend: median(ceilings.map((c) => c.cpuMicrosPerAppend))! } }
      : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// 2. etcd beside it.

interface EtcdNode {
  server: ServerProcess;
  clientPort: number;
  directory: string;
}

function etcdVersion(): string | undefined {
  const probe = spawnSync('etcd', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error || probe.status !== 0) return undefined;
  return `etcd ${/Version:\s*(\S+)/.exec(probe.stdout)?.[1] ?? '(unknown version)'}`;
}

async function startEtcd(scratch: string): Promise<EtcdNode[]> {
  const ports = await freePorts(6);
  const token = `bench-${randomUUID().slice(0, 8)}`;
  const plan = [0, 1, 2].map((i) => ({ name: `etcd${i + 1}`, clientPort: ports[i * 2]!, peerPort: ports[i * 2 + 1]!, directory: join(scratch, `etcd${i + 1}`) }));
  const initialCluster = plan.map((node) => `${node.name}=http://127.0.0.1:${node.peerPort}`).join(',');
  const nodes: EtcdNode[] = [];
  try {
    for (const node of plan) {
      const args = [
        `--name=${node.name}`,
        `--data-dir=${node.directory}`,
        `--listen-client-urls=http://127.0.0.1:${node.clientPort}`,
        `--advertise-client-urls=http://127.0.0.1:${node.clientPort}`,
        `--listen-peer-urls=http://127.0.0.1:${node.peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${node.peerPort}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-token=${token}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
      ];
      nodes.push({ server: spawnServer(node.name, 'etcd', args), clientPort: node.clientPort, directory: node.directory });
    }
    for (const node of nodes) {
      await waitFor(async () => {
        if (!node.server.isRunning()) throw new Error(`${node.server.name} exited at start-up\n${node.server.logTail()}`);
        try {
          const response = await fetch(`http://127.0.0.1:${node.clientPort}/health`, { signal: AbortSignal.timeout(1000) });
          return ((await response.json()) as { health?: string }).health === 'true';
        } catch {
          return false;
        }
      }, LEADER_WAIT_MS, `${node.server.name} healthy`, 100);
    }
    return nodes;
  } catch (error) {
    await stopEtcd(nodes);
    throw error;
  }
}

async function stopEtcd(nodes: EtcdNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => stopServer(node.server)));
  await Promise.all(nodes.map((node) => rm(node.directory, { recursive: true, force: true })));
}

async function etcdCall(port: number, path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(2000) });
  if (!response.ok) throw new Error(`etcd ${path}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

async function etcdLeader(nodes: EtcdNode[]): Promise<EtcdNode> {
  let leader: EtcdNode | undefined;
  await waitFor(async () => {
    for (const node of nodes) {
      try {
        const status = await etcdCall(node.clientPort, '/v3/maintenance/status', {});
        const self = (status.header as { member_id?: string } | undefined)?.member_id;
        if (self !== undefined && status.leader === self) leader = node;
      } catch {
        // Not answering yet.
      }
    }
    return leader !== undefined;
  }, LEADER_WAIT_MS, 'an etcd leader', 100);
  return leader!;
}

/**
 * Length of the first complete HTTP/1.1 response in `buffer` and its status, or undefined if it
 * has not all arrived. The gateway answers with a Content-Length; chunked answers are handled too.
 */
function completeResponse(buffer: Buffer): { status: number; bytes: number } | undefined {
  const headerEnd = buffer.indexOf('\r\n\r\n');
  if (headerEnd < 0) return undefined;
  const head = buffer.toString('latin1', 0, headerEnd);
  const status = Number(head.slice(9, 12));
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const bytes = headerEnd + 4 + Number(length[1]);
    return buffer.length >= bytes ? { status, bytes } : undefined;
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const last = buffer.indexOf('\r\n0\r\n\r\n', headerEnd);
    return last < 0 ? undefined : { status, bytes: last + 7 };
  }
  return { status, bytes: headerEnd + 4 };
}

/**
 * Puts through etcd's HTTP gateway, `inFlight` keep-alive connections with one put outstanding
 * each. Each connection's request is encoded once (it overwrites its own key), so the client
 * spends about as little per put as the lean generator does per append.
 */
async function etcdPuts(port: number, inFlight: number, durationMs: number): Promise<LoadResult> {
  const value = Buffer.alloc(EVENT_BYTES, 0x65).toString('base64');
  const latenciesMs: number[] = [];
  let puts = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  let endedAt = started;
  const connection = (writer: number) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ key: Buffer.from(`bench/${writer}`).toString('base64'), value });
      const request = Buffer.from(`POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      const socket = connectTcp(port, '127.0.0.1');
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`etcd puts on ${port}: no end within ${durationMs + 15_000} ms`));
      }, durationMs + 15_000);
      let pending: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      const send = () => {
        sentAt = performance.now();
        socket.write(request);
      };
      socket.on('connect', send);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        const response = completeResponse(pending);
        if (!response) return;
        pending = pending.subarray(response.bytes);
        if (response.status !== 200) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(`etcd put: HTTP ${response.status}`));
          return;
        }
        const now = performance.now();
        latenciesMs.push(now - sentAt);
        puts++;
        endedAt = Math.max(endedAt, now);
        if (now < deadline) send();
        else {
          clearTimeout(timer);
          socket.end();
          resolve();
        }
      });
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  await Promise.all(Array.from({ length: inFlight }, (_, writer) => connection(writer)));
  return loadResult(puts, endedAt - started, latenciesMs, false);
}

// ---------------------------------------------------------------------------------------------
// 3. Failover.

interface WriterLog {
  /** Send time of the attempt that got the acknowledgement, and when it came. */
  acks: { sentAtMs: number; ackedAtMs: number }[];
  failures: number;
  stopped: boolean;
}

const newWriterLog = (): WriterLog => ({ acks: [], failures: 0, stopped: false });

/** Milliseconds from `killAtMs` to the first acknowledgement of an attempt sent after it. */
function firstAckAfter(log: WriterLog, killAtMs: number): number | undefined {
  const ack = log.acks.find((candidate) => candidate.sentAtMs > killAtMs);
  return ack && ack.ackedAtMs - killAtMs;
}

/** One append in flight, each retried (same event id) until acknowledged; follows "not leader" hints, else tries the next node. */
async function leanFailoverWriter(pool: SessionPool, ports: number[], firstPort: number, log: WriterLog): Promise<void> {
  let target = firstPort;
  let frame = encodeAppend('failover-lean', randomUUID());
  while (!log.stopped) {
    const sentAtMs = performance.now();
    const result = await appendOnce(pool, target, frame, ATTEMPT_TIMEOUT_MS);
    if (result.ok) {
      log.acks.push({ sentAtMs, ackedAtMs: performance.now() });
      frame = encodeAppend('failover-lean', randomUUID());
      continue;
    }
    log.failures++;
    target = result.leaderPort ?? ports[(ports.indexOf(target) + 1) % ports.length]!;
    if (performance.now() - sentAtMs < RETRY_PAUSE_MS) await sleep(RETRY_PAUSE_MS);
  }
}

/** The same through the official client, which finds the leader itself from the gossip seeds. */
async function clientFailoverWriter(client: KurrentDBClient, log: WriterLog): Promise<void> {
  const data = new Uint8Array(EVENT_BYTES).fill(0x66);
  let event = binaryEvent({ type: 'FailoverEvent', data });
  while (!log.stopped) {
    const sentAtMs = performance.now();
    try {
      await client.appendToStream('failover-client', event, { deadline: ATTEMPT_TIMEOUT_MS });
      log.acks.push({ sentAtMs, ackedAtMs: performance.now() });
      event = binaryEvent({ type: 'FailoverEvent', data });
    } catch {
      log.failures++;
      if (performance.now() - sentAtMs < RETRY_PAUSE_MS) await sleep(RETRY_PAUSE_MS);
    }
  }
}

interface FailoverResult {
  leanMs: number | undefined;
  clientMs: number | undefined;
  electionMs: number | undefined;
  leanFailures: number;
  clientFailures: number;
}

async function failoverRun(scratch: string, script: string, run: number): Promise<FailoverResult> {
  const nodes = await startChronicle(scratch, script, `failover${run}`, 3);
  const pool = new SessionPool();
  let client: KurrentDBClient | undefined;
  const lean = newWriterLog();
  const official = newWriterLog();
  const writers: Promise<void>[] = [];
  try {
    const leader = await waitForLeader(nodes, LEADER_WAIT_MS);
    await waitUntilWritable(pool, leader.externalPort, LEADER_WAIT_MS);
    const ports = nodes.map((node) => node.externalPort);
    client = KurrentDBClient.connectionString(`kurrentdb://${ports.map((port) => `127.0.0.1:${port}`).join(',')}?tls=false`);
    writers.push(leanFailoverWriter(pool, ports, leader.externalPort, lean), clientFailoverWriter(client, official));
    await waitFor(() => lean.acks.length > 0 && official.acks.length > 0, LEADER_WAIT_MS, 'both writers acknowledged');
    await sleep(FAILOVER_WARM_UP_MS);

    const killAtMs = performance.now();
    process.kill(leader.server.pid, 'SIGKILL');
    const survivors = nodes.filter((node) => node !== leader);
    const election = waitForLeader(survivors, FAILOVER_BOUND_MS).then(
      () => performance.now() - killAtMs,
      () => undefined,
    );
    await waitFor(() => firstAckAfter(lean, killAtMs) !== undefined && firstAckAfter(official, killAtMs) !== undefined, FAILOVER_BOUND_MS, 'writes after the kill').catch(() => undefined);
    return { leanMs: firstAckAfter(lean, killAtMs), clientMs: firstAckAfter(official, killAtMs), electionMs: await election, leanFailures: lean.failures, clientFailures: official.failures };
  } finally {
    lean.stopped = true;
    official.stopped = true;
    await Promise.race([Promise.allSettled(writers), sleep(ATTEMPT_TIMEOUT_MS + 1_000)]);
    if (client) await Promise.race([client.dispose().catch(() => undefined), sleep(2_000)]);
    pool.close();
    // The data is thrown away: no need for a graceful stop.
    await stopChronicle(nodes, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// The report.

const format = (value: number | undefined, digits = 0) =>
  value === undefined || Number.isNaN(value) ? '—' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function median(samples: (number | undefined)[]): number | undefined {
  const known = samples.filter((sample): sample is number => sample !== undefined).sort((a, b) => a - b);
  if (known.length === 0) return undefined;
  const middle = Math.floor(known.length / 2);
  return known.length % 2 === 1 ? known[middle] : (known[middle - 1]! + known[middle]!) / 2;
}

function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  const environment = process.env.BENCH_NODE_SCRIPT ? `BENCH_NODE_SCRIPT=${process.env.BENCH_NODE_SCRIPT} ` : '';
  if (process.env.npm_lifecycle_event === 'bench:cluster') return `${environment}npm run bench:cluster${args ? ` -- ${args}` : ''}`;
  const script = relative(process.cwd(), process.argv[1]!);
  return `${environment}node ${script.startsWith('..') ? process.argv[1] : script}${args ? ` ${args}` : ''}`;
}

/** A warning when the temp directory's file system makes fsync free (tmpfs), which would flatter every figure. */
function fileSystemNote(directory: string): string {
  const TMPFS_MAGIC = 0x01021994;
  return statfsSync(directory).type === TMPFS_MAGIC ? ` — WARNING: ${directory} is tmpfs, fsync costs nothing there` : '';
}

async function failoverSection(scratch: string, script: string): Promise<void> {
  console.log(`\n## 3. Failover: kill -9 of the leader of a fresh 3-node cluster, ${failoverRuns} runs\n`);
  console.log('Time from the kill to the first acknowledged write sent after it; writers keep one append in flight and retry every failed write.\n');
  console.log('| run | lean generator ms | official client ms | new leader in gossip ms | failed attempts (lean / client) |');
  console.log('|---:|---:|---:|---:|---:|');
  const results: FailoverResult[] = [];
  for (let run = 1; run <= failoverRuns; run++) {
    try {
      const result = await failoverRun(scratch, script, run);
      results.push(result);
      console.log(`| ${run} | ${format(result.leanMs)} | ${format(result.clientMs)} | ${format(result.electionMs)} | ${result.leanFailures} / ${result.clientFailures} |`);
    } catch (error) {
      // A cluster that did not form or take writes in time: reported, and the other runs go on.
      console.log(`| ${run} | failed: ${(error as Error).message.split('\n')[0]} | | | |`);
    }
  }
  const missing = (key: 'leanMs' | 'clientMs') => results.filter((result) => result[key] === undefined).length;
  const note = (key: 'leanMs' | 'clientMs') => (missing(key) > 0 ? ` (${missing(key)} without a write within ${FAILOVER_BOUND_MS / 1000} s)` : '');
  console.log(`| median | ${format(median(results.map((result) => result.leanMs)))}${note('leanMs')} | ${format(median(results.map((result) => result.clientMs)))}${note('clientMs')} | ${format(median(results.map((result) => result.electionMs)))} | |`);
}

async function main(): Promise<void> {
  scratchRoot = await mkdtemp(join(tmpdir(), 'chronicle-bench-cluster-'));
  const scratch = scratchRoot;
  const script = nodeScript(scratch);
  console.log(`# Chronicle cluster benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${scenarioMs} ms per scenario, events of ${EVENT_BYTES} B, --db under ${tmpdir()}${fileSystemNote(scratch)}, fdatasync before every acknowledgement\n`);

  const single = await startChronicle(scratch, script, 'single', 1);
  let cluster: ChronicleNode[] = [];
  try {
    cluster = await startChronicle(scratch, script, 'cluster', 3);
    const leader = await waitForLeader(cluster, LEADER_WAIT_MS);
    const pool = new SessionPool();
    try {
      await waitUntilWritable(pool, leader.externalPort, LEADER_WAIT_MS);
      await waitUntilWritable(pool, single[0]!.externalPort, LEADER_WAIT_MS);
    } finally {
      pool.close();
    }
    const followers = cluster.filter((node) => node !== leader);
    // Untimed: the first thousands of appends run in cold code (JIT) on both sides, which would
    // weigh on whichever scenario comes first.
    await leanLoad(single[0]!.externalPort, 64, Math.min(scenarioMs, 1_000));
    await leanLoad(leader.externalPort, 64, Math.min(scenarioMs, 1_000));

    console.log('## 1. Appends, lean generator (one HTTP/2 session, frames pre-encoded): single node vs leader of 3\n');
    if (repeats > 1) console.log(`Medians of ${repeats} alternating runs of each side; the ratio is the median of each pair's ratio.\n`);
    if (values.ceiling) console.log("The last three columns: the single node again, beside two processes that burn what the followers used, and its ratio to the single node alone — the cluster's ceiling here.\n");
    const ceilingHeader = values.ceiling ? ' single beside followers\' CPU appends/s | its CPU µs/append | ceiling ÷ single |' : '';
    console.log(`| in flight | single appends/s | p50 ms | p99 ms | cluster appends/s | p50 ms | p99 ms | cluster ÷ single | CPU µs/append: single | leader | each follower |${ceilingHeader}`);
    console.log(`|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${values.ceiling ? '---:|---:|---:|' : ''}`);
    const rows = await compareSingleAndCluster(single[0]!, leader, followers);
    for (const row of rows) {
      const ranOut = row.single.ranOut || row.cluster.ranOut || row.ceiling?.single.ranOut ? ' (frames ran out: lower bound)' : '';
      const ceilingCells = row.ceiling ? ` ${format(row.ceiling.single.perSecond)} | ${format(row.ceiling.cpuMicrosPerAppend, 1)} | ${format(row.ceiling.ratio, 2)} |` : '';
      console.log(
        `| ${row.writers} | ${format(row.single.perSecond)} | ${format(row.single.latencyMsP50, 2)} | ${format(row.single.latencyMsP99, 2)} | ${format(row.cluster.perSecond)} | ${format(row.cluster.latencyMsP50, 2)} | ${format(row.cluster.latencyMsP99, 2)} | ${format(row.ratio, 2)} | ${format(row.singleCpuMicrosPerAppend, 1)} | ${format(row.leaderCpuMicrosPerAppend, 1)} | ${format(row.followersCpuMicrosPerAppend, 1)} |${ceilingCells}${ranOut}`,
      );
    }
    await stopChronicle(single);

    console.log(`\n## 2. etcd, 3 nodes on loopback, ${ETCD_IN_FLIGHT} in flight (puts of ${EVENT_BYTES} B through the HTTP gateway, to the leader)\n`);
    const version = etcdVersion();
    if (!version) console.log('etcd not installed; skipped');
    else {
      const etcd = await startEtcd(scratch);
      let puts: LoadResult;
      let etcdCpuMicrosPerPut: number;
      try {
        const etcdLeaderNode = await etcdLeader(etcd);
        await etcdCall(etcdLeaderNode.clientPort, '/v3/kv/put', { key: Buffer.from('bench/warm-up').toString('base64'), value: Buffer.from('x').toString('base64') });
        const measured = await withCpu([etcdLeaderNode.server.pid], () => etcdPuts(etcdLeaderNode.clientPort, ETCD_IN_FLIGHT, scenarioMs));
        puts = measured.result;
        etcdCpuMicrosPerPut = measured.cpuMicrosPerOperation[0]!;
      } finally {
        await stopEtcd(etcd);
      }
      // Chronicle measured again right after, so the two figures are minutes apart at most.
      const chronicle = await withCpu([leader.server.pid], () => leanLoad(leader.externalPort, ETCD_IN_FLIGHT, scenarioMs));
      console.log('| store | ops/s | p50 ms | p99 ms | leader CPU µs/op |');
      console.log('|---|---:|---:|---:|---:|');
      console.log(`| ${version} (put) | ${format(puts.perSecond)} | ${format(puts.latencyMsP50, 2)} | ${format(puts.latencyMsP99, 2)} | ${format(etcdCpuMicrosPerPut, 1)} |`);
      console.log(`| Chronicle 3 nodes (append) | ${format(chronicle.result.perSecond)} | ${format(chronicle.result.latencyMsP50, 2)} | ${format(chronicle.result.latencyMsP99, 2)} | ${format(chronicle.cpuMicrosPerOperation[0], 1)} |`);
      console.log(`\nChronicle 3 nodes ÷ etcd: ${format(chronicle.result.perSecond / puts.perSecond, 2)}`);
    }
  } finally {
    await stopChronicle(single);
    await stopChronicle(cluster);
  }

  if (failoverRuns > 0) await failoverSection(scratch, script);
  console.log(`\nCommand: ${commandLine()}`);
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
}
// Idle keep-alive connections (fetch's pool, the official client's channels) must not keep the
// process up; the 'exit' hook kills whatever was started and removes the scratch directory.
process.exit();
