/**
 * Tells an HTTP/1.x connection from anything else by its first bytes (protocol "auto"), while the first
 * upstream opens in parallel so neither kind waits longer than with plain TCP. A pod that speaks first
 * (MySQL, SMTP, SSH banners) means the client is waiting for it: such a connection is TCP at once.
 */

import type { Upstream } from "../prewarm.ts";
import { sniffProtocol } from "./framing.ts";
import { concatBytes } from "../../bytes.ts";

export type Sniffed =
  | { protocol: "http"; bytes: Uint8Array }
  // the client's first bytes, or a read still running (undefined: the client sent nothing and left)
  | { protocol: "tcp"; firstChunk: Promise<Uint8Array | undefined> };

const FIRST_READ_BYTES = 16 * 1024;

export async function sniffConnection(local: Deno.Conn, upstream: Promise<Upstream>): Promise<Sniffed> {
  const readChunk = async (): Promise<Uint8Array | undefined> => {
    const buffer = new Uint8Array(FIRST_READ_BYTES);
    const n = await local.read(buffer);
    return n === null ? undefined : buffer.subarray(0, n);
  };
  const podSpoke = Promise.withResolvers<"pod">();
  let settled = false;
  let detach = () => {};
  upstream.then((u) => {
    if (settled) return;
    // the pod's bytes are kept in the upstream's early list, in order, for whoever carries the connection
    if (u.early.length > 0 || !u.stream.open) return podSpoke.resolve("pod");
    u.stream.receive((chunk) => {
      u.early.push(chunk);
      podSpoke.resolve("pod");
    });
    u.stream.closed.then(() => podSpoke.resolve("pod"));
    detach = () => u.stream.receive(undefined);
  }, () => podSpoke.resolve("pod"));

  let collected: Uint8Array = new Uint8Array(0);
  let pending = readChunk();
  const done = (result: Sniffed): Sniffed => {
    settled = true;
    detach();
    return result;
  };
  const withCollected = (chunk: Promise<Uint8Array | undefined>) =>
    collected.length === 0 ? chunk : chunk.then((c) => c ? concatBytes([collected, c]) : collected);
  while (true) {
    const first = await Promise.race([pending, podSpoke.promise]);
    // the pod spoke (or its upstream ended) first: hand over the read still running
    if (first === "pod") return done({ protocol: "tcp", firstChunk: withCollected(pending) });
    if (first === undefined) {
      return done({ protocol: "tcp", firstChunk: Promise.resolve(collected.length ? collected : undefined) });
    }
    collected = collected.length === 0 ? first : concatBytes([collected, first]);
    const verdict = sniffProtocol(collected);
    if (verdict === "http") return done({ protocol: "http", bytes: collected });
    if (verdict === "tcp") return done({ protocol: "tcp", firstChunk: Promise.resolve(collected) });
    pending = readChunk();
  }
}
