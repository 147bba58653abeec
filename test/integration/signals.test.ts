import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, nodeEnvironment, REPOSITORY_ROOT } from './server-process.js';

/**
 * A SIGTERM sent to the npm process that started the node (what a process manager or `kill` of
 * the pid it knows does) stops the node too, in order, instead of leaving it running orphaned.
 * (A signal repeated while the node stops is covered by the unit test of `stopOnSignals`.)
 */
const START_MS = 30_000;
const EXIT_MS = 15_000;

describe('signals', () => {
  test('a SIGTERM to `npm run serve` stops the node it started, leaving no process behind', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const npm = spawn('npm', ['run', 'serve', '--silent', '--', '--mem-db', '--ext-ip', '127.0.0.1', '--ext-http-port', String(port)], {
      cwd: REPOSITORY_ROOT,
      env: nodeEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    npm.stdout.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
    npm.stderr.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
    const npmExited = once(npm, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    let started: number[] = [];
    try {
      await waitFor(() => output.join('').includes(`"msg":"listening for clients on 127.0.0.1:${port}"`), START_MS, () => `npm run serve did not start a node: ${output.join('')}`);
      started = descendantsOf(npm.pid!);
      assert.ok(started.length > 0, 'npm started no process');
      npm.kill('SIGTERM');
      await Promise.race([npmExited, sleep(EXIT_MS).then(() => Promise.reject(new Error(`npm did not exit within ${EXIT_MS} ms of SIGTERM`)))]);
      await waitFor(() => started.every((pid) => !isAlive(pid)), EXIT_MS, () => `still running ${EXIT_MS} ms after npm was told to stop: ${started.filter(isAlive).join(', ')}`);
      assert.match(output.join(''), /"msg":"stopped"/, 'the node did not stop in order');
    } finally {
      for (const pid of [npm.pid!, ...started]) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });
});

async function waitFor(condition: () => boolean, ms: number, message: () => string = () => `not within ${ms} ms`): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message());
    await sleep(20);
  }
}

/** Every process below `root` (children, their children...), from /proc. */
function descendantsOf(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(Number(name));
    if (fields) parentOf.set(Number(name), Number(fields[1]));
  }
  const found: number[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const [pid, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(pid);
        frontier.push(pid);
      }
    }
  }
  return found;
}

function isAlive(pid: number): boolean {
  // A zombie (exited, not yet reaped) counts as gone.
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z';
}

/** The fields of /proc/PID/stat after the command name (state, parent pid, ...); undefined once gone. */
function statFields(pid: number): string[] | undefined {
  try {
    // The command name, in parentheses, may itself hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
