import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as KurrentLib from '@kurrent/kurrentdb-client';
import { checkHistory, type FinalEvent } from '../../sim/checkers.js';
import { History, type AppendOperation } from '../../sim/history.js';
import { makeCertificates, type TestCertificates } from '../helpers/certificates.js';
import { freePort, ServerProcess } from './server-process.js';
import { leaderIn, readAfterLeaderChange, startCluster, unaryGrpc, waitForGossip, type GossipMember } from './cluster-support.js';

/**
 * The seed's three-node cluster on one machine (`../shared/seeds/000_*.txt`), started with its
 * command lines verbatim — our binary in place of EventStore.ClusterNode.exe, `--insecure` added
 * (a node without TLS must say so) and the log directories in a temporary folder — and driven by
 * the official client through a gossip-seed connection string.
 */
const SEED_COMMAND_LINES = [
  '--mem-db --log LOGS/log1 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=1111 --ext-tcp-port=1112 --int-http-port=1113 --ext-http-port=1114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:2113,127.0.0.1:3113',
  '--mem-db --log LOGS/log2 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=2111 --ext-tcp-port=2112 --int-http-port=2113 --ext-http-port=2114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:1113,127.0.0.1:3113',
  '--mem-db --log LOGS/log3 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=3111 --ext-tcp-port=3112 --int-http-port=3113 --ext-http-port=3114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:1113,127.0.0.1:2113',
];
const EXTERNAL_PORTS = [1114, 2114, 3114];
const GOSSIP_PORTS = [1113, 2113, 3113];
const CONNECTION = 'kurrentdb://127.0.0.1:1114,127.0.0.1:2114,127.0.0.1:3114?tls=false';
const FORM_TIMEOUT_MS = 20_000;

type KurrentModule = typeof KurrentLib;

