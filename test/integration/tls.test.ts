import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makeCertificates } from '../helpers/certificates.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { forEachClient, withServerLog } from './client-matrix.js';
import type { ClientKit, TestClient } from './clients.js';
import { ServerProcess, stopAllServers } from './server-process.js';
import { uniqueStream, withTimeout } from './support.js';

/**
 * TLS on the external interface: a node started with a certificate (signed by a test CA made
 * here with openssl) and without --insecure serves both official clients over TLS — the 1.x
 * client's grpc-js writes and its Rust reads alike — and a node with neither refuses to start.
 */
const CALL_MS = 10_000;

forEachClient(import.meta.url, { timeoutMs: 45_000 }, (kitPromise) => {
  let kit: ClientKit;
  let server: ServerProcess;
  let client: TestClient;
  let removeDirectory: () => Promise<void>;
  let files: { ca: string; certificate: string; key: string };

  before(async () => {
    kit = await kitPromise;
    const directory = await makeTempDirectory('chronicle-tls-');
    removeDirectory = directory.remove;
    files = await makeCertificates(directory.path);
    server = await ServerProcess.start({ tls: { certificateFile: files.certificate, privateKeyFile: files.key } });
    client = kit.connect(server.port, { tlsCaFile: files.ca });
  });

  after(async () => {
    await withTimeout(client.dispose(), 5_000, 'dispose').catch(() => undefined);
    await stopAllServers();
    await removeDirectory();
  });

  test('appends, reads and subscriptions work over TLS', async () => {
    await withServerLog(server, async () => {
      const stream = uniqueStream('tls');
      const outcome = await withTimeout(client.append(stream, [{ type: 'OverTls', data: { secure: true } }], 'no_stream'), CALL_MS, 'append');
      assert.equal(outcome.nextExpectedRevision, 0n);
      const events = await withTimeout(client.readStream(stream), CALL_MS, 'read');
      assert.deepEqual(events.map((event) => event.type), ['OverTls']);
      const subscription = client.subscribeToStream(stream, 'start');
      await subscription.waitFor(() => subscription.events.length >= 1, CALL_MS, "the subscription delivers over TLS");
      await subscription.unsubscribe();
    });
  });

  test('a client that does not trust the certificate cannot talk to the node', async () => {
    const untrusting = kit.connect(server.port, { query: 'tls=true' });
    try {
      await assert.rejects(withTimeout(untrusting.append(uniqueStream('tls-untrusted'), [{ type: 'Nope', data: {} }]), CALL_MS, 'append'));
    } finally {
      await withTimeout(untrusting.dispose(), 5_000, 'dispose').catch(() => undefined);
    }
  });
});

test('a node without a certificate and without --insecure refuses to start, naming the options', async () => {
  const { spawnSync } = await import('node:child_process');
  const { CHRONICLE_BIN, REPOSITORY_ROOT, nodeEnvironment } = await import('./server-process.js');
  const result = spawnSync(process.execPath, [CHRONICLE_BIN, '--mem-db', '--ext-http-port', '1'], { cwd: REPOSITORY_ROOT, env: nodeEnvironment(), encoding: 'utf8', timeout: 15_000 });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--certificate-file/);
  assert.match(result.stderr, /--insecure/);
});
