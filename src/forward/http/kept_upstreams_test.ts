import assert from "node:assert/strict";
import { FakeClock } from "../../watch/_testing.ts";
import { MemoryPodStream } from "../../transport/_testing.ts";
import type { Upstream } from "../prewarm.ts";
import { KEPT_IDLE_MS, KeptUpstreams } from "./kept_upstreams.ts";

const endpoint = (pod: string) => ({ pod, uid: `${pod}-uid`, port: 80 });

function setup(perPod?: number) {
  const clock = new FakeClock();
  const abort = new AbortController();
  const kept = new KeptUpstreams({ clock, signal: abort.signal, perPod });
  const upstream = (pod = "pod-a"): Upstream => ({
    stream: new MemoryPodStream(pod, { clock }),
    endpoint: endpoint(pod),
    early: [],
  });
  return { clock, abort, kept, upstream };
}

Deno.test("KeptUpstreams: the most recently kept upstream to the pod port is taken, marked reused, once", () => {
  const { kept, upstream } = setup();
  const [a, b] = [upstream(), upstream()];
  kept.keep(a);
  kept.keep(b);
  assert.equal(kept.size, 2);
  const taken = kept.take(endpoint("pod-a"))!;
  assert.equal(taken.stream, b.stream);
  assert.equal(taken.reused, true);
  assert.equal(kept.take(endpoint("pod-b")), undefined, "another pod has none");
  assert.equal(kept.take(endpoint("pod-a"))!.stream, a.stream);
  assert.equal(kept.take(endpoint("pod-a")), undefined);
  assert.equal((a.stream as MemoryPodStream).open, true, "taken upstreams stay open for their taker");
});

Deno.test("KeptUpstreams: an upstream that the pod closes, or speaks on while idle, is dropped", async () => {
  const { kept, upstream } = setup();
  const closing = upstream();
  const speaking = upstream();
  kept.keep(closing);
  kept.keep(speaking);
  (closing.stream as MemoryPodStream).podCloses();
  (speaking.stream as MemoryPodStream).podSends("HTTP/1.1 408 Request Timeout\r\n\r\n");
  await Promise.resolve();
  assert.equal(kept.size, 0);
  assert.equal((speaking.stream as MemoryPodStream).wasReset, true);
  assert.equal(kept.take(endpoint("pod-a")), undefined);
});

Deno.test("KeptUpstreams: released after the idle time, at most perPod per pod port, all at the forward's end", async () => {
  const { clock, abort, kept, upstream } = setup(2);
  const first = upstream();
  kept.keep(first);
  kept.keep(upstream());
  kept.keep(upstream());
  assert.equal(kept.size, 2);
  assert.equal((first.stream as MemoryPodStream).wasReleased, true, "the oldest made room");
  await clock.sleep(KEPT_IDLE_MS + 10);
  assert.equal(kept.size, 0);
  const late = upstream("pod-b");
  kept.keep(late);
  abort.abort();
  assert.equal(kept.size, 0);
  assert.equal((late.stream as MemoryPodStream).wasReleased, true);
  const after = upstream("pod-b");
  kept.keep(after);
  assert.equal(kept.size, 0, "nothing is kept once the forward ended");
  assert.equal((after.stream as MemoryPodStream).wasReleased, true);
});

Deno.test("KeptUpstreams: drop(pod) resets that pod's upstreams, drop() all", () => {
  const { kept, upstream } = setup();
  const a = upstream("pod-a");
  const b = upstream("pod-b");
  kept.keep(a);
  kept.keep(b);
  assert.deepEqual(kept.pods().sort(), ["pod-a", "pod-b"]);
  kept.drop("pod-a");
  assert.equal((a.stream as MemoryPodStream).wasReset, true);
  assert.deepEqual(kept.pods(), ["pod-b"]);
  kept.drop();
  assert.equal(kept.size, 0);
});
