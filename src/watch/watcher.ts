/** Turns Kubernetes list+watch into an endless stream of events that survives timeouts, 410s and outages. */

import { type Clock, systemClock } from "../clock.ts";
import { KfError } from "../errors.ts";
import type { KubeClient } from "../kube/client.ts";
import { ApiError, type RequestPurpose } from "../kube/errors.ts";
import { Backoff } from "./backoff.ts";

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export type RawWatchEvent<T> =
  | { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK"; object: T }
  | { type: "ERROR"; object: { code?: number; reason?: string; message?: string } };

/** The two API calls a watcher needs; the seam that tests replace with scripted arrays. */
export interface ListWatchApi<T> {
  /** Human description for errors/logs, e.g. "pods -l app=echo in namespace default". */
  describe: string;
  /** Named in errors built from ERROR watch events, so they read like request errors. */
  watchPurpose?: RequestPurpose;
  list(signal: AbortSignal): Promise<ListResult<T>>;
  watch(
    resourceVersion: string,
    options: { timeoutSeconds: number; signal: AbortSignal },
  ): AsyncIterable<RawWatchEvent<T>>;
}

export type WatcherEvent<T> =
  /** A (re)list succeeded and its objects follow: the store starts buffering. */
  | { type: "init" }
  /** One listed object: the store adds it to the buffer. */
  | { type: "initApply"; object: T }
  /** The list is complete: the store swaps the buffer in atomically (unlisted objects disappear). */
  | { type: "initDone" }
  /** Added or modified: the store replaces the object now. */
  | { type: "apply"; object: T }
  /** Deleted: the store drops the object now. */
  | { type: "delete"; object: T }
  /** Recoverable: the watcher retries after retryInMs; the store keeps its objects but turns degraded. */
  | { type: "error"; error: Error; retryInMs?: number }
  /** The watch works again after an error without a relist (e.g. a bookmark arrived): the store is ready. */
  | { type: "resumed" };

export interface WatcherOptions {
  /** Ends the stream: the iterable returns, it never throws. */
  signal: AbortSignal;
  /** @default systemClock */
  clock?: Clock;
  /** Uniform in [0, 1), for backoff jitter and watch timeouts. @default Math.random */
  random?: () => number;
  /**
   * A watch that delivers nothing (not even a bookmark) for this long is presumed dead (e.g. a half-open
   * TCP connection) and is reopened. Values below MIN_IDLE_TIMEOUT_MS are raised to it.
   * @default 660000
   */
  idleTimeoutMs?: number;
}

// client-go's reflector asks for timeoutSeconds = 5 min * (1 + rand): spread over 5–10 min, the watches of
// many clients do not all reconnect at the same moment after an apiserver restart.
/** Shortest server-side watch timeout we ask for. */
export const MIN_WATCH_TIMEOUT_S = 300;
/** Longest server-side watch timeout we ask for. */
export const MAX_WATCH_TIMEOUT_S = 600;
/** The server ends a watch at its timeout; give it this long beyond the longest one before suspecting it. */
export const IDLE_MARGIN_MS = 60_000;
/** Default watchdog: the longest server timeout plus a margin, so a healthy watch is never cut. */
export const DEFAULT_IDLE_TIMEOUT_MS = MAX_WATCH_TIMEOUT_S * 1000 + IDLE_MARGIN_MS;
/** Bookmarks arrive about once a minute on a healthy watch; a watchdog shorter than that plus slack would cut them. */
export const MIN_IDLE_TIMEOUT_MS = 90_000;

/** A watch delivered nothing for longer than the idle timeout; it is reopened from the last resource version. */
export class WatchIdleError extends KfError {
  override name = "WatchIdleError";
  readonly idleMs: number;

  constructor(describe: string, idleMs: number) {
    super(`Cannot keep watching ${describe} as the stream was silent for ${Math.round(idleMs / 1000)} s`, {
      hint:
        "the connection to the API server probably dropped without closing; kf reopens the watch by itself",
    });
    this.idleMs = idleMs;
  }
}

/**
 * Lists, then watches from the list's resource version, forever: recovery is a state transition and errors
 * are events, so the iterable only ends when the signal aborts (or the consumer stops reading).
 */
export function watcher<T>(api: ListWatchApi<T>, options: WatcherOptions): AsyncIterable<WatcherEvent<T>> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const context: StepContext<T> = {
    api,
    signal: options.signal,
    clock,
    random,
    idleTimeoutMs: Math.max(MIN_IDLE_TIMEOUT_MS, options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS),
  };
  return run(context, new Backoff({ clock, random }));
}

