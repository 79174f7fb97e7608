import assert from "node:assert/strict";
import { join } from "node:path";
import { KfError, UsageError } from "../errors.ts";
import { adHocForward, defaultForwardName, loadConfigFiles, parseConfigText } from "./config.ts";
import type { ForwardSpec } from "./config.ts";
import { ConfigError, ConfigErrors } from "./config_error.ts";
import { PortMappingError } from "./ports.ts";
import { TargetError } from "./target.ts";

const HOME = { homeDir: "/home/me" };

/** Runs `fn`, which must throw, and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

async function rejected(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

/** The errors of a config that must fail, as `line:col path: reason` for compact exact assertions. */
function problems(text: string, file = "kf.yaml"): string[] {
  const error = thrown(() => parseConfigText(text, file, HOME));
  assert.ok(error instanceof ConfigErrors, String(error));
  return error.errors.map((e) => `${e.line}:${e.column} ${e.path}: ${e.reason}`);
}

Deno.test("parseConfigText() reads the documented example", () => {
  const text = `# top-level defaults, each optional
context: dev
namespace: default
kubeconfig: ~/.kube/config
address: 127.0.0.1
podWaitTimeout: 30s
forwards:
  - name: api
    target: svc/api
    ports: ["8080:80", 5432, "9000:metrics"]
  - name: db
    selector: app=db,tier!=cache
    namespace: data
    context: prod
    address: 127.0.0.2
    ports: [5432]
    podWaitTimeout: 10s
`;
  const expected: ForwardSpec[] = [
    {
      name: "api",
      target: { kind: "service", name: "api" },
      ports: [{ local: 8080, remote: 80 }, { local: 5432, remote: 5432 }, { local: 9000, remote: "metrics" }],
      namespace: "default",
      context: "dev",
      kubeconfig: "/home/me/.kube/config",
      addresses: ["127.0.0.1"],
      podWaitTimeoutMs: 30_000,
      source: { file: "kf.yaml", line: 8, column: 5 },
    },
    {
      name: "db",
      target: { kind: "selector", selector: "app=db,tier!=cache" },
      ports: [{ local: 5432, remote: 5432 }],
      namespace: "data",
      context: "prod",
      kubeconfig: "/home/me/.kube/config",
      addresses: ["127.0.0.2"],
      podWaitTimeoutMs: 10_000,
      source: { file: "kf.yaml", line: 11, column: 5 },
    },
  ];
  assert.deepEqual(parseConfigText(text, "kf.yaml", HOME), expected);
});

Deno.test("parseConfigText() fills in defaults and derives names", () => {
  const text = `forwards:
  - target: svc/api
    ports: [8080:80]
  - target: Deployment/web
    ports: [":3000"]
  - selector: "tier=db, app in (pg)"
    ports: [0:postgres]
  - {target: web-0, ports: [9090]}
`;
  const forwards = parseConfigText(text, "kf.yaml", HOME);
  assert.deepEqual(forwards.map((f) => f.name), ["api", "web", "db", "web-0"]);
  assert.deepEqual(forwards[0], {
    name: "api",
    target: { kind: "service", name: "api" },
    ports: [{ local: 8080, remote: 80 }],
    namespace: undefined,
    context: undefined,
    kubeconfig: undefined,
    addresses: ["localhost"],
    podWaitTimeoutMs: 30_000,
    source: { file: "kf.yaml", line: 2, column: 5 },
  });
  assert.deepEqual(forwards[1].target, { kind: "deployment", name: "web" });
  assert.deepEqual(forwards[2].target, { kind: "selector", selector: "tier=db,app in (pg)" });
  assert.deepEqual(forwards[2].ports, [{ local: 0, remote: "postgres" }]);
  assert.deepEqual(forwards[3].target, { kind: "pod", name: "web-0" });
  assert.deepEqual(forwards[3].source, { file: "kf.yaml", line: 8, column: 5 });
});

Deno.test("parseConfigText() reads podWaitTimeout numbers as seconds", () => {
  const [forward] = parseConfigText("podWaitTimeout: 5\nforwards: [{target: svc/a, ports: [1]}]", "kf.yaml");
  assert.equal(forward.podWaitTimeoutMs, 5000);
});

