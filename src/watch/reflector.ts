/** Applies watcher events to a store, trimmed of fields nobody reads, and passes them on. */

import type { StoreWriter } from "./store.ts";
import type { WatcherEvent } from "./watcher.ts";

/** The client-side-apply copy of the whole object: often the largest field, never read by kf. */
export const LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * Applies each event to the writer, then yields it (trimmed) for consumers that want the events too.
 * Ends when events end.
 */
export async function* reflector<T>(
  events: AsyncIterable<WatcherEvent<T>>,
  writer: StoreWriter<T>,
): AsyncGenerator<WatcherEvent<T>> {
  for await (const event of events) {
    const trimmed = trimEvent(event);
    writer.apply(trimmed);
    yield trimmed;
  }
}

/** Applies every event to the writer until events end. */
export async function reflect<T>(
  events: AsyncIterable<WatcherEvent<T>>,
  writer: StoreWriter<T>,
): Promise<void> {
  for await (const _ of reflector(events, writer)) {
    // applying is all we want
  }
}

function trimEvent<T>(event: WatcherEvent<T>): WatcherEvent<T> {
  switch (event.type) {
    case "initApply":
    case "apply":
    case "delete":
      return { ...event, object: trimForStore(event.object) };
    default:
      return event;
  }
}

/**
 * A copy without metadata.managedFields and the last-applied annotation: together they can be most of an
 * object's size, and a store holds every pod of a selector. The input is not modified.
 */
export function trimForStore<T>(object: T): T {
  const metadata = (object as { metadata?: Record<string, unknown> } | null)?.metadata;
  if (!metadata || typeof metadata !== "object") return object;
  const annotations = metadata.annotations as Record<string, string> | undefined;
  const hasAnnotation = annotations !== undefined && annotations !== null &&
    Object.hasOwn(annotations, LAST_APPLIED_ANNOTATION);
  if (!("managedFields" in metadata) && !hasAnnotation) return object;
  const { managedFields: _managedFields, ...rest } = metadata;
  if (hasAnnotation) {
    const { [LAST_APPLIED_ANNOTATION]: _lastApplied, ...others } = annotations;
    rest.annotations = others;
  }
  return { ...object, metadata: rest } as T;
}
