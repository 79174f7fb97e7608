import assert from "node:assert/strict";
import { concatBytes } from "../bytes.ts";
import { LocalWriter } from "./local_end.ts";

/** A loopback pair: the writer's side and the peer that reads what it writes. */
async function pair(): Promise<
  { local: Deno.TcpConn; peer: Deno.TcpConn; [Symbol.asyncDispose](): Promise<void> }
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port });
  const local = await listener.accept();
  listener.close();
  const connected = await peer;
  return {
    local,
    peer: connected,
    [Symbol.asyncDispose]: () => {
      for (const conn of [local, connected]) {
        try {
          conn.close();
        } catch {
          // closed by the test
        }
      }
      return Promise.resolve();
    },
  };
}

async function readAll(conn: Deno.Conn): Promise<{ bytes: Uint8Array; ended: "eof" | "reset" }> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      parts.push(buffer.slice(0, n));
    }
  } catch {
    return { bytes: concatBytes(parts), ended: "reset" };
  }
  return { bytes: concatBytes(parts), ended: "eof" };
}

Deno.test("LocalWriter writes chunks in order, then end(false) closes after the last one (FIN)", async () => {
  await using conns = await pair();
  const writer = new LocalWriter(conns.local);
  const chunks = Array.from({ length: 64 }, (_, i) => new Uint8Array(100_000).fill(i));
  const received = readAll(conns.peer);
  const writes = chunks.map((chunk) => writer.write(chunk));
  const ended = writer.end(false);
  await Promise.all(writes);
  await ended;
  const { bytes, ended: how } = await received;
  assert.equal(how, "eof");
  assert.equal(bytes.length, 64 * 100_000);
  for (let i = 0; i < 64; i++) assert.equal(bytes[i * 100_000 + 99_999], i);
  await assert.rejects(() => writer.write(new Uint8Array(1)));
});

Deno.test("LocalWriter holds writes while the peer does not read (backpressure), and end(true) drops them", async () => {
  await using conns = await pair();
  const writer = new LocalWriter(conns.local);
  let resolved = 0;
  const writes = Array.from(
    { length: 200 },
    () => writer.write(new Uint8Array(256 * 1024)).then(() => resolved++),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  // the kernel's buffers hold a few MiB at most: most of the 50 MiB are still queued
  assert.ok(resolved < 100, `resolved ${resolved} of 200 with a peer that reads nothing`);
  await writer.end(true);
  const outcomes = await Promise.allSettled(writes);
  assert.ok(outcomes.some((o) => o.status === "rejected"));
  const { bytes } = await readAll(conns.peer);
  assert.ok(bytes.length < 200 * 256 * 1024);
});

Deno.test("LocalWriter fails its writes once the peer is gone", async () => {
  await using conns = await pair();
  const writer = new LocalWriter(conns.local);
  await writer.write(new TextEncoder().encode("hello"));
  conns.peer.close();
  const big = new Uint8Array(1024 * 1024);
  let failed: unknown;
  for (let i = 0; i < 50 && !failed; i++) await writer.write(big).catch((error) => (failed = error));
  assert.ok(failed instanceof Error);
  await assert.rejects(() => writer.write(big));
  await writer.end(false); // ending a failed writer is harmless
});
