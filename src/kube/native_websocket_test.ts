import assert from "node:assert/strict";
import { concatBytes } from "../bytes.ts";
import { frameHeader, FrameParser, NativeWebSocket, UpgradeRefusedError } from "./native_websocket.ts";

/** A server frame (unmasked) with the given opcode, FIN bit and payload. */
function serverFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const header = frameHeader(opcode, payload.length).slice(0, -4);
  header[0] = (fin ? 0x80 : 0) | opcode;
  header[1] &= 0x7f; // servers do not mask
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return out;
}

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

Deno.test("frame parser: messages of every length class survive being split at any byte", () => {
  for (const size of [0, 1, 125, 126, 1000, 65535, 65536, 70_000]) {
    const payload = bytes(size);
    const wire = serverFrame(2, payload);
    for (const cut of [1, 2, 3, 9, 10, Math.floor(wire.length / 2), wire.length - 1]) {
      if (cut >= wire.length) continue;
      const parser = new FrameParser();
      const seen: Uint8Array[] = [];
      parser.push(wire.subarray(0, cut), (_op, p) => seen.push(p.slice()));
      parser.push(wire.subarray(cut), (_op, p) => seen.push(p.slice()));
      assert.equal(seen.length, 1, `size ${size} cut ${cut}`);
      assert.deepEqual(seen[0], payload);
    }
  }
});

Deno.test("frame parser: payloads stay intact when the pushed buffer is overwritten after each push", () => {
  const payloads = [bytes(3), bytes(0), bytes(40_000), bytes(125), bytes(126), bytes(16_384), bytes(7)];
  const wire = concatBytes(payloads.map((p) => serverFrame(2, p)));
  for (const readSize of [1, 5, 100, 16_384]) {
    const parser = new FrameParser();
    const seen: Uint8Array[] = [];
    // one buffer read into again and again, as the native WebSocket's reads are
    const buffer = new Uint8Array(readSize);
    for (let at = 0; at < wire.length; at += readSize) {
      const chunk = wire.subarray(at, at + readSize);
      buffer.set(chunk);
      parser.push(buffer.subarray(0, chunk.length), (_op, p) => seen.push(p));
      buffer.fill(0xee);
    }
    assert.deepEqual(seen, payloads, `reads of ${readSize}`);
  }
});

Deno.test("frame parser: a payload read straight into its room, mixed with pushed bytes", () => {
  const payloads = [bytes(50_000), bytes(20), bytes(100_000)];
  const wire = concatBytes(payloads.map((p) => serverFrame(2, p)));
  for (const step of [1000, 4096, 16_384]) {
    const parser = new FrameParser();
    const seen: Uint8Array[] = [];
    let at = 0;
    let direct = 0;
    while (at < wire.length) {
      const room = parser.payloadRoom();
      if (room && room.length >= 4096) {
        // as a socket read into the room would: at most `step` bytes of what is there
        const n = Math.min(step, room.length);
        room.set(wire.subarray(at, at + n));
        parser.payloadFilled(n, (_op, p) => seen.push(p));
        at += n;
        direct += n;
      } else {
        const chunk = wire.subarray(at, at + step);
        parser.push(chunk, (_op, p) => seen.push(p));
        at += chunk.length;
      }
    }
    assert.deepEqual(seen, payloads, `steps of ${step}`);
    assert.ok(direct > 100_000, `most payload bytes went straight into their frames (${direct})`);
    assert.equal(parser.payloadRoom(), undefined);
  }
});

Deno.test("frame parser: fragments join, control frames may come between them", () => {
  const parser = new FrameParser();
  const seen: [number, string][] = [];
  const wire = [
    serverFrame(2, new TextEncoder().encode("hel"), false),
    serverFrame(9, new TextEncoder().encode("ping")),
    serverFrame(0, new TextEncoder().encode("lo"), true),
  ];
  for (const frame of wire) parser.push(frame, (op, p) => seen.push([op, new TextDecoder().decode(p)]));
  assert.deepEqual(seen, [[9, "ping"], [2, "hello"]]);
});

