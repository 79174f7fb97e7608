import assert from "node:assert/strict";
import { MemoryPodStream } from "./_testing.ts";
import { fallbackDialer } from "./fallback.ts";
import type { PodDialer, PodPort } from "./pod_stream.ts";

const target: PodPort = { pod: "db-1", uid: "u1", port: 3306 };

/** A dialer that notes its name in `calls` on every dial and answers with `answer()`. */
function recording(calls: string[], name: string, answer: () => Promise<MemoryPodStream>): PodDialer {
  return () => {
    calls.push(name);
    return answer();
  };
}

Deno.test("the fallback walks to the next dialer once when the first is refused, and then stays there", async () => {
  const calls: string[] = [];
  const refusal = new Error("refused");
  const first = recording(calls, "websocket", () => Promise.reject(refusal));
  const next = recording(calls, "spdy", () => Promise.resolve(new MemoryPodStream()));
  let switches = 0;
  const dial = fallbackDialer(first, () => next, (error) => error === refusal, () => switches++);
  const signal = new AbortController().signal;
  await dial(target, signal);
  await dial(target, signal);
  assert.deepEqual(calls, ["websocket", "spdy", "spdy"]);
  assert.equal(switches, 1);
});

Deno.test("the fallback does not switch on failures that are not a refusal (the pod vanished, a timeout)", async () => {
  const other = new Error("timeout");
  const dial = fallbackDialer(() => Promise.reject(other), () => {
    throw new Error("must not switch");
  }, () => false);
  await assert.rejects(() => dial(target, new AbortController().signal), (error) => error === other);
});

Deno.test("dials under way on the first dialer when it is refused move on too, and the switch happens once", async () => {
  const calls: string[] = [];
  const refusal = new Error("refused");
  const pending: Array<() => void> = [];
  const first = recording(
    calls,
    "websocket",
    () => new Promise((_, reject) => pending.push(() => reject(refusal))),
  );
  const next = recording(calls, "spdy", () => Promise.resolve(new MemoryPodStream()));
  let switches = 0;
  const dial = fallbackDialer(first, () => next, (error) => error === refusal, () => switches++);
  const signal = new AbortController().signal;
  const dials = [dial(target, signal), dial(target, signal), dial(target, signal)];
  for (const refuse of pending) refuse();
  const streams = await Promise.all(dials);
  assert.equal(streams.length, 3);
  assert.deepEqual(calls, ["websocket", "websocket", "websocket", "spdy", "spdy", "spdy"]);
  assert.equal(switches, 1);
});

Deno.test("a refusal from the next dialer is the answer: it is not retried", async () => {
  const refusal = new Error("refused");
  let nextCalls = 0;
  const dial = fallbackDialer(() => Promise.reject(refusal), () => () => {
    nextCalls++;
    return Promise.reject(refusal);
  }, (error) => error === refusal);
  await assert.rejects(() => dial(target, new AbortController().signal), (error) => error === refusal);
  await assert.rejects(() => dial(target, new AbortController().signal), (error) => error === refusal);
  assert.equal(nextCalls, 2);
});
