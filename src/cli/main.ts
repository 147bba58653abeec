import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EventStore } from '../store/event-store.js';
import { subscribeToAll } from '../store/catch-up.js';
import { verifyLog, truncateLogAt } from '../storage/log-verify.js';
import { NodeFileSystem } from '../storage/node-file-system.js';
import { LogCorruptionError } from '../storage/errors.js';
import { readFileSync } from 'node:fs';
import { resolveConfiguration } from '../server/configuration.js';
import { createServerLogger, logStartup } from '../server/logger.js';
import { startClusterNode } from '../server/cluster-node.js';
import { startNode, type RunningNode } from '../server/node.js';
import { CHRONICLE_VERSION } from '../server/version.js';
import { stopOnSignals } from './stop-signals.js';

const VERSION = CHRONICLE_VERSION;
/** Subcommands that work on a data directory offline; anything else starts a node. */
const UTILITY_COMMANDS = new Set(['demo', 'verify', 'repair', 'rebuild-index']);

function parsePosition(value: string): number {
  const position = Number(value);
  if (!Number.isSafeInteger(position) || position < 0) throw new CommanderArgumentError('must be a non-negative integer');
  return position;
}

/** The embedded demo: a node's engine in this process, a few writes and reads, then exit. */
async function runDemo(options: { db: string; memDb?: boolean }): Promise<void> {
  const store = await EventStore.open(options.memDb ? { inMemory: true } : { directory: resolve(options.db), log: (line) => console.log(line) });
  try {
    console.log(`Chronicle ${VERSION} — embedded store ${options.memDb ? 'in memory' : `at ${resolve(options.db)}`}`);
    const stream = `demo-order-${Date.now()}`;
    const placed = await store.appendToStream(stream, [{ type: 'OrderPlaced', data: { total: 42 } }], { expectedState: 'no_stream' });
    console.log(`appended OrderPlaced to ${stream} at revision ${placed.nextExpectedRevision}, position ${placed.position.commit}`);
    const paid = await store.appendToStream(stream, [{ type: 'OrderPaid', data: { method: 'card' } }], { expectedState: placed.nextExpectedRevision });
    console.log(`appended OrderPaid at revision ${paid.nextExpectedRevision}`);
    try {
      await store.appendToStream(stream, [{ type: 'OrderPaid' }], { expectedState: placed.nextExpectedRevision });
    } catch (error) {
      console.log(`a stale writer is refused: ${(error as Error).message}`);
    }
    for (const event of await store.readStream(stream)) {
      console.log(`  ${event.streamId}@${event.revision} ${event.type} ${Buffer.from(event.data).toString('utf8')}`);
    }
    let total = 0;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    for await (const event of subscribeToAll(store, { fromPosition: 'start', signal: controller.signal })) {
      void event;
      total++;
    }
    console.log(`$all holds ${total} events; the log ends at position ${store.position}`);
  } finally {
    await store.close();
  }
}

