import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * Runs `bin/chronicle` as a child process for the integration tests: a free port on 127.0.0.1,
 * a bounded wait for the "listening for clients" line, the log kept in memory, and a stop by
 * pid (SIGTERM, then SIGKILL after a bounded wait). Every server a test process starts is
 * recorded; whatever is still running when that process exits (or is told to stop) is killed.
 */

/** The repository root (this file compiles to dist/test/integration/). */
export const REPOSITORY_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CHRONICLE_BIN = fileURLToPath(new URL('../../../bin/chronicle', import.meta.url));

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const KEPT_LOG_LINES = 5_000;

export interface ServerStartOptions {
  /** Data directory (`--db`); without it the node runs with `--mem-db`. */
  db?: string;
  /** A fixed port (a restart on the same port); otherwise a free one is picked. */
  port?: number;
  /** More flags, e.g. ['--max-append-size', '1048576']. */
  extraArgs?: readonly string[];
  /** Serve TLS with this certificate and key instead of running with --insecure. */
  tls?: { certificateFile: string; privateKeyFile: string };
}

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Asks the OS for a free TCP port on 127.0.0.1: listen on port 0, read it, close. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!port) throw new Error('could not get a free port');
  return port;
}

/**
 * The environment for a node a test starts: this process's, without CHRONICLE_* variables (the
 * node reads them as settings and refuses unknown ones) or the test runner's context.
 */
export function nodeEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('CHRONICLE_') && key !== 'NODE_TEST_CONTEXT'));
}

const running = new Set<ServerProcess>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // Last resort when a test process ends without its after hooks (a timeout, an uncaught error).
  process.on('exit', () => killAllServersNow());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      killAllServersNow();
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
}

export class ServerProcess {
  /** Every line the server wrote to stdout and stderr, the oldest dropped after KEPT_LOG_LINES. */
  readonly logs: string[] = [];
  readonly exited: Promise<ServerExit>;
  private exitInfo: ServerExit | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly port: number,
    readonly options: ServerStartOptions,
  ) {
    this.exited = new Promise<ServerExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts a node and resolves once it logged that it listens; rejects (and kills it) otherwise. */
  static async start(options: ServerStartOptions = {}): Promise<ServerProcess> {
    installExitHooks();
    // A free port can be taken by someone else before the node binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      try {
        return await ServerProcess.startOn(port, options);
      } catch (error) {
        if (options.port !== undefined || attempt >= 3 || !/EADDRINUSE/.test(String((error as Error).message))) throw error;
      }
    }
  }

  private static async startOn(port: number, options: ServerStartOptions): Promise<ServerProcess> {
    const security = options.tls
      ? ['--certificate-file', options.tls.certificateFile, '--certificate-private-key-file', options.tls.privateKeyFile]
      : ['--insecure'];
    const args = [...security, '--ext-ip', '127.0.0.1', '--ext-http-port', String(port)];
    args.push(...(options.db !== undefined ? ['--db', options.db] : ['--mem-db']));
    args.push(...(options.extraArgs ?? []));
    return ServerProcess.spawnAndWait(args, '127.0.0.1', port, options);
  }

  /**
   * Runs `chronicle` with exactly these arguments (a command line from the docs, with our binary)
   * and waits until it listens for clients on `host:port`.
   */
  static async startCommandLine(args: readonly string[], host: string, port: number): Promise<ServerProcess> {
    installExitHooks();
    return ServerProcess.spawnAndWait(args, host, port, { port });
  }

  private static async spawnAndWait(chronicleArgs: readonly string[], host: string, port: number, options: ServerStartOptions): Promise<ServerProcess> {
    const args = [CHRONICLE_BIN, ...chronicleArgs];
    const child = spawn(process.execPath, args, { cwd: REPOSITORY_ROOT, env: nodeEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) {
      const [error] = (await once(child, 'error')) as [Error];
      throw new Error(`could not spawn chronicle: ${error.message}`);
    }
    const server = new ServerProcess(child, child.pid, port, options);
    running.add(server);
    const listening = `"msg":"listening for clients on ${host}:${port}"`;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chronicle did not report listening on port ${port} within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const onLine = (line: string) => {
        if (line.includes(listening)) {
          clearTimeout(timer);
          resolve();
        }
      };
      server.collect(child.stdout!, onLine);
      server.collect(child.stderr!, () => undefined);
      void server.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`chronicle exited during startup (code ${exit.code}, signal ${exit.signal})`));
      });
    });
    try {
      await ready;
    } catch (error) {
      server.killNow();
      await server.waitForExit(STOP_TIMEOUT_MS).catch(() => undefined);
      throw new Error(`${(error as Error).message}\n${server.logText(40)}`);
    }
    return server;
  }

  private collect(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
    let unfinished = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (unfinished + chunk).split('\n');
      unfinished = lines.pop()!;
      for (const line of lines) {
        this.logs.push(line);
        if (this.logs.length > KEPT_LOG_LINES) this.logs.shift();
        onLine(line);
      }
    });
    stream.on('end', () => {
      if (unfinished) this.logs.push(unfinished);
    });
  }

  get isRunning(): boolean {
    return this.exitInfo === undefined;
  }

  get exitStatus(): ServerExit | undefined {
    return this.exitInfo;
  }

  /** The last `lines` log lines, for failure messages. */
  logText(lines = 30): string {
    return this.logs.slice(-lines).join('\n');
  }

  /** Log lines at warn level or above (pino levels 40, 50, 60). */
  problems(): string[] {
    return this.logs.filter((line) => /"level":\s*(4|5|6)\d/.test(line));
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves with how it exited. */
  async stop(graceMs = STOP_TIMEOUT_MS): Promise<ServerExit> {
    if (this.exitInfo) return this.exitInfo;
    const startedAt = Date.now();
    this.signal('SIGTERM');
    try {
      const exit = await this.waitForExit(graceMs);
      this.lastStopMs = Date.now() - startedAt;
      return exit;
    } catch {
      this.signal('SIGKILL');
      process.stderr.write(`chronicle pid ${this.pid} (port ${this.port}) did not exit within ${graceMs} ms of SIGTERM: killed\n`);
      const exit = await this.waitForExit(STOP_TIMEOUT_MS);
      this.lastStopMs = Date.now() - startedAt;
      return exit;
    }
  }

  /** How long the last `stop()` took, SIGTERM to exit. */
  lastStopMs: number | undefined;

  /** SIGKILL (a crash) and wait for the process to be gone. */
  async kill(): Promise<ServerExit> {
    this.killNow();
    return this.waitForExit(STOP_TIMEOUT_MS);
  }

  /** SIGKILL without waiting (also usable from an 'exit' handler). */
  killNow(): void {
    this.signal('SIGKILL');
  }

  /** Sends a signal to the process (SIGSTOP pauses it, SIGCONT resumes it). */
  signal(signal: NodeJS.Signals): void {
    if (this.exitInfo) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  async waitForExit(ms: number): Promise<ServerExit> {
    if (this.exitInfo) return this.exitInfo;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`chronicle (pid ${this.pid}) did not exit within ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** SIGKILLs every server this process started that is still running, without waiting. */
export function killAllServersNow(): void {
  for (const server of running) server.killNow();
}

/** Stops every server this process started and has not stopped yet (for after hooks). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...running].map((server) => server.stop()));
}