Deno.test("parseConfigText() resolves a relative kubeconfig against the config file's folder", () => {
  const text = "kubeconfig: kube/dev.yaml\nforwards: [{target: svc/a, ports: [1], kubeconfig: /abs/k}]\n" +
    "---\n";
  // A trailing document marker alone is not a second document.
  const forwards = parseConfigText(text.replace("---\n", ""), "/etc/kf/kf.yaml", HOME);
  assert.equal(forwards[0].kubeconfig, "/abs/k");
  const [inherited] = parseConfigText(
    "kubeconfig: kube/dev.yaml\nforwards: [{target: svc/a, ports: [1]}]",
    "/etc/kf/kf.yaml",
  );
  assert.equal(inherited.kubeconfig, "/etc/kf/kube/dev.yaml");
});

Deno.test("parseConfigText() accepts YAML anchors and aliases", () => {
  const text = `forwards:
  - {name: a, target: svc/a, ports: &ports [8080:80]}
  - {name: b, target: svc/b, address: 127.0.0.2, ports: *ports}
`;
  const forwards = parseConfigText(text, "kf.yaml");
  assert.deepEqual(forwards[1].ports, [{ local: 8080, remote: 80 }]);
});

Deno.test("parseConfigText() lets port 0 and different addresses share a local port", () => {
  const text = `forwards:
  - {name: a, target: svc/a, ports: [0:80, 8080:80]}
  - {name: b, target: svc/b, ports: [0:80, :81]}
  - {name: c, target: svc/c, ports: [8080:80], address: 127.0.0.2}
  - {name: d, target: svc/d, ports: [8080:80], address: "10.0.0.5"}
`;
  assert.equal(parseConfigText(text, "kf.yaml").length, 4);
});

Deno.test("parseConfigText() reports every problem with its exact position, in order", () => {
  const text = `namspace: dev
address: nope
podWaitTimeout: 3x
forwards:
  - target: svc/api
    ports: [8080:80, metrics, 70000]
  - name: web
    target: job/web
    ports: []
  - name: 12
    selector: app in (a
    ports: 1
  - target: pod/api
    selector: app=x
    prots: [1]
`;
  assert.deepEqual(problems(text), [
    "1:1 namspace: unknown key 'namspace'; did you mean 'namespace'?",
    `2:10 address: invalid address "nope": use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost`,
    `3:17 podWaitTimeout: invalid podWaitTimeout "3x": "3x" is not a number with a unit; write e.g. 30s, 500ms, 2m or 1m30s`,
    `6:22 forwards[0].ports[1]: invalid port "metrics": "metrics" is a named port, so the local port cannot default to it; write LOCAL:metrics (e.g. 9000:metrics) or :metrics for a free local port`,
    `6:31 forwards[0].ports[2]: invalid port "70000": port 70000 is out of range; use 1-65535`,
    `8:13 forwards[1].target: invalid target "job/web": kind "job" is not supported; use svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a bare pod name`,
    "9:12 forwards[1].ports: 'ports' is empty; add at least one, e.g. ports: [8080:80]",
    `10:11 forwards[2].name: 'name' must be a string like api, not the number 12; quote it: name: "12"`,
    `11:15 forwards[2].selector: invalid selector "app in (a": a '(' is not closed; write set values as key in (a,b)`,
    "12:12 forwards[2].ports: 'ports' must be a list, not the number 1; write e.g. ports: [8080:80, 5432]",
    "13:5 forwards[3]: forward has no 'ports'; add e.g. ports: [8080:80] (LOCAL:REMOTE)",
    "14:5 forwards[3].selector: both 'target' and 'selector' are set; keep one: 'target' for a named object, 'selector' for any matching pod",
    "15:5 forwards[3].prots: unknown key 'prots'; did you mean 'ports'?",
  ]);
});

Deno.test("parseConfigText() formats errors as file:line:col and joins them by lines", () => {
  const error = thrown(() =>
    parseConfigText("forwards:\n  - target: svc/a\n    ports: [0]\n  - nope\n", "dev.yaml")
  );
  assert.ok(error instanceof ConfigErrors);
  assert.ok(error instanceof UsageError);
  assert.ok(error instanceof KfError);
  assert.equal(error.exitCode, 2);
  assert.equal(error.errors.length, 2);
  const [first] = error.errors;
  assert.ok(first instanceof ConfigError);
  assert.equal(first.exitCode, 2);
  assert.deepEqual([first.file, first.line, first.column, first.path], [
    "dev.yaml",
    3,
    13,
    "forwards[0].ports[0]",
  ]);
  assert.equal(first.toString(), `dev.yaml:3:13: invalid port "0": port 0 is out of range; use 1-65535`);
  assert.equal(
    error.message,
    `dev.yaml:3:13: invalid port "0": port 0 is out of range; use 1-65535\n` +
      `dev.yaml:4:5: each forward must be a map, not the string "nope"; ` +
      `write e.g. '- {target: svc/api, ports: [8080:80]}'`,
  );
});

