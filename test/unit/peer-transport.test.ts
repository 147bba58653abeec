/**
 * The replication transport over real sockets on 127.0.0.1: delivery in order with the sender's
 * id, refusal of strangers, recovery when a peer comes back, bounded queues, and a close that
 * leaves nothing running. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { encodePeerControlFrame, PeerFrameReader } from '../../src/cluster/peer-codec.js';
import { PeerTransport, type PeerEndpoint, type PeerTransportOptions } from '../../src/cluster/peer-transport.js';
import type { RecordBody } from '../../src/cluster/raft-log.js';
import type { AppendRequest, Message } from '../../src/consensus/types.js';
import { RecordType } from '../../src/storage/record-frame.js';

const HOST = '127.0.0.1';
const CLUSTER_ID = 'cluster-one';
const WAIT_LIMIT_MS = 5000;

interface TestNode {
  id: string;
  transport: PeerTransport;
  received: { from: string; message: Message<RecordBody> }[];
  logs: string[];
}

/** Where each test node listens, as gossip would tell it. */
let endpoints = new Map<string, PeerEndpoint>();
let cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
  endpoints = new Map();
});

async function startNode(id: string, options: Partial<PeerTransportOptions> = {}): Promise<TestNode> {
  const node: TestNode = { id, transport: undefined as unknown as PeerTransport, received: [], logs: [] };
  node.transport = new PeerTransport({
    selfId: id,
    clusterId: CLUSTER_ID,
    listen: { host: HOST, port: 0 },
    endpointOf: (peer) => endpoints.get(peer),
    isMember: () => true,
    onMessage: (from, message) => node.received.push({ from, message }),
    log: (line) => node.logs.push(line),
    ...options,
  });
  cleanups.push(() => node.transport.close());
  await node.transport.start();
  endpoints.set(id, node.transport.address);
  return node;
}

async function waitFor(what: string, condition: () => boolean, limitMs = WAIT_LIMIT_MS): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`gave up after ${limitMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Sends heartbeats every few ms until `condition` holds: a sender that keeps trying, as Raft does. */
async function sendUntil(from: TestNode, to: string, what: string, condition: () => boolean): Promise<void> {
  let round = 0;
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`gave up after ${WAIT_LIMIT_MS} ms waiting for ${what}; ${from.id} logged: ${from.logs.join(' | ')}`);
    from.transport.send(to, heartbeat(round++));
    await sleep(20);
  }
}

function heartbeat(readRound: number): Message<RecordBody> {
  return { kind: 'heartbeat', term: 3, commit: 5, readRound };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A bare TCP server standing in for a peer that misbehaves in a chosen way. */
async function startRawServer(onSocket: (socket: Socket) => void): Promise<{ server: Server; sockets: Socket[]; port: number }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, sockets, port: address.port };
}

/** A bare TCP client to a transport, for sending it what no transport would. */
async function connectRaw(endpoint: PeerEndpoint): Promise<{ socket: Socket; frames: Buffer[]; closed: Promise<void> }> {
  const socket = connect(endpoint.port, endpoint.host);
  socket.on('error', () => undefined);
  cleanups.push(() => void socket.destroy());
  const reader = new PeerFrameReader();
  const frames: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => frames.push(...reader.push(chunk)));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, frames, closed };
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${WAIT_LIMIT_MS} ms waiting for ${what}`)), WAIT_LIMIT_MS);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function frameOf(body: number[]): Buffer {
  const frame = Buffer.alloc(4 + body.length);
  frame.writeUInt32BE(body.length);
  Buffer.from(body).copy(frame, 4);
  return frame;
}

