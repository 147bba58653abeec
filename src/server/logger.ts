import { join } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { ConfigurationSources, ServerConfiguration } from './configuration.js';
import { SETTING_LIST, type PendingFeature } from './settings.js';
import { CHRONICLE_VERSION } from './version.js';

/** The file the logs go to inside `--log <directory>`. */
export const LOG_FILE_NAME = 'chronicle.log';

export interface ServerLoggerOptions {
  level: ServerConfiguration['logLevel'];
  logDirectory: string | null;
  /** Where the stdout copy goes; tests pass their own stream. Defaults to file descriptor 1. */
  stdout?: DestinationStream;
}

export interface ServerLogger {
  logger: Logger;
  /** The log file's path, or null when logging to stdout only. */
  logFile: string | null;
  /** Closes the log file (stdout stays open). Nothing is buffered, so nothing is lost. */
  close(): void;
}

/**
 * A pino logger writing one JSON object per line to stdout and, with a log directory, to
 * `<directory>/chronicle.log` (the directory is created if missing). Both destinations write
 * synchronously in this thread: no worker-thread transport to bundle, and the line that explains
 * why a node stopped is on disk before the process exits. Logging is off the append hot path, so
 * a write per line costs little.
 */
export function createServerLogger(options: ServerLoggerOptions): ServerLogger {
  const stdout = options.stdout ?? pino.destination({ dest: 1, sync: true });
  const loggerOptions = { level: options.level, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.logDirectory === null) return { logger: pino(loggerOptions, stdout), logFile: null, close: () => {} };

  const logFile = join(options.logDirectory, LOG_FILE_NAME);
  let file: ReturnType<typeof pino.destination>;
  try {
    file = pino.destination({ dest: logFile, sync: true, mkdir: true, append: true });
  } catch (error) {
    throw new Error(`cannot write logs to ${logFile}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const streams = pino.multistream([
    { stream: stdout, level: options.level },
    { stream: file, level: options.level },
  ]);
  return { logger: pino(loggerOptions, streams), logFile, close: () => file.end() };
}

/**
 * What a node logs about itself at start, as one structured line: the version, every setting's
 * value, which ones were set and where (`setBy`), and the set ones that wait for a feature still
 * to come (`notYetInEffect`), so an operator sees at once why `--cluster-size 3` forms no cluster.
 */
export function startupSummary(configuration: ServerConfiguration, sources: ConfigurationSources) {
  const setBy: Record<string, string> = {};
  const notYetInEffect: Record<string, PendingFeature> = {};
  for (const setting of SETTING_LIST) {
    const source = sources[setting.key];
    if (source.kind === 'default') continue;
    setBy[setting.key] = source.kind === 'config file' ? `${source.name} in ${source.file}` : source.name;
    if (setting.pendingFeature !== undefined) notYetInEffect[setting.key] = setting.pendingFeature;
  }
  return {
    version: CHRONICLE_VERSION,
    configuration: { ...configuration, gossipSeeds: configuration.gossipSeeds.map(formatEndpoint) },
    setBy,
    notYetInEffect,
  };
}

export function logStartup(logger: Logger, configuration: ServerConfiguration, sources: ConfigurationSources): void {
  logger.info(startupSummary(configuration, sources), `starting Chronicle ${CHRONICLE_VERSION}`);
}

function formatEndpoint({ host, port }: { host: string; port: number }): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
