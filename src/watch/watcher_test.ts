import assert from "node:assert/strict";
import { ApiError } from "../kube/errors.ts";
import type { KubeClient } from "../kube/client.ts";
import { FakeClock, pod, ScriptedListWatch, take, type TestPod } from "./_testing.ts";
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  kubeListWatch,
  MIN_IDLE_TIMEOUT_MS,
  watcher,
  type WatcherEvent,
  WatchIdleError,
} from "./watcher.ts";

const half = () => 0.5;

function start(api: ScriptedListWatch<TestPod>, options: { idleTimeoutMs?: number } = {}) {
  const abort = new AbortController();
  const clock = new FakeClock();
  const events = watcher(api, { signal: abort.signal, clock, random: half, ...options })
    [Symbol.asyncIterator]();
  return { abort, clock, events };
}

/** Stops the watcher and checks that the iterable then ends. */
async function stop(run: { abort: AbortController; events: AsyncIterator<unknown> }): Promise<void> {
  run.abort.abort();
  assert.deepEqual(await run.events.next(), { done: true, value: undefined });
}

function types(events: WatcherEvent<unknown>[]): string[] {
  return events.map((event) => event.type);
}

Deno.test("watcher() lists, then watches from the list's resource version", async () => {
  const api = new ScriptedListWatch<TestPod>({
    lists: [{ items: [pod("a", "5"), pod("b", "6")], resourceVersion: "10" }],
    watches: [[{ type: "ADDED", object: pod("c", "11") }, { type: "DELETED", object: pod("a", "12") }]],
  });
  const run = start(api);
  const events = await take(run.events, 6);
  assert.deepEqual(events, [
    { type: "init" },
    { type: "initApply", object: pod("a", "5") },
    { type: "initApply", object: pod("b", "6") },
    { type: "initDone" },
    { type: "apply", object: pod("c", "11") },
    { type: "delete", object: pod("a", "12") },
  ]);
  assert.deepEqual(api.calls.slice(0, 2), [
    { call: "list" },
    { call: "watch", resourceVersion: "10", timeoutSeconds: 450 },
  ]);
  await stop(run);
});

Deno.test("watcher() asks for server timeouts jittered between 5 and 10 minutes", async (t) => {
  for (const [random, expected] of [[0, 300], [0.5, 450], [0.999999, 600]] as const) {
    await t.step(`random ${random} gives ${expected} s`, async () => {
      const api = new ScriptedListWatch<TestPod>({ lists: [{ items: [], resourceVersion: "1" }] });
      const abort = new AbortController();
      const events = watcher(api, { signal: abort.signal, clock: new FakeClock(), random: () => random })[
        Symbol.asyncIterator
      ]();
      await take(events, 2);
      const pending = events.next(); // opens the watch
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.deepEqual(api.calls[1], { call: "watch", resourceVersion: "1", timeoutSeconds: expected });
      abort.abort();
      assert.equal((await pending).done, true);
    });
  }
});

Deno.test("watcher() re-watches from the last resource version without relisting when the server ends the stream", async () => {
  const api = new ScriptedListWatch<TestPod>({
    lists: [{ items: [], resourceVersion: "10" }],
    watches: [
      [{ type: "MODIFIED", object: pod("a", "15") }],
      [{ type: "ADDED", object: pod("b", "16") }],
    ],
  });
  const run = start(api);
  const events = await take(run.events, 4);
  assert.deepEqual(types(events), ["init", "initDone", "apply", "apply"]);
  assert.deepEqual(api.calls.map((c) => c.call === "watch" ? `watch@${c.resourceVersion}` : c.call), [
    "list",
    "watch@10",
    "watch@15",
  ]);
  assert.deepEqual(run.clock.sleeps.filter((ms) => ms !== DEFAULT_IDLE_TIMEOUT_MS), [], "no backoff");
  await stop(run);
});

Deno.test("watcher() takes the resource version of a bookmark for the next watch and emits nothing for it", async () => {
  const api = new ScriptedListWatch<TestPod>({
    lists: [{ items: [], resourceVersion: "10" }],
    watches: [
      [{ type: "BOOKMARK", object: { metadata: { name: "", resourceVersion: "42" } } }],
      [{ type: "ADDED", object: pod("b", "43") }],
    ],
  });
  const run = start(api);
  const events = await take(run.events, 3);
  assert.deepEqual(types(events), ["init", "initDone", "apply"]);
  assert.deepEqual(api.calls[2], { call: "watch", resourceVersion: "42", timeoutSeconds: 450 });
  await stop(run);
});

