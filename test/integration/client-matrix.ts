import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLIENT_NAMES, loadClientKit, type ClientKit, type ClientName } from './clients.js';
import type { ReportedTest } from './json-lines-reporter.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';
import { killAllServersNow, REPOSITORY_ROOT, type ServerProcess } from './server-process.js';

/**
 * Runs a table of tests once per official client. The two client packages cannot share a
 * process (see clients.ts), so the test file re-runs itself in one child process per client,
 * with OFFICIAL_CLIENT_UNDER_TEST naming the client and a JSON-lines reporter; the parent replays each
 * child's results as subtests of "<client> client". Run directly with OFFICIAL_CLIENT_UNDER_TEST set, a
 * file runs only that client's table in-process.
 */
const CLIENT_ENVIRONMENT_VARIABLE = 'OFFICIAL_CLIENT_UNDER_TEST';
const REPORTER = pathToFileURL(fileURLToPath(new URL('./json-lines-reporter.js', import.meta.url))).href;

function clientFromEnvironment(): ClientName | undefined {
  const value = process.env[CLIENT_ENVIRONMENT_VARIABLE];
  if (value === undefined || value === '') return undefined;
  if (!(CLIENT_NAMES as readonly string[]).includes(value)) throw new Error(`${CLIENT_ENVIRONMENT_VARIABLE} must be one of ${CLIENT_NAMES.join(', ')}, not '${value}'`);
  return value as ClientName;
}

/** The client this process tests, or undefined in the parent process. */
export const clientUnderTest: ClientName | undefined = clientFromEnvironment();

export interface ClientMatrixOptions {
  /** The whole child run for one client must finish in this time. */
  timeoutMs: number;
}

/**
 * Defines the per-client table. `define` runs only in a child (one client loaded); it receives a
 * promise of that client's kit so tests can `await` it in a before hook.
 */
export function forEachClient(testFileUrl: string, options: ClientMatrixOptions, define: (kit: Promise<ClientKit>, name: ClientName) => void): void {
  if (clientUnderTest) {
    // A hard stop for the child, should the parent be gone or the run hang past its budget.
    setTimeout(() => {
      process.stderr.write(`the ${clientUnderTest} run exceeded ${options.timeoutMs} ms: stopping its servers and exiting\n`);
      killAllServersNow();
      process.exit(1);
    }, options.timeoutMs + 5_000).unref();
    define(loadClientKit(clientUnderTest), clientUnderTest);
    return;
  }
  const file = fileURLToPath(testFileUrl);
  describe('official clients', { concurrency: true }, () => {
    for (const name of CLIENT_NAMES) {
      test(`${name} client`, { timeout: options.timeoutMs + 10_000 }, (t) => runClientChild(t, file, name, options.timeoutMs));
    }
  });
}

async function runClientChild(t: TestContext, file: string, name: ClientName, timeoutMs: number): Promise<void> {
  const directory = await makeTempDirectory('chronicle-it-report-');
  try {
    const reportPath = join(directory.path, 'report.jsonl');
    const environment: NodeJS.ProcessEnv = { ...process.env, [CLIENT_ENVIRONMENT_VARIABLE]: name };
    // Without this the child would talk the test runner's own protocol instead of using the reporter.
    delete environment.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [`--test-reporter=${REPORTER}`, `--test-reporter-destination=${reportPath}`, file], {
      cwd: REPOSITORY_ROOT,
      env: environment,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // The child stops its servers on SIGTERM; SIGKILL only if it does not go.
      if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 5_000).unref();
    }, timeoutMs);
    const startedAt = Date.now();
    const [code, signal] = await closed;
    clearTimeout(timer);
    const elapsedMs = Date.now() - startedAt;
    const results = (await readFile(reportPath, 'utf8').catch(() => ''))
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as ReportedTest);
    t.diagnostic(`${name}: child pid ${child.pid} ran ${results.filter((r) => r.nesting === 0).length} tests in ${elapsedMs} ms (exit code ${code}, signal ${signal})`);
    const outputTail = output.split('\n').slice(-80).join('\n');
    for (const result of results.filter((r) => r.nesting === 0)) {
      const nestedFailures = results.filter((r) => r.nesting > 0 && r.kind === 'fail').map((r) => `  ${r.name}: ${r.error ?? ''}`);
      await t.test(result.name, { skip: result.skipped }, (subtest) => {
        subtest.diagnostic(`${result.durationMs.toFixed(0)} ms in the ${name} child`);
        for (const line of result.diagnostics) subtest.diagnostic(line);
        if (result.kind === 'fail') {
          const error = new Error(`${result.error ?? 'failed'}${nestedFailures.length ? `\nnested failures:\n${nestedFailures.join('\n')}` : ''}`);
          error.stack = error.message;
          throw error;
        }
      });
    }
    if (timedOut) throw new Error(`the ${name} child did not finish within ${timeoutMs} ms; its output:\n${outputTail}`);
    if (code !== 0 && !results.some((r) => r.kind === 'fail')) throw new Error(`the ${name} child exited with code ${code}, signal ${signal} without a failed test; its output:\n${outputTail}`);
    if (code !== 0 && outputTail.trim() !== '') {
      t.diagnostic(`${name} child output (tail):`);
      for (const line of outputTail.split('\n').slice(-40)) t.diagnostic(line);
    }
  } finally {
    await directory.remove();
  }
}

/**
 * Runs `body`; if it throws, the error message gets the server's warnings/errors and its last
 * log lines appended, so a replayed failure shows what the server said.
 */
export async function withServerLog<T>(servers: ServerProcess | readonly (ServerProcess | undefined)[] | undefined, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    const list = (Array.isArray(servers) ? servers : [servers]).filter((server): server is ServerProcess => server !== undefined);
    const notes = list.map(
      (server) =>
        `--- server pid ${server.pid} port ${server.port} (${server.isRunning ? 'running' : `exited ${JSON.stringify(server.exitStatus)}`})\n` +
        `warnings/errors:\n${server.problems().slice(-20).join('\n') || '(none)'}\nlast lines:\n${server.logText(15)}`,
    );
    if (error instanceof Error && notes.length) error.message = `${error.message || error.constructor.name}\n${notes.join('\n')}`;
    throw error;
  }
}
