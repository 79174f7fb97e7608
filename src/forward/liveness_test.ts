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
