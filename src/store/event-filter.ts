import { InvalidArgumentError } from '../errors.js';
import type { EventFilter } from './types.js';

export type EventPredicate = (stream: string, type: string) => boolean;

function compileRegex(source: string | RegExp, what: string): RegExp {
  // A global or sticky regex keeps state between tests; filters need a stateless one.
  if (source instanceof RegExp) return new RegExp(source.source, source.flags.replace(/[gy]/g, ''));
  try {
    return new RegExp(source);
  } catch (error) {
    throw new InvalidArgumentError(`${what} regex is invalid: ${(error as Error).message}`);
  }
}

function validatePrefixes(prefixes: unknown, what: string): string[] {
  if (!Array.isArray(prefixes) || prefixes.some((prefix) => typeof prefix !== 'string')) {
    throw new InvalidArgumentError(`${what} prefixes must be a list of strings`);
  }
  return prefixes as string[];
}

/** Turns a filter into one predicate on stream name and event type; undefined when it filters nothing. */
export function compileFilter(filter: EventFilter | undefined): EventPredicate | undefined {
  if (!filter) return undefined;
  const checks: EventPredicate[] = [];
  if (filter.streamNamePrefixes !== undefined) {
    const prefixes = validatePrefixes(filter.streamNamePrefixes, 'stream name');
    checks.push((stream) => prefixes.some((prefix) => stream.startsWith(prefix)));
  }
  if (filter.streamNameRegex !== undefined) {
    const regex = compileRegex(filter.streamNameRegex, 'stream name');
    checks.push((stream) => regex.test(stream));
  }
  if (filter.eventTypePrefixes !== undefined) {
    const prefixes = validatePrefixes(filter.eventTypePrefixes, 'event type');
    checks.push((_, type) => prefixes.some((prefix) => type.startsWith(prefix)));
  }
  if (filter.eventTypeRegex !== undefined) {
    const regex = compileRegex(filter.eventTypeRegex, 'event type');
    checks.push((_, type) => regex.test(type));
  }
  if (filter.excludeSystemEvents) checks.push((_, type) => !type.startsWith('$'));
  if (checks.length === 0) return undefined;
  return (stream, type) => checks.every((check) => check(stream, type));
}