export function buildProgram(): Command {
  const program = new Command();
  program.name('chronicle').description('Chronicle: a clustered event store for Node.js').version(VERSION);
  program
    .command('demo')
    .description('run the embedded demo: open a store, write and read a stream, exit')
    .option('--db <directory>', 'where the store keeps its data', './data')
    .option('--mem-db', 'keep everything in memory')
    .action(runDemo);
  program
    .command('verify')
    .description('check the CRC of every record of the log (read only)')
    .requiredOption('--db <directory>', 'the store directory')
    .action(async (options: { db: string }) => {
      const result = await verifyLog(new NodeFileSystem(), join(resolve(options.db), 'log'));
      if (result.damage) {
        console.error(`damaged: ${result.damage.file} at byte ${result.damage.fileOffset} (log position ${result.damage.position}): ${result.damage.detail}`);
        console.error(`${result.records} records before it are intact, up to position ${result.validEnd}`);
        process.exitCode = 1;
        return;
      }
      console.log(`ok: ${result.records} records, the log ends at position ${result.validEnd}`);
    });
  program
    .command('repair')
    .description('cut the log at its first damaged record (everything after it is lost) and drop the index')
    .requiredOption('--db <directory>', 'the store directory')
    .requiredOption('--truncate-at <position>', 'the position `chronicle verify` reported as the end of the intact records', parsePosition)
    .action(async (options: { db: string; truncateAt: number }) => {
      const directory = resolve(options.db);
      const fileSystem = new NodeFileSystem();
      const result = await verifyLog(fileSystem, join(directory, 'log'));
      if (!result.damage && result.validEnd === options.truncateAt) {
        console.log('the log is intact; nothing to repair');
        return;
      }
      if (options.truncateAt !== result.validEnd) {
        console.error(`refusing: the intact records end at ${result.validEnd}, not ${options.truncateAt}; run 'chronicle verify' and pass its position`);
        process.exitCode = 1;
        return;
      }
      await truncateLogAt(fileSystem, join(directory, 'log'), options.truncateAt);
      await rm(join(directory, 'index'), { recursive: true, force: true });
      console.log(`the log now ends at ${options.truncateAt}; the index will be rebuilt on the next start`);
    });
  program
    .command('rebuild-index')
    .description('delete the derived index; the next start rebuilds it from the log')
    .requiredOption('--db <directory>', 'the store directory')
    .action(async (options: { db: string }) => {
      await rm(join(resolve(options.db), 'index'), { recursive: true, force: true });
      console.log('index deleted; it is rebuilt from the log on the next start');
    });
  return program;
}

/** Starts a node with the configuration from flags, environment and config file; runs until stopped. */
async function runServer(args: string[]): Promise<void> {
  const resolution = resolveConfiguration({ argv: args, env: process.env, readFile: (path) => readFileSync(path, 'utf8') });
  if ('help' in resolution) {
    process.stdout.write(`${resolution.help}\n\nUtility commands (offline, on a data directory): chronicle demo | verify | repair | rebuild-index --help\n`);
    return;
  }
  if ('version' in resolution) {
    process.stdout.write(`${resolution.version}\n`);
    return;
  }
  if ('error' in resolution) {
    process.stderr.write(`chronicle: ${resolution.error}\n`);
    process.exitCode = resolution.exitCode;
    return;
  }
  const { configuration, sources } = resolution;
  if (!configuration.insecure && (!configuration.certificateFile || !configuration.certificatePrivateKeyFile)) {
    process.stderr.write('chronicle: a node serves TLS unless started with --insecure: give --certificate-file and --certificate-private-key-file, or --insecure\n');
    process.exitCode = 2;
    return;
  }
  const { logger, close } = createServerLogger({ level: configuration.logLevel, logDirectory: configuration.logDirectory });
  logStartup(logger, configuration, sources);
  let node: RunningNode;
  try {
    node = configuration.clusterSize > 1 ? await startClusterNode(configuration, logger) : await startNode(configuration, logger);
  } catch (error) {
    if (error instanceof LogCorruptionError) throw error;
    // Start-up problems of the environment (a port in use, an unresolvable cluster name): one line.
    logger.fatal({ err: error }, `cannot start: ${(error as Error).message}`);
    process.stderr.write(`chronicle: cannot start: ${(error as Error).message}\n`);
    process.exitCode = 1;
    close();
    return;
  }
  const removeSignalHandlers = stopOnSignals(
    process,
    () => void node.stop(),
    (signal, repeated) => logger.info({ signal }, repeated ? `received ${signal} while stopping: the stop goes on` : `received ${signal}`),
  );
  await node.stopped;
  removeSignalHandlers();
  if (node.exitCode !== undefined) process.exitCode = node.exitCode;
  close();
}

export async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  try {
    if (args[0] !== undefined && UTILITY_COMMANDS.has(args[0])) await buildProgram().parseAsync(argv);
    else await runServer(args);
  } catch (error) {
    if (error instanceof LogCorruptionError) {
      console.error(error.message);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
}
