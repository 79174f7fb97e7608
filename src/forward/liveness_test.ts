import assert from "node:assert/strict";
import { FakeClock } from "../watch/_testing.ts";
import { MemoryPodStream } from "../transport/_testing.ts";
import { PathTimeoutError } from "../transport/mod.ts";
import { keepAliveInterval, KERNEL_WATCHED_PING_IDLE_MS, watchLiveness } from "./liveness.ts";

function setup(answerPings = true) {
  const clock = new FakeClock();
  const stream = new MemoryPodStream("pod-1", { clock });
  stream.answerPings = answerPings;
  return { clock, stream };
}

Deno.test("watchLiveness() pings a quiet stream and keeps it while pings are answered", async () => {
  const { clock, stream } = setup();
  const stop = watchLiveness(stream, { clock, idleMs: 40, timeoutMs: 60 });
  await clock.sleep(300);
  stop();
  assert.ok(stream.pings >= 2, `pinged ${stream.pings} times`);
  assert.equal(stream.open, true);
});

Deno.test("watchLiveness() resets a stream whose ping is never answered, reporting it first", async () => {
  const { clock, stream } = setup(false);
  let timeouts = 0;
  watchLiveness(stream, { clock, idleMs: 40, timeoutMs: 60, onTimeout: () => timeouts++ });
  const closed = await stream.closed;
  assert.ok(closed instanceof PathTimeoutError, String(closed));
  assert.equal(timeouts, 1);
  assert.equal(stream.pings, 1);
  assert.ok(clock.now() >= 100 && clock.now() < 200, `reset at ${clock.now()} ms`);
});

Deno.test("watchLiveness() does not ping while bytes arrive", async () => {
  const { clock, stream } = setup();
  const stop = watchLiveness(stream, { clock, idleMs: 80, timeoutMs: 60 });
  for (let i = 0; i < 10; i++) {
    stream.podSends("x");
    await clock.sleep(20);
  }
  stop();
  assert.equal(stream.pings, 0);
});

Deno.test("watchLiveness() sends keep-alive traffic while nothing else goes out, and not while it does", async () => {
  const { clock, stream } = setup();
  let lastSentAt = clock.now();
  const stop = watchLiveness(stream, {
    clock,
    idleMs: 10_000,
    timeoutMs: 10_000,
    quiet: { everyMs: 60, lastSentAt: () => lastSentAt },
  });
  await clock.sleep(400);
  const idleSends = stream.keepAlives;
  assert.ok(idleSends >= 5 && idleSends <= 7, `sent ${idleSends} keep-alives in 400 ms at 60 ms`);
  // uploads flowing: no keep-alive needed
  for (let i = 0; i < 10; i++) {
    lastSentAt = clock.now();
    await clock.sleep(20);
  }
  stop();
  assert.equal(stream.keepAlives, idleSends);
  assert.equal(stream.pings, 0, "keep-alive traffic is not a ping");
});

Deno.test("watchLiveness() stops by itself when the stream closes", async () => {
  const { clock, stream } = setup(false);
  let timeouts = 0;
  watchLiveness(stream, { clock, idleMs: 40, timeoutMs: 60, onTimeout: () => timeouts++ });
  stream.podCloses();
  await clock.sleep(1_000);
  assert.equal(stream.pings, 0);
  assert.equal(timeouts, 0);
});

Deno.test("keepAliveInterval() is a third of the idle limit, at least a second", () => {
  assert.equal(keepAliveInterval(300_000), 100_000);
  assert.equal(keepAliveInterval(1_500), 1_000);
});

Deno.test("watchLiveness() pings once per idle period even when the stream does not note the answer", async () => {
  const { clock, stream } = setup();
  // a transport whose ping answer does not move lastHeardAt (nor a clock of another time base) must not spin
  stream.ping = () => {
    stream.pings++;
    return Promise.resolve();
  };
  const stop = watchLiveness(stream, { clock, idleMs: 1_000, timeoutMs: 500 });
  await clock.sleep(10_500);
  stop();
  assert.ok(stream.pings >= 9 && stream.pings <= 11, `pinged ${stream.pings} times in 10.5 s at 1 s idle`);
});

Deno.test("watchLiveness() leaves a kernel-watched stream to the kernel: pinged only after the backstop idle time", async () => {
  const { clock, stream } = setup();
  stream.kernelWatched = true;
  const stop = watchLiveness(stream, { clock, idleMs: 20_000, timeoutMs: 10_000 });
  await clock.sleep(KERNEL_WATCHED_PING_IDLE_MS - 1_000);
  assert.equal(stream.pings, 0, "no ping within the backstop's idle time");
  await clock.sleep(2_000);
  stop();
  assert.equal(stream.pings, 1);
});

Deno.test("watchLiveness() reports a path the kernel gave up on as a ping timeout, once", async () => {
  const { clock, stream } = setup();
  stream.kernelWatched = true;
  let timeouts = 0;
  watchLiveness(stream, { clock, idleMs: 20_000, timeoutMs: 10_000, onTimeout: () => timeouts++ });
  stream.podFails(new PathTimeoutError("pod-1", 30_000, "kernel"));
  await clock.sleep(1_000);
  assert.equal(timeouts, 1);
  assert.equal(stream.pings, 0);
});

Deno.test("watchLiveness() reports its own unanswered ping once, not again when the reset closes the stream", async () => {
  const { clock, stream } = setup(false);
  let timeouts = 0;
  watchLiveness(stream, { clock, idleMs: 40, timeoutMs: 60, onTimeout: () => timeouts++ });
  await stream.closed;
  await clock.sleep(1_000);
  assert.equal(timeouts, 1);
});