Deno.test("parseConfigText() reports YAML syntax errors at yaml's position", async (t) => {
  await t.step("unclosed flow sequence", () => {
    assert.deepEqual(problems("forwards:\n  - target: svc/a\n    ports: [80\n"), [
      "4:1 : invalid YAML: flow sequence in block collection must be sufficiently indented and end with a ]; " +
      "fix the syntax here",
    ]);
  });
  await t.step("duplicate key", () => {
    assert.deepEqual(problems("forwards: []\nnamespace: a\nnamespace: b\n"), [
      "3:1 : this key is already set in the same map; remove one of them",
    ]);
  });
  await t.step("tab indentation", () => {
    assert.deepEqual(problems("forwards:\n\t- target: svc/a\n"), [
      "2:1 : YAML does not allow tabs for indentation; indent with spaces",
    ]);
  });
  await t.step("two documents", () => {
    assert.deepEqual(problems("forwards: [{target: svc/a, ports: [1]}]\n---\nforwards: []\n"), [
      "2:1 : a config file holds one YAML document; remove the '---' line or split it into two files",
    ]);
  });
});

Deno.test("parseConfigText() rejects empty and non-map documents", async (t) => {
  await t.step("empty file", () => {
    assert.deepEqual(problems(""), [
      "1:1 : the config file is empty; add a 'forwards:' list, e.g. forwards: [{target: svc/api, ports: [8080:80]}]",
    ]);
  });
  await t.step("only comments", () => {
    assert.equal(problems("# nothing yet\n").length, 1);
  });
  await t.step("a list at the top level", () => {
    assert.deepEqual(problems("\n- target: svc/a\n"), [
      "2:1 : the top level must be a map with a 'forwards:' list, not a list; start the file with forwards:",
    ]);
  });
  await t.step("missing forwards", () => {
    assert.deepEqual(problems("namespace: dev\n"), [
      "1:1 : missing 'forwards'; add a list like forwards: [{target: svc/api, ports: [8080:80]}]",
    ]);
  });
  await t.step("empty forwards", () => {
    assert.deepEqual(problems("forwards: []\n"), [
      "1:11 forwards: 'forwards' is empty; add at least one forward like {target: svc/api, ports: [8080:80]}",
    ]);
  });
  await t.step("forwards without a value", () => {
    assert.deepEqual(problems("namespace: dev\nforwards:\n"), [
      "2:1 forwards: 'forwards' must be a list, not nothing; write each forward as '- target: ...' below it",
    ]);
  });
});

Deno.test("parseConfigText() reports forwards without target, selector or derivable name", () => {
  const text = `forwards:
  - ports: [1]
  - selector: "!canary"
    ports: [2]
`;
  assert.deepEqual(problems(text), [
    "2:5 forwards[0]: forward has neither 'target' nor 'selector'; add e.g. target: svc/api or selector: app=api",
    "3:5 forwards[1]: forward has no 'name' and its selector has no key=value to take one from; add e.g. name: db",
  ]);
});

Deno.test("parseConfigText() reports duplicate names, including derived ones", () => {
  const text = `forwards:
  - name: api
    target: svc/api
    ports: [1]
  - target: deploy/api
    ports: [2]
  - name: api
    target: pod/x
    ports: [3]
`;
  assert.deepEqual(problems(text), [
    `5:13 forwards[1].target: forward name "api" (taken from its target) is already used at kf.yaml:2:11; add a unique 'name:'`,
    `7:11 forwards[2].name: forward name "api" is already used at kf.yaml:2:11; names must be unique, rename one`,
  ]);
});

