/**
 * HTTP API append throughput beside gRPC, in the same run against the same node: 64 writers, each
 * with its own connection (HTTP/1.1 keep-alive) or sharing the official gRPC client's HTTP/2
 * connection, appending 1 or 100 events of 200 bytes per request, every append acknowledged
 * after its fdatasync. Run by `npm run bench` (after the storage figures) or alone with
 * `npm run bench:http` (`--help` for its options).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KurrentDBClient, jsonEvent } from '@kurrent/kurrentdb-client';
import { BenchArguments } from './arguments.js';

const CONNECTIONS = 64;
const PAYLOAD = 'a'.repeat(190);

interface Figures {
  requestsPerSecond: number;
  eventsPerSecond: number;
  latencyMsP50: number;
  latencyMsP99: number;
}

/** A port the OS says is free now (listen on 0, read it, close). */
async function unusedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A node on an on-disk store in a temporary directory; resolves once it listens. */
async function startNode(): Promise<{ port: number; stop: () => Promise<void> }> {
  const directory = await mkdtemp(join(tmpdir(), 'chronicle-bench-http-'));
  const chosenPort = await unusedPort();
  const binary = fileURLToPath(new URL('../../bin/chronicle', import.meta.url));
  const child = spawn(process.execPath, [binary, '--insecure', '--db', directory, '--ext-http-port', String(chosenPort), '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('the node did not start within 15 s')), 15_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      const match = /listening for clients on [^"]*:(\d+)"/.exec(text);
      if (match) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners('data');
        child.stdout!.resume();
        resolve(Number(match[1]));
      }
    });
    child.once('exit', () => reject(new Error('the node exited during start-up')));
  });
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      await rm(directory, { recursive: true, force: true });
    },
  };
}

function percentile(sorted: number[], fraction: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

/** Runs `writers` loops of `append` for `durationMs`; counts requests and their latencies. */
async function drive(writers: number, durationMs: number, eventsPerRequest: number, append: (writer: number) => Promise<void>): Promise<Figures> {
  const latencies: number[] = [];
  const endAt = performance.now() + durationMs;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      while (performance.now() < endAt) {
        const sentAt = performance.now();
        await append(writer);
        latencies.push(performance.now() - sentAt);
      }
    }),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: latencies.length / seconds,
    eventsPerSecond: (latencies.length * eventsPerRequest) / seconds,
    latencyMsP50: percentile(latencies, 0.5),
    latencyMsP99: percentile(latencies, 0.99),
  };
}

function httpAppend(port: number, agent: Agent, body: string): (writer: number) => Promise<void> {
  return (writer) =>
    new Promise<void>((resolve, reject) => {
      const call = request(
        { host: '127.0.0.1', port, method: 'POST', path: `/streams/bench-http-${writer}`, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (response) => {
          response.resume();
          response.on('end', () => (response.statusCode === 201 ? resolve() : reject(new Error(`HTTP ${response.statusCode}`))));
        },
      );
      call.on('error', reject);
      call.end(body);
    });
}

const format = (value: number, digits = 0) => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export async function runHttpBenchmark(scenarioMs: number): Promise<void> {
  const node = await startNode();
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${node.port}?tls=false`);
  try {
    console.log(`\n## HTTP API vs gRPC appends (same node, same run; ${CONNECTIONS} writers, 200-byte JSON events, ${scenarioMs} ms per scenario)\n`);
    console.log('| events/request | HTTP requests/s | HTTP events/s | HTTP p50 ms | HTTP p99 ms | gRPC appends/s | gRPC events/s | gRPC p50 ms | gRPC p99 ms | HTTP ÷ gRPC |');
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const eventsPerRequest of [1, 100]) {
      const body = JSON.stringify(Array.from({ length: eventsPerRequest }, () => ({ eventType: 'BenchEvent', data: { p: PAYLOAD } })));
      const http = await drive(CONNECTIONS, scenarioMs, eventsPerRequest, httpAppend(node.port, agent, body));
      const grpc = await drive(CONNECTIONS, scenarioMs, eventsPerRequest, async (writer) => {
        await client.appendToStream(`bench-grpc-${writer}`, Array.from({ length: eventsPerRequest }, () => jsonEvent({ type: 'BenchEvent', data: { p: PAYLOAD } })));
      });
      console.log(
        `| ${eventsPerRequest} | ${format(http.requestsPerSecond)} | ${format(http.eventsPerSecond)} | ${format(http.latencyMsP50, 2)} | ${format(http.latencyMsP99, 2)} | ${format(grpc.requestsPerSecond)} | ${format(grpc.eventsPerSecond)} | ${format(grpc.latencyMsP50, 2)} | ${format(grpc.latencyMsP99, 2)} | ${format(http.eventsPerSecond / grpc.eventsPerSecond, 2)} |`,
      );
    }
    console.log('\nThe load generators run in this process, on the same cores as the node: both columns pay for them alike.');
  } finally {
    agent.destroy();
    await client.dispose();
    await node.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const bench = new BenchArguments(`
npm run bench:http -- [options]   (or: node dist/bench/http.js [options])

  --seconds N   each scenario runs N seconds (default 3)
  --quick       0.5 s scenarios
  --help        this text
`);
  const { values } = bench.parse({ options: { seconds: { type: 'string', default: '3' }, quick: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  await runHttpBenchmark(values.quick ? 500 : bench.positiveNumber('seconds', values.seconds) * 1000);
}