Deno.test("frame parser: protocol violations are errors", () => {
  const masked = serverFrame(2, bytes(3));
  masked[1] |= 0x80;
  assert.throws(() => new FrameParser().push(masked, () => {}), /masked/);
  assert.throws(() => new FrameParser().push(serverFrame(0, bytes(3)), () => {}), /continuation/);
  assert.throws(() => new FrameParser().push(serverFrame(9, bytes(3), false), () => {}), /control/);
  const huge = new Uint8Array([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]);
  assert.throws(() => new FrameParser().push(huge, () => {}), /too large/);
});

Deno.test("frame header: lengths and the zero mask", () => {
  assert.deepEqual(frameHeader(2, 5), new Uint8Array([0x82, 0x85, 0, 0, 0, 0]));
  assert.deepEqual(frameHeader(2, 300), new Uint8Array([0x82, 0xfe, 1, 44, 0, 0, 0, 0]));
  assert.deepEqual(
    frameHeader(2, 70_000).subarray(0, 10),
    new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0, 1, 17, 112]),
  );
});

/** A local WebSocket echo server (Deno's own) that also refuses some paths. */
function echoServer() {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/forbidden") {
      return new Response('{"kind":"Status","message":"pods \\"x\\" is forbidden"}', { status: 403 });
    }
    // "/no-protocol" agrees to none of the offered subprotocols
    const { socket, response } = Deno.upgradeWebSocket(
      request,
      url.pathname === "/no-protocol" ? {} : { protocol: "v4.channel.k8s.io" },
    );
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(new Uint8Array([0, 1, 2]));
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
  const url = (path: string) => new URL(`ws://127.0.0.1:${server.addr.port}${path}`);
  return { server, url };
}

Deno.test("native WebSocket: handshake, first message kept for a late listener, echo, close", async () => {
  const { server, url } = echoServer();
  try {
    const ws = await NativeWebSocket.connect(url("/echo"), { protocols: ["v4.channel.k8s.io"] });
    assert.equal(ws.protocol, "v4.channel.k8s.io");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const messages: Uint8Array[] = [];
    const got = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => messages.length >= n && resolve();
        ws.on("message", (m: Uint8Array) => {
          messages.push(m.slice());
          check();
        });
      });
    const first = got(1);
    await first;
    assert.deepEqual(messages[0], new Uint8Array([0, 1, 2]), "sent before anyone listened");
    const big = bytes(200_000);
    const sent = Promise.withResolvers<void>();
    ws.send(big, (error) => error ? sent.reject(error) : sent.resolve());
    await sent.promise;
    const deadline = Date.now() + 5_000;
    while (messages.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(messages[1], big);
    const closed = new Promise((resolve) => ws.once("close", resolve));
    ws.close();
    await closed;
    assert.equal(ws.readyState, 3);
  } finally {
    await server.shutdown();
  }
});

Deno.test("native WebSocket: messages sent as parts arrive whole and in order, large and small", async () => {
  const { server, url } = echoServer();
  try {
    const ws = await NativeWebSocket.connect(url("/echo"), { protocols: ["v4.channel.k8s.io"] });
    const messages: Uint8Array[] = [];
    ws.on("message", (m: Uint8Array) => messages.push(m.slice()));
    const prefix = new Uint8Array([7]);
    const sent = [bytes(3), bytes(100_000), bytes(10), bytes(20_000), bytes(0), bytes(5)];
    const callbacks: number[] = [];
    // all in one tick: small parts are joined around the large ones, each message keeps its own frame
    sent.forEach((payload, i) => ws.sendParts([prefix, payload], () => callbacks.push(i)));
    const deadline = Date.now() + 5_000;
    while (messages.length < sent.length + 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(messages.slice(1), sent.map((payload) => concatBytes([prefix, payload])));
    assert.deepEqual(callbacks, [0, 1, 2, 3, 4, 5]);
    ws.terminate();
  } finally {
    await server.shutdown();
  }
});

Deno.test("native WebSocket: a refused upgrade keeps status and body; a wrong subprotocol is an error", async () => {
  const { server, url } = echoServer();
  try {
    const refused = await NativeWebSocket.connect(url("/forbidden"), { protocols: ["v4.channel.k8s.io"] })
      .catch((e) => e);
    assert.ok(refused instanceof UpgradeRefusedError);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /forbidden/);
    await assert.rejects(
      NativeWebSocket.connect(url("/no-protocol"), { protocols: ["v4.channel.k8s.io"] }),
      /subprotocol/,
    );
  } finally {
    await server.shutdown();
  }
});
