import assert from "node:assert/strict";
import { ApiError } from "../kube/errors.ts";
import { FakeClock, pod, type TestPod } from "./_testing.ts";
import { LAST_APPLIED_ANNOTATION, reflect, reflector, trimForStore } from "./reflector.ts";
import { objectKey, StoreWriter } from "./store.ts";
import type { WatcherEvent } from "./watcher.ts";

async function* literal<T>(events: WatcherEvent<T>[]): AsyncGenerator<WatcherEvent<T>> {
  yield* events;
}

function names(pods: TestPod[]): string[] {
  return pods.map((p) => p.metadata.name).sort();
}

const initial: WatcherEvent<TestPod>[] = [
  { type: "init" },
  { type: "initApply", object: pod("a", "1") },
  { type: "initApply", object: pod("b", "2") },
  { type: "initDone" },
];

Deno.test("reflector fills the store from a list and then from watch events", async () => {
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  await reflect(
    literal([
      ...initial,
      { type: "apply", object: pod("c", "3") },
      { type: "apply", object: pod("a", "4", "Succeeded") },
      { type: "delete", object: pod("b", "5") },
    ]),
    writer,
  );
  const { store } = writer;
  assert.deepEqual(names(store.list()), ["a", "c"]);
  assert.deepEqual(store.get("default/a"), pod("a", "4", "Succeeded"));
  assert.equal(store.get("default/b"), undefined);
  assert.equal(store.synced, true);
  assert.equal(store.status.state, "ready");
});

Deno.test("reflector restarted should clear objects missing from the relist, swapping them in at initDone", async () => {
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  const { store } = writer;
  await reflect(literal(initial), writer);
  const seenDuringRelist: string[][] = [];
  const relist: WatcherEvent<TestPod>[] = [
    { type: "init" },
    { type: "initApply", object: pod("b", "7") },
    { type: "initApply", object: pod("d", "8") },
  ];
  for await (const _ of reflector(literal(relist), writer)) seenDuringRelist.push(names(store.list()));
  assert.deepEqual(
    seenDuringRelist,
    [["a", "b"], ["a", "b"], ["a", "b"]],
    "the old objects stay until initDone",
  );
  await reflect(literal<TestPod>([{ type: "initDone" }]), writer);
  assert.deepEqual(names(store.list()), ["b", "d"], "a, deleted while we were away, is gone");
  assert.equal(store.get("default/b")?.metadata.resourceVersion, "7");
});

Deno.test("reflector turns the store degraded on an error but keeps its objects", async () => {
  const clock = new FakeClock();
  const writer = new StoreWriter<TestPod>({ clock });
  const { store } = writer;
  await reflect(literal(initial), writer);
  const forbidden = new ApiError(403, "pods is forbidden", {
    purpose: { verb: "watch", resource: "pods", namespace: "default" },
  });
  clock.advance(1000);
  await reflect(literal<TestPod>([{ type: "error", error: forbidden, retryInMs: 800 }]), writer);
  assert.deepEqual(store.status, { state: "degraded", lastError: forbidden, since: 1000 });
  assert.match(forbidden.hint ?? "", /RBAC needs verb 'watch'/);
  assert.deepEqual(names(store.list()), ["a", "b"], "a flaky API must not drop the pods we know");
  assert.equal(store.synced, true);
  clock.advance(1000);
  await reflect(literal<TestPod>([{ type: "error", error: new Error("again") }]), writer);
  assert.equal(store.status.since, 1000, "still the same degraded spell");
  assert.equal(store.status.lastError?.message, "again");
  clock.advance(1000);
  await reflect(literal<TestPod>([{ type: "resumed" }]), writer);
  assert.deepEqual(store.status, { state: "ready", since: 3000 });
});

Deno.test("reflector returns the store to ready on the next object event after an error", async () => {
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  await reflect(literal(initial), writer);
  await reflect(literal<TestPod>([{ type: "error", error: new Error("reset") }]), writer);
  await reflect(literal<TestPod>([{ type: "apply", object: pod("c", "9") }]), writer);
  assert.equal(writer.store.status.state, "ready");
});

Deno.test("reflector reports an error before the first list as degraded, and not yet synced", async () => {
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  assert.equal(writer.store.status.state, "syncing");
  await reflect(literal<TestPod>([{ type: "error", error: new Error("refused") }]), writer);
  assert.equal(writer.store.status.state, "degraded");
  assert.equal(writer.store.synced, false);
  await reflect(literal(initial), writer);
  assert.equal(writer.store.status.state, "ready");
  assert.equal(writer.store.synced, true);
});

Deno.test("reflector notifies subscribers once per visible change and per status change", async () => {
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  const seen: string[] = [];
  const unsubscribe = writer.store.subscribe(() => {
    seen.push(`${writer.store.status.state}:${names(writer.store.list()).join(",")}`);
  });
  await reflect(
    literal<TestPod>([
      ...initial,
      { type: "apply", object: pod("c", "3") },
      { type: "error", error: new Error("blip") },
      { type: "resumed" },
      { type: "resumed" },
      { type: "delete", object: pod("a", "4") },
    ]),
    writer,
  );
  assert.deepEqual(seen, ["ready:a,b", "ready:a,b,c", "degraded:a,b,c", "ready:a,b,c", "ready:b,c"]);
  unsubscribe();
  await reflect(literal<TestPod>([{ type: "apply", object: pod("d", "5") }]), writer);
  assert.equal(seen.length, 5, "no calls after unsubscribing");
});

Deno.test("store.waitSynced() resolves at the first initDone and rejects when its signal aborts", async () => {
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  const abort = new AbortController();
  const aborted = writer.store.waitSynced(abort.signal);
  abort.abort(new Error("stopped"));
  await assert.rejects(aborted, /stopped/);
  const synced = writer.store.waitSynced();
  await reflect(literal(initial), writer);
  await synced;
  await writer.store.waitSynced(AbortSignal.abort()); // already synced: resolves at once
});

Deno.test("reflector strips managedFields and the last-applied annotation before storing", async () => {
  const fat: TestPod = {
    metadata: {
      name: "fat",
      namespace: "default",
      resourceVersion: "1",
      managedFields: [{ manager: "kubectl", fieldsV1: {} }],
      annotations: { [LAST_APPLIED_ANNOTATION]: "{...}", team: "web" },
    },
  };
  const writer = new StoreWriter<TestPod>({ clock: new FakeClock() });
  const passedOn: WatcherEvent<TestPod>[] = [];
  for await (
    const event of reflector(
      literal<TestPod>([{ type: "init" }, { type: "initApply", object: fat }, { type: "initDone" }]),
      writer,
    )
  ) {
    passedOn.push(event);
  }
  const slim = {
    metadata: { name: "fat", namespace: "default", resourceVersion: "1", annotations: { team: "web" } },
  };
  assert.deepEqual(writer.store.get("default/fat"), slim);
  assert.deepEqual(passedOn[1], { type: "initApply", object: slim });
  assert.ok(fat.metadata.managedFields, "the input object is not modified");
  const lean = pod("a", "1");
  assert.equal(trimForStore(lean), lean, "an object with nothing to strip is stored as it is, uncopied");
});

Deno.test("objectKey() is namespace/name, or the name alone for cluster-scoped objects", () => {
  assert.equal(objectKey(pod("a", "1")), "default/a");
  assert.equal(objectKey({ metadata: { name: "node-1" } }), "node-1");
});
