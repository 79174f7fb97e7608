/** Watches Kubernetes objects into shared in-memory stores: watcher -> reflector -> store. */

export {
  Backoff,
  BACKOFF_FACTOR,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  BACKOFF_RESET_AFTER_MS,
  type BackoffOptions,
} from "./backoff.ts";
export {
  DEFAULT_IDLE_TIMEOUT_MS,
  describeSelection,
  IDLE_MARGIN_MS,
  kubeListWatch,
  type KubeListWatchOptions,
  type ListResult,
  type ListWatchApi,
  MAX_WATCH_TIMEOUT_S,
  MIN_IDLE_TIMEOUT_MS,
  MIN_WATCH_TIMEOUT_S,
  type RawWatchEvent,
  watcher,
  type WatcherEvent,
  type WatcherOptions,
  WatchIdleError,
} from "./watcher.ts";
export {
  objectKey,
  type Store,
  type StoreState,
  type StoreStatus,
  StoreWriter,
  type StoreWriterOptions,
} from "./store.ts";
export { LAST_APPLIED_ANNOTATION, reflect, reflector, trimForStore } from "./reflector.ts";
export {
  SharedWatches,
  type SharedWatchesOptions,
  type WatchKey,
  type WatchLease,
} from "./shared_watches.ts";
