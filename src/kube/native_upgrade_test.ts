import assert from "node:assert/strict";
import { concatBytes } from "../bytes.ts";
import { NativeUpgradedSocket } from "./native_upgrade.ts";
import { UpgradeRefusedError } from "./native_websocket.ts";

const encoder = new TextEncoder();

/**
 * A raw HTTP/1.1 server on loopback: `serve` gets each accepted connection with the request head already
 * read (and any bytes after it).
 */
function rawServer(serve: (conn: Deno.TcpConn, head: string, rest: Uint8Array) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: Promise<void>[] = [];
  (async () => {
    for await (const conn of listener) {
      served.push(
        (async () => {
          let buffer: Uint8Array = new Uint8Array(0);
          const chunk = new Uint8Array(4096);
          for (;;) {
            const n = await conn.read(chunk);
            if (n === null) return;
            buffer = concatBytes([buffer, chunk.subarray(0, n)]);
            const end = new TextDecoder().decode(buffer).indexOf("\r\n\r\n");
            if (end >= 0) {
              await serve(conn, new TextDecoder().decode(buffer.subarray(0, end)), buffer.slice(end + 4));
              return;
            }
          }
        })().catch(() => {}),
      );
    }
  })().catch(() => {});
  const url = new URL(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/api/v1/pf`);
  return {
    url,
    async close() {
      listener.close();
      await Promise.all(served);
    },
  };
}

const SWITCH = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n";

Deno.test("native upgrade: sends the request with its fields, gets the bytes after the 101, writes, half-closes", async () => {
  let head = "";
  const received: Uint8Array[] = [];
  const server = rawServer(async (conn, requestHead, rest) => {
    head = requestHead;
    received.push(rest);
    // the first upgraded bytes come in the same segment as the answer's head
    await conn.write(concatBytes([encoder.encode(SWITCH), encoder.encode("hello")]));
    const chunk = new Uint8Array(65536);
    for (let n = await conn.read(chunk); n !== null; n = await conn.read(chunk)) {
      received.push(chunk.slice(0, n));
    }
    await conn.write(encoder.encode("bye"));
    conn.close();
  });
  try {
    const socket = await NativeUpgradedSocket.connect(server.url, {
      method: "POST",
      headers: { Upgrade: "SPDY/3.1", Connection: "Upgrade", Authorization: "Bearer t" },
    });
    assert.match(head, /^POST \/api\/v1\/pf HTTP\/1\.1\r\n/);
    assert.match(head, /\r\nUpgrade: SPDY\/3\.1/);
    assert.match(head, /\r\nAuthorization: Bearer t/);
    const data: Uint8Array[] = [];
    socket.on("data", (chunk: Uint8Array) => data.push(chunk.slice()));
    const ended = new Promise((resolve) => socket.once("end", resolve));
    const closed = new Promise((resolve) => socket.once("close", resolve));
    const big = Uint8Array.from({ length: 3 << 20 }, (_, i) => i & 0xff);
    // past the high-water mark: the writer is told to wait for "drain", which comes
    assert.equal(socket.write(encoder.encode("a")), true);
    assert.equal(socket.write(big), false);
    await new Promise((resolve) => socket.once("drain", resolve));
    socket.write(encoder.encode("z"));
    const endCalled = new Promise<void>((resolve) => socket.end(resolve));
    await endCalled;
    await ended;
    await closed;
    assert.equal(new TextDecoder().decode(concatBytes(data)), "hellobye");
    assert.deepEqual(concatBytes(received), concatBytes([encoder.encode("a"), big, encoder.encode("z")]));
  } finally {
    await server.close();
  }
});

Deno.test("native upgrade: a paused socket stops reading until resumed", async () => {
  const server = rawServer(async (conn) => {
    await conn.write(encoder.encode(SWITCH));
    // more than the kernel buffers hold: writes block while the client does not read
    const chunk = new Uint8Array(1 << 20);
    try {
      for (let i = 0; i < 64; i++) await conn.write(chunk);
    } catch {
      // the client closed
    }
    conn.close();
  });
  try {
    const socket = await NativeUpgradedSocket.connect(server.url, { method: "POST", headers: {} });
    let bytes = 0;
    socket.on("data", (chunk: Uint8Array) => {
      bytes += chunk.length;
      if (bytes > 100_000) socket.pause();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const paused = bytes;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(paused < 200_000, `read ${paused} bytes past the pause`);
    assert.equal(bytes, paused, "no reads while paused");
    socket.removeAllListeners("data");
    socket.on("data", (chunk: Uint8Array) => void (bytes += chunk.length));
    socket.resume();
    const deadline = Date.now() + 5_000;
    while (bytes < paused + 1_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(bytes >= paused + 1_000_000, "reads go on after resume");
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.destroy();
    await closed;
  } finally {
    await server.close();
  }
});

Deno.test("native upgrade: a refused upgrade keeps status and body", async () => {
  const body = '{"kind":"Status","message":"pods \\"x\\" is forbidden"}';
  const server = rawServer(async (conn) => {
    await conn.write(
      encoder.encode(`HTTP/1.1 403 Forbidden\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
    );
    conn.close();
  });
  try {
    const refused = await NativeUpgradedSocket.connect(server.url, { method: "POST", headers: {} }).catch((
      e,
    ) => e);
    assert.ok(refused instanceof UpgradeRefusedError);
    assert.equal(refused.status, 403);
    assert.equal(refused.body, body);
  } finally {
    await server.close();
  }
});

Deno.test("native upgrade: a server that never answers times out", async () => {
  const server = rawServer(async (conn) => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    conn.close();
  });
  try {
    await assert.rejects(
      NativeUpgradedSocket.connect(server.url, { method: "POST", headers: {}, timeoutMs: 100 }),
      (error) => error instanceof DOMException && error.name === "TimeoutError",
    );
  } finally {
    await server.close();
  }
});
