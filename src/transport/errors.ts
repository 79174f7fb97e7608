/** Errors a pod stream ends with; the kubelet's error text is read here, and only here. */

import { KfError } from "../errors.ts";

/** The pod answered the port-forward with an error (port not listening, pod gone). */
export class PodPortError extends KfError {
  override name = "PodPortError";
  readonly pod: string;
  /** The pod itself is gone (retry on another pod), not just one of its ports. */
  readonly podGone: boolean;

  constructor(pod: string, message: string, podGone: boolean) {
    super(`Pod ${pod}: ${message}`, {
      hint: podGone
        ? "the pod went away; kf retries on another ready pod"
        : "check that the container listens on that port",
    });
    this.pod = pod;
    this.podGone = podGone;
  }
}

/** The far end stopped answering: the path died (laptop sleep, VPN switch, dropped NAT). */
export class PathTimeoutError extends KfError {
  override name = "PathTimeoutError";
  /** `by`: kf's ping went unanswered, or the kernel's keepalive (or unacknowledged data) timed out. */
  constructor(pod: string, timeoutMs: number, by: "ping" | "kernel" = "ping") {
    super(
      by === "ping"
        ? `the connection to pod ${pod} did not answer a ping within ${timeoutMs} ms`
        : `the connection to pod ${pod} went unanswered for ${
          Math.round(timeoutMs / 1000)
        } s (TCP keepalive)`,
      { hint: "the network path to the API server may be down; kf reconnects when it is back" },
    );
  }
}

/** Texts the kubelet and runtimes use when the pod's sandbox no longer exists: retry on another pod. */
const POD_GONE_PATTERNS = [
  /network namespace for sandbox .* is closed/i,
  /failed to find sandbox/i,
  /sandbox .* is not running/i,
  /no such container/i,
  /not found/i,
  /container not running/i,
];

/** How a port-forward error text should be treated; the protocol gives only text. */
export type PodErrorKind = "pod-gone" | "port-unreachable";

export function classifyPodError(text: string): PodErrorKind {
  return POD_GONE_PATTERNS.some((pattern) => pattern.test(text)) ? "pod-gone" : "port-unreachable";
}

/** The typed error for the text the kubelet sent on a port-forward's error channel or stream. */
export function podErrorFromText(pod: string, text: string): PodPortError {
  return new PodPortError(pod, text.trim(), classifyPodError(text) === "pod-gone");
}