Deno.test("watcher() relists when the watch answers 410 Gone", async (t) => {
  const gone = [
    ["thrown as an ApiError", new ApiError(410, "too old resource version: 10 (20)", { reason: "Expired" })],
    ["sent as an ERROR event", {
      type: "ERROR",
      object: { code: 410, reason: "Expired", message: "too old" },
    }],
  ] as const;
  for (const [how, failure] of gone) {
    await t.step(how, async () => {
      const api = new ScriptedListWatch<TestPod>({
        lists: [
          { items: [pod("a", "5")], resourceVersion: "10" },
          { items: [pod("b", "30")], resourceVersion: "30" },
        ],
        watches: [[{ type: "ADDED", object: pod("c", "11") }, failure]],
      });
      const run = start(api);
      const events = await take(run.events, 7);
      assert.deepEqual(types(events), [
        "init",
        "initApply",
        "initDone",
        "apply",
        "init",
        "initApply",
        "initDone",
      ]);
      assert.ok(!types(events).includes("error"), "a 410 is routine, not an error");
      assert.deepEqual(api.calls.map((c) => c.call === "watch" ? `watch@${c.resourceVersion}` : c.call), [
        "list",
        "watch@10",
        "list",
      ]);
      await stop(run);
    });
  }
});

Deno.test("watcher() reports a failed list, backs off, then relists", async () => {
  const forbidden = new ApiError(403, "pods is forbidden", {
    purpose: { verb: "list", resource: "pods", namespace: "default" },
  });
  const api = new ScriptedListWatch<TestPod>({
    lists: [forbidden, new Error("connection reset"), { items: [pod("a", "5")], resourceVersion: "10" }],
  });
  const run = start(api);
  const events = await take(run.events, 5);
  assert.deepEqual(events.slice(0, 2), [
    { type: "error", error: forbidden, retryInMs: 400 },
    { type: "error", error: new Error("connection reset"), retryInMs: 800 },
  ]);
  assert.equal((events[0] as { error: Error }).error, forbidden, "the ApiError itself, with its hint");
  assert.deepEqual(types(events.slice(2)), ["init", "initApply", "initDone"]);
  assert.deepEqual(run.clock.sleeps.slice(0, 2), [400, 800]);
  assert.deepEqual(api.calls.slice(0, 3), [{ call: "list" }, { call: "list" }, { call: "list" }]);
  await stop(run);
});

Deno.test("watcher() reports a failed watch, backs off, then re-watches from the last resource version", async () => {
  const api = new ScriptedListWatch<TestPod>({
    lists: [{ items: [], resourceVersion: "10" }],
    watches: [
      [{ type: "ADDED", object: pod("a", "11") }, new Error("socket hang up")],
      [{ type: "ERROR", object: { code: 500, reason: "InternalError", message: "etcd is sad" } }],
      [{ type: "BOOKMARK", object: { metadata: { name: "", resourceVersion: "12" } } }],
    ],
  });
  const run = start(api);
  const events = await take(run.events, 6);
  assert.deepEqual(types(events), ["init", "initDone", "apply", "error", "error", "resumed"]);
  const [first, second] = events.slice(3) as Array<{ error: Error; retryInMs: number }>;
  assert.equal(first.error.message, "socket hang up");
  assert.equal(first.retryInMs, 400, "backoff was reset by the successful list and event");
  assert.ok(second.error instanceof ApiError);
  assert.equal(second.error.status, 500);
  assert.equal(second.retryInMs, 800);
  assert.deepEqual(api.calls.map((c) => c.call === "watch" ? `watch@${c.resourceVersion}` : c.call), [
    "list",
    "watch@10",
    "watch@11",
    "watch@11",
  ]);
  await stop(run);
});

Deno.test("watcher() backs off quietly when a watch ends before delivering anything", async () => {
  const api = new ScriptedListWatch<TestPod>({
    lists: [{ items: [], resourceVersion: "10" }],
    watches: [[], [{ type: "ADDED", object: pod("a", "11") }]],
  });
  const run = start(api);
  const events = await take(run.events, 3);
  assert.deepEqual(types(events), ["init", "initDone", "apply"]);
  assert.ok(run.clock.sleeps.includes(400), "waited a backoff delay before re-watching");
  await stop(run);
});