/** Where the watcher is; each variant says what the next step does. */
type State<T> =
  /** Nothing trustworthy is known: the next step lists (success -> InitListed, failure -> Empty again). */
  | { kind: "empty" }
  /** We hold everything up to rv: the next step opens a watch from rv (-> Watching). */
  | { kind: "initListed"; rv: string }
  /**
   * A watch from rv is open: the next step reads one event. Objects and bookmarks advance rv; the server
   * ending the stream -> InitListed (re-watch, no relist); 410 -> Empty (relist); other errors and the
   * idle watchdog -> InitListed after a backoff.
   */
  | {
    kind: "watching";
    rv: string;
    stream: AsyncIterator<RawWatchEvent<T>>;
    abort: AbortController;
    /** Whether this stream delivered anything at all (a bookmark counts). */
    sawEvent: boolean;
  };

/**
 * How a step went, for the backoff: success resets it; failure reports the error and waits; quiet waits
 * without reporting (a watch that ended or expired before delivering anything, so a misbehaving server
 * cannot make us loop hot); neutral does neither.
 */
type Outcome =
  | { kind: "success" }
  | { kind: "failure"; error: Error }
  | { kind: "quiet" }
  | { kind: "neutral" };

interface Step<T> {
  next: State<T>;
  events: WatcherEvent<T>[];
  outcome: Outcome;
}

interface StepContext<T> {
  api: ListWatchApi<T>;
  signal: AbortSignal;
  clock: Clock;
  random: () => number;
  idleTimeoutMs: number;
}

const SUCCESS: Outcome = { kind: "success" };
const NEUTRAL: Outcome = { kind: "neutral" };
const QUIET: Outcome = { kind: "quiet" };

async function* run<T>(context: StepContext<T>, backoff: Backoff): AsyncGenerator<WatcherEvent<T>> {
  const { signal, clock } = context;
  let state: State<T> = { kind: "empty" };
  // an error event was the last word on health: the next success must say so
  let failing = false;
  const wait = async (ms: number): Promise<boolean> => {
    try {
      await clock.sleep(ms, signal);
      return true;
    } catch {
      return false; // only the signal ends a sleep early
    }
  };
  try {
    while (!signal.aborted) {
      const step: Step<T> = await advance(state, context);
      state = step.next;
      if (signal.aborted) return;
      const { outcome } = step;
      if (outcome.kind === "failure") {
        failing = true;
        const retryInMs = backoff.next();
        yield { type: "error", error: outcome.error, retryInMs };
        if (!(await wait(retryInMs))) return;
        continue;
      }
      if (outcome.kind === "quiet" && !(await wait(backoff.next()))) return;
      if (outcome.kind === "success") {
        backoff.reset();
        // a relist's initDone already tells the store that all is well
        if (failing && !step.events.some((event) => event.type === "initDone")) yield { type: "resumed" };
        failing = false;
      }
      for (const event of step.events) yield event;
    }
  } finally {
    if (state.kind === "watching") closeStream(state);
  }
}

/** The step function: one transition from state, with the events it emits. */
function advance<T>(state: State<T>, context: StepContext<T>): Promise<Step<T>> {
  switch (state.kind) {
    case "empty":
      return list(context);
    case "initListed":
      return Promise.resolve(openWatch(state.rv, context));
    case "watching":
      return readWatch(state, context);
  }
}

