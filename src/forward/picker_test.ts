import assert from "node:assert/strict";
import type { Pod, Service } from "../kube/types.ts";
import {
  choosePod,
  choosePodRoundRobin,
  endpointFor,
  isPodReady,
  resolveContainerPort,
  standbyPods,
} from "./picker.ts";

function pod(
  name: string,
  options: { ready?: boolean; phase?: string; deleting?: boolean; created?: string; httpPort?: number } = {},
): Pod {
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      creationTimestamp: options.created ?? "2026-01-01T00:00:00Z",
      deletionTimestamp: options.deleting ? "2026-01-01T00:01:00Z" : undefined,
    },
    spec: {
      containers: [{ name: "app", ports: [{ name: "http", containerPort: options.httpPort ?? 8080 }] }],
    },
    status: {
      phase: options.phase ?? "Running",
      conditions: [{ type: "Ready", status: options.ready === false ? "False" : "True" }],
    },
  };
}

const service: Service = {
  metadata: { name: "echo" },
  spec: { selector: { app: "echo" }, ports: [{ name: "web", port: 80, targetPort: "http" }, { port: 9000 }] },
};

Deno.test("isPodReady needs Running, Ready=True and no deletionTimestamp", () => {
  assert.equal(isPodReady(pod("a")), true);
  assert.equal(isPodReady(pod("a", { ready: false })), false);
  assert.equal(isPodReady(pod("a", { phase: "Pending" })), false);
  assert.equal(isPodReady(pod("a", { deleting: true })), false);
});

Deno.test("resolveContainerPort resolves names per pod", () => {
  assert.equal(resolveContainerPort(pod("a", { httpPort: 8081 }), "http"), 8081);
  assert.equal(resolveContainerPort(pod("a"), "metrics"), undefined);
  assert.equal(resolveContainerPort(pod("a"), 5432), 5432);
});

Deno.test("endpointFor maps a Service port through a named targetPort", () => {
  assert.deepEqual(endpointFor(pod("a", { httpPort: 8081 }), 80, service), {
    pod: "a",
    uid: "uid-a",
    port: 8081,
  });
  assert.deepEqual(endpointFor(pod("a"), "web", service), { pod: "a", uid: "uid-a", port: 8080 });
  // no targetPort: the Service port itself
  assert.deepEqual(endpointFor(pod("a"), 9000, service), { pod: "a", uid: "uid-a", port: 9000 });
  assert.equal(endpointFor(pod("a"), 81, service), undefined);
});

Deno.test("choosePod stays on the current pod while it is ready", () => {
  const pods = [
    pod("old", { created: "2026-01-01T00:00:00Z" }),
    pod("new", { created: "2026-01-02T00:00:00Z" }),
  ];
  assert.equal(choosePod(pods, { current: "old" })?.metadata.name, "old");
});

Deno.test("choosePod takes the newest ready pod when the current one is gone", () => {
  const pods = [
    pod("a", { created: "2026-01-01T00:00:00Z" }),
    pod("b", { created: "2026-01-03T00:00:00Z", ready: false }),
    pod("c", { created: "2026-01-02T00:00:00Z" }),
  ];
  assert.equal(choosePod(pods, { current: "gone" })?.metadata.name, "c");
  assert.equal(choosePod(pods, { exclude: new Set(["c"]) })?.metadata.name, "a");
  assert.equal(choosePod([pod("x", { deleting: true })]), undefined);
});

Deno.test("round-robin cycles through ready pods by name and skips excluded and unready ones", () => {
  const pods = [pod("c"), pod("a"), pod("b", { ready: false }), pod("d")];
  const order: string[] = [];
  let last: string | undefined;
  for (let i = 0; i < 4; i++) {
    last = choosePodRoundRobin(pods, { last })?.metadata.name;
    order.push(last!);
  }
  assert.deepEqual(order, ["a", "c", "d", "a"]);
  assert.equal(choosePodRoundRobin(pods, { last: "a", exclude: new Set(["c"]) })?.metadata.name, "d");
  // the pod it used last is gone: the next one after its name
  assert.equal(choosePodRoundRobin(pods, { last: "b" })?.metadata.name, "c");
  assert.equal(choosePodRoundRobin([pod("x", { ready: false })]), undefined);
});

Deno.test("standby pods: Running ones other than the picked, ready or not yet, newest first, never deleting or pending", () => {
  const pods = [
    pod("picked", { created: "2026-01-01T00:00:03Z" }),
    pod("old-ready", { created: "2026-01-01T00:00:01Z" }),
    pod("starting", { ready: false, created: "2026-01-01T00:00:05Z" }),
    pod("pending", { phase: "Pending", ready: false, created: "2026-01-01T00:00:06Z" }),
    pod("going", { deleting: true, created: "2026-01-01T00:00:07Z" }),
    pod("mid-ready", { created: "2026-01-01T00:00:02Z" }),
  ];
  assert.deepEqual(standbyPods(pods, "picked", 2).map((p) => p.metadata.name), ["starting", "mid-ready"]);
  assert.deepEqual(standbyPods(pods, undefined, 5).map((p) => p.metadata.name), [
    "starting",
    "picked",
    "mid-ready",
    "old-ready",
  ]);
});