Deno.test("parseConfigText() reports local ports used twice on overlapping addresses", () => {
  const text = `forwards:
  - {name: a, target: svc/a, ports: [8080:80, 8080:81]}
  - {name: b, target: svc/b, ports: [9090:80], address: 0.0.0.0}
  - {name: c, target: svc/c, ports: [9090], address: localhost}
  - {name: d, target: svc/d, ports: [8080], address: "::1"}
  - {name: e, target: svc/e, ports: [7070], address: [10.0.0.5, "fe80::1"]}
  - {name: f, target: svc/f, ports: [7070], address: "::"}
`;
  assert.deepEqual(problems(text), [
    `2:47 forwards[0].ports[1]: local port 8080 on localhost is already used by forward "a" at kf.yaml:2:38; ` +
    "pick another local port, or 0 for a free one",
    `4:38 forwards[2].ports[0]: local port 9090 on localhost is already used by forward "b" at kf.yaml:3:38; ` +
    "pick another local port, or 0 for a free one",
    // localhost is ::1 too
    `5:38 forwards[3].ports[0]: local port 8080 on ::1 is already used by forward "a" at kf.yaml:2:38; ` +
    "pick another local port, or 0 for a free one",
    // :: takes the port on every address
    `7:38 forwards[5].ports[0]: local port 7070 on :: is already used by forward "e" at kf.yaml:6:38; ` +
    "pick another local port, or 0 for a free one",
  ]);
});

Deno.test("parseConfigText() suggests the closest key for unknown keys", () => {
  const text = `Namespace: a
forwards:
  - target: svc/a
    ports: [1]
    ns: x
    timeout: 5s
    forwards: []
    wat: 1
`;
  assert.deepEqual(problems(text), [
    "1:1 Namespace: unknown key 'Namespace'; did you mean 'namespace'?",
    "5:5 forwards[0].ns: unknown key 'ns'; did you mean 'namespace'?",
    "6:5 forwards[0].timeout: unknown key 'timeout'; did you mean 'podWaitTimeout'?",
    "7:5 forwards[0].forwards: 'forwards' is only valid at the top level of the file; move it there",
    "8:5 forwards[0].wat: unknown key 'wat'; valid keys here are 'name', 'target', 'selector', 'ports', " +
    "'namespace', 'context', 'kubeconfig', 'address', 'podWaitTimeout', 'streamIdleTimeout', 'transport', 'protocol', 'balance', 'logRequests'",
  ]);
});

Deno.test("parseConfigText() reports wrong value types", () => {
  const text = `context: [a]
namespace: Bad_NS
forwards:
  - target: svc/a
    ports: [true, {a: 1}]
    podWaitTimeout: [1]
    address:
`;
  assert.deepEqual(problems(text), [
    "1:10 context: 'context' must be a string like dev (see kubectl config get-contexts), not a list",
    `2:12 namespace: invalid namespace "Bad_NS": use up to 63 lowercase letters, digits and '-', ` +
    "starting and ending with a letter or digit",
    '5:13 forwards[0].ports[0]: a port must be a number or a string like "8080:80", not the boolean true',
    '5:19 forwards[0].ports[1]: a port must be a number or a string like "8080:80", not a map',
    "6:21 forwards[0].podWaitTimeout: 'podWaitTimeout' must be a duration like 30s, not a list",
    "7:5 forwards[0].address: 'address' must be a string like 127.0.0.1, not nothing",
  ]);
});

