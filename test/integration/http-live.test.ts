import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { append, call, connectH2, SseClient } from './http-support.js';
import { ServerProcess, stopAllServers } from './server-process.js';
import { sleep, uniqueStream } from './support.js';

/**
 * Live subscriptions as Server-Sent Events: history then live; a client that disconnects and
 * comes back with Last-Event-ID continues without a gap or a duplicate; a hundred clients at once
 * hold a bounded amount of server memory whatever the history; a client that stops reading is
 * dropped with a final event saying why.
 */
async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  assert.ok(match, 'VmRSS in /proc/<pid>/status');
  return Number(match[1]) * 1024;
}

describe('live subscriptions over Server-Sent Events', { timeout: 180_000 }, () => {
  let server: ServerProcess;
  let base: string;
  const clients: SseClient[] = [];
  const open = (path: string, headers: Record<string, string> = {}) => {
    const client = new SseClient(`${base}${path}`, headers);
    clients.push(client);
    return client;
  };

  before(async () => {
    server = await ServerProcess.start();
    base = `http://127.0.0.1:${server.port}`;
  });

  after(async () => {
    for (const client of clients) client.close();
    await stopAllServers();
  });

  it('delivers a stream’s history, says when it caught up, then delivers live events', async () => {
    const stream = uniqueStream('sse-basic');
    await append(base, stream, [{ eventType: 'Old', data: { n: 0 } }, { eventType: 'Old', data: { n: 1 } }]);
    const client = open(`/streams/${stream}/live`);
    await client.opened;
    assert.equal(client.status, 200);
    await client.waitFor(() => client.events.some((event) => event.event === 'caught-up'), 10_000, 'caught-up');
    await append(base, stream, [{ eventType: 'New', data: { n: 2 } }]);
    await client.waitFor(() => client.messages().length === 3, 10_000, 'the live event');
    assert.deepEqual(client.events.map((event) => [event.event, event.id]), [['message', '0'], ['message', '1'], ['caught-up', undefined], ['message', '2']]);
    const fromEnd = open(`/streams/${stream}/live?from=end`);
    await fromEnd.waitFor(() => fromEnd.events.some((event) => event.event === 'caught-up'), 10_000, 'caught-up from end');
    await append(base, stream, [{ eventType: 'Newer' }]);
    await fromEnd.waitFor(() => fromEnd.messages().length === 1, 10_000, 'only the new event');
    assert.equal(fromEnd.messages()[0]!.revision, 3);
    const waiting = open(`/streams/${uniqueStream('sse-not-yet')}/live`);
    await waiting.waitFor(() => waiting.events.some((event) => event.event === 'caught-up'), 10_000, 'a stream that does not exist yet');
  });

  it('resumes with Last-Event-ID without a gap or a duplicate while writes go on (a stream and $all)', async () => {
    const stream = uniqueStream('sse-resume');
    const total = 600;
    let written = 0;
    const writer = (async () => {
      while (written < total) {
        const batch = Array.from({ length: 20 }, (_, i) => ({ eventType: 'Tick', data: { n: written + i } }));
        const response = await append(base, stream, batch);
        assert.equal(response.status, 201, response.text);
        written += batch.length;
        await sleep(5);
      }
    })();
    const revisions: number[] = [];
    const positions: string[] = [];
    let lastStreamId: string | undefined;
    let lastAllId: string | undefined;
    for (let session = 0; session < 6 && revisions.length < total; session++) {
      const streamClient = open(`/streams/${stream}/live`, lastStreamId ? { 'last-event-id': lastStreamId } : {});
      const allClient = open(`/streams/$all/live?streamPrefix=${stream}`, lastAllId ? { 'last-event-id': lastAllId } : {});
      await streamClient.waitFor(() => streamClient.messages().length >= 60 || revisions.length + streamClient.messages().length >= total, 20_000, `session ${session}`);
      await sleep(20);
      streamClient.close();
      allClient.close();
      for (const event of streamClient.events.filter((each) => each.event === 'message')) {
        revisions.push(JSON.parse(event.data).revision as number);
        lastStreamId = event.id;
      }
      for (const event of allClient.events.filter((each) => each.id !== undefined)) {
        if (event.event === 'message') positions.push(event.id!);
        lastAllId = event.id;
      }
    }
    await writer;
    const finalStream = open(`/streams/${stream}/live`, { 'last-event-id': lastStreamId! });
    const finalAll = open(`/streams/$all/live?streamPrefix=${stream}`, { 'last-event-id': lastAllId! });
    await finalStream.waitFor(() => revisions.length + finalStream.messages().length >= total, 20_000, 'the rest of the stream');
    await finalAll.waitFor(() => positions.length + finalAll.messages().length >= total, 20_000, 'the rest of $all');
    await sleep(100);
    revisions.push(...finalStream.messages().map((event) => event.revision));
    positions.push(...finalAll.events.filter((event) => event.event === 'message').map((event) => event.id!));
    assert.deepEqual(revisions, Array.from({ length: total }, (_, i) => i));
    assert.equal(positions.length, total);
    assert.equal(new Set(positions).size, total);
    const commits = positions.map((id) => id.split(':').map(Number) as [number, number]);
    for (let i = 1; i < commits.length; i++) assert.ok(commits[i]![1] > commits[i - 1]![1], `positions increase: ${positions[i - 1]} then ${positions[i]}`);
  });

  it('refuses a bad Last-Event-ID or position and a tombstoned stream before the stream starts', async () => {
    const stream = uniqueStream('sse-refused');
    await append(base, stream, [{ eventType: 'A' }]);
    assert.equal((await call(`${base}/streams/${stream}/live`, { headers: { 'last-event-id': 'abc' } })).status, 400);
    assert.equal((await call(`${base}/streams/$all/live`, { headers: { 'last-event-id': '9:3' } })).status, 400);
    assert.equal((await call(`${base}/streams/$all/live?streamRegex=(`)).status, 400);
    assert.equal((await call(`${base}/streams/${stream}/live?from=-1`)).status, 400);
    await call(`${base}/streams/${stream}`, { method: 'DELETE', headers: { 'ES-HardDelete': 'true' } });
    const gone = await call(`${base}/streams/${stream}/live`);
    assert.equal(gone.status, 410);
    assert.equal((gone.body as { code: string }).code, 'STREAM_DELETED');
  });

  it('serves Server-Sent Events over HTTP/2 too', async () => {
    const stream = uniqueStream('sse-h2');
    await append(base, stream, [{ eventType: 'A' }, { eventType: 'B' }]);
    const session = connectH2(base);
    try {
      const request = session.request({ ':path': `/streams/${stream}/live` });
      let text = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => (text += chunk));
      const deadline = Date.now() + 10_000;
      while (!text.includes('event: caught-up') && Date.now() < deadline) await sleep(20);
      request.close();
      assert.match(text, /id: 0\n/);
      assert.match(text, /id: 1\n/);
      assert.match(text, /event: caught-up/);
    } finally {
      session.close();
    }
  });

  it('holds bounded server memory for 100 clients that do not read a large history, and serves 100 live clients', async () => {
    const stream = uniqueStream('sse-hundred');
    const payload = 'p'.repeat(2000);
    for (let batch = 0; batch < 80; batch++) {
      const response = await append(base, stream, Array.from({ length: 100 }, (_, i) => ({ eventType: 'Big', data: { n: batch * 100 + i, payload } })));
      assert.equal(response.status, 201);
    }
    const historyBytes = 8000 * 2000;
    const before = await residentBytes(server.pid);
    const readers = Array.from({ length: 100 }, () => open(`/streams/${stream}/live`));
    await Promise.all(readers.map((reader) => reader.opened));
    for (const reader of readers) reader.pause();
    await sleep(3000);
    const during = await residentBytes(server.pid);
    const grewBytes = during - before;
    // Buffering each client's backlog would take 100 × 16 MB; the server holds about a page each.
    const report = `server memory grew by ${(grewBytes / 1048576).toFixed(0)} MiB for 100 clients of a ${(historyBytes / 1048576).toFixed(0)} MiB history`;
    assert.ok(grewBytes < 400 * 1024 * 1024, report);
    process.stdout.write(`# ${report}\n`);
    for (const reader of readers) reader.close();

    const live = Array.from({ length: 100 }, () => open(`/streams/${stream}/live?from=end`));
    await Promise.all(live.map((client) => client.waitFor(() => client.events.some((event) => event.event === 'caught-up'), 30_000, 'caught-up')));
    for (let i = 0; i < 10; i++) await append(base, stream, Array.from({ length: 10 }, (_, j) => ({ eventType: 'Live', data: { n: i * 10 + j } })));
    await Promise.all(live.map((client) => client.waitFor(() => client.messages().length === 100, 30_000, '100 live events')));
    for (const client of live) {
      assert.deepEqual(client.messages().map((event) => event.revision), Array.from({ length: 100 }, (_, i) => 8000 + i));
      client.close();
    }
  });

  it('drops a client that stops reading, with a final event that says why', async () => {
    const stream = uniqueStream('sse-slow');
    const payload = 'q'.repeat(4000);
    for (let batch = 0; batch < 50; batch++) {
      await append(base, stream, Array.from({ length: 100 }, (_, i) => ({ eventType: 'Big', data: { n: batch * 100 + i, payload } })));
    }
    const slow = open(`/streams/${stream}/live`);
    await slow.opened;
    slow.pause();
    await sleep(7000);
    slow.resume();
    await slow.waitFor(() => slow.ended, 20_000, 'the server ends the stream');
    const last = slow.events.at(-1)!;
    assert.equal(last.event, 'dropped');
    assert.equal(JSON.parse(last.data).code, 'SLOW_CONSUMER');
    assert.ok(slow.messages().length < 5000, 'dropped before the end of the history');
    // Every event before the drop came in order: a client resumes from the last one.
    assert.deepEqual(slow.messages().map((event) => event.revision), Array.from({ length: slow.messages().length }, (_, i) => i));
    const metrics = (await call(`${base}/metrics`)).text;
    assert.match(metrics, /chronicle_subscriptions\{transport="sse"\} \d+/);
  });
});
