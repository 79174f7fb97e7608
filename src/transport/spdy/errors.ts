/** Errors of the SPDY/3.1 transport: a broken protocol, a reset stream, a lost connection. */

import { KfError, type KfErrorOptions } from "../../errors.ts";

/** The peer sent something SPDY/3.1 does not allow (or a header block that does not decompress). */
export class SpdyProtocolError extends KfError {
  override name = "SpdyProtocolError";
}

/** A stream was reset (RST_STREAM) by the peer or by us; `status` is the SPDY status code. */
export class SpdyStreamResetError extends KfError {
  override name = "SpdyStreamResetError";
  readonly status: number;
  /** True when the peer sent the RST_STREAM, false when this side reset the stream. */
  readonly byPeer: boolean;

  /** streamId undefined: the shared error of routine resets (see CANCELLED_BY_US). */
  constructor(streamId: number | undefined, status: number, byPeer: boolean, options: KfErrorOptions = {}) {
    super(
      `Cannot use SPDY stream${streamId === undefined ? "" : ` ${streamId}`} as it was reset by ${
        byPeer ? "the server" : "this side"
      }: ${resetStatusName(status)}`,
      options,
    );
    this.status = status;
    this.byPeer = byPeer;
  }
}

/** The connection ended (closed, failed, went away or stopped answering pings) before the stream did. */
export class SpdyConnectionClosedError extends KfError {
  override name = "SpdyConnectionClosedError";
  /** The server never processed the stream (GOAWAY, ids exhausted): opening it again elsewhere is safe. */
  readonly retryable: boolean;

  constructor(message: string, options: KfErrorOptions & { retryable?: boolean } = {}) {
    super(message, { hint: options.hint ?? "open a new port-forward connection", cause: options.cause });
    this.retryable = options.retryable ?? false;
  }
}

const RESET_STATUS_NAMES: Record<number, string> = {
  1: "PROTOCOL_ERROR",
  2: "INVALID_STREAM",
  3: "REFUSED_STREAM",
  4: "UNSUPPORTED_VERSION",
  5: "CANCEL",
  6: "INTERNAL_ERROR",
  7: "FLOW_CONTROL_ERROR",
  8: "STREAM_IN_USE",
  9: "STREAM_ALREADY_CLOSED",
  11: "FRAME_TOO_LARGE",
};

/** "CANCEL (5)" for status 5; unknown codes keep their number. */
export function resetStatusName(status: number): string {
  return `${RESET_STATUS_NAMES[status] ?? "UNKNOWN"} (${status})`;
}

/**
 * This side cancelled a stream it is done with (the local connection ended, or its idle stream went back to
 * the pool): routine on every forwarded connection, so one frozen error serves them all instead of one built
 * per reset (~5 µs each, measured).
 */
export const CANCELLED_BY_US: SpdyStreamResetError = Object.freeze(
  // 5: RstStatus.CANCEL (frames.ts imports this module, so not imported from there)
  new SpdyStreamResetError(undefined, 5, false),
);
