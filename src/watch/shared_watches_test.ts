import assert from "node:assert/strict";
import type { KubeClient } from "../kube/client.ts";
import { FakeClock, pod, ScriptedListWatch, type TestPod } from "./_testing.ts";
import { SharedWatches, type WatchKey } from "./shared_watches.ts";

/** Distinct objects stand in for clients: SharedWatches only uses their identity. */
const clientA = { contextName: "a" } as unknown as KubeClient;
const clientB = { contextName: "b" } as unknown as KubeClient;
const echo: WatchKey = { resource: "pods", namespace: "default", labelSelector: "app=echo" };

function setup() {
  const created: Array<{ client: KubeClient; key: WatchKey; api: ScriptedListWatch<TestPod> }> = [];
  const watches = new SharedWatches({
    clock: new FakeClock(),
    random: () => 0.5,
    listWatch: (client, key) => {
      const api = new ScriptedListWatch<TestPod>({
        lists: [{ items: [pod("a", "1")], resourceVersion: "1" }],
      });
      created.push({ client, key, api });
      return api as ScriptedListWatch<unknown>;
    },
  });
  return { watches, created };
}

Deno.test("SharedWatches gives two acquires of one selector the same store and one watch", async () => {
  const { watches, created } = setup();
  const first = watches.acquire<TestPod>(clientA, echo);
  const second = watches.acquire<TestPod>(clientA, { ...echo });
  assert.equal(first.store, second.store);
  assert.equal(created.length, 1);
  assert.equal(watches.size, 1);
  await first.store.waitSynced();
  assert.deepEqual(second.store.list(), [pod("a", "1")]);
  assert.deepEqual(created[0].api.calls.filter((c) => c.call === "list").length, 1);
  await watches.close();
});

Deno.test("SharedWatches keeps the watch running until the last holder releases it", async () => {
  const { watches, created } = setup();
  const first = watches.acquire<TestPod>(clientA, echo);
  const second = watches.acquire<TestPod>(clientA, echo);
  await first.store.waitSynced();
  const { signals } = created[0].api;
  first.release();
  first.release(); // a second release of the same lease changes nothing
  assert.ok(signals.every((signal) => !signal.aborted), "still held by the second lease");
  assert.equal(watches.size, 1);
  second.release();
  assert.ok(signals.every((signal) => signal.aborted), "the last release aborts the watch");
  assert.equal(watches.size, 0);
  await watches.close();
});

Deno.test("SharedWatches starts a fresh watch when a released selector is acquired again", async () => {
  const { watches, created } = setup();
  const first = watches.acquire<TestPod>(clientA, echo);
  first.release();
  const again = watches.acquire<TestPod>(clientA, echo);
  assert.notEqual(again.store, first.store);
  assert.equal(created.length, 2);
  again.release();
  await watches.close();
});

Deno.test("SharedWatches keeps separate watches per client, namespace and selector", async () => {
  const { watches, created } = setup();
  const leases = [
    watches.acquire(clientA, echo),
    watches.acquire(clientB, echo),
    watches.acquire(clientA, { ...echo, namespace: "other" }),
    watches.acquire(clientA, { ...echo, labelSelector: "app=web" }),
    watches.acquire(clientA, { ...echo, fieldSelector: "status.phase=Running" }),
    watches.acquire(clientA, { ...echo, resource: "services" }),
  ];
  assert.equal(new Set(leases.map((lease) => lease.store)).size, 6);
  assert.equal(created.length, 6);
  assert.equal(created[1].client, clientB);
  for (const lease of leases) lease.release();
  assert.equal(watches.size, 0);
  await watches.close();
});

Deno.test("SharedWatches.close() stops every watch and waits for it", async () => {
  const { watches, created } = setup();
  const lease = watches.acquire<TestPod>(clientA, echo);
  await lease.store.waitSynced();
  await watches.close();
  assert.ok(created[0].api.signals.every((signal) => signal.aborted));
  assert.equal(watches.size, 0);
  lease.release(); // late release after close is harmless
});

Deno.test("SharedWatches.resync() restarts each watch with a fresh list and keeps its store", async () => {
  const { watches, created } = setup();
  const lease = watches.acquire<TestPod>(clientA, echo);
  await lease.store.waitSynced();
  const store = lease.store;
  watches.resync();
  // the running watch is aborted and a second one is built for the same key, which lists again
  assert.equal(created.length, 2);
  assert.ok(created[0].api.signals.every((signal) => signal.aborted));
  assert.deepEqual(created[1].key, echo);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(created[1].api.calls.filter((c) => c.call === "list").length, 1);
  assert.equal(lease.store, store);
  assert.deepEqual(lease.store.list(), [pod("a", "1")]);
  await watches.close();
});
