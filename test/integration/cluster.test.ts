import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as KurrentLib from '@kurrent/kurrentdb-client';
import { ServerProcess } from './server-process.js';

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

interface GossipMember {
  id: string;
  state: string;
  isAlive: boolean;
  externalHttp: { host: string; port: number };
  appliedPosition: number;
}

async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function gossipOf(port: number): Promise<GossipMember[] | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/gossip`, { signal: AbortSignal.timeout(1000) });
    return ((await response.json()) as { members: GossipMember[] }).members;
  } catch {
    return undefined;
  }
}

/** Polls (bounded) until `check` passes on some node's gossip view; returns that view. */
async function waitForGossip(ports: readonly number[], check: (members: GossipMember[]) => boolean, timeoutMs: number, what: string): Promise<GossipMember[]> {
  const deadline = Date.now() + timeoutMs;
  let last: GossipMember[] | undefined;
  while (Date.now() < deadline) {
    for (const port of ports) {
      const members = await gossipOf(port);
      if (members) last = members;
      if (members && check(members)) return members;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms; last gossip: ${JSON.stringify(last?.map((m) => [m.id, m.state, m.isAlive]))}`);
}

function leaderIn(members: GossipMember[]): GossipMember | undefined {
  const leaders = members.filter((member) => member.isAlive && member.state === 'Leader');
  return leaders.length === 1 ? leaders[0] : undefined;
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
      let stop = false;
      let killedAt = 0;
      let firstAfterKill = 0;
      const writer = (async () => {
        let n = 0;
        while (!stop) {
          const id = crypto.randomUUID();
          const event = kurrent.jsonEvent({ id, type: 'load', data: { n: n++ } });
          // Retry the same event (same id) until it is acknowledged: idempotency keeps one copy.
          for (let attempt = 0; attempt < 200 && !stop; attempt++) {
            const attemptStartedAt = Date.now();
            try {
              await client.appendToStream('cluster-failover', event);
              acknowledged.push(id);
              // Failover time: from the kill to the first write sent after it and acknowledged.
              if (killedAt > 0 && attemptStartedAt >= killedAt && firstAfterKill === 0) firstAfterKill = Date.now();
              break;
            } catch {
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
        for await (const resolved of client.readStream('cluster-failover')) seen.set(resolved.event!.id, (seen.get(resolved.event!.id) ?? 0) + 1);
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
        const types: string[] = [];
        for await (const resolved of cluster.readStream('cluster-paused')) types.push(resolved.event!.type);
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
    const deadline = Date.now() + FORM_TIMEOUT_MS;
    let formed = false;
    while (!formed && Date.now() < deadline) {
      for (const gossip of gossips) {
        try {
          const response = await fetch(`http://${gossip.host}:${gossip.port}/gossip`, { signal: AbortSignal.timeout(1000) });
          const members = ((await response.json()) as { members: GossipMember[] }).members;
          if (leaderIn(members) && members.filter((m) => m.isAlive && m.state === 'Follower').length === 2) formed = true;
        } catch {
          // Not up yet.
        }
      }
      if (!formed) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(formed, 'a leader and two followers');
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
    } finally {
      await stranger?.stop();
      await Promise.all(nodes.map((node) => node.stop()));
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
    const dnsPort = await freeUdpPort();
    const dnsmasq = spawn(
      'dnsmasq',
      ['--no-daemon', '--conf-file=/dev/null', `--port=${dnsPort}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
        '--host-record=cluster.chronicle.test,127.0.0.1', '--host-record=cluster.chronicle.test,127.0.0.2', '--host-record=cluster.chronicle.test,127.0.0.3'],
      { stdio: 'ignore' },
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(dnsmasq.exitCode, null, 'dnsmasq runs (the CI installs dnsmasq-base)');
      const lines = [1, 2, 3].map((k) => `--mem-db --int-ip 127.0.0.${k} --ext-ip 127.0.0.${k} ${sameEverywhere} --cluster-dns cluster.chronicle.test --cluster-gossip-port=2113 --cluster-dns-server 127.0.0.1:${dnsPort}`);
      const gossips = [1, 2, 3].map((k) => ({ host: `127.0.0.${k}`, port: 2113 }));
      const nodes = await formAndUse(kurrent, lines, externals, gossips);
      await Promise.all(nodes.map((node) => node.stop()));
    } finally {
      dnsmasq.kill('SIGTERM');
    }
  });
});

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}
