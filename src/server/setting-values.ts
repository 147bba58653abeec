import { isIP } from 'node:net';

/**
 * Parsers for the text of one setting, whichever source it came from (a flag, an environment
 * variable or a scalar of the config file). Each returns the typed value or a reason that quotes
 * the text; the caller prefixes the name of the option, so the reason never names it.
 */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface GossipSeed {
  host: string;
  port: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const valid = <T>(value: T): Parsed<T> => ({ ok: true, value });
const invalid = <T>(reason: string): Parsed<T> => ({ ok: false, reason });
const DIGITS = /^\d+$/;

export function parseBoolean(text: string): Parsed<boolean> {
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === '1') return valid(true);
  if (lower === 'false' || lower === '0') return valid(false);
  return invalid(`'${text}' is not a boolean (true, false, 1 or 0)`);
}

export function parsePort(text: string): Parsed<number> {
  const port = DIGITS.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) return invalid(`'${text}' is not a port (an integer from 1 to 65535)`);
  return valid(port);
}

export function parseIpAddress(text: string): Parsed<string> {
  if (isIP(text) === 0) return invalid(`'${text}' is not an IPv4 or IPv6 address`);
  return valid(text);
}

export function parseClusterSize(text: string): Parsed<number> {
  const size = DIGITS.test(text) ? Number(text) : NaN;
  // An even cluster survives no more failures than the odd one below it and can split into two
  // halves that both lack a majority, so only odd sizes are offered (as KurrentDB advises).
  if (!(Number.isSafeInteger(size) && size >= 1 && size % 2 === 1)) {
    return invalid(`'${text}' is not an odd number of nodes (1, 3, 5...)`);
  }
  return valid(size);
}

/** A DNS name: labels of letters, digits, '-' and '_' (Docker and Kubernetes service names use it). */
export function isHostName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((label) => /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label))) return false;
  // All-numeric names would be taken for IPv4 addresses by resolvers; '1.2.3' or '300.1.1.1' is a typo.
  return !labels.every((label) => DIGITS.test(label));
}

export function parseHostName(text: string): Parsed<string> {
  if (!isHostName(text)) return invalid(`'${text}' is not a DNS name`);
  return valid(text);
}

/** A number of milliseconds, from 0 to a day. */
export function parseMilliseconds(text: string): Parsed<number> {
  const value = DIGITS.test(text) ? Number(text) : NaN;
  if (!(Number.isSafeInteger(value) && value >= 0 && value <= 86_400_000)) return invalid(`'${text}' is not a number of milliseconds (0 to 86400000)`);
  return valid(value);
}

/** One `host:port`. */
export function parseSingleEndpoint(text: string): Parsed<GossipSeed> {
  return parseEndpoint(text.trim());
}

function parseEndpoint(entry: string): Parsed<GossipSeed> {
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(entry);
  let host: string;
  let portText: string;
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (isIP(host) !== 6) return invalid(`'${entry}': '${host}' is not an IPv6 address`);
  } else {
    const colon = entry.lastIndexOf(':');
    if (colon <= 0) return invalid(`'${entry}' is not host:port`);
    host = entry.slice(0, colon);
    portText = entry.slice(colon + 1);
    if (host.includes(':')) return invalid(`'${entry}': write an IPv6 address in brackets, as in [::1]:2112`);
    if (isIP(host) === 0 && !isHostName(host)) return invalid(`'${entry}': '${host}' is neither an IP address nor a DNS name`);
  }
  const port = parsePort(portText);
  if (!port.ok) return invalid(`'${entry}': ${port.reason}`);
  return valid({ host, port: port.value });
}

/** `host:port,host:port`. An empty text is the empty list, so a higher source can clear the seeds. */
export function parseGossipSeeds(text: string): Parsed<GossipSeed[]> {
  if (text.trim() === '') return valid([]);
  const seeds: GossipSeed[] = [];
  for (const entry of text.split(',').map((part) => part.trim())) {
    const seed = parseEndpoint(entry);
    if (!seed.ok) return seed;
    seeds.push(seed.value);
  }
  return valid(seeds);
}

export function parseDirectory(text: string): Parsed<string> {
  if (text.length === 0) return invalid('a directory path must not be empty');
  if (text.includes('\0')) return invalid(`'${text}' contains a NUL character`);
  return valid(text);
}

export function parseFilePath(text: string): Parsed<string> {
  if (text.length === 0) return invalid('a file path must not be empty');
  if (text.includes('\0')) return invalid(`'${text}' contains a NUL character`);
  return valid(text);
}

export function parseLogLevel(text: string): Parsed<LogLevel> {
  const level = LOG_LEVELS.find((candidate) => candidate === text.toLowerCase());
  if (level === undefined) return invalid(`'${text}' is not a log level (${LOG_LEVELS.join(', ')})`);
  return valid(level);
}

export function parseByteCount(text: string, maxBytes: number): Parsed<number> {
  const bytes = DIGITS.test(text) ? Number(text) : NaN;
  if (!(Number.isSafeInteger(bytes) && bytes >= 1 && bytes <= maxBytes)) {
    return invalid(`'${text}' is not a number of bytes from 1 to ${maxBytes}`);
  }
  return valid(bytes);
}
