import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import { FakeClock } from "../watch/_testing.ts";
import type { Endpoint } from "./picker.ts";
import { autoOpener, type ColdReason, type OpenUpstream, Prewarm, type SelfWarming } from "./upstream.ts";

/** Just enough of a `ws` WebSocket for the prewarm: events, readyState, terminate, ping. */
class FakeSocket extends EventEmitter {
  readyState = 1;
  terminated = false;
  terminate(): void {
    if (this.readyState === 3) return;
    this.terminated = true;
    this.readyState = 3;
    this.emit("close");
  }
  ping(): void {}
  /** The kubelet's first message on a channel: the port number, little-endian. */
  openChannels(port: number): void {
    this.emit("message", new Uint8Array([0, port & 0xff, port >> 8]));
    this.emit("message", new Uint8Array([1, port & 0xff, port >> 8]));
  }
  serverSays(text: string): void {
    this.emit("message", new Uint8Array([0, ...new TextEncoder().encode(text)]));
  }
  serverCloses(): void {
    this.readyState = 3;
    this.emit("close");
  }
}

const endpoint: Endpoint = { pod: "db-1", uid: "u1", port: 3306 } as Endpoint;
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

function harness() {
  const clock = new FakeClock();
  const abort = new AbortController();
  const opened: FakeSocket[] = [];
  const colds: ColdReason[] = [];
  const prewarm = new Prewarm((_endpoint, _signal) => {
    const socket = new FakeSocket();
    opened.push(socket);
    return Promise.resolve(socket as unknown as WebSocket);
  }, { clock, signal: abort.signal, onCold: (reason) => colds.push(reason) });
  return { clock, abort, opened, colds, prewarm };
}

Deno.test("a port whose server speaks first is pre-opened once, then dialled on demand", async () => {
  const { abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  assert.equal(opened.length, 1);
  opened[0].openChannels(3306);
  opened[0].serverSays("greeting");
  assert.deepEqual(colds, ["server-speaks-first"]);
  // the fresh greeting still reaches a client that arrives now
  const taken = await prewarm.take(endpoint);
  assert.ok(taken);
  assert.equal(taken.early.length, 3);
  await flush();
  await flush();
  assert.equal(opened.length, 1, "no new warm socket after the server spoke first");
  assert.equal(await prewarm.take(endpoint), undefined);
  abort.abort();
});

Deno.test("an unused warm socket to a server that speaks first is closed after a short while", async () => {
  const { clock, abort, opened, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  opened[0].openChannels(3306);
  opened[0].serverSays("greeting");
  await clock.sleep(5_000);
  await flush();
  assert.ok(opened[0].terminated, "the idle handshake is closed by kf, not left to the server's timeout");
  assert.equal(opened.length, 1);
  abort.abort();
});

Deno.test("a server that closes a healthy idle warm socket is not pre-opened again", async () => {
  const { clock, abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  opened[0].openChannels(5432);
  clock.advance(60_000);
  opened[0].serverCloses();
  await clock.sleep(60_000);
  await flush();
  assert.deepEqual(colds, ["server-closes-idle"]);
  assert.equal(opened.length, 1);
  assert.equal(prewarm.cold, "server-closes-idle");
  abort.abort();
});

Deno.test("a warm socket that fails early is retried (not a reason to stop pre-opening)", async () => {
  const { clock, abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  opened[0].openChannels(8080);
  opened[0].emit("message", new Uint8Array([1, ...new TextEncoder().encode("connection refused")]));
  opened[0].serverCloses();
  await clock.sleep(1_000);
  await flush();
  assert.deepEqual(colds, []);
  assert.equal(opened.length, 2);
  abort.abort();
});

Deno.test("a client-first server that keeps idle connections keeps its warm socket", async () => {
  const { clock, abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  opened[0].openChannels(6379);
  await clock.sleep(120_000);
  await flush();
  assert.deepEqual(colds, []);
  assert.ok(await prewarm.take(endpoint));
  abort.abort();
});

Deno.test("auto walks to the next opener once when the first is refused, and then stays there", async () => {
  const calls: string[] = [];
  const refusal = new Error("refused");
  const first: OpenUpstream = () => {
    calls.push("spdy");
    return Promise.reject(refusal);
  };
  const websocket: OpenUpstream = () => {
    calls.push("websocket");
    return Promise.resolve(new FakeSocket() as unknown as WebSocket);
  };
  let switches = 0;
  const open = autoOpener(first, () => websocket, (error) => error === refusal, () => switches++);
  const signal = new AbortController().signal;
  await open(endpoint, signal);
  await open(endpoint, signal);
  assert.deepEqual(calls, ["spdy", "websocket", "websocket"]);
  assert.equal(switches, 1);
});

Deno.test("auto does not switch on failures that are not a refusal (the pod vanished, a timeout)", async () => {
  const other = new Error("timeout");
  const open = autoOpener(() => Promise.reject(other), () => {
    throw new Error("must not switch");
  }, () => false);
  await assert.rejects(() => open(endpoint, new AbortController().signal), (error) => error === other);
});

Deno.test("a Prewarm over an opener that warms itself opens nothing and only points it at the pod", async () => {
  const told: (Endpoint | undefined)[] = [];
  let renewed = 0;
  const invalidated: string[] = [];
  const selfWarming: SelfWarming = {
    warm: (_owner, e) => told.push(e),
    renew: () => renewed++,
    invalidate: (pod) => invalidated.push(pod),
  };
  let opened = 0;
  const open = Object.assign(() => {
    opened++;
    return Promise.resolve(new FakeSocket() as unknown as WebSocket);
  }, { prewarmsItself: selfWarming });
  const abort = new AbortController();
  const prewarm = new Prewarm(open, { clock: new FakeClock(), signal: abort.signal });
  prewarm.setEndpoint(endpoint);
  await flush();
  assert.equal(await prewarm.take(endpoint), undefined);
  prewarm.renew();
  prewarm.invalidate("db-1");
  await flush();
  assert.equal(opened, 0);
  assert.deepEqual(told, [endpoint]);
  assert.equal(renewed, 1);
  assert.deepEqual(invalidated, ["db-1"]);
  abort.abort();
});
