/**
 * Chronicle as a library: the same engine the server runs, in your process.
 *
 *   import { EventStore } from 'chronicle';
 *   const store = await EventStore.open({ directory: './data' });   // or { inMemory: true }
 *   await store.appendToStream('order-1', [{ type: 'OrderPlaced', data: { total: 10 } }], { expectedState: 'no_stream' });
 *   const events = await store.readStream('order-1');
 */
export { EventStore, TOMBSTONE_REVISION, type EventStoreOptions } from '../store/event-store.js';
export { subscribeToAll, subscribeToStream, type SubscribeToAllOptions, type SubscribeToStreamOptions } from '../store/catch-up.js';
export type {
  AppendOptions,
  AppendResult,
  ContentType,
  DeleteResult,
  Direction,
  EventData,
  EventFilter,
  ExpectedState,
  MultiStreamAppendResult,
  Position,
  ReadAllOptions,
  ReadAllResult,
  ReadStreamOptions,
  RecordedEvent,
  StreamMetadataResult,
} from '../store/types.js';
export {
  ChronicleError,
  ERROR_REGISTRY,
  EventIdConflictError,
  InvalidArgumentError,
  MaximumAppendSizeExceededError,
  StorageFailureError,
  StoreUnavailableError,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
  PersistentSubscriptionNotFoundError,
  PersistentSubscriptionExistsError,
  MaximumSubscribersReachedError,
  PersistentSubscriptionDroppedError,
  type ErrorCode,
} from '../errors.js';
export { LogCorruptionError, LogFailedError } from '../storage/errors.js';
export { PersistentSubscriptionHost, type GroupRequest } from '../subscriptions/persistent/host.js';
export type { ConsumerHandle, ConsumerSink, GroupInfo } from '../subscriptions/persistent/group-runtime.js';
export type { SubscriptionMessage } from '../subscriptions/persistent/group-reader.js';
export { DEFAULT_GROUP_SETTINGS, type ConsumerStrategy, type GroupSettings } from '../subscriptions/core/group-settings.js';
export type { NackAction } from '../subscriptions/core/persistent-group.js';
export { MemoryFileSystem } from '../storage/memory-file-system.js';
export type { FileSystem, LogFile } from '../storage/file-system.js';
