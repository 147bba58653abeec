import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import type * as KurrentLib from '@kurrent/kurrentdb-client';
import { makeCertificates, type TestCertificates } from '../helpers/certificates.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { connectH2, http2Call, SseClient, type JsonResponse } from './http-support.js';
import { freePort, ServerProcess } from './server-process.js';
import { sleep, uniqueStream } from './support.js';

/**
 * The HTTP API under TLS: on one port, ALPN sends HTTP/1.1 clients to the HTTP API and HTTP/2
 * clients to gRPC or the HTTP API by content type — the official client and HTTPS requests at
 * the same time; in a cluster, a follower forwards writes to the leader over the internal
 * interface with mutual TLS.
 */
function httpsCall(url: string, ca: Buffer, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<JsonResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = httpsRequest({ host: target.hostname, port: Number(target.port), path: target.pathname + target.search, method: init.method ?? 'GET', headers: init.headers, ca, timeout: 15_000 });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const headers = Object.fromEntries(Object.entries(response.headers).map(([name, value]) => [name, String(value)]));
        resolve({ status: response.statusCode ?? 0, headers, text, body: /json/.test(headers['content-type'] ?? '') ? JSON.parse(text) : text });
      });
    });
    request.end(init.body);
  });
}

describe('the HTTP API over TLS', { timeout: 120_000 }, () => {
  let files: TestCertificates;
  let ca: Buffer;
  let removeDirectory: () => Promise<void>;
  const servers: ServerProcess[] = [];

  before(async () => {
    const directory = await makeTempDirectory('chronicle-http-tls-');
    removeDirectory = directory.remove;
    files = await makeCertificates(directory.path);
    ca = await readFile(files.ca);
  });

  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await removeDirectory();
  });

  it('serves HTTPS (HTTP/1.1 and HTTP/2) and the official gRPC client on one TLS port at once', async () => {
    const server = await ServerProcess.start({ tls: { certificateFile: files.certificate, privateKeyFile: files.key } });
    servers.push(server);
    const base = `https://127.0.0.1:${server.port}`;
    const kurrent: typeof KurrentLib = await import('@kurrent/kurrentdb-client');
    const client = kurrent.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${server.port}?tls=true&tlsCAFile=${files.ca}`);
    const session = connectH2(base, { ca });
    const stream = uniqueStream('https');
    const sse = new SseClient(`${base}/streams/${stream}/live`, {}, { ca });
    try {
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => client.appendToStream(stream, [kurrent.jsonEvent({ type: 'Grpc', data: { i } })])),
        ...Array.from({ length: 10 }, (_, i) =>
          httpsCall(`${base}/streams/${stream}`, ca, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ eventType: 'Https1', data: { i } }]) }).then((response) =>
            assert.equal(response.status, 201, response.text),
          ),
        ),
        ...Array.from({ length: 10 }, (_, i) =>
          http2Call(session, `/streams/${stream}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ eventType: 'Https2', data: { i } }]) }).then((response) =>
            assert.equal(response.status, 201, response.text),
          ),
        ),
      ]);
      const read = await httpsCall(`${base}/streams/${stream}?count=100`, ca);
      assert.equal((read.body as { events: unknown[] }).events.length, 30);
      let viaGrpc = 0;
      for await (const resolved of client.readStream(stream)) if (resolved.event) viaGrpc++;
      assert.equal(viaGrpc, 30);
      await sse.waitFor(() => sse.messages().length === 30, 10_000, 'SSE over HTTPS');
      assert.equal(sse.status, 200);
    } finally {
      sse.close();
      session.close();
      await client.dispose();
    }
    // A client that does not trust the certificate gets nowhere.
    await assert.rejects(httpsCall(`${base}/ping`, Buffer.from('')));
  });

  it('forwards a follower’s writes to the leader over the internal interface with mutual TLS', async () => {
    const ports: { tcp: number; gossip: number; http: number }[] = [];
    for (let i = 0; i < 3; i++) ports.push({ tcp: await freePort(), gossip: await freePort(), http: await freePort() });
    const tlsArgs = ['--certificate-file', files.certificate, '--certificate-private-key-file', files.key, '--trusted-root-certificate-file', files.ca];
    const nodes = await Promise.all(
      ports.map((port, i) => {
        const seeds = ports.filter((_, j) => j !== i).map((other) => `127.0.0.1:${other.gossip}`).join(',');
        return ServerProcess.startCommandLine(
          [...tlsArgs, '--mem-db', '--int-ip', '127.0.0.1', '--ext-ip', '127.0.0.1', `--int-tcp-port=${port.tcp}`, `--int-http-port=${port.gossip}`, `--ext-http-port=${port.http}`, '--cluster-size=3', '--discover-via-dns=false', `--gossip-seed=${seeds}`],
          '127.0.0.1',
          port.http,
        );
      }),
    );
    servers.push(...nodes);
    const bases = ports.map((port) => `https://127.0.0.1:${port.http}`);
    let followers: string[] = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const states = await Promise.all(bases.map((base) => httpsCall(`${base}/health/ready`, ca).then((response) => (response.status === 200 ? (response.body as { state: string }).state : 'not-ready'), () => 'down')));
      followers = bases.filter((_, i) => states[i] === 'Follower');
      if (states.filter((state) => state === 'Leader').length === 1 && followers.length === 2) break;
      await sleep(200);
    }
    assert.equal(followers.length, 2, 'a leader and two followers');
    const stream = uniqueStream('https-forwarded');
    for (const [i, follower] of followers.entries()) {
      const response = await httpsCall(`${follower}/streams/${stream}`, ca, { method: 'POST', headers: { 'content-type': 'application/json', 'ES-ExpectedVersion': String(i - 1) }, body: JSON.stringify([{ eventType: 'ViaFollower', data: { i } }]) });
      assert.equal(response.status, 201, response.text);
    }
    const read = await httpsCall(`${followers[0]}/streams/${stream}`, ca, { headers: { 'ES-RequireLeader': 'true' } });
    assert.deepEqual((read.body as { events: { data: unknown }[] }).events.map((event) => event.data), [{ i: 0 }, { i: 1 }]);
  });
});
