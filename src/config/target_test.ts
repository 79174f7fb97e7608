import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { formatTarget, parseSelector, parseTarget, SelectorError, TargetError } from "./target.ts";
import type { Target } from "./target.ts";

Deno.test("parseTarget() accepts every kubectl spelling of each kind", () => {
  const cases: Array<[string, Target]> = [
    ["svc/api", { kind: "service", name: "api" }],
    ["service/api", { kind: "service", name: "api" }],
    ["services/api", { kind: "service", name: "api" }],
    ["deploy/web", { kind: "deployment", name: "web" }],
    ["deployment/web", { kind: "deployment", name: "web" }],
    ["deployments/web", { kind: "deployment", name: "web" }],
    ["deployment.apps/web", { kind: "deployment", name: "web" }],
    ["sts/db", { kind: "statefulset", name: "db" }],
    ["statefulset/db", { kind: "statefulset", name: "db" }],
    ["statefulsets/db", { kind: "statefulset", name: "db" }],
    ["rs/web-5d8f", { kind: "replicaset", name: "web-5d8f" }],
    ["replicaset/web-5d8f", { kind: "replicaset", name: "web-5d8f" }],
    ["replicasets.apps/web-5d8f", { kind: "replicaset", name: "web-5d8f" }],
    ["pod/web-0", { kind: "pod", name: "web-0" }],
    ["po/web-0", { kind: "pod", name: "web-0" }],
    ["pods/web-0", { kind: "pod", name: "web-0" }],
    ["web-0", { kind: "pod", name: "web-0" }],
    ["my.pod.example", { kind: "pod", name: "my.pod.example" }],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseTarget(text), expected, text);
});

Deno.test("parseTarget() matches kind names case-insensitively", () => {
  assert.deepEqual(parseTarget("SVC/api"), { kind: "service", name: "api" });
  assert.deepEqual(parseTarget("Deployment/web"), { kind: "deployment", name: "web" });
  assert.deepEqual(parseTarget("StatefulSet/db"), { kind: "statefulset", name: "db" });
});

Deno.test("parseTarget() rejects an unknown kind and lists the supported ones", () => {
  for (const text of ["job/x", "cm/x", "ingress/x"]) {
    const error = thrown(() => parseTarget(text));
    assert.ok(error instanceof TargetError);
    assert.ok(error instanceof UsageError);
    assert.equal(error.exitCode, 2);
    assert.match(error.message, /svc\/NAME, deploy\/NAME, sts\/NAME, rs\/NAME, pod\/NAME/);
    assert.equal(error.input, text);
  }
});

Deno.test("parseTarget() rejects names that are not DNS subdomains", () => {
  for (
    const text of [
      "svc/API",
      "svc/-api",
      "svc/api-",
      "pod/a_b",
      "svc/",
      "",
      "a/b/c",
      "svc/a..b",
      `pod/${"a".repeat(254)}`,
    ]
  ) {
    assert.throws(() => parseTarget(text), TargetError, text);
  }
});

Deno.test("formatTarget() prints the short kubectl form", () => {
  assert.equal(formatTarget({ kind: "service", name: "api" }), "svc/api");
  assert.equal(formatTarget({ kind: "deployment", name: "x" }), "deploy/x");
  assert.equal(formatTarget({ kind: "statefulset", name: "x" }), "sts/x");
  assert.equal(formatTarget({ kind: "replicaset", name: "x" }), "rs/x");
  assert.equal(formatTarget({ kind: "pod", name: "p" }), "pod/p");
  assert.equal(formatTarget({ kind: "selector", selector: "app=x" }), "-l app=x");
});

Deno.test("formatTarget() output parses back to the same target", () => {
  for (const text of ["svc/api", "deploy/x", "sts/db", "rs/r", "pod/p"]) {
    assert.equal(formatTarget(parseTarget(text)), text);
  }
});

Deno.test("parseSelector() accepts equality, inequality, set-based and existence requirements", () => {
  assert.equal(parseSelector("app=web"), "app=web");
  assert.equal(parseSelector("app==web"), "app=web");
  assert.equal(parseSelector("tier!=cache"), "tier!=cache");
  assert.equal(parseSelector("env in (dev,qa)"), "env in (dev,qa)");
  assert.equal(parseSelector("env notin (prod)"), "env notin (prod)");
  assert.equal(parseSelector("!canary"), "!canary");
  assert.equal(parseSelector("canary"), "canary");
  assert.equal(parseSelector("replicas>1"), "replicas>1");
  assert.equal(parseSelector("app.kubernetes.io/name=web"), "app.kubernetes.io/name=web");
  assert.equal(parseSelector("app="), "app=");
});

Deno.test("parseSelector() normalizes a combined selector", () => {
  assert.equal(
    parseSelector(" k=v, k2 != v2 ,k3 in ( a , b ),!k4,k5"),
    "k=v,k2!=v2,k3 in (a,b),!k4,k5",
  );
});

Deno.test("parseSelector() rejects garbage", () => {
  const cases = [
    "",
    "   ",
    "=v",
    "!=v",
    "app=web,",
    ",app=web",
    "app=web,,tier=x",
    "!",
    "app in (a",
    "app in a,b)",
    "app in ()",
    "my app=web",
    "app=we b",
    "app=-web",
    "a=b=c",
    "/name=x",
    "x>y",
    "app=web)",
    `${"k".repeat(64)}=v`,
  ];
  for (const text of cases) assert.throws(() => parseSelector(text), SelectorError, JSON.stringify(text));
});

Deno.test("parseSelector() says an empty key is empty", () => {
  assert.throws(() => parseSelector("=v"), /label key is empty/);
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}