describe('peer transport', () => {
  it('delivers each sender’s messages in order, tagged with the sender’s id', async () => {
    const [a, b, c] = [await startNode('a'), await startNode('b'), await startNode('c')];
    const rounds = 300;
    for (let i = 0; i < rounds; i++) {
      a.transport.send('b', heartbeat(i));
      c.transport.send('b', heartbeat(1000 + i));
    }
    await waitFor('600 messages at b', () => b.received.length === 2 * rounds);
    const roundsFrom = (from: string) => b.received.filter((entry) => entry.from === from).map((entry) => (entry.message as { readRound: number }).readRound);
    assert.deepEqual(roundsFrom('a'), Array.from({ length: rounds }, (_, i) => i));
    assert.deepEqual(roundsFrom('c'), Array.from({ length: rounds }, (_, i) => 1000 + i));
    assert.deepEqual(a.transport.stats, { sent: rounds, received: 0, dropped: 0, refusedHandshakes: 0, connects: 1 });
    assert.equal(b.transport.stats.received, 2 * rounds);
  });

  it('carries an append with its entries byte for byte, and never the record frame', async () => {
    const [a, b] = [await startNode('a'), await startNode('b')];
    const large = Uint8Array.from({ length: 3 * 1024 * 1024 + 7 }, (_, i) => (i * 31 + 7) % 256);
    const sent: AppendRequest<RecordBody> = {
      kind: 'append',
      term: 4,
      prevIndex: 2 ** 40,
      prevTerm: 3,
      commit: 2 ** 40 - 5,
      count: 4,
      entries: [
        { index: 2 ** 40 + 1, term: 3, kind: 'data', payload: { type: RecordType.Events, payload: large, frame: Uint8Array.from([1, 2, 3]) } },
        { index: 2 ** 40 + 2, term: 4, kind: 'noop', payload: { type: RecordType.NoOp, payload: new Uint8Array(0) } },
        { index: 2 ** 40 + 3, term: 4, kind: 'config', membership: { voters: ['a', 'b', 'ç'], learners: ['d'] }, payload: { type: RecordType.Configuration, payload: Uint8Array.from([123, 125]) } },
        { index: 2 ** 40 + 4, term: 4, kind: 'data', payload: { type: RecordType.Events, payload: Uint8Array.from([0, 255, 0]) } },
      ],
    };
    a.transport.send('b', sent);
    await waitFor('the append at b', () => b.received.length === 1);
    const expected = { ...sent, entries: sent.entries!.map(({ payload: { type, payload }, ...entry }) => ({ ...entry, payload: { type, payload } })) };
    assert.deepEqual(b.received[0], { from: 'a', message: expected });
  });

  it('sends the same append to two peers as one encoding, and never mistakes a different append for it', async () => {
    const [a, b, c] = [await startNode('a'), await startNode('b'), await startNode('c')];
    const entry = (index: number, byte: number) => ({ index, term: 2, kind: 'data' as const, payload: { type: RecordType.Events, payload: Uint8Array.from([byte, index % 256]) } });
    const first = [entry(11, 1), entry(12, 2)];
    const append = (fields: Partial<AppendRequest<RecordBody>>): AppendRequest<RecordBody> => ({ kind: 'append', term: 2, prevIndex: 10, prevTerm: 2, commit: 9, count: 2, entries: first, ...fields });
    // Each message differs from the one before in one field only (or in its entries alone).
    const messages: [string, AppendRequest<RecordBody>][] = [
      ['b', append({})],
      ['c', append({})],
      ['c', append({ commit: 10 })],
      ['b', append({ commit: 10, term: 3 })],
      ['b', append({ commit: 10, term: 3, prevTerm: 1 })],
      ['c', append({ commit: 10, term: 3, prevTerm: 1, entries: [first[0]!, entry(12, 99)] })],
      ['b', append({ commit: 10, term: 3, prevTerm: 1, entries: [first[0]!, entry(12, 99)] })],
      ['c', append({ prevIndex: 11, count: 1, entries: [entry(12, 3)] })],
      ['b', append({ prevIndex: 11, count: 1, entries: [entry(12, 4)] })],
    ];
    for (const [to, message] of messages) a.transport.send(to, message);
    await waitFor('every append', () => b.received.length + c.received.length === messages.length);
    const plain = (message: AppendRequest<RecordBody>) => ({ ...message, entries: message.entries!.map(({ payload: { type, payload }, ...rest }) => ({ ...rest, payload: { type, payload } })) });
    for (const [node, id] of [[b, 'b'], [c, 'c']] as const) {
      assert.deepEqual(
        node.received.map((received) => received.message),
        messages.filter(([to]) => to === id).map(([, message]) => plain(message)),
      );
    }
  });

  it('refuses a node of another cluster, says why once, and delivers nothing from it', async () => {
    const b = await startNode('b');
    const stranger = await startNode('a', { clusterId: 'cluster-two' });
    await sendUntil(stranger, 'b', 'three refused handshakes', () => b.transport.stats.refusedHandshakes >= 3);
    assert.deepEqual(b.received, []);
    const refusals = stranger.logs.filter((line) => line.includes('refused this node'));
    assert.equal(refusals.length, 1, stranger.logs.join('\n'));
    assert.match(refusals[0]!, /cluster id cluster-two does not match ours cluster-one: this node belongs to another cluster/);
    assert.equal(b.logs.filter((line) => line.includes('does not match')).length, 1);
    assert.equal(stranger.transport.stats.sent, 0);
    assert.equal(stranger.transport.stats.connects, 0);
  });

  it('refuses a node that is not a member', async () => {
    const b = await startNode('b', { isMember: (id) => id !== 'mallory' });
    const mallory = await startNode('mallory');
    await sendUntil(mallory, 'b', 'a refused handshake', () => mallory.logs.some((line) => line.includes('refused this node')));
    assert.match(mallory.logs.join('\n'), /mallory is not a member of cluster cluster-one/);
    assert.deepEqual(b.received, []);
  });

  it('refuses a connection meant for another node, so a stale endpoint cannot misdeliver', async () => {
    const a = await startNode('a');
    const c = await startNode('c');
    endpoints.set('b', c.transport.address);
    await sendUntil(a, 'b', 'a refused handshake', () => c.transport.stats.refusedHandshakes > 0);
    assert.match(a.logs.join('\n'), /this is node c, not b/);
    assert.deepEqual(c.received, []);
  });

  it('reaches a peer again once it comes back on the same port', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    const port = b.transport.address.port;
    await sendUntil(a, 'b', 'a first delivery', () => b.received.length > 0);
    await b.transport.close();
    const dropsBefore = a.transport.stats.dropped;
    for (let i = 0; i < 20; i++) {
      a.transport.send('b', heartbeat(i));
      await sleep(10);
    }
    const again = await startNode('b', { listen: { host: HOST, port } });
    await sendUntil(a, 'b', 'a delivery after the restart', () => again.received.length > 0);
    assert.equal(again.received[0]!.from, 'a');
    assert.equal(a.transport.stats.connects, 2);
    assert.ok(a.transport.stats.dropped > dropsBefore, 'messages sent while b was down are dropped');
    assert.ok(a.logs.some((line) => line.startsWith('connected to b')), a.logs.join('\n'));
  });

  it('drops messages, and says so once, while a peer’s endpoint is unknown', async () => {
    const a = await startNode('a');
    for (let i = 0; i < 5; i++) a.transport.send('nowhere', heartbeat(i));
    assert.equal(a.transport.stats.dropped, 5);
    assert.deepEqual(a.logs, ['no replication endpoint is known for nowhere yet: dropping messages to it']);
  });

  it('closes a connection that sends a bad frame after its hello, and keeps serving others', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    const raw = await connectRaw(b.transport.address);
    raw.socket.write(encodePeerControlFrame({ type: 'hello', clusterId: CLUSTER_ID, from: 'a', to: 'b' }));
    raw.socket.write(frameOf([0x06, 1, 2, 3]));
    await within(raw.closed, 'b to close the connection');
    assert.equal(raw.frames.length >= 1, true, 'b welcomed the hello first');
    assert.match(b.logs.join('\n'), /closing the replication connection from a .*: the frame ends inside term/);
    assert.deepEqual(b.received, []);
    await sendUntil(a, 'b', 'a delivery on a good connection', () => b.received.length > 0);
  });

  it('refuses a connection that announces a frame over the limit, or does not speak the protocol', async () => {
    const b = await startNode('b');
    const oversized = await connectRaw(b.transport.address);
    oversized.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await within(oversized.closed, 'b to close the oversized connection');
    const http = await connectRaw(b.transport.address);
    http.socket.write('GET / HTTP/1.1\r\nHost: b\r\n\r\n');
    await within(http.closed, 'b to close the HTTP connection');
    assert.equal(b.transport.stats.refusedHandshakes, 2);
    assert.match(b.logs.join('\n'), /announced a frame of 4294967295 bytes, over the limit/);
  });

  it('drops new messages rather than queue without bound behind a peer that stops reading', async () => {
    const acceptor = await startRawServer((socket) => {
      socket.once('data', () => {
        socket.write(encodePeerControlFrame({ type: 'welcome' }));
        socket.pause();
      });
    });
    endpoints.set('slow', { host: HOST, port: acceptor.port });
    const maxQueuedBytesPerPeer = 1024 * 1024;
    const a = await startNode('a', { maxQueuedBytesPerPeer });
    await sendUntil(a, 'slow', 'the slow peer to welcome us', () => a.transport.stats.connects === 1);
    const payload = new Uint8Array(256 * 1024);
    const attempts = 200;
    for (let i = 0; i < attempts; i++) {
      a.transport.send('slow', { kind: 'append', term: 1, prevIndex: i, prevTerm: 1, commit: 0, count: 1, entries: [{ index: i + 1, term: 1, kind: 'data', payload: { type: RecordType.Events, payload } }] });
    }
    assert.ok(a.transport.stats.dropped > 0, 'some appends were dropped');
    assert.ok(a.transport.stats.sent < attempts, 'not every append was queued');
    assert.equal(a.logs.filter((line) => /more than 1048576 bytes wait for slow .*: dropping messages to it until it catches up/.test(line)).length, 1, a.logs.join('\n'));
  });

  it('gives up on a handshake that never completes and on a peer that goes silent', async () => {
    const mute = await startRawServer(() => undefined);
    const silent = await startRawServer((socket) => socket.once('data', () => socket.write(encodePeerControlFrame({ type: 'welcome' }))));
    endpoints.set('mute', { host: HOST, port: mute.port });
    endpoints.set('silent', { host: HOST, port: silent.port });
    const a = await startNode('a', { handshakeTimeoutMs: 200, keepaliveIntervalMs: 50, silenceTimeoutMs: 300 });
    await sendUntil(a, 'mute', 'a second attempt at the mute peer', () => mute.sockets.length >= 2);
    assert.match(a.logs.join('\n'), /mute at .* did not complete the handshake within 200 ms/);
    await sendUntil(a, 'silent', 'a second connection to the silent peer', () => silent.sockets.length >= 2);
    assert.match(a.logs.join('\n'), /heard nothing from silent at .* for 300 ms: reconnecting/);
  });

  it('keeps a quiet but live connection open with keepalives', async () => {
    const options = { keepaliveIntervalMs: 50, silenceTimeoutMs: 300 };
    const a = await startNode('a', options);
    const b = await startNode('b', options);
    await sendUntil(a, 'b', 'a first delivery', () => b.received.length > 0);
    await sleep(1000);
    a.transport.send('b', heartbeat(99));
    await waitFor('the second delivery', () => b.received.some((entry) => (entry.message as { readRound: number }).readRound === 99));
    assert.equal(a.transport.stats.connects, 1);
  });

  it('leaves nothing running after close, so the process exits by itself', async () => {
    const transportUrl = new URL('../../src/cluster/peer-transport.js', import.meta.url).href;
    // The child opens a live connection each way, an inbound connection that never says hello and
    // a pending redial, then closes both transports, lists what still holds the event loop, and
    // returns without calling process.exit.
    const script = `
      import { PeerTransport } from ${JSON.stringify(transportUrl)};
      import { createServer, connect } from 'node:net';
      const endpoints = new Map();
      const received = [];
      const make = (id) => new PeerTransport({ selfId: id, clusterId: 'c', listen: { host: '127.0.0.1', port: 0 },
        endpointOf: (peer) => endpoints.get(peer), isMember: () => true, onMessage: (from) => received.push(from) });
      const a = make('a'); const b = make('b');
      await a.start(); await b.start();
      endpoints.set('a', a.address); endpoints.set('b', b.address);
      const spare = createServer(); await new Promise((resolve) => spare.listen(0, '127.0.0.1', resolve));
      endpoints.set('gone', { host: '127.0.0.1', port: spare.address().port }); await new Promise((resolve) => spare.close(resolve));
      const lurker = connect(b.address.port, '127.0.0.1'); lurker.on('error', () => {});
      const deadline = Date.now() + 4000;
      while (received.length < 2 || a.stats.dropped === 0) {
        if (Date.now() > deadline) { console.log('timed out', received, a.stats); process.exitCode = 2; break; }
        a.send('b', { kind: 'timeout-now', term: 1 }); b.send('a', { kind: 'timeout-now', term: 1 }); a.send('gone', { kind: 'timeout-now', term: 1 });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await Promise.all([a.close(), b.close()]);
      await new Promise((resolve) => setImmediate(resolve));
      console.log('timers left: ' + JSON.stringify(process.getActiveResourcesInfo().filter((name) => name === 'Timeout')));
      // Closed sockets and servers are listed until libuv finishes closing them, a turn or two later.
      await new Promise((resolve) => setTimeout(resolve, 100));
      console.log('sockets left: ' + JSON.stringify(process.getActiveResourcesInfo().filter((name) => name.startsWith('TCP'))));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanups.push(() => void child.kill('SIGKILL'));
    const code = await within(exited, 'the child process to exit by itself after close()');
    assert.equal(code, 0, output);
    assert.match(output, /timers left: \[\]/);
    assert.match(output, /sockets left: \[\]/);
  });
});
