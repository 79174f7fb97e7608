/**
 * Tells an HTTP/1.x connection from anything else by its first bytes (protocol "auto"), while the first
 * upstream opens in parallel so neither kind waits longer than with plain TCP. A pod that speaks first
 * (MySQL, SMTP, SSH banners) means the client is waiting for it: such a connection is TCP at once.
 */

import { DATA_CHANNEL, PortForwardDecoder } from "../channel_frames.ts";
import type { Upstream } from "../upstream.ts";
import { sniffProtocol } from "./framing.ts";
import { concatBytes } from "../../bytes.ts";

export type Sniffed =
  | { protocol: "http"; bytes: Uint8Array }
  // the client's first bytes as a data frame (channel byte first), or a read still running
  | { protocol: "tcp"; firstFrame: Promise<Uint8Array | undefined> };

const FIRST_READ_BYTES = 16 * 1024;

export async function sniffConnection(local: Deno.Conn, upstream: Promise<Upstream>): Promise<Sniffed> {
  const readFrame = async (): Promise<Uint8Array | undefined> => {
    const buffer = new Uint8Array(1 + FIRST_READ_BYTES);
    const n = await local.read(buffer.subarray(1));
    if (n === null) return undefined;
    buffer[0] = DATA_CHANNEL;
    return buffer.subarray(0, 1 + n);
  };
  const podSpoke = Promise.withResolvers<"pod">();
  let settled = false;
  let detach = () => {};
  upstream.then((u) => {
    if (settled) return;
    // messages are kept in the upstream's early list, in order, for whoever carries the connection
    const decoder = new PortForwardDecoder();
    const heard = (message: Uint8Array) => decoder.decode(message) !== undefined;
    if (u.early.some(heard)) return podSpoke.resolve("pod");
    const onMessage = (message: Uint8Array) => {
      u.early.push(message);
      if (heard(message)) podSpoke.resolve("pod");
    };
    const onClose = () => podSpoke.resolve("pod");
    u.ws.on("message", onMessage);
    u.ws.on("close", onClose);
    detach = () => {
      u.ws.off("message", onMessage);
      u.ws.off("close", onClose);
    };
    if (u.ws.readyState !== 1) podSpoke.resolve("pod");
  }, () => podSpoke.resolve("pod"));

  let collected: Uint8Array = new Uint8Array(0);
  let pending = readFrame();
  const done = (result: Sniffed): Sniffed => {
    settled = true;
    detach();
    return result;
  };
  const withCollected = (frame: Promise<Uint8Array | undefined>) =>
    collected.length === 0
      ? frame
      : frame.then((f) => dataFrame(f ? concatBytes([collected, f.subarray(1)]) : collected));
  while (true) {
    const first = await Promise.race([pending, podSpoke.promise]);
    // the pod spoke (or its upstream ended) first: hand over the read still running
    if (first === "pod") return done({ protocol: "tcp", firstFrame: withCollected(pending) });
    if (first === undefined) {
      return done({
        protocol: "tcp",
        firstFrame: Promise.resolve(collected.length ? dataFrame(collected) : undefined),
      });
    }
    collected = collected.length === 0 ? first.subarray(1) : concatBytes([collected, first.subarray(1)]);
    const verdict = sniffProtocol(collected);
    if (verdict === "http") return done({ protocol: "http", bytes: collected });
    if (verdict === "tcp") {
      return done({ protocol: "tcp", firstFrame: Promise.resolve(dataFrame(collected)) });
    }
    pending = readFrame();
  }
}

function dataFrame(bytes: Uint8Array): Uint8Array {
  const frame = new Uint8Array(1 + bytes.length);
  frame[0] = DATA_CHANNEL;
  frame.set(bytes, 1);
  return frame;
}
