import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { stopAllServers } from './server-process.js';

/** Small helpers shared by the integration tests. */

export function uniqueStream(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Bounds a call. If it does not settle in time the error says so, and names any exception that
 * escaped uncaught meanwhile (a client that throws inside its own callback leaves its promise
 * pending forever; the uncaught exception is the only trace of why).
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const escaped: string[] = [];
  const onUncaught = (error: Error) => escaped.push(`${error.name}: ${error.message}`);
  process.on('uncaughtException', onUncaught);
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const note = escaped.length ? ` (meanwhile uncaught: ${escaped.join('; ')})` : '';
          reject(new Error(`${what}: no answer within ${ms} ms${note}`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    process.off('uncaughtException', onUncaught);
  }
}

/** Runs `action` and returns what it threw; fails if it did not throw (bounded by `ms`). */
export async function caught(action: () => Promise<unknown>, ms: number, what: string): Promise<unknown> {
  let result: unknown;
  try {
    result = await withTimeout(action(), ms, what);
  } catch (error) {
    return error;
  }
  assert.fail(`${what}: expected an error, got ${describe(result)}`);
}

export function describe(value: unknown): string {
  if (value instanceof Error) return `${value.constructor.name}: ${value.message}`;
  try {
    return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? `${item}n` : item));
  } catch {
    return String(value);
  }
}

/** Asserts `error` is an instance of `type`, with a message naming what it was instead. */
export function assertErrorType(error: unknown, type: abstract new (...args: never[]) => Error, what: string): void {
  assert.ok(error instanceof type, `${what}: expected ${type.name}, got ${describe(error)}${error instanceof Error && error.stack ? `\n${error.stack}` : ''}`);
}

/** A small seeded PRNG (mulberry32), so fuzz inputs are reproducible. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seededBytes(random: () => number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/**
 * The end of a test file that ran against its own node: closes what its tests left open — live
 * subscriptions first, then clients, each bounded in time and failures ignored — then stops every
 * server this process started.
 */
export async function closeAfterTests(
  subscriptions: readonly { unsubscribe(): Promise<unknown> }[],
  clients: readonly ({ dispose(): Promise<unknown> } | undefined)[],
): Promise<void> {
  await Promise.allSettled(subscriptions.map((subscription) => withTimeout(subscription.unsubscribe(), 2_000, 'unsubscribe')));
  await Promise.allSettled(clients.filter((client) => client !== undefined).map((client) => withTimeout(client.dispose(), 5_000, 'dispose')));
  await stopAllServers();
}