async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('a three-node cluster from the seed command lines', { timeout: 180_000 }, () => {
  let logs: string;
  const nodes: (ServerProcess | undefined)[] = [];
  let kurrent: KurrentModule;

  const start = async (index: number): Promise<ServerProcess> => {
    const args = ['--insecure', ...SEED_COMMAND_LINES[index]!.replace('LOGS', logs).split(' ')];
    const node = await ServerProcess.startCommandLine(args, '127.0.0.1', EXTERNAL_PORTS[index]!);
    nodes[index] = node;
    return node;
  };

  before(async () => {
    for (const port of [1111, 1113, 1114, 2111, 2113, 2114, 3111, 3113, 3114]) {
      assert.ok(await portIsFree(port), `port ${port} of the seed's command lines is in use on this machine`);
    }
    logs = await mkdtemp(join(tmpdir(), 'chronicle-cluster-'));
    kurrent = await import('@kurrent/kurrentdb-client');
    await Promise.all([0, 1, 2].map((index) => start(index)));
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node?.stop()));
    await rm(logs, { recursive: true, force: true });
  });

  const logsOnFailure = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (error) {
      const text = nodes.map((node, i) => `--- node ${i + 1}\n${node?.logText(25) ?? '(not running)'}`).join('\n');
      throw new Error(`${(error as Error).message}\n${text}`);
    }
  };

  it('forms with one leader and two followers, in gossip and in the clients’ Gossip.Read', () =>
    logsOnFailure(async () => {
      const members = await waitForGossip(GOSSIP_PORTS, (view) => leaderIn(view) !== undefined && view.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
      assert.equal(members.length, 3);
    }));

  it('takes writes through a gossip-seed connection string and serves reads with leader and follower preference', () =>
    logsOnFailure(async () => {
      const client = kurrent.KurrentDBClient.connectionString(CONNECTION);
      const followerClient = kurrent.KurrentDBClient.connectionString(`${CONNECTION}&nodePreference=follower`);
      try {
        const events = Array.from({ length: 20 }, (_, i) => kurrent.jsonEvent({ type: 'seeded', data: { i } }));
        const result = await client.appendToStream('cluster-basics', events, { streamState: kurrent.NO_STREAM });
        assert.equal(result.nextExpectedRevision, 19n);
        const read: bigint[] = [];
        for await (const resolved of client.readStream('cluster-basics')) read.push(resolved.event!.revision);
        assert.deepEqual(read, Array.from({ length: 20 }, (_, i) => BigInt(i)));
        // A follower applies shortly after the leader acknowledges: bounded retry.
        const deadline = Date.now() + 5000;
        let fromFollower: bigint[] = [];
        while (Date.now() < deadline) {
          fromFollower = [];
          try {
            for await (const resolved of followerClient.readStream('cluster-basics')) fromFollower.push(resolved.event!.revision);
          } catch {
            // Not applied there yet (stream not found): try again.
          }
          if (fromFollower.length === 20) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(fromFollower.length, 20);
      } finally {
        await client.dispose();
        await followerClient.dispose();
      }
    }));

  it('survives a kill -9 of the leader under load: a new leader, writes resume on the same client, nothing acknowledged lost or doubled', () =>
    logsOnFailure(async () => {
      const client = kurrent.KurrentDBClient.connectionString(CONNECTION);
      const acknowledged: string[] = [];
      const history = new History();
      let operations = 0;
      let stop = false;
      let killedAt = 0;
      let firstAfterKill = 0;
      const writer = (async () => {
        let n = 0;
        while (!stop) {
          const id = crypto.randomUUID();
          const event = kurrent.jsonEvent({ id, type: 'load', data: { n: n++ } });
          // Retry the same event (same id) until it is acknowledged: idempotency keeps one copy.
          let firstAttempt: number | undefined;
          for (let attempt = 0; attempt < 200 && !stop; attempt++) {
            const attemptStartedAt = Date.now();
            const operation = history.add<AppendOperation>({
              kind: 'append',
              id: ++operations,
              client: 0,
              node: 'cluster',
              stream: 'cluster-failover',
              expected: 'any',
              eventIds: [id],
              retryOf: firstAttempt,
              invokedMs: attemptStartedAt,
              completedMs: undefined,
              outcome: undefined,
            });
            firstAttempt ??= operation.id;
            try {
              const result = await client.appendToStream('cluster-failover', event);
              Object.assign(operation, { outcome: 'ok', completedMs: Date.now(), position: Number(result.position!.commit), lastRevision: Number(result.nextExpectedRevision) });
              acknowledged.push(id);
              // Failover time: from the kill to the first write sent after it and acknowledged. Strictly
              // after: an attempt started in the kill's millisecond may have reached the old leader first.
              if (killedAt > 0 && attemptStartedAt > killedAt && firstAfterKill === 0) firstAfterKill = Date.now();
              break;
            } catch (error) {
              // A failed append's outcome is unknown to the client (a timeout, a lost leader).
              Object.assign(operation, { outcome: 'unknown', completedMs: Date.now(), error: String(error) });
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
        }
      })();
      try {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const before = await waitForGossip(GOSSIP_PORTS, (view) => leaderIn(view) !== undefined, FORM_TIMEOUT_MS, 'a leader');
        const leader = leaderIn(before)!;
        const leaderIndex = EXTERNAL_PORTS.indexOf(leader.externalHttp.port);
        const countBefore = acknowledged.length;
        assert.ok(countBefore > 0, 'writes were acknowledged before the kill');
        killedAt = Date.now();
        await nodes[leaderIndex]!.kill();
        nodes[leaderIndex] = undefined;
        const survivors = GOSSIP_PORTS.filter((_, i) => i !== leaderIndex);
        const after = await waitForGossip(survivors, (view) => {
          const next = leaderIn(view);
          return next !== undefined && next.id !== leader.id;
        }, 15_000, 'a new leader');
        assert.notEqual(leaderIn(after)!.id, leader.id);
        const deadline = Date.now() + 15_000;
        while (acknowledged.length < countBefore + 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
        assert.ok(acknowledged.length >= countBefore + 20, `writes resumed after the kill (${acknowledged.length - countBefore} since)`);
        stop = true;
        await writer;
        const seen = new Map<string, number>();
        const finalEvents: FinalEvent[] = [];
        const read = await readAfterLeaderChange(async () => {
          const events = [];
          for await (const resolved of client.readStream('cluster-failover')) events.push(resolved.event!);
          return events;
        });
        for (const event of read) {
          seen.set(event.id, (seen.get(event.id) ?? 0) + 1);
          finalEvents.push({ stream: event.streamId, revision: Number(event.revision), id: event.id, position: Number(event.position!.commit) });
        }
        // The simulator's history checker, on what this client saw and the final log.
        assert.deepEqual(checkHistory(history, finalEvents, Date.now()), []);
        for (const id of acknowledged) assert.equal(seen.get(id), 1, `acknowledged event ${id} is in the stream once`);
        for (const [id, count] of seen) assert.equal(count, 1, `event ${id} appears ${count} times`);
        process.stderr.write(`failover: first acknowledged write ${firstAfterKill - killedAt} ms after the kill\n`);

        // The killed node restarts (empty: --mem-db) and catches up.
        await start(leaderIndex);
        const newLeader = leaderIn(after)!;
        await waitForGossip(GOSSIP_PORTS, (view) => {
          const restarted = view.find((m) => m.externalHttp.port === EXTERNAL_PORTS[leaderIndex]);
          const current = view.find((m) => m.id === newLeader.id);
          return restarted !== undefined && restarted.isAlive && restarted.state === 'Follower' && current !== undefined && restarted.appliedPosition >= current.appliedPosition;
        }, 20_000, 'the restarted node to catch up');
        // It came back empty (--mem-db): it stayed out of elections until it had caught up.
        const restartedLogs = nodes[leaderIndex]!.logs;
        const deadline2 = Date.now() + 5000;
        while (!restartedLogs.some((line) => line.includes('taking part in elections again')) && Date.now() < deadline2) await new Promise((resolve) => setTimeout(resolve, 100));
        assert.ok(restartedLogs.some((line) => line.includes('taking part in elections again')), nodes[leaderIndex]!.logText(10));

        // One order everywhere: each node, read directly, holds the same events at the same positions.
        const expected = finalEvents.map((event) => `${event.revision}:${event.id}:${event.position}`);
        for (const port of EXTERNAL_PORTS) {
          const direct = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${port}?tls=false&nodePreference=follower`);
          try {
            let seenHere: string[] = [];
            const until = Date.now() + 10_000;
            while (Date.now() < until) {
              seenHere = [];
              for await (const resolved of direct.readStream('cluster-failover')) {
                seenHere.push(`${resolved.event!.revision}:${resolved.event!.id}:${resolved.event!.position!.commit}`);
              }
              if (seenHere.length >= expected.length) break;
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
            assert.deepEqual(seenHere.slice(0, expected.length), expected, `node on ${port} holds the same history`);
          } finally {
            await direct.dispose();
          }
        }
      } finally {
        stop = true;
        await writer;
        await client.dispose();
      }
    }));

  it('a paused leader (SIGSTOP) is replaced; resumed, it steps down and the write sent to it is not acknowledged', () =>
    logsOnFailure(async () => {
      const view = await waitForGossip(GOSSIP_PORTS, (members) => leaderIn(members) !== undefined && members.every((m) => m.isAlive), FORM_TIMEOUT_MS, 'three live nodes and a leader');
      const leader = leaderIn(view)!;
      const leaderIndex = EXTERNAL_PORTS.indexOf(leader.externalHttp.port);
      const paused = nodes[leaderIndex]!;
      const direct = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${leader.externalHttp.port}?tls=false`);
      const cluster = kurrent.KurrentDBClient.connectionString(CONNECTION);
      try {
        await direct.appendToStream('cluster-paused', kurrent.jsonEvent({ type: 'warm-up', data: {} }));
        paused.signal('SIGSTOP');
        const stranded = kurrent.jsonEvent({ type: 'stranded', data: {} });
        const strandedWrite = direct.appendToStream('cluster-paused', stranded).then(
          () => 'acknowledged',
          () => 'failed',
        );
        const others = GOSSIP_PORTS.filter((_, i) => i !== leaderIndex);
        await waitForGossip(others, (members) => {
          const next = leaderIn(members);
          return next !== undefined && next.id !== leader.id;
        }, 15_000, 'a new leader while the old one is paused');
        await cluster.appendToStream('cluster-paused', kurrent.jsonEvent({ type: 'after-pause', data: {} }));
        paused.signal('SIGCONT');
        await waitForGossip([GOSSIP_PORTS[leaderIndex]!], (members) => members[0]?.state === 'Follower', 15_000, 'the resumed leader to step down');
        assert.equal(await strandedWrite, 'failed', 'the paused leader cannot acknowledge a write the majority does not hold');
        const types = await readAfterLeaderChange(async () => {
          const read: string[] = [];
          for await (const resolved of cluster.readStream('cluster-paused')) read.push(resolved.event!.type);
          return read;
        });
        assert.deepEqual(types, ['warm-up', 'after-pause']);
      } finally {
        paused.signal('SIGCONT');
        await direct.dispose();
        await cluster.dispose();
      }
    }));

  it('keeps taking writes with a follower killed, and fails them within the bound once a majority is gone', () =>
    logsOnFailure(async () => {
      const view = await waitForGossip(GOSSIP_PORTS, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive).length === 3, FORM_TIMEOUT_MS, 'three live nodes and a leader');
      const leader = leaderIn(view)!;
      const leaderIndex = EXTERNAL_PORTS.indexOf(leader.externalHttp.port);
      const followerIndex = [0, 1, 2].find((i) => i !== leaderIndex)!;
      const client = kurrent.KurrentDBClient.connectionString(CONNECTION);
      try {
        await nodes[followerIndex]!.kill();
        nodes[followerIndex] = undefined;
        for (let i = 0; i < 10; i++) await client.appendToStream('cluster-minority', kurrent.jsonEvent({ type: 'two-of-three', data: { i } }));
        await nodes[leaderIndex]!.kill();
        nodes[leaderIndex] = undefined;
        // The survivor stops believing in the dead leader after an election timeout; from then on
        // a write waits for a quorum up to --write-timeout-ms (5 s by default) and fails.
        const survivorIndex = [0, 1, 2].find((i) => nodes[i] !== undefined)!;
        await waitForGossip([GOSSIP_PORTS[survivorIndex]!], (members) => members[0]?.state === 'Unknown', 10_000, 'the survivor to lose its leader');
        const direct = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${EXTERNAL_PORTS[survivorIndex]}?tls=false`);
        try {
          const startedAt = Date.now();
          const outcome = await direct.appendToStream('cluster-minority', kurrent.jsonEvent({ type: 'one-of-three', data: {} })).then(
            () => 'acknowledged',
            (error: unknown) => `failed: ${(error as Error).message}`,
          );
          const elapsedMs = Date.now() - startedAt;
          assert.match(outcome, /^failed/, 'no write is acknowledged without a majority');
          assert.ok(elapsedMs >= 4000 && elapsedMs < 15_000, `the write waited ${elapsedMs} ms for a quorum (expected about the 5 s write timeout)`);
          process.stderr.write(`majority lost: the write failed after ${elapsedMs} ms (${outcome})\n`);
        } finally {
          await direct.dispose();
        }
      } finally {
        await client.dispose();
      }
    }));
});

/** Starts three nodes from command lines, waits for a leader and two followers, writes and reads through the client. */
async function formAndUse(kurrent: KurrentModule, lines: readonly string[], externals: readonly { host: string; port: number }[], gossips: readonly { host: string; port: number }[]): Promise<ServerProcess[]> {
  const nodes = await Promise.all(lines.map((line, i) => ServerProcess.startCommandLine(['--insecure', ...line.split(' ')], externals[i]!.host, externals[i]!.port)));
  try {
    await waitForGossip(gossips, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://${externals.map((e) => `${e.host}:${e.port}`).join(',')}?tls=false`);
    try {
      await client.appendToStream('machines', [kurrent.jsonEvent({ type: 'one', data: {} }), kurrent.jsonEvent({ type: 'two', data: {} })], { streamState: kurrent.NO_STREAM });
      const types: string[] = [];
      for await (const resolved of client.readStream('machines')) types.push(resolved.event!.type);
      assert.deepEqual(types, ['one', 'two']);
    } finally {
      await client.dispose();
    }
    return nodes;
  } catch (error) {
    const text = nodes.map((node, i) => `--- node ${i + 1}\n${node.logText(20)}`).join('\n');
    await Promise.all(nodes.map((node) => node.stop()));
    throw new Error(`${(error as Error).message}\n${text}`);
  }
}

describe('the seed\u2019s "separate machines" and DNS command lines, on loopback addresses', { timeout: 180_000 }, () => {
  let kurrent: KurrentModule;
  let dataDirectory: string;
  before(async () => {
    kurrent = await import('@kurrent/kurrentdb-client');
    dataDirectory = await mkdtemp(join(tmpdir(), 'chronicle-machines-'));
  });
  after(async () => {
    await rm(dataDirectory, { recursive: true, force: true });
  });

  const sameEverywhere = '--int-tcp-port=1111 --ext-tcp-port=1112 --int-http-port=2113 --ext-http-port=2114 --cluster-size=3';
  const externals = [1, 2, 3].map((k) => ({ host: `127.0.0.${k}`, port: 2114 }));

  it('127.0.0.1, .2 and .3 in place of 192.168.0.x, the same ports on every node; a node of another cluster is refused', async () => {
    // Only the first line of the seed keeps its data (no --mem-db): here in a temporary directory.
    const lines = [
      `--db ${dataDirectory}/node1 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 ${sameEverywhere} --discover-via-dns=false --gossip-seed=127.0.0.2:2113,127.0.0.3:2113`,
      `--mem-db --int-ip 127.0.0.2 --ext-ip 127.0.0.2 ${sameEverywhere} --discover-via-dns=false --gossip-seed=127.0.0.1:2113,127.0.0.3:2113`,
      `--mem-db --int-ip 127.0.0.3 --ext-ip 127.0.0.3 ${sameEverywhere} --discover-via-dns=false --gossip-seed=127.0.0.1:2113,127.0.0.2:2113`,
    ];
    const gossips = [1, 2, 3].map((k) => ({ host: `127.0.0.${k}`, port: 2113 }));
    const nodes = await formAndUse(kurrent, lines, externals, gossips);
    let stranger: ServerProcess | undefined;
    try {
      // Configured with a different member list (a wrong seed): another cluster id, so refused.
      stranger = await ServerProcess.startCommandLine(
        ['--insecure', ...`--mem-db --int-ip 127.0.0.4 --ext-ip 127.0.0.4 ${sameEverywhere} --discover-via-dns=false --gossip-seed=127.0.0.1:2113,127.0.0.2:2113`.split(' ')],
        '127.0.0.4',
        2114,
      );
      const deadline = Date.now() + 10_000;
      while (!stranger.logs.some((line) => line.includes('refusing gossip from 127.0.0.1:2113')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(stranger.logs.some((line) => line.includes('refusing gossip from 127.0.0.1:2113')), stranger.logText(20));
      const members = ((await (await fetch('http://127.0.0.1:2113/gossip')).json()) as { members: GossipMember[] }).members;
      assert.deepEqual(members.map((m) => m.id).sort(), ['127.0.0.1:2113', '127.0.0.2:2113', '127.0.0.3:2113']);
      assert.ok(leaderIn(members), 'the cluster keeps its leader');

      // The node on --db is killed, misses writes, restarts on its data and catches up.
      await nodes[0]!.kill();
      const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://${externals.map((e) => `${e.host}:${e.port}`).join(',')}?tls=false`);
      try {
        const deadline = Date.now() + 15_000;
        let written = 0;
        while (written < 20 && Date.now() < deadline) {
          if (await client.appendToStream('machines', kurrent.jsonEvent({ type: 'while-down', data: { written } })).then(() => true, () => false)) written++;
          else await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(written, 20);
      } finally {
        await client.dispose();
      }
      nodes[0] = await ServerProcess.startCommandLine(['--insecure', ...lines[0]!.split(' ')], '127.0.0.1', 2114);
      await waitForGossip(
        [{ host: '127.0.0.1', port: 2113 }],
        (view) => {
          const self = view[0]!;
          const leader = leaderIn(view);
          return self.state === 'Follower' && leader !== undefined && self.appliedPosition >= leader.appliedPosition && self.appliedPosition > 0;
        },
        20_000,
        'the restarted node to catch up from its --db',
      );
    } finally {
      await stranger?.stop();
      await Promise.all(nodes.map((node) => node?.stop()));
    }
  });

  it('internal and external interfaces on different loopback addresses', async () => {
    const lines = [1, 2, 3].map((k) => {
      const seeds = [1, 2, 3].filter((j) => j !== k).map((j) => `127.0.1.${j}:2113`).join(',');
      return `--mem-db --int-ip 127.0.1.${k} --ext-ip 127.0.0.${k} ${sameEverywhere} --discover-via-dns=false --gossip-seed=${seeds}`;
    });
    const gossips = [1, 2, 3].map((k) => ({ host: `127.0.1.${k}`, port: 2113 }));
    const nodes = await formAndUse(kurrent, lines, externals, gossips);
    await Promise.all(nodes.map((node) => node.stop()));
  });

  it('discovery through DNS: one name with an A record per node, served by dnsmasq on loopback', async () => {
    const { dnsmasq, dnsPort } = await startDnsmasq(['--host-record=cluster.chronicle.test,127.0.0.1', '--host-record=cluster.chronicle.test,127.0.0.2', '--host-record=cluster.chronicle.test,127.0.0.3']);
    try {
      const lines = [1, 2, 3].map((k) => `--mem-db --int-ip 127.0.0.${k} --ext-ip 127.0.0.${k} ${sameEverywhere} --cluster-dns cluster.chronicle.test --cluster-gossip-port=2113 --cluster-dns-server 127.0.0.1:${dnsPort}`);
      const gossips = [1, 2, 3].map((k) => ({ host: `127.0.0.${k}`, port: 2113 }));
      const nodes = await formAndUse(kurrent, lines, externals, gossips);
      await Promise.all(nodes.map((node) => node.stop()));
    } finally {
      dnsmasq.kill('SIGTERM');
    }
  });
});

/**
 * Starts dnsmasq on a free loopback port with these records. It binds TCP as well as UDP on its
 * port, and a port free for UDP may be taken for TCP by another test's server meanwhile: a few tries.
 */
async function startDnsmasq(records: readonly string[]): Promise<{ dnsmasq: ChildProcess; dnsPort: number }> {
  let stderr = '';
  let exitCode: number | null = null;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const dnsPort = await freeUdpPort();
    if (!(await portIsFree(dnsPort))) continue;
    const dnsmasq = spawn('dnsmasq', ['--no-daemon', '--conf-file=/dev/null', `--port=${dnsPort}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', ...records], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    dnsmasq.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (dnsmasq.exitCode === null) return { dnsmasq, dnsPort };
    exitCode = dnsmasq.exitCode;
  }
  assert.fail(`dnsmasq runs (the CI installs dnsmasq-base); it exited with ${exitCode}: ${stderr.trim()}`);
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

describe('fault tests on free ports: a partitioned leader, a five-node cluster', { timeout: 180_000 }, () => {
  let kurrent: KurrentModule;
  before(async () => {
    kurrent = await import('@kurrent/kurrentdb-client');
  });

  it('a leader cut off by a TCP proxy steps down and acknowledges nothing; the majority elects a new leader and takes writes', async () => {
    const { nodes, proxies, gossipPorts, externalPorts } = await startCluster(3, true);
    const connection = `kurrentdb://${externalPorts.map((port) => `127.0.0.1:${port}`).join(',')}?tls=false`;
    const client = kurrent.KurrentDBClient.connectionString(connection);
    try {
      const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
      const leader = leaderIn(view)!;
      const leaderIndex = externalPorts.indexOf(leader.externalHttp.port);
      await client.appendToStream('partitioned', kurrent.jsonEvent({ type: 'before', data: {} }));
      // Nothing reaches the leader's replication port any more: it hears no acknowledgement.
      proxies[leaderIndex]!.cut();
      const direct = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${leader.externalHttp.port}?tls=false`);
      try {
        const stranded = await direct.appendToStream('partitioned', kurrent.jsonEvent({ type: 'stranded', data: {} })).then(
          () => 'acknowledged',
          () => 'failed',
        );
        assert.equal(stranded, 'failed', 'a leader without a quorum acknowledges nothing');
      } finally {
        await direct.dispose();
      }
      await waitForGossip([gossipPorts[leaderIndex]!], (members) => members[0]?.state !== 'Leader', 10_000, 'the cut-off leader to step down');
      const others = gossipPorts.filter((_, i) => i !== leaderIndex);
      await waitForGossip(others, (members) => {
        const next = leaderIn(members);
        return next !== undefined && next.id !== leader.id;
      }, 15_000, 'a new leader on the majority side');
      const deadline = Date.now() + 15_000;
      let written = false;
      while (!written && Date.now() < deadline) {
        written = await client.appendToStream('partitioned', kurrent.jsonEvent({ type: 'after', data: {} })).then(() => true, () => false);
        if (!written) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(written, 'the majority takes writes');
      proxies[leaderIndex]!.heal();
      await waitForGossip([gossipPorts[leaderIndex]!], (members) => members[0]?.state === 'Follower', 15_000, 'the old leader to rejoin as a follower');
      const types = await readAfterLeaderChange(async () => {
        const read: string[] = [];
        for await (const resolved of client.readStream('partitioned')) read.push(resolved.event!.type);
        return read;
      });
      // The stranded write was refused, so its outcome is unknown: the cut-off leader could still
      // send it out (only its inbound traffic was cut), and the new leader may have committed it.
      assert.deepEqual(types.filter((type) => type !== 'stranded'), ['before', 'after']);
      assert.ok(types.filter((type) => type === 'stranded').length <= 1);
    } finally {
      await client.dispose();
      await Promise.all(nodes.map((node) => node.stop()));
      await Promise.all(proxies.map((proxy) => proxy.close()));
    }
  });

  it('a read-only replica joins, receives the log, serves reads with the read-only-replica preference, and never counts toward a quorum', async () => {
    const { nodes, gossipPorts, externalPorts } = await startCluster(3, false);
    const [replicationPort, gossipPort, externalPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const replica = await ServerProcess.startCommandLine(
      ['--insecure', '--mem-db', '--read-only-replica', '--int-ip', '127.0.0.1', '--ext-ip', '127.0.0.1', `--int-tcp-port=${replicationPort}`, `--int-http-port=${gossipPort}`, `--ext-http-port=${externalPort}`, '--cluster-size=3', '--discover-via-dns=false', `--gossip-seed=${gossipPorts.map((port) => `127.0.0.1:${port}`).join(',')}`],
      '127.0.0.1',
      externalPort,
    );
    const all = [...externalPorts, externalPort].map((port) => `127.0.0.1:${port}`).join(',');
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://${all}?tls=false`);
    const replicaClient = kurrent.KurrentDBClient.connectionString(`kurrentdb://${all}?tls=false&nodePreference=readonlyreplica`);
    try {
      await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.some((m) => m.isAlive && m.state === 'ReadOnlyReplica'), FORM_TIMEOUT_MS, 'the replica to show as ReadOnlyReplica in the voters\u2019 gossip');
      for (let i = 0; i < 10; i++) await client.appendToStream('replicated', kurrent.jsonEvent({ type: 'r', data: { i } }));
      const deadline = Date.now() + 10_000;
      let seen = 0;
      while (seen < 10 && Date.now() < deadline) {
        seen = 0;
        try {
          for await (const resolved of replicaClient.readStream('replicated')) if (resolved.event) seen++;
        } catch {
          // Not there yet.
        }
        if (seen < 10) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(seen, 10, 'the replica serves what the cluster wrote');
      const fromReplica = ((await (await fetch(`http://127.0.0.1:${gossipPort}/gossip`)).json()) as { members: GossipMember[] }).members[0]!;
      assert.equal(fromReplica.state, 'ReadOnlyReplica');
      // Two voters gone: the replica does not make a quorum with the third.
      const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined, 5000, 'a leader');
      const leaderIndex = externalPorts.indexOf(leaderIn(view)!.externalHttp.port);
      const doomed = [0, 1, 2].filter((i) => i !== leaderIndex).slice(0, 2);
      await Promise.all(doomed.map((i) => nodes[i]!.kill()));
      const direct = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${externalPorts[leaderIndex]}?tls=false`);
      try {
        const outcome = await direct.appendToStream('replicated', kurrent.jsonEvent({ type: 'no-quorum', data: {} })).then(() => 'acknowledged', () => 'failed');
        assert.equal(outcome, 'failed', 'one voter and a replica are not a quorum');
      } finally {
        await direct.dispose();
      }
    } finally {
      await client.dispose();
      await replicaClient.dispose();
      await replica.stop();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  it('Operations.SetNodePriority: after the leader dies, the follower of higher priority takes over', async () => {
    const { nodes, gossipPorts, externalPorts } = await startCluster(3, false);
    try {
      const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
      const leader = leaderIn(view)!;
      const leaderIndex = externalPorts.indexOf(leader.externalHttp.port);
      const favourite = [0, 1, 2].find((i) => i !== leaderIndex)!;
      // The JS clients do not expose the Operations service: a raw unary gRPC call, priority 10.
      const status = await unaryGrpc(externalPorts[favourite]!, '/event_store.client.operations.Operations/SetNodePriority', Buffer.from([0x08, 0x0a]));
      assert.equal(status, '0');
      await waitForGossip([gossipPorts[leaderIndex]!], (members) => members.some((m) => m.externalHttp.port === externalPorts[favourite] && (m as GossipMember & { nodePriority: number }).nodePriority === 10), 5000, 'the priority to travel in gossip');
      await new Promise((resolve) => setTimeout(resolve, 1500)); // every node recomputes its election penalty each second
      await nodes[leaderIndex]!.kill();
      const survivors = gossipPorts.filter((_, i) => i !== leaderIndex);
      const after = await waitForGossip(survivors, (members) => {
        const next = leaderIn(members);
        return next !== undefined && next.id !== leader.id;
      }, 15_000, 'a new leader');
      assert.equal(leaderIn(after)!.externalHttp.port, externalPorts[favourite], 'the node of higher priority leads');
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  it('over TLS: clients on tls=true, mutual TLS between the nodes, and a node whose certificate another CA signed is refused', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'chronicle-cluster-tls-'));
    const files = await makeCertificates(directory);
    const otherDirectory = join(directory, 'other');
    await mkdir(otherDirectory);
    const foreign = await makeCertificates(otherDirectory, 'Another CA');
    const ports = await Promise.all(Array.from({ length: 12 }, () => freePort()));
    const [replication, gossip, external] = [ports.slice(0, 4), ports.slice(4, 8), ports.slice(8, 12)];
    const tlsArgs = (certificates: TestCertificates, trusted: string) => ['--certificate-file', certificates.certificate, '--certificate-private-key-file', certificates.key, '--trusted-root-certificate-file', trusted];
    const argsOf = (i: number, certificates: TestCertificates, trusted: string) => [
      ...tlsArgs(certificates, trusted),
      '--mem-db', '--int-ip', '127.0.0.1', '--ext-ip', '127.0.0.1', `--int-tcp-port=${replication[i]}`, `--int-http-port=${gossip[i]}`, `--ext-http-port=${external[i]}`,
      '--cluster-size=3', '--discover-via-dns=false', `--gossip-seed=${gossip.slice(0, 3).filter((_, j) => j !== i).map((port) => `127.0.0.1:${port}`).join(',')}`,
    ];
    const nodes = await Promise.all([0, 1, 2].map((i) => ServerProcess.startCommandLine(argsOf(i, files, files.ca), '127.0.0.1', external[i]!)));
    // Same member list (so the same cluster id), but its certificate comes from another CA.
    const impostor = await ServerProcess.startCommandLine(
      [...tlsArgs(foreign, foreign.ca), '--mem-db', '--int-ip', '127.0.0.1', '--ext-ip', '127.0.0.1', `--int-tcp-port=${replication[3]}`, `--int-http-port=${gossip[3]}`, `--ext-http-port=${external[3]}`, '--cluster-size=3', '--discover-via-dns=false', '--read-only-replica', `--gossip-seed=${gossip.slice(0, 3).map((port) => `127.0.0.1:${port}`).join(',')}`],
      '127.0.0.1',
      external[3]!,
    );
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://${external.slice(0, 3).map((port) => `127.0.0.1:${port}`).join(',')}?tls=true&tlsCAFile=${files.ca}`);
    try {
      const deadline = Date.now() + FORM_TIMEOUT_MS;
      let written = false;
      while (!written && Date.now() < deadline) {
        written = await client.appendToStream('over-tls', kurrent.jsonEvent({ type: 'secure', data: {} })).then(() => true, () => false);
        if (!written) await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.ok(written, `a write through TLS\n${nodes[0]!.logText(15)}`);
      // A cluster that just formed may still change leader: the client's reads then reconnect.
      const types = await readAfterLeaderChange(async () => {
        const read: string[] = [];
        for await (const resolved of client.readStream('over-tls')) read.push(resolved.event!.type);
        return read;
      });
      assert.deepEqual(types, ['secure']);
      // The impostor's gossip requests fail the TLS handshake: it is never announced, never added.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      for (const node of nodes) assert.ok(!node.logs.some((line) => line.includes('adding read-only replica')), 'the impostor was not admitted');
      const plainGossip = await fetch(`http://127.0.0.1:${gossip[0]}/gossip`, { signal: AbortSignal.timeout(1000) }).then(() => 'answered', () => 'refused');
      assert.equal(plainGossip, 'refused', 'gossip does not answer cleartext HTTP');
    } finally {
      await client.dispose();
      await impostor.stop();
      await Promise.all(nodes.map((node) => node.stop()));
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('a leader stopped with SIGTERM hands leadership to a follower first; the same client keeps writing, nothing acknowledged lost', async () => {
    const { nodes, gossipPorts, externalPorts } = await startCluster(3, false);
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://${externalPorts.map((port) => `127.0.0.1:${port}`).join(',')}?tls=false`);
    const writes = { acknowledged: 0, stop: false };
    let writer: Promise<void> | undefined;
    try {
      const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
      const leader = leaderIn(view)!;
      const leaderIndex = externalPorts.indexOf(leader.externalHttp.port);
      writer = (async () => {
        const stopAt = Date.now() + 60_000;
        while (!writes.stop && Date.now() < stopAt) {
          const ok = await client.appendToStream('handover', kurrent.jsonEvent({ type: 'write', data: {} })).then(() => true, () => false);
          if (ok) writes.acknowledged++;
          else await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      const deadline = Date.now() + 10_000;
      while (writes.acknowledged < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      const exit = await nodes[leaderIndex]!.stop();
      assert.equal(exit.code, 0, 'the leader stops cleanly');
      const handedTo = nodes[leaderIndex]!.logs.find((line) => line.includes('handed leadership to'));
      assert.ok(handedTo, `the stopping leader handed over first:\n${nodes[leaderIndex]!.logText(15)}`);
      const others = gossipPorts.filter((_, i) => i !== leaderIndex);
      // Gossip about the stopped node is up to an interval old: wait for the others to show a new leader.
      const after = await waitForGossip(others, (members) => leaderIn(members) !== undefined && leaderIn(members)!.id !== leader.id, 10_000, 'the follower that took over, as leader');
      assert.ok(handedTo.includes(leaderIn(after)!.id), `${handedTo} names the new leader ${leaderIn(after)!.id}`);
      const before = writes.acknowledged;
      const resumeDeadline = Date.now() + 15_000;
      while (writes.acknowledged < before + 20 && Date.now() < resumeDeadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(writes.acknowledged >= before + 20, 'the same client writes on through the new leader');
      writes.stop = true;
      await writer;
      const count = await readAfterLeaderChange(async () => {
        let events = 0;
        for await (const resolved of client.readStream('handover')) if (resolved.event) events++;
        return events;
      });
      assert.ok(count >= writes.acknowledged, `every acknowledged write is there (${count} events, ${writes.acknowledged} acknowledged)`);
    } finally {
      writes.stop = true;
      await writer;
      await client.dispose();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  it('a majority down for longer than the client’s discovery lasts: the same client object writes again once a node is back', async () => {
    const dataRoot = await mkdtemp(join(tmpdir(), 'chronicle-majority-lost-'));
    const { nodes, gossipPorts, externalPorts, commandLines } = await startCluster(3, false, dataRoot);
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://${externalPorts.map((port) => `127.0.0.1:${port}`).join(',')}?tls=false`);
    // One writer retrying all along, as an application would; bounded by `stop` and the test's time.
    const writes = { acknowledgedAt: [] as number[], failures: 0, stop: false };
    let writer: Promise<void> | undefined;
    try {
      const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2, FORM_TIMEOUT_MS, 'a leader and two followers');
      const leaderIndex = externalPorts.indexOf(leaderIn(view)!.externalHttp.port);
      const followerIndex = [0, 1, 2].find((i) => i !== leaderIndex)!;
      const survivorIndex = [0, 1, 2].find((i) => i !== leaderIndex && i !== followerIndex)!;
      writer = (async () => {
        const stopAt = Date.now() + 90_000;
        while (!writes.stop && Date.now() < stopAt) {
          const ok = await client.appendToStream('majority-lost', kurrent.jsonEvent({ type: 'write', data: {} })).then(() => true, () => false);
          if (ok) writes.acknowledgedAt.push(Date.now());
          else {
            writes.failures++;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
      })();
      const deadline = Date.now() + 10_000;
      while (writes.acknowledgedAt.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(writes.acknowledgedAt.length > 0, 'the writer writes while the cluster is whole');
      await Promise.all([nodes[leaderIndex]!.kill(), nodes[followerIndex]!.kill()]);
      // Long enough for the survivor to see both dead and for the client to run discovery many
      // times: while no member was shown in a state the client accepts, it gave up here for good.
      await waitForGossip([gossipPorts[survivorIndex]!], (members) => members.filter((m) => m.isAlive).length === 1, 10_000, 'the survivor to see the other two dead');
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const failuresWhileDown = writes.failures;
      assert.ok(failuresWhileDown > 0, 'writes fail while a majority is down');
      nodes[followerIndex] = await ServerProcess.startCommandLine(commandLines[followerIndex]!, '127.0.0.1', externalPorts[followerIndex]!);
      const restartedAt = Date.now();
      const resumeDeadline = restartedAt + 30_000;
      while (!writes.acknowledgedAt.some((at) => at > restartedAt) && Date.now() < resumeDeadline) await new Promise((resolve) => setTimeout(resolve, 100));
      const resumedAt = writes.acknowledgedAt.find((at) => at > restartedAt);
      assert.ok(resumedAt !== undefined, `the same client object writes again once a majority is back (${writes.failures - failuresWhileDown} failed attempts after the restart)`);
      process.stderr.write(`majority back: the client wrote again ${resumedAt - restartedAt} ms after the restart (${failuresWhileDown} failed attempts while down)\n`);
    } finally {
      writes.stop = true;
      await writer;
      await client.dispose();
      await Promise.all(nodes.map((node) => node.stop()));
      await rm(dataRoot, { recursive: true, force: true });
    }
  });

  it('a five-node cluster keeps taking writes with two nodes killed (the leader among them)', async () => {
    const { nodes, gossipPorts, externalPorts } = await startCluster(5, false);
    const connection = `kurrentdb://${externalPorts.map((port) => `127.0.0.1:${port}`).join(',')}?tls=false`;
    const client = kurrent.KurrentDBClient.connectionString(connection);
    try {
      const view = await waitForGossip(gossipPorts, (members) => leaderIn(members) !== undefined && members.filter((m) => m.isAlive && m.state === 'Follower').length === 4, FORM_TIMEOUT_MS, 'a leader and four followers');
      const leaderIndex = externalPorts.indexOf(leaderIn(view)!.externalHttp.port);
      const victims = [leaderIndex, (leaderIndex + 1) % 5];
      await client.appendToStream('five', kurrent.jsonEvent({ type: 'before', data: {} }));
      await Promise.all(victims.map((i) => nodes[i]!.kill()));
      const survivors = gossipPorts.filter((_, i) => !victims.includes(i));
      await waitForGossip(survivors, (members) => leaderIn(members) !== undefined, 15_000, 'a leader among the three survivors');
      const deadline = Date.now() + 15_000;
      let written = 0;
      while (written < 5 && Date.now() < deadline) {
        if (await client.appendToStream('five', kurrent.jsonEvent({ type: 'after', data: { written } })).then(() => true, () => false)) written++;
        else await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(written, 5, 'three of five take writes');
      const count = await readAfterLeaderChange(async () => {
        let events = 0;
        for await (const resolved of client.readStream('five')) if (resolved.event) events++;
        return events;
      });
      assert.equal(count, 6);
    } finally {
      await client.dispose();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });
});