async function list<T>({ api, signal }: StepContext<T>): Promise<Step<T>> {
  let result: ListResult<T>;
  try {
    result = await api.list(signal);
  } catch (error) {
    return { next: { kind: "empty" }, events: [], outcome: failure(error) };
  }
  const events: WatcherEvent<T>[] = [{ type: "init" }];
  for (const object of result.items) events.push({ type: "initApply", object });
  events.push({ type: "initDone" });
  return { next: { kind: "initListed", rv: result.resourceVersion }, events, outcome: SUCCESS };
}

/** Uniform over [MIN_WATCH_TIMEOUT_S, MAX_WATCH_TIMEOUT_S] whole seconds. */
function watchTimeoutSeconds(random: () => number): number {
  const span = MAX_WATCH_TIMEOUT_S - MIN_WATCH_TIMEOUT_S;
  return MIN_WATCH_TIMEOUT_S + Math.min(span, Math.floor(random() * (span + 1)));
}

function openWatch<T>(rv: string, { api, signal, random }: StepContext<T>): Step<T> {
  const abort = new AbortController();
  const timeoutSeconds = watchTimeoutSeconds(random);
  try {
    const stream = api.watch(rv, { timeoutSeconds, signal: AbortSignal.any([signal, abort.signal]) })[
      Symbol.asyncIterator
    ]();
    return { next: { kind: "watching", rv, stream, abort, sawEvent: false }, events: [], outcome: NEUTRAL };
  } catch (error) {
    return { next: { kind: "initListed", rv }, events: [], outcome: failure(error) };
  }
}

type Read<T> =
  | { kind: "item"; result: IteratorResult<RawWatchEvent<T>> }
  | { kind: "thrown"; error: unknown }
  | { kind: "idle" }
  | { kind: "aborted" };

async function readWatch<T>(
  state: State<T> & { kind: "watching" },
  context: StepContext<T>,
): Promise<Step<T>> {
  const { api, signal, clock, idleTimeoutMs } = context;
  // one timer per read, cancelled when the read wins; linked to the outer signal by hand rather than with
  // AbortSignal.any, which would register a dependent signal on the long-lived one for every event
  const watchdog = new AbortController();
  const stopWatchdog = () => watchdog.abort();
  signal.addEventListener("abort", stopWatchdog, { once: true });
  let read: Read<T>;
  try {
    read = await Promise.race<Read<T>>([
      state.stream.next().then(
        (result) => ({ kind: "item", result }),
        (error) => ({ kind: "thrown", error }),
      ),
      clock.sleep(idleTimeoutMs, watchdog.signal).then(
        () => ({ kind: "idle" }),
        () => ({ kind: "aborted" }),
      ),
    ]);
  } finally {
    signal.removeEventListener("abort", stopWatchdog);
    watchdog.abort();
  }
  const { rv } = state;
  switch (read.kind) {
    case "aborted":
      return { next: state, events: [], outcome: NEUTRAL };
    case "idle":
      closeStream(state);
      return {
        next: { kind: "initListed", rv },
        events: [],
        outcome: { kind: "failure", error: new WatchIdleError(api.describe, idleTimeoutMs) },
      };
    case "thrown":
      closeStream(state);
      if (read.error instanceof ApiError && read.error.status === 410) return expired(state);
      return { next: { kind: "initListed", rv }, events: [], outcome: failure(read.error) };
    case "item":
      if (read.result.done) {
        // the server's timeoutSeconds ran out: carry on from where we are
        return { next: { kind: "initListed", rv }, events: [], outcome: state.sawEvent ? SUCCESS : QUIET };
      }
      return onWatchEvent(state, read.result.value, api);
  }
}

