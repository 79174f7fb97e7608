import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import { keepAlive } from "./liveness.ts";

/** Just enough of a ws.WebSocket: events, ping, terminate. */
class FakeSocket extends EventEmitter {
  readyState = 1;
  pings = 0;
  terminated = false;
  answerPings = true;
  ping() {
    this.pings++;
    if (this.answerPings) setTimeout(() => this.emit("pong"), 5);
  }
  terminate() {
    this.terminated = true;
    this.readyState = 3;
    this.emit("close");
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("keepAlive() pings a quiet socket and keeps it while pongs come back", async () => {
  const ws = new FakeSocket();
  const stop = keepAlive(ws as unknown as WebSocket, { idleMs: 40, timeoutMs: 60 });
  await sleep(300);
  stop();
  assert.ok(ws.pings >= 2, `pinged ${ws.pings} times`);
  assert.equal(ws.terminated, false);
});

Deno.test("keepAlive() terminates a socket whose ping is never answered", async () => {
  const ws = new FakeSocket();
  ws.answerPings = false;
  keepAlive(ws as unknown as WebSocket, { idleMs: 40, timeoutMs: 60 });
  await sleep(300);
  assert.equal(ws.terminated, true);
  assert.equal(ws.pings, 1);
});

Deno.test("keepAlive() does not ping while data flows", async () => {
  const ws = new FakeSocket();
  const stop = keepAlive(ws as unknown as WebSocket, { idleMs: 80, timeoutMs: 60 });
  for (let i = 0; i < 10; i++) {
    ws.emit("message", new Uint8Array([0]));
    await sleep(20);
  }
  stop();
  assert.equal(ws.pings, 0);
});

Deno.test("keepAlive() sends keep-alive traffic while nothing else goes out, and not while it does", async () => {
  const ws = new FakeSocket();
  let lastSentAt = Date.now();
  let sent = 0;
  const stop = keepAlive(ws as unknown as WebSocket, {
    idleMs: 10_000,
    timeoutMs: 10_000,
    quiet: {
      everyMs: 60,
      lastSentAt: () => lastSentAt,
      send: () => {
        sent++;
        lastSentAt = Date.now();
      },
    },
  });
  await sleep(400);
  const idleSends = sent;
  assert.ok(idleSends >= 3, `sent ${idleSends} keep-alives in 400 ms at 60 ms`);
  // uploads flowing: no keep-alive needed
  for (let i = 0; i < 10; i++) {
    lastSentAt = Date.now();
    await sleep(20);
  }
  stop();
  assert.equal(sent, idleSends);
  assert.equal(ws.pings, 0, "keep-alive traffic is not a ping");
});

Deno.test("keepAlive() reports an unanswered ping before terminating", async () => {
  const ws = new FakeSocket();
  ws.answerPings = false;
  let timeouts = 0;
  keepAlive(ws as unknown as WebSocket, { idleMs: 40, timeoutMs: 60, onTimeout: () => timeouts++ });
  await sleep(300);
  assert.equal(timeouts, 1);
  assert.equal(ws.terminated, true);
});
