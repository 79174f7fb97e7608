import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import { PathTimeoutError, PodPortError } from "../errors.ts";
import { WebSocketPodStream } from "./pod_stream.ts";

/** Just enough of a `ws` WebSocket: events, send, ping, pause/resume, terminate. */
class FakeSocket extends EventEmitter {
  readyState = 1;
  sent: Uint8Array[] = [];
  paused = false;
  send(data: Uint8Array, callback?: () => void) {
    this.sent.push(data);
    callback?.();
  }
  ping() {
    setTimeout(() => this.emit("pong"), 1);
  }
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
  terminate() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.emit("close");
  }
  /** The kubelet's first message on each channel: the port, little-endian. */
  openChannels(port: number) {
    this.emit("message", new Uint8Array([0, port & 0xff, port >> 8]));
    this.emit("message", new Uint8Array([1, port & 0xff, port >> 8]));
  }
}

const bytes = (...values: number[]) => new Uint8Array(values);
const encode = (value: string) => new TextEncoder().encode(value);

function open() {
  const ws = new FakeSocket();
  const stream = new WebSocketPodStream(ws as unknown as WebSocket, "echo-1");
  return { ws, stream };
}

Deno.test("v4 stream: the port prefixes are stripped and data reaches the receiver without its channel byte", () => {
  const { ws, stream } = open();
  const got: Uint8Array[] = [];
  stream.receive((chunk) => got.push(chunk));
  ws.openChannels(8080);
  ws.emit("message", bytes(0, 104, 105));
  assert.deepEqual(got, [bytes(104, 105)]);
});

Deno.test("v4 stream: bytes that arrive before anyone receives them are held and handed over in order", () => {
  const { ws, stream } = open();
  ws.openChannels(5432);
  ws.emit("message", bytes(0, 1));
  ws.emit("message", bytes(0, 2));
  const got: number[] = [];
  stream.receive((chunk) => got.push(...chunk));
  ws.emit("message", bytes(0, 3));
  assert.deepEqual(got, [1, 2, 3]);
});

Deno.test("v4 stream: writes go out on the data channel; keep-alive is the channel byte alone", () => {
  const { ws, stream } = open();
  let sent = 0;
  stream.write(encode("hi"), () => sent++);
  stream.keepAlive();
  assert.deepEqual(ws.sent, [bytes(0, 104, 105), bytes(0)]);
  assert.equal(sent, 1);
  assert.equal(stream.closeWrite(), false, "v4 has no half-close");
});

Deno.test("v4 stream: the kubelet's error text ends the stream with a typed error", async () => {
  const { ws, stream } = open();
  ws.openChannels(80);
  ws.emit("message", new Uint8Array([1, ...encode('failed to find sandbox "x": not found')]));
  const error = await stream.closed;
  assert.ok(error instanceof PodPortError && error.podGone, String(error));
  assert.equal(stream.open, false);
  assert.equal(ws.readyState, 3, "the socket is closed with it");
});

Deno.test("v4 stream: a refused port is not a vanished pod", async () => {
  const { ws, stream } = open();
  ws.openChannels(81);
  ws.emit("message", new Uint8Array([1, ...encode("error forwarding port 81: connection refused")]));
  const error = await stream.closed;
  assert.ok(error instanceof PodPortError && !error.podGone, String(error));
});

Deno.test("v4 stream: a close without error text is a clean end; a socket error is the reason", async () => {
  const clean = open();
  clean.ws.terminate();
  assert.equal(await clean.stream.closed, undefined);
  const broken = open();
  const cause = new Error("read ECONNRESET");
  broken.ws.emit("error", cause);
  assert.equal(await broken.stream.closed, cause);
});

Deno.test("v4 stream: pause() stops the socket, and bytes read meanwhile are still delivered", () => {
  const { ws, stream } = open();
  const got: number[] = [];
  stream.receive((chunk) => got.push(...chunk));
  ws.openChannels(80);
  stream.pause();
  assert.equal(ws.paused, true);
  ws.emit("message", bytes(0, 9));
  assert.deepEqual(got, [9], "never dropped, never held back: the stream may end while paused");
  stream.resume();
  assert.equal(ws.paused, false);
});

Deno.test("v4 stream: a ping answer counts as heard", async () => {
  const { stream } = open();
  const before = stream.lastHeardAt;
  await new Promise((resolve) => setTimeout(resolve, 5));
  await stream.ping();
  assert.ok(stream.lastHeardAt > before);
});

Deno.test("v4 stream: a socket the kernel timed out (ETIMEDOUT) ends with a PathTimeoutError; kernelWatched comes from the socket", async () => {
  const { ws, stream } = open();
  assert.equal(stream.kernelWatched, false, "a ws socket is not watched by kf's tuned keepalive");
  (ws as unknown as { kernelWatched: boolean }).kernelWatched = true;
  assert.equal(stream.kernelWatched, true);
  ws.emit("error", new Deno.errors.TimedOut("Connection timed out (os error 110)"));
  const error = await stream.closed;
  assert.ok(error instanceof PathTimeoutError, String(error));
  assert.match(error.message, /unanswered for 30 s \(TCP keepalive\)/);
  assert.equal(stream.open, false);
});

Deno.test("v4 stream: other socket errors stay what they are", async () => {
  const { ws, stream } = open();
  const reset = new Error("Connection reset by peer (os error 104)");
  ws.emit("error", reset);
  assert.equal(await stream.closed, reset);
});
