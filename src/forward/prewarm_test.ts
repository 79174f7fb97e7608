import assert from "node:assert/strict";
import { FakeClock } from "../watch/_testing.ts";
import { MemoryPodStream } from "../transport/_testing.ts";
import { type PodDialer, PodPortError, type SelfWarming } from "../transport/mod.ts";
import type { Endpoint } from "./picker.ts";
import { type ColdReason, Prewarm } from "./prewarm.ts";

const endpoint: Endpoint = { pod: "db-1", uid: "u1", port: 3306 };
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

function harness() {
  const clock = new FakeClock();
  const abort = new AbortController();
  const opened: MemoryPodStream[] = [];
  const colds: ColdReason[] = [];
  const dial: PodDialer = (target) => {
    const stream = new MemoryPodStream(target.pod, { clock });
    opened.push(stream);
    return Promise.resolve(stream);
  };
  const prewarm = new Prewarm(dial, { clock, signal: abort.signal, onCold: (reason) => colds.push(reason) });
  return { clock, abort, opened, colds, prewarm };
}

Deno.test("a port whose server speaks first is pre-opened once, then dialled on demand", async () => {
  const { abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  assert.equal(opened.length, 1);
  opened[0].podSends("greeting");
  assert.deepEqual(colds, ["server-speaks-first"]);
  // the fresh greeting still reaches a client that arrives now
  const taken = await prewarm.take(endpoint);
  assert.ok(taken);
  assert.deepEqual(taken.early.map((chunk) => new TextDecoder().decode(chunk)), ["greeting"]);
  // what comes after the take is held by the stream for its new owner, not lost
  opened[0].podSends("more");
  const later: string[] = [];
  taken.stream.receive((chunk) => later.push(new TextDecoder().decode(chunk)));
  assert.deepEqual(later, ["more"]);
  await flush();
  await flush();
  assert.equal(opened.length, 1, "no new warm stream after the server spoke first");
  assert.equal(await prewarm.take(endpoint), undefined);
  abort.abort();
});

Deno.test("an unused warm stream to a server that speaks first is closed after a short while", async () => {
  const { clock, abort, opened, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  opened[0].podSends("greeting");
  await clock.sleep(5_000);
  await flush();
  assert.ok(opened[0].wasReset, "the idle handshake is closed by kf, not left to the server's timeout");
  assert.equal(opened.length, 1);
  abort.abort();
});

Deno.test("a server that closes a healthy idle warm stream is not pre-opened again", async () => {
  const { clock, abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  clock.advance(60_000);
  opened[0].podCloses();
  await clock.sleep(60_000);
  await flush();
  assert.deepEqual(colds, ["server-closes-idle"]);
  assert.equal(opened.length, 1);
  assert.equal(prewarm.cold, "server-closes-idle");
  abort.abort();
});

Deno.test("a warm stream that fails early with the kubelet's reason is retried (not a reason to stop pre-opening)", async () => {
  const { clock, abort, opened, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  opened[0].podFails(new PodPortError("db-1", "connection refused", false));
  await clock.sleep(1_000);
  await flush();
  assert.deepEqual(colds, []);
  assert.equal(opened.length, 2);
  abort.abort();
});

Deno.test("a client-first server that keeps idle connections keeps its warm stream", async () => {
  const { clock, abort, colds, prewarm } = harness();
  prewarm.setEndpoint(endpoint);
  await flush();
  await clock.sleep(120_000);
  await flush();
  assert.deepEqual(colds, []);
  assert.ok(await prewarm.take(endpoint));
  abort.abort();
});

Deno.test("a Prewarm over a dialer that warms itself opens nothing and only points it at the pod", async () => {
  const told: (Endpoint | undefined)[] = [];
  let renewed = 0;
  const invalidated: string[] = [];
  const selfWarming: SelfWarming = {
    warm: (_owner, e) => told.push(e),
    renew: () => renewed++,
    invalidate: (pod) => invalidated.push(pod),
  };
  let opened = 0;
  const dial: PodDialer = Object.assign(() => {
    opened++;
    return Promise.resolve(new MemoryPodStream());
  }, { prewarmsItself: selfWarming });
  const abort = new AbortController();
  const prewarm = new Prewarm(dial, { clock: new FakeClock(), signal: abort.signal });
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

Deno.test("a Prewarm with a pool alongside keeps its own warm streams and points the pool at the same pod", async () => {
  const told: (Endpoint | undefined)[] = [];
  let renewed = 0;
  const invalidated: string[] = [];
  const alongside: SelfWarming = {
    warm: (_owner, e) => told.push(e),
    renew: () => renewed++,
    invalidate: (pod) => invalidated.push(pod),
  };
  const clock = new FakeClock();
  const opened: MemoryPodStream[] = [];
  const dial: PodDialer = (target) => {
    const stream = new MemoryPodStream(target.pod, { clock });
    opened.push(stream);
    return Promise.resolve(stream);
  };
  const abort = new AbortController();
  const prewarm = new Prewarm(dial, { clock, signal: abort.signal, alongside });
  prewarm.setEndpoint(endpoint);
  await flush();
  assert.equal(opened.length, 1, "its own warm stream, as without a pool");
  const taken = await prewarm.take(endpoint);
  assert.equal(taken?.stream, opened[0]);
  prewarm.renew();
  prewarm.invalidate("db-1");
  prewarm.setEndpoint(undefined);
  assert.deepEqual(told, [endpoint, undefined]);
  assert.equal(renewed, 1);
  assert.deepEqual(invalidated, ["db-1"]);
  abort.abort();
});
