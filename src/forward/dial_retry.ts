/**
 * What a failed upstream dial means for the connection waiting on it. An API server that restarts, an etcd
 * that is briefly gone, a VPN that drops: all answer a dial with a refused connection, a reset, a timeout or
 * a 5xx for a few seconds. A connection waiting for a ready pod already waits up to its pod-wait budget; a
 * connection whose dial failed for such a passing reason must wait the same way instead of failing at once
 * (that made an API server restart fail every request of a curl loop while a silent outage lost none).
 */

import { ApiError, ApiUnreachableError } from "../kube/errors.ts";
import { SpdyConnectionClosedError } from "../transport/mod.ts";

export type DialFailure =
  /** The pod is gone (404) or stopped being ready during the dial: pick another pod now. */
  | "pod-gone"
  /** The API server or the path to it is in trouble: wait (backoff) and dial again, within the budget. */
  | "transient"
  /** A definitive answer (401, 403, a bad port, bad credentials): retrying cannot help, fail now. */
  | "final";

/**
 * Statuses that mean "not now" rather than "no": 408 request timeout, 429 throttled, 500 (etcd errors
 * surface as 500 "etcdserver: ..." or "context deadline exceeded"), 502/503/504 from the API server or a
 * proxy or load balancer in front of it.
 */
const TRANSIENT_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/** Classifies why a dial failed; `abandoned` is true when kf itself gave up on the pod mid-dial. */
export function classifyDialFailure(error: unknown, abandoned = false): DialFailure {
  if (abandoned) return "pod-gone";
  if (error instanceof ApiError) {
    if (error.status === 404) return "pod-gone";
    return TRANSIENT_STATUSES.has(error.status) ? "transient" : "final";
  }
  // refused, reset, DNS, TLS handshake failure, no answer in time: the server or the path, never the pod
  if (error instanceof ApiUnreachableError) return "transient";
  // a pooled SPDY connection died under us (its path dropped): a new one may well work
  if (error instanceof SpdyConnectionClosedError) return "transient";
  return "final";
}

/** Delays between dials of one waiting connection: the first retry is quick, later ones at most 2 s apart. */
export const DIAL_RETRY_INITIAL_MS = 250;
export const DIAL_RETRY_MAX_MS = 2_000;