Deno.test("watcher() reopens a silent watch when the idle watchdog fires", async () => {
  const api = new ScriptedListWatch<TestPod>({
    lists: [{ items: [], resourceVersion: "10" }],
    watches: [["hang"], [{ type: "ADDED", object: pod("a", "11") }]],
  });
  const run = start(api, { idleTimeoutMs: 120_000 });
  const events = await take(run.events, 5);
  assert.deepEqual(types(events), ["init", "initDone", "error", "resumed", "apply"]);
  const { error } = events[2] as { error: Error };
  assert.ok(error instanceof WatchIdleError);
  assert.equal(error.idleMs, 120_000);
  assert.equal(api.signals[1].aborted, true, "the silent stream was aborted");
  assert.deepEqual(api.calls[2], { call: "watch", resourceVersion: "10", timeoutSeconds: 450 });
  await stop(run);
});

Deno.test("watcher() never lets the idle watchdog be shorter than the bookmark cadence", async () => {
  const api = new ScriptedListWatch<TestPod>({ lists: [{ items: [], resourceVersion: "10" }] });
  const run = start(api, { idleTimeoutMs: 1_000 });
  const events = await take(run.events, 3);
  const { error } = events[2] as { error: Error };
  assert.ok(error instanceof WatchIdleError);
  assert.equal(error.idleMs, MIN_IDLE_TIMEOUT_MS);
  await stop(run);
});

Deno.test("watcher() ends the iterable when the signal aborts, while listing or watching", async (t) => {
  await t.step("while the list hangs", async () => {
    const api = new ScriptedListWatch<TestPod>({});
    const run = start(api);
    const pending = run.events.next();
    await new Promise((resolve) => setTimeout(resolve, 0));
    run.abort.abort();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.equal(api.signals[0].aborted, true);
  });
  await t.step("while the watch hangs", async () => {
    const api = new ScriptedListWatch<TestPod>({ lists: [{ items: [], resourceVersion: "1" }] });
    const run = start(api);
    await take(run.events, 2);
    const pending = run.events.next();
    await new Promise((resolve) => setTimeout(resolve, 0));
    run.abort.abort();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.equal(api.signals[1].aborted, true, "the watch request was aborted");
  });
  await t.step("while backing off", async () => {
    const api = new ScriptedListWatch<TestPod>({ lists: [new Error("down")] });
    const run = start(api);
    await take(run.events, 1);
    const pending = run.events.next();
    run.abort.abort();
    assert.deepEqual(await pending, { done: true, value: undefined });
  });
});

Deno.test("kubeListWatch() lists and watches the namespaced path with selectors, bookmarks and RBAC purposes", async () => {
  const requests: Array<{ kind: string; path: string; options: Record<string, unknown> }> = [];
  const client = {
    getJson(path: string, options: Record<string, unknown>) {
      requests.push({ kind: "getJson", path, options });
      return Promise.resolve({ metadata: { resourceVersion: "77" }, items: [pod("a", "70")] });
    },
    async *streamJsonLines(path: string, options: Record<string, unknown>) {
      requests.push({ kind: "stream", path, options });
      yield { type: "ADDED", object: pod("b", "78") };
    },
  } as unknown as KubeClient;
  const api = kubeListWatch<TestPod>(client, {
    resource: "pods",
    namespace: "team a",
    labelSelector: "app=echo",
  });
  assert.equal(api.describe, "pods -l app=echo in namespace team a");
  const signal = new AbortController().signal;
  assert.deepEqual(await api.list(signal), { items: [pod("a", "70")], resourceVersion: "77" });
  const events = [];
  for await (const event of api.watch("77", { timeoutSeconds: 321, signal })) events.push(event);
  assert.deepEqual(events, [{ type: "ADDED", object: pod("b", "78") }]);
  assert.deepEqual(requests, [
    {
      kind: "getJson",
      path: "/api/v1/namespaces/team%20a/pods",
      options: {
        query: { labelSelector: "app=echo", fieldSelector: undefined },
        signal,
        purpose: { verb: "list", resource: "pods", namespace: "team a" },
      },
    },
    {
      kind: "stream",
      path: "/api/v1/namespaces/team%20a/pods",
      options: {
        query: {
          watch: "1",
          resourceVersion: "77",
          allowWatchBookmarks: "true",
          timeoutSeconds: "321",
          labelSelector: "app=echo",
          fieldSelector: undefined,
        },
        signal,
        purpose: { verb: "watch", resource: "pods", namespace: "team a" },
      },
    },
  ]);
});