function onWatchEvent<T>(
  state: State<T> & { kind: "watching" },
  raw: RawWatchEvent<T>,
  api: ListWatchApi<T>,
): Step<T> {
  const seen = (rv: string) => ({ ...state, rv, sawEvent: true });
  switch (raw?.type) {
    case "ADDED":
    case "MODIFIED":
      return {
        next: seen(resourceVersionOf(raw.object) ?? state.rv),
        events: [{ type: "apply", object: raw.object }],
        outcome: SUCCESS,
      };
    case "DELETED":
      return {
        next: seen(resourceVersionOf(raw.object) ?? state.rv),
        events: [{ type: "delete", object: raw.object }],
        outcome: SUCCESS,
      };
    case "BOOKMARK":
      return { next: seen(resourceVersionOf(raw.object) ?? state.rv), events: [], outcome: SUCCESS };
    case "ERROR": {
      closeStream(state);
      const status = raw.object ?? {};
      if (status.code === 410) return expired(state);
      const error = new ApiError(
        status.code ?? 0,
        status.message ?? status.reason ?? `watch of ${api.describe}`,
        {
          reason: status.reason,
          purpose: api.watchPurpose,
        },
      );
      return { next: { kind: "initListed", rv: state.rv }, events: [], outcome: { kind: "failure", error } };
    }
    default:
      // an event type from a newer server: nothing we can apply, and no reason to drop the watch
      return { next: state, events: [], outcome: NEUTRAL };
  }
}

/** 410 Gone: our resource version is older than the server keeps, so only a relist can resync. */
function expired<T>(state: State<T> & { kind: "watching" }): Step<T> {
  return { next: { kind: "empty" }, events: [], outcome: state.sawEvent ? NEUTRAL : QUIET };
}

function closeStream<T>(state: State<T> & { kind: "watching" }): void {
  state.abort.abort();
  // not awaited: return() queues behind a pending next(), which only settles once the abort reached it
  state.stream.return?.()?.catch(() => {});
}

function failure(error: unknown): Outcome {
  return { kind: "failure", error: error instanceof Error ? error : new Error(String(error)) };
}

function resourceVersionOf(object: unknown): string | undefined {
  const rv = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
  return typeof rv === "string" && rv !== "" ? rv : undefined;
}

/** Which objects kubeListWatch lists and watches. */
export interface KubeListWatchOptions {
  resource: "pods" | "services";
  namespace: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** The ListWatchApi for namespaced core/v1 pods or services over a KubeClient. */
export function kubeListWatch<T>(client: KubeClient, options: KubeListWatchOptions): ListWatchApi<T> {
  const { resource, namespace } = options;
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/${resource}`;
  const selectors = {
    labelSelector: options.labelSelector || undefined,
    fieldSelector: options.fieldSelector || undefined,
  };
  const watchPurpose: RequestPurpose = { verb: "watch", resource, namespace };
  return {
    describe: describeSelection(options),
    watchPurpose,
    async list(signal) {
      // no resourceVersion: a consistent read, so a relist never goes back in time
      const body = await client.getJson<{ metadata?: { resourceVersion?: string }; items?: T[] | null }>(
        path,
        {
          query: selectors,
          signal,
          purpose: { verb: "list", resource, namespace },
        },
      );
      return { items: body.items ?? [], resourceVersion: body.metadata?.resourceVersion ?? "" };
    },
    async *watch(resourceVersion, { timeoutSeconds, signal }) {
      const lines = client.streamJsonLines(path, {
        query: {
          watch: "1",
          resourceVersion,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(timeoutSeconds),
          ...selectors,
        },
        signal,
        purpose: watchPurpose,
      });
      for await (const line of lines) yield line as RawWatchEvent<T>;
    },
  };
}

/** "pods -l app=echo in namespace default". */
export function describeSelection(options: KubeListWatchOptions): string {
  let text = options.resource;
  if (options.labelSelector) text += ` -l ${options.labelSelector}`;
  if (options.fieldSelector) text += ` --field-selector ${options.fieldSelector}`;
  return `${text} in namespace ${options.namespace}`;
}
