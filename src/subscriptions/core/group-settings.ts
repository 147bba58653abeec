/**
 * A persistent subscription group's settings, as the clients send them, and the defaults the
 * official clients use when a setting is left out. Pure data; no I/O.
 */

export type ConsumerStrategy = 'RoundRobin' | 'DispatchToSingle' | 'Pinned' | 'PinnedByCorrelation';

export const CONSUMER_STRATEGIES: readonly ConsumerStrategy[] = ['RoundRobin', 'DispatchToSingle', 'Pinned', 'PinnedByCorrelation'];

export interface GroupSettings {
  resolveLinks: boolean;
  extraStatistics: boolean;
  /** How long a delivered message may stay unacknowledged before it is retried (0: no limit). */
  messageTimeoutMs: number;
  /** Deliveries beyond the first before a message is parked. */
  maxRetryCount: number;
  /** 0 = no limit. */
  maxSubscriberCount: number;
  liveBufferSize: number;
  readBatchSize: number;
  historyBufferSize: number;
  /** KurrentDB's checkpoint cadence. Chronicle commits acknowledgements at least this often (see `ackWindow`). */
  checkpointAfterMs: number;
  minCheckpointCount: number;
  maxCheckpointCount: number;
  strategy: ConsumerStrategy;
}

export const DEFAULT_GROUP_SETTINGS: GroupSettings = {
  resolveLinks: false,
  extraStatistics: false,
  messageTimeoutMs: 30_000,
  maxRetryCount: 10,
  maxSubscriberCount: 0,
  liveBufferSize: 500,
  readBatchSize: 20,
  historyBufferSize: 500,
  checkpointAfterMs: 2_000,
  minCheckpointCount: 10,
  maxCheckpointCount: 1_000,
  strategy: 'RoundRobin',
};

/**
 * The acknowledgement window: acknowledgements are committed through the log at most this long
 * after the first one of a batch arrives, or as soon as this many are waiting. A crash can only
 * forget the acknowledgements of the window being filled, so it bounds redeliveries; the group's
 * `checkpointAfterMs` and `maxCheckpointCount` tighten it further, never loosen it.
 * `minCheckpointCount` is accepted and reported but never delays a commit: waiting for more
 * acknowledgements would only widen what a crash redelivers.
 */
export const ACK_WINDOW_MAX_DELAY_MS = 50;
export const ACK_WINDOW_MAX_ACKS = 500;

export function ackWindow(settings: GroupSettings): { maxDelayMs: number; maxAcks: number } {
  return {
    maxDelayMs: Math.max(1, Math.min(ACK_WINDOW_MAX_DELAY_MS, settings.checkpointAfterMs)),
    maxAcks: Math.max(1, Math.min(ACK_WINDOW_MAX_ACKS, settings.maxCheckpointCount)),
  };
}

/** Checks ranges a person could get wrong; returns the problem in words, or undefined. */
export function settingsProblem(settings: GroupSettings): string | undefined {
  const positive: (keyof GroupSettings)[] = ['liveBufferSize', 'readBatchSize', 'historyBufferSize'];
  for (const key of positive) {
    const value = settings[key] as number;
    if (!Number.isInteger(value) || value <= 0) return `${key} must be a positive integer, got ${value}`;
  }
  const nonNegative: (keyof GroupSettings)[] = ['messageTimeoutMs', 'maxRetryCount', 'maxSubscriberCount', 'checkpointAfterMs', 'minCheckpointCount', 'maxCheckpointCount'];
  for (const key of nonNegative) {
    const value = settings[key] as number;
    if (!Number.isInteger(value) || value < 0) return `${key} must be a non-negative integer, got ${value}`;
  }
  if (settings.readBatchSize > settings.historyBufferSize) {
    return `readBatchSize (${settings.readBatchSize}) must not exceed historyBufferSize (${settings.historyBufferSize})`;
  }
  if (settings.minCheckpointCount > settings.maxCheckpointCount) {
    return `minCheckpointCount (${settings.minCheckpointCount}) must not exceed maxCheckpointCount (${settings.maxCheckpointCount})`;
  }
  if (!CONSUMER_STRATEGIES.includes(settings.strategy)) return `unknown consumer strategy ${String(settings.strategy)}`;
  return undefined;
}
