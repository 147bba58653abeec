import { InvalidArgumentError } from '../../errors.js';
import type { Position } from '../../store/types.js';
import { DEFAULT_GROUP_SETTINGS, settingsProblem, type GroupSettings } from '../core/group-settings.js';
import type { Checkpoint, RestoredAckState } from '../core/persistent-group.js';

/**
 * Where persistent subscriptions keep their state: events in system streams, so it is in the log,
 * replicated with everything else, and any node that becomes leader finds it. Stream names follow
 * KurrentDB's (`$persistentSubscriptionConfig`, `$persistentsubscription-<stream>::<group>-checkpoint`
 * and `-parked`); the event bodies are Chronicle's own JSON.
 */
export const CONFIG_STREAM = '$persistentSubscriptionConfig';
export const CONFIG_EVENT_TYPE = '$PersistentConfig';
export const ACK_STATE_EVENT_TYPE = '$SubscriptionAckState';
export const LINK_EVENT_TYPE = '$>';
const SUBSCRIPTION_STREAM_PREFIX = '$persistentsubscription-';
const ALL = '$all';

/** The source a group reads: one stream, or `$all` with an optional filter. */
export type GroupSource = { kind: 'stream'; stream: string } | { kind: 'all' };

export type StreamStart = { kind: 'start' } | { kind: 'end' } | { kind: 'revision'; revision: number };
export type AllStart = { kind: 'start' } | { kind: 'end' } | { kind: 'position'; position: Position };

export interface AllFilterDefinition {
  on: 'stream' | 'event-type';
  prefixes: string[];
  regex?: string;
}

export interface GroupDefinition {
  source: GroupSource;
  group: string;
  /** Set when the group is created: ack state left by an earlier group of the same name is not this group's. */
  generation: string;
  settings: GroupSettings;
  /** As the client asked (reported back by GetInfo). */
  startFrom: StreamStart | AllStart;
  /**
   * Where reading begins when no checkpoint exists yet: "end" is resolved when the group is
   * created, so a group that has handled nothing yet still never skips what was written since.
   */
  resolvedStart: { revision: number } | { position: Position };
  filter?: AllFilterDefinition;
}

export function sourceName(source: GroupSource): string {
  return source.kind === 'all' ? ALL : source.stream;
}

export function groupKey(source: GroupSource, group: string): string {
  return `${sourceName(source)}::${group}`;
}

export function checkpointStreamOf(source: GroupSource, group: string): string {
  return `${SUBSCRIPTION_STREAM_PREFIX}${groupKey(source, group)}-checkpoint`;
}

export function parkedStreamOf(source: GroupSource, group: string): string {
  return `${SUBSCRIPTION_STREAM_PREFIX}${groupKey(source, group)}-parked`;
}

/** Persistent subscriptions' own streams: never delivered to `$all` groups (a group would feed on its own acks). */
export function isSubscriptionStateStream(stream: string): boolean {
  return stream === CONFIG_STREAM || stream.startsWith(SUBSCRIPTION_STREAM_PREFIX) || stream.startsWith(`$$${SUBSCRIPTION_STREAM_PREFIX}`);
}

// ------------------------------------------------------------------ config

interface ConfigDocument {
  version: 1;
  groups: GroupDefinition[];
}

export function encodeConfig(groups: Iterable<GroupDefinition>): Uint8Array {
  const document: ConfigDocument = { version: 1, groups: [...groups] };
  return Buffer.from(JSON.stringify(document), 'utf8');
}

export function decodeConfig(data: Uint8Array): GroupDefinition[] {
  const document = JSON.parse(Buffer.from(data).toString('utf8')) as ConfigDocument;
  if (document.version !== 1 || !Array.isArray(document.groups)) throw new Error(`unreadable ${CONFIG_EVENT_TYPE} event (version ${String(document.version)})`);
  // Settings added in later versions get their defaults.
  return document.groups.map((group) => ({ ...group, settings: { ...DEFAULT_GROUP_SETTINGS, ...group.settings } }));
}

export function validateGroupName(group: string): void {
  if (group.length === 0) throw new InvalidArgumentError('a persistent subscription needs a group name');
  if (Buffer.byteLength(group, 'utf8') > 256) throw new InvalidArgumentError('a persistent subscription group name is limited to 256 bytes', { group: group.slice(0, 64) });
}

export function validateDefinition(definition: GroupDefinition): void {
  validateGroupName(definition.group);
  if (definition.source.kind === 'stream' && definition.source.stream.length === 0) throw new InvalidArgumentError('a persistent subscription needs a stream name');
  const problem = settingsProblem(definition.settings);
  if (problem) throw new InvalidArgumentError(`invalid persistent subscription settings: ${problem}`, { group: definition.group });
  if (definition.filter?.regex !== undefined) {
    try {
      new RegExp(definition.filter.regex);
    } catch (error) {
      throw new InvalidArgumentError(`the filter's regular expression does not compile: ${(error as Error).message}`, { group: definition.group });
    }
  }
}

// ------------------------------------------------------------------ ack state

/** A group's cursor: a stream revision, or a `$all` position. */
export type GroupPosition = number | Position;

interface AckStateDocument {
  checkpoint: Checkpoint<GroupPosition> | null;
  handledBeyond: number[];
  /** [sequence, retry count of the last delivery] of unhandled messages already delivered. */
  delivered?: [number, number][];
}

export function encodeAckState(state: { checkpoint: Checkpoint<GroupPosition> | undefined; handledBeyond: readonly number[]; delivered: readonly [number, number][] }): Uint8Array {
  const document: AckStateDocument = { checkpoint: state.checkpoint ?? null, handledBeyond: [...state.handledBeyond], delivered: state.delivered.map(([sequence, retryCount]) => [sequence, retryCount]) };
  return Buffer.from(JSON.stringify(document), 'utf8');
}

export function decodeAckState(data: Uint8Array): RestoredAckState<GroupPosition> {
  const document = JSON.parse(Buffer.from(data).toString('utf8')) as AckStateDocument;
  return { checkpoint: document.checkpoint ?? undefined, handledBeyond: document.handledBeyond ?? [], delivered: document.delivered ?? [] };
}

// ------------------------------------------------------------------ parked messages

/** A link's body: `<revision>@<stream>`, the format KurrentDB's links use. */
export function linkData(stream: string, revision: number): Uint8Array {
  return Buffer.from(`${revision}@${stream}`, 'utf8');
}

export function parseLink(data: Uint8Array): { stream: string; revision: number } | undefined {
  const text = Buffer.from(data).toString('utf8');
  const at = text.indexOf('@');
  if (at <= 0) return undefined;
  const revision = Number(text.slice(0, at));
  if (!Number.isSafeInteger(revision) || revision < 0) return undefined;
  return { stream: text.slice(at + 1), revision };
}

// ------------------------------------------------------------------ how GetInfo reports positions

export function formatStart(definition: GroupDefinition): string {
  const start = definition.startFrom;
  if (definition.source.kind === 'stream') {
    if (start.kind === 'start') return '0';
    if (start.kind === 'end') return '-1';
    return String((start as { revision: number }).revision);
  }
  if (start.kind === 'start') return 'C:0/P:0';
  if (start.kind === 'end') return 'C:-1/P:-1';
  const position = (start as { position: Position }).position;
  return formatAllPosition(position);
}

export function formatAllPosition(position: Position): string {
  return `C:${position.commit}/P:${position.prepare}`;
}

export function formatGroupPosition(position: GroupPosition | undefined): string {
  if (position === undefined) return '';
  return typeof position === 'number' ? String(position) : formatAllPosition(position);
}
