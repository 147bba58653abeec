import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { append, call, parsePrometheus } from './http-support.js';
import { freePort, ServerProcess } from './server-process.js';
import { seededRandom, sleep } from './support.js';

/**
 * The seed's load-balancer setup (`../shared/seeds/000_*.txt`: "put a load balancer in front of
 * the three nodes. It does not matter which node receives a request as the requests will be
 * forwarded internally"): a three-node cluster on loopback (ports picked free, so it can run
 * beside the fixed-port cluster test), a client that sends each request to a random node, and
 * the leader killed with SIGKILL in the middle of the run.
 */
interface Node {
  process: ServerProcess | undefined;
  base: string;
}

interface GossipMember {
  state: string;
  isAlive: boolean;
  externalHttpPort: number;
}

/** Also how long a request waits for a leader before its 503. */
const WRITE_TIMEOUT_MS = 3000;
const SEED = Number(process.env.CHRONICLE_HTTP_LB_SEED ?? Date.now() % 100_000);

describe('the HTTP API of a three-node cluster behind a load balancer', { timeout: 240_000 }, () => {
  const nodes: Node[] = [];

  const logsOnFailure = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (error) {
      const text = nodes.map((node, i) => `--- node ${i + 1}\n${node.process?.logText(20) ?? '(not running)'}`).join('\n');
      throw new Error(`${(error as Error).message}\n(replay with CHRONICLE_HTTP_LB_SEED=${SEED})\n${text}`);
    }
  };

  const leaderIndex = async (timeoutMs: number): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const node of nodes) {
        if (!node.process?.isRunning) continue;
        const response = await call(`${node.base}/gossip`, {}, 1000).catch(() => undefined);
        const members = (response?.body as { members?: GossipMember[] } | undefined)?.members ?? [];
        const leaders = members.filter((member) => member.isAlive && member.state === 'Leader');
        const index = nodes.findIndex((candidate) => leaders.length === 1 && candidate.base.endsWith(`:${leaders[0]!.externalHttpPort}`));
        if (index >= 0 && nodes[index]!.process?.isRunning) {
          const ready = await call(`${nodes[index]!.base}/health/ready`, {}, 1000).catch(() => undefined);
          if (ready?.status === 200) return index;
        }
      }
      await sleep(200);
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  };

  before(async () => {
    const ports: { tcp: number; gossip: number; http: number }[] = [];
    for (let i = 0; i < 3; i++) ports.push({ tcp: await freePort(), gossip: await freePort(), http: await freePort() });
    const started = ports.map((port, i) => {
      const seeds = ports.filter((_, j) => j !== i).map((other) => `127.0.0.1:${other.gossip}`).join(',');
      const args = ['--insecure', '--mem-db', '--int-ip', '127.0.0.1', '--ext-ip', '127.0.0.1', `--int-tcp-port=${port.tcp}`, `--int-http-port=${port.gossip}`, `--ext-http-port=${port.http}`, '--cluster-size=3', '--discover-via-dns=false', `--gossip-seed=${seeds}`, `--write-timeout-ms=${WRITE_TIMEOUT_MS}`];
      nodes.push({ process: undefined, base: `http://127.0.0.1:${port.http}` });
      return ServerProcess.startCommandLine(args, '127.0.0.1', port.http).then((process) => (nodes[i]!.process = process));
    });
    await Promise.all(started);
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.process?.stop()));
  });

  it('answers on every node: writes forwarded to the leader, leader reads, gossip, readiness, replication lag', () =>
    logsOnFailure(async () => {
      const leader = await leaderIndex(30_000);
      const stream = `lb-basics-${randomUUID()}`;
      for (const [i, node] of nodes.entries()) {
        const response = await append(node.base, stream, [{ eventType: 'FromNode', data: { i } }], { 'ES-ExpectedVersion': String(i - 1) });
        assert.equal(response.status, 201, `node ${i + 1}: ${response.text}`);
        assert.equal((response.body as { nextExpectedRevision: number }).nextExpectedRevision, i);
      }
      for (const node of nodes) {
        // Asking for the leader: forwarded, so it sees every acknowledged write at once.
        const read = await call(`${node.base}/streams/${stream}`, { headers: { 'ES-RequireLeader': 'true' } });
        assert.equal(read.status, 200, read.text);
        assert.deepEqual((read.body as { events: { data: unknown }[] }).events.map((event) => event.data), [{ i: 0 }, { i: 1 }, { i: 2 }]);
        const conflict = await append(node.base, stream, [{ eventType: 'Late' }], { 'ES-ExpectedVersion': '0' });
        assert.equal(conflict.status, 409);
        assert.equal((conflict.body as { currentRevision: number }).currentRevision, 2);
        const gossip = (await call(`${node.base}/gossip`)).body as { members: GossipMember[] };
        assert.equal(gossip.members.length, 3);
        assert.equal(gossip.members.filter((member) => member.state === 'Leader').length, 1);
        assert.equal((await call(`${node.base}/health/ready`)).status, 200);
        assert.ok(((await call(`${node.base}/info`)).body as { features: string[] }).features.includes('forwarding'));
      }
      const metrics = parsePrometheus((await call(`${nodes[leader]!.base}/metrics`)).text);
      assert.equal(metrics.get('chronicle_is_leader'), 1);
      assert.equal([...metrics.keys()].filter((name) => name.startsWith('chronicle_replication_lag_bytes{')).length, 2);
      assert.ok((metrics.get('chronicle_elections_total') ?? 0) >= 1);
    }));

  it('takes every write once from a client that picks a random node, through a kill -9 of the leader: only retryable 503s meanwhile', () =>
    logsOnFailure(async () => {
      const random = seededRandom(SEED);
      const leader = await leaderIndex(30_000);
      const workers = 6;
      const statuses = new Map<number, number>();
      const acknowledged = new Map<string, Set<string>>();
      const attempted = new Map<string, Set<string>>();
      let stop = false;
      let retriesAfterKill = 0;
      let killedAt = 0;
      let slowestMs = 0;
      const run = async (worker: number) => {
        const stream = `lb-run-${SEED}-${worker}`;
        acknowledged.set(stream, new Set());
        attempted.set(stream, new Set());
        while (!stop) {
          const batch = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ eventId: randomUUID(), eventType: 'Order', data: { worker } }));
          for (const event of batch) attempted.get(stream)!.add(event.eventId);
          // The same batch (same event ids) until it is acknowledged, wherever it lands.
          for (let attempt = 0; ; attempt++) {
            assert.ok(attempt < 200, `batch of worker ${worker} not acknowledged after 200 attempts`);
            const node = nodes[Math.floor(random() * nodes.length)]!;
            let status: number;
            let retryAfter: string | undefined;
            try {
              const startedAt = Date.now();
              const response = await append(node.base, stream, batch);
              slowestMs = Math.max(slowestMs, Date.now() - startedAt);
              status = response.status;
              retryAfter = response.headers['retry-after'];
              if (status === 503) assert.ok(['NOT_LEADER', 'NO_QUORUM'].includes((response.body as { code: string }).code), response.text);
            } catch {
              // The killed node refuses connections: a load balancer takes it out and another node answers.
              continue;
            }
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            if (status === 201) break;
            assert.equal(status, 503, `only 503 may fail a write; got ${status}`);
            assert.ok(retryAfter !== undefined && Number(retryAfter) >= 1, 'a 503 says when to retry');
            if (killedAt) retriesAfterKill++;
            await sleep(50);
          }
          for (const event of batch) acknowledged.get(stream)!.add(event.eventId);
        }
      };
      const running = Array.from({ length: workers }, (_, worker) => run(worker));
      await sleep(2500);
      killedAt = Date.now();
      await nodes[leader]!.process!.kill();
      await sleep(8000);
      stop = true;
      await Promise.all(running);
      const newLeader = await leaderIndex(30_000);
      assert.notEqual(newLeader, leader);
      // After the election every write succeeds at once, on every surviving node.
      for (const [i, node] of nodes.entries()) {
        if (i === leader) continue;
        assert.equal((await append(node.base, `lb-after-${SEED}`, [{ eventType: 'After' }])).status, 201);
      }
      let acknowledgedCount = 0;
      for (const [stream, ids] of acknowledged) {
        const survivor = nodes.find((_, i) => i !== leader)!;
        const read = await call(`${survivor.base}/streams/${stream}?count=4096`, { headers: { 'ES-RequireLeader': 'true' } });
        assert.equal(read.status, 200, read.text);
        const stored = (read.body as { events: { eventId: string }[] }).events.map((event) => event.eventId);
        assert.equal(new Set(stored).size, stored.length, `${stream}: an event is stored twice`);
        for (const id of ids) assert.ok(stored.includes(id), `${stream}: acknowledged event ${id} is missing`);
        for (const id of stored) assert.ok(attempted.get(stream)!.has(id), `${stream}: ${id} was never sent`);
        acknowledgedCount += ids.size;
      }
      assert.ok(acknowledgedCount > 100, `only ${acknowledgedCount} events acknowledged`);
      assert.deepEqual([...statuses.keys()].filter((status) => status !== 201 && status !== 503), []);
      process.stdout.write(`# load balancer run (seed ${SEED}): ${acknowledgedCount} events acknowledged, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${retriesAfterKill} retries after the kill, slowest answer ${slowestMs} ms\n`);
      // A request never waits much longer than the bound for a leader.
      assert.ok(slowestMs < WRITE_TIMEOUT_MS * 2 + 2000, `a request took ${slowestMs} ms`);
    }));

  it('answers 503 with Retry-After, after the bounded wait, when no quorum is left', () =>
    logsOnFailure(async () => {
      const running = nodes.filter((node) => node.process?.isRunning);
      assert.equal(running.length, 2);
      await running[0]!.process!.kill();
      const survivor = running[1]!;
      const startedAt = Date.now();
      const response = await append(survivor.base, `lb-no-quorum-${SEED}`, [{ eventType: 'Lost' }]);
      const tookMs = Date.now() - startedAt;
      assert.equal(response.status, 503, response.text);
      assert.equal(response.headers['retry-after'], '1');
      assert.ok(['NO_QUORUM', 'NOT_LEADER'].includes((response.body as { code: string }).code), response.text);
      assert.ok(tookMs >= WRITE_TIMEOUT_MS - 500 && tookMs < WRITE_TIMEOUT_MS * 3, `the 503 came after ${tookMs} ms`);
      const deadline = Date.now() + 10_000;
      let ready = await call(`${survivor.base}/health/ready`);
      while (ready.status === 200 && Date.now() < deadline) {
        await sleep(200);
        ready = await call(`${survivor.base}/health/ready`);
      }
      assert.equal(ready.status, 503, 'a node without a leader is not ready');
      assert.equal((await call(`${survivor.base}/health/live`)).status, 200);
      // Reads this node may serve still work.
      assert.equal((await call(`${survivor.base}/streams/lb-after-${SEED}`)).status, 200);
    }));
});
