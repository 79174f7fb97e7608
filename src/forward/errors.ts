/** Errors of the forwarding engine; each fails one connection or one forward, never the session. */

import { KfError } from "../errors.ts";

/** No ready pod appeared within the wait budget of a new connection. */
export class NoReadyPodError extends KfError {
  override name = "NoReadyPodError";
}

/** The pod answered the port-forward with an error (port not listening, pod gone). */
export class PodPortError extends KfError {
  override name = "PodPortError";
  readonly pod: string;
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

/** The local address cannot be bound: only this forward fails. */
export class LocalListenError extends KfError {
  override name = "LocalListenError";
}
