/** Errors of the forwarding engine; each fails one connection or one forward, never the session. */

import { KfError } from "../errors.ts";

/** No ready pod appeared within the wait budget of a new connection. */
export class NoReadyPodError extends KfError {
  override name = "NoReadyPodError";
}

/** The local address cannot be bound: only this forward fails. */
export class LocalListenError extends KfError {
  override name = "LocalListenError";
}