Deno.test("loadConfigFiles() concatenates files, each with its own defaults", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    await Deno.writeTextFile(a, "namespace: one\nforwards:\n  - {target: svc/api, ports: [8080:80]}\n");
    await Deno.writeTextFile(b, "forwards:\n  - {target: svc/db, ports: [5432]}\n");
    const session = await loadConfigFiles([a, b]);
    assert.deepEqual(session.files, [a, b]);
    assert.deepEqual(session.forwards.map((f) => [f.name, f.namespace, f.source?.file]), [
      ["api", "one", a],
      ["db", undefined, b],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfigFiles() checks names and ports across files, errors in file order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    await Deno.writeTextFile(
      a,
      "forwards:\n  - {target: svc/api, ports: [8080:80]}\n  - {target: svc/x, ports: [80:]}\n",
    );
    await Deno.writeTextFile(
      b,
      "forwards:\n  - {target: svc/api, ports: [8080]}\n  - {target: svc/y, ports: [x]}\n",
    );
    // b is given first, so its forwards come first and its later-line error sorts before a's errors.
    const error = await rejected(loadConfigFiles([b, a]));
    assert.ok(error instanceof ConfigErrors);
    assert.deepEqual(error.errors.map((e) => [e.file, e.line, e.column]), [
      [b, 3, 29],
      [a, 2, 14],
      [a, 2, 31],
      [a, 3, 29],
    ]);
    assert.ok(error.errors[1].reason.includes(`"api" (taken from its target) is already used at ${b}:2:14`));
    assert.ok(
      error.errors[2].reason.includes(
        `local port 8080 on localhost is already used by forward "api" at ${b}:2:31`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfigFiles() keeps only the forwards asked for", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "kf.yaml");
    await Deno.writeTextFile(
      file,
      "forwards:\n  - {target: svc/a, ports: [1]}\n  - {target: svc/b, ports: [2]}\n",
    );
    await t.step("known names", async () => {
      const session = await loadConfigFiles([file], { only: ["b"] });
      assert.deepEqual(session.forwards.map((f) => f.name), ["b"]);
    });
    await t.step("an unknown name lists the available ones", async () => {
      const error = await rejected(loadConfigFiles([file], { only: ["b", "c"] }));
      assert.ok(error instanceof UsageError);
      assert.equal(error.message, `Cannot select forward "c": not in the config; available: a, b`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfigFiles() says a missing file is not found", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "nope.yaml");
    const error = await rejected(loadConfigFiles([missing]));
    assert.ok(error instanceof UsageError, "a config error: exit 2");
    assert.equal(error.exitCode, 2);
    assert.ok(!(error instanceof ConfigErrors));
    assert.equal(error.message, `Cannot read config file ${missing}: not found`);
    assert.ok(error.hint);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adHocForward() builds a spec from flags", () => {
  assert.deepEqual(adHocForward({ target: "svc/api", ports: ["8080:80", ":9090"], namespace: "dev" }), {
    name: "api",
    target: { kind: "service", name: "api" },
    ports: [{ local: 8080, remote: 80 }, { local: 0, remote: 9090 }],
    namespace: "dev",
    context: undefined,
    kubeconfig: undefined,
    addresses: ["localhost"],
    podWaitTimeoutMs: 30_000,
  });
  const bySelector = adHocForward({
    selector: "app==db",
    ports: ["5432"],
    address: "0.0.0.0",
    podWaitTimeout: "1s",
    context: "prod",
  });
  assert.equal(bySelector.name, "db");
  assert.deepEqual(bySelector.target, { kind: "selector", selector: "app=db" });
  assert.deepEqual(bySelector.addresses, ["0.0.0.0"]);
  assert.equal(bySelector.podWaitTimeoutMs, 1000);
  assert.equal(adHocForward({ selector: "!canary", ports: ["1"] }).name, "forward");
  assert.equal(adHocForward({ target: "pod/p", ports: ["1"], name: "mine" }).name, "mine");
  assert.equal(
    adHocForward({ target: "pod/p", ports: ["1"], kubeconfig: "~/k" }).kubeconfig?.endsWith("/k"),
    true,
  );
});

Deno.test("adHocForward() rejects bad flags with usage errors", () => {
  assert.ok(thrown(() => adHocForward({ target: "job/x", ports: ["1"] })) instanceof TargetError);
  assert.ok(thrown(() => adHocForward({ target: "svc/a", ports: ["x"] })) instanceof PortMappingError);
  const cases = [
    { ports: ["1"] },
    { target: "svc/a", selector: "app=a", ports: ["1"] },
    { target: "svc/a", ports: [] },
    { target: "svc/a", ports: ["1"], address: "my-host" },
    { target: "svc/a", ports: ["1"], namespace: "Dev" },
    { target: "svc/a", ports: ["1"], name: "a b" },
    { target: "svc/a", ports: ["1"], podWaitTimeout: "-1" },
  ];
  for (const args of cases) {
    const error = thrown(() => adHocForward(args));
    assert.ok(error instanceof UsageError, JSON.stringify(args));
    assert.equal(error.exitCode, 2);
  }
});

Deno.test("defaultForwardName() takes the object's name or the selector's first value", () => {
  assert.equal(defaultForwardName({ kind: "statefulset", name: "pg" }), "pg");
  assert.equal(defaultForwardName({ kind: "selector", selector: "tier!=cache,app=db" }), "db");
  assert.equal(defaultForwardName({ kind: "selector", selector: "app in (a),!b" }), undefined);
});

Deno.test("parseConfigText() reads transport at the top and per forward, and rejects unknown ones", () => {
  const specs = parseConfigText(
    "transport: spdy\nforwards:\n  - {name: a, target: svc/a, ports: [80]}\n  - {name: b, target: svc/b, ports: [81], transport: websocket}\n",
    "t.yaml",
  );
  assert.deepEqual(specs.map((s) => s.transport), ["spdy", "websocket"]);
  assert.throws(
    () =>
      parseConfigText("forwards:\n  - {name: a, target: svc/a, ports: [80], transport: quic}\n", "t.yaml"),
    /t\.yaml:2:\d+: invalid transport "quic": use one of: auto, websocket, spdy/,
  );
});

Deno.test("parseConfigText() reads protocol, balance and logRequests at the top and per forward", () => {
  const specs = parseConfigText(
    "protocol: http\nlogRequests: true\nforwards:\n  - {name: a, target: svc/a, ports: [80]}\n" +
      "  - {name: b, target: svc/b, ports: [81], protocol: tcp, balance: round-robin, logRequests: false}\n",
    "t.yaml",
  );
  assert.deepEqual(specs.map((s) => [s.protocol, s.balance, s.logRequests]), [
    ["http", undefined, true],
    ["tcp", "round-robin", false],
  ]);
  assert.deepEqual(
    problems(
      "forwards:\n  - {name: a, target: svc/a, ports: [80], protocol: h2, balance: random, logRequests: yes}\n",
    ),
    [
      '2:53 forwards[0].protocol: invalid protocol "h2": use one of: auto, http, tcp',
      '2:66 forwards[0].balance: invalid balance "random": use one of: sticky, round-robin',
      "2:87 forwards[0].logRequests: 'logRequests' must be true or false, not the string \"yes\"",
    ],
  );
});

Deno.test("adHocForward() takes --protocol, --balance and --log-requests, and rejects unknown values", () => {
  const spec = adHocForward({
    target: "svc/api",
    ports: ["80"],
    protocol: "http",
    balance: "round-robin",
    logRequests: true,
  });
  assert.equal(spec.protocol, "http");
  assert.equal(spec.balance, "round-robin");
  assert.equal(spec.logRequests, true);
  assert.equal(adHocForward({ target: "svc/api", ports: ["80"] }).protocol, undefined);
  assert.throws(
    () => adHocForward({ target: "svc/api", ports: ["80"], protocol: "udp" }),
    /Cannot use --protocol "udp": use one of: auto, http, tcp/,
  );
  assert.throws(
    () => adHocForward({ target: "svc/api", ports: ["80"], balance: "lru" }),
    /Cannot use --balance "lru": use one of: sticky, round-robin/,
  );
});

Deno.test("parseConfigText() reads streamIdleTimeout as a default and per forward", () => {
  const [inherited, own] = parseConfigText(
    "streamIdleTimeout: 10m\nforwards:\n  - {target: svc/a, ports: [1]}\n" +
      "  - {target: svc/b, ports: [2], streamIdleTimeout: 30s}",
    "kf.yaml",
  );
  assert.equal(inherited.streamIdleTimeoutMs, 600_000);
  assert.equal(own.streamIdleTimeoutMs, 30_000);
  const [unset] = parseConfigText("forwards: [{target: svc/a, ports: [1]}]", "kf.yaml");
  assert.equal(unset.streamIdleTimeoutMs, undefined, "unset means the engine's default");
});

Deno.test("parseConfigText() rejects a streamIdleTimeout that is too short or no duration", () => {
  const [tooShort] = problems("streamIdleTimeout: 1s\nforwards: [{target: svc/a, ports: [1]}]");
  assert.match(tooShort, /^1:20 streamIdleTimeout: .*below 3s/);
  const [notDuration] = problems("streamIdleTimeout: soon\nforwards: [{target: svc/a, ports: [1]}]");
  assert.match(notDuration, /^1:20 streamIdleTimeout: .*"soon" is not a number with a unit/);
});

Deno.test("adHocForward() validates --stream-idle-timeout like the config key", () => {
  assert.equal(
    adHocForward({ target: "svc/a", ports: ["1"], streamIdleTimeout: "2m" }).streamIdleTimeoutMs,
    120_000,
  );
  assert.throws(
    () => adHocForward({ target: "svc/a", ports: ["1"], streamIdleTimeout: "1s" }),
    /Cannot use --stream-idle-timeout "1s": it is below 3s/,
  );
});
