/** kf forward against the real control plane: targets, ports, rollouts, scale to zero, many forwards, bad input. */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  defaultListeners,
  defaultLocal,
  freePort,
  HAS_IPV6_LOOPBACK,
  httpGet,
  kf,
  kubectl,
  Proc,
  readyPods,
  REPO,
  RequestLoop,
  resetEcho,
  startKf,
  tempStateDir,
  until,
} from "./_harness.ts";

const stateEnv = () => ({ KF_STATE_DIR: tempStateDir() });

/** Runs kf forward ARGS, waits until ready, runs fn, always stops kf. */
async function withForward(
  args: string[],
  fn: (proc: ReturnType<typeof startKf>) => Promise<void>,
  ready = /ready pod=/,
) {
  const proc = startKf(["forward", ...args], stateEnv());
  try {
    await proc.waitFor(ready);
    await fn(proc);
  } finally {
    const status = await proc.stop();
    assert.equal(status.code, 0, `kf should exit 0 on SIGTERM; output:\n${proc.output}`);
  }
}

async function echoOnce(port: number, payload: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(payload));
    const buffer = new Uint8Array(payload.length);
    let read = 0;
    while (read < payload.length) {
      const n = await conn.read(buffer.subarray(read));
      if (n === null) break;
      read += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, read));
  } finally {
    conn.close();
  }
}

Deno.test("kf forward resolves a Service's named targetPort and the echo port", async () => {
  await resetEcho();
  const http = freePort();
  const echo = freePort();
  await withForward(["svc/echo", `${http}:80`, `${echo}:9000`], async () => {
    const pods = await readyPods();
    const answer = await httpGet(http);
    assert.equal(answer.status, 200);
    assert.ok(pods.includes(answer.body!), `answer '${answer.body}' should be a ready pod of ${pods}`);
    assert.equal(await echoOnce(echo, "hello kf"), "hello kf");
  });
});

Deno.test("kf forward reaches pod/, deploy/, bare pod names and -l selectors", async (t) => {
  await resetEcho();
  const [pod] = await readyPods();
  for (const args of [[`pod/${pod}`], [pod], ["deploy/echo"], ["-l", "app=echo"]]) {
    await t.step(args.join(" "), async () => {
      const port = freePort();
      await withForward([...args, `${port}:http`], async () => {
        const answer = await httpGet(port);
        assert.equal(answer.status, 200, JSON.stringify(answer));
        if (!args.includes("-l") && !args.includes("deploy/echo")) assert.equal(answer.body, pod);
      });
    });
  }
});

Deno.test("kf forward 0:80 picks a free port and reports it", async () => {
  await resetEcho();
  await withForward(["svc/echo", "0:80"], async (proc) => {
    const [, port] = await proc.waitFor(/Forwarding 127\.0\.0\.1:(\d+) ->/);
    assert.notEqual(Number(port), 0);
    assert.equal((await httpGet(Number(port))).status, 200);
  });
});

Deno.test("kf forward -f runs several forwards from one config", async () => {
  await resetEcho();
  const [a, b, c] = [freePort(), freePort(), freePort()];
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "kf.yaml");
  Deno.writeTextFileSync(
    file,
    `namespace: default
forwards:
  - name: web
    target: svc/echo
    ports: ["${a}:80"]
  - name: raw
    selector: app=echo
    ports: ["${b}:9000", "${c}:http"]
`,
  );
  const proc = startKf(["forward", "-f", file], stateEnv());
  try {
    await proc.waitFor(/web .* ready pod=/);
    await proc.waitFor(/raw .* ready pod=/);
    assert.equal((await httpGet(a)).status, 200);
    assert.equal(await echoOnce(b, "ping"), "ping");
    assert.equal((await httpGet(c)).status, 200);
  } finally {
    await proc.stop();
  }
});

Deno.test("kf forward loses no request during kubectl rollout restart", async () => {
  await resetEcho();
  const port = freePort();
  await withForward(["svc/echo", `${port}:80`], async () => {
    const before = new Set(await readyPods());
    const loop = new RequestLoop(port, 50);
    await until(() => loop.results.length >= 5, 10_000, "first requests");
    const out = await kubectl(["rollout", "restart", "deploy/echo"]);
    assert.equal(out.code, 0, out.stderr);
    const status = await kubectl(["rollout", "status", "deploy/echo", "--timeout=60s"]);
    assert.equal(status.code, 0, status.stderr);
    await until(async () => (await readyPods()).every((p) => !before.has(p)), 60_000, "old pods gone");
    const count = loop.results.length;
    await until(() => loop.results.length >= count + 10, 20_000, "requests after the rollout");
    await loop.stop();
    assert.deepEqual(loop.failures, []);
    const last = loop.results.at(-1)!;
    assert.ok(!before.has(last.body!), `after the rollout a new pod serves (got ${last.body})`);
  });
});

Deno.test("kf forward: a request made while scaled to 0 waits and succeeds after scaling back to 1", async () => {
  await resetEcho();
  const port = freePort();
  try {
    await withForward(["svc/echo", `${port}:80`], async (proc) => {
      assert.equal((await kubectl(["scale", "deploy/echo", "--replicas=0"])).code, 0);
      await until(async () => (await readyPods()).length === 0, 30_000, "no ready pods");
      await proc.waitFor(/reconnecting/);
      const pending = httpGet(port);
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal((await kubectl(["scale", "deploy/echo", "--replicas=1"])).code, 0);
      const answer = await pending;
      assert.equal(answer.status, 200, JSON.stringify(answer));
      assert.ok(answer.endedAt - answer.startedAt >= 1_000, "the request waited for the new pod");
    });
  } finally {
    await resetEcho();
  }
});

Deno.test("kf forward: a connection waiting longer than --pod-wait-timeout is closed and the forward keeps running", async () => {
  await resetEcho();
  const port = freePort();
  try {
    await withForward(["svc/echo", `${port}:80`, "--pod-wait-timeout", "1s"], async (proc) => {
      await kubectl(["scale", "deploy/echo", "--replicas=0"]);
      await until(async () => (await readyPods()).length === 0, 30_000, "no ready pods");
      const answer = await httpGet(port, "/", 10_000);
      assert.equal(answer.ok, false);
      assert.ok(answer.endedAt - answer.startedAt < 5_000, "closed after about 1 s, not hanging");
      await proc.waitFor(/no ready pod/);
      await kubectl(["scale", "deploy/echo", "--replicas=1"]);
      await until(async () => (await httpGet(port)).ok, 30_000, "serving again");
    });
  } finally {
    await resetEcho();
  }
});

Deno.test("kf forward to a missing Service waits for it and serves once it appears", async () => {
  await resetEcho();
  const port = freePort();
  await kubectl(["delete", "service", "late", "--ignore-not-found"]);
  const proc = startKf(["forward", "svc/late", `${port}:80`], stateEnv());
  try {
    await proc.waitFor(/service 'late' not found/);
    const out = await kubectl([
      "expose",
      "deploy/echo",
      "--name",
      "late",
      "--port",
      "80",
      "--target-port",
      "http",
    ]);
    assert.equal(out.code, 0, out.stderr);
    await proc.waitFor(/ready pod=/);
    assert.equal((await httpGet(port)).status, 200);
  } finally {
    await proc.stop();
    await kubectl(["delete", "service", "late", "--ignore-not-found"]);
  }
});

Deno.test("kf forward with a port in use fails that forward and keeps the others", async () => {
  await resetEcho();
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busyPort = (busy.addr as Deno.NetAddr).port;
  const free = freePort();
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "kf.yaml");
  Deno.writeTextFileSync(
    file,
    `forwards:
  - {name: taken, target: svc/echo, ports: ["${busyPort}:80"]}
  - {name: ok, target: svc/echo, ports: ["${free}:80"]}
`,
  );
  const proc = startKf(["forward", "-f", file], stateEnv());
  try {
    await proc.waitFor(/taken failed: .*address already in use/);
    await proc.waitFor(/ok .* ready pod=/);
    assert.equal((await httpGet(free)).status, 200);
  } finally {
    await proc.stop();
    busy.close();
  }
});

Deno.test("kf forward rejects bad input with file:line:col and exit 2", async () => {
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "bad.yaml");
  Deno.writeTextFileSync(file, "forwards:\n  - name: a\n    target: svc/echo\n    ports: [99999]\n");
  const out = await kf(["forward", "-f", file], { env: stateEnv() });
  assert.equal(out.code, 2);
  assert.match(out.stderr, new RegExp(`${file.replace(/[.]/g, "\\.")}:4:\\d+: .*99999`));
  assert.doesNotMatch(out.stderr, /^\s+at /m, "no stack trace");
});

Deno.test("kf forward names what exists when the context or namespace is wrong", async () => {
  const context = await kf(["forward", "svc/echo", "18099:80", "--context", "nope"], { env: stateEnv() });
  assert.equal(context.code, 1);
  assert.match(context.stderr, /Context 'nope' not found/);
  assert.match(context.stderr, /kf-admin/);
  const namespace = await kf(["forward", "svc/echo", "18099:80", "-n", "nope"], { env: stateEnv() });
  assert.equal(namespace.code, 1);
  assert.match(namespace.stderr, /Namespace 'nope' not found/);
  assert.match(namespace.stderr, /default/);
  const kubeconfig = await kf(["forward", "svc/echo", "18099:80", "--kubeconfig", "/nonexistent"], {
    env: stateEnv(),
  });
  assert.equal(kubeconfig.code, 1);
  assert.match(kubeconfig.stderr, /\/nonexistent' does not exist/);
});

Deno.test("kf forward works with only the minimal RBAC role (kf-limited context)", async () => {
  await resetEcho("kf-limited");
  const port = freePort();
  await withForward(["svc/echo", `${port}:80`, "--context", "kf-limited"], async () => {
    const answer = await httpGet(port);
    assert.equal(answer.status, 200, JSON.stringify(answer));
  });
  // the same user may not watch pods elsewhere: the forward says which permission is missing
  const proc = startKf([
    "forward",
    "svc/echo",
    `${freePort()}:80`,
    "--context",
    "kf-limited",
    "-n",
    "default",
  ], stateEnv());
  try {
    await proc.waitFor(/degraded.*(forbidden|Forbidden)|RBAC/i);
  } finally {
    await proc.stop();
  }
});

Deno.test("kf forward shows a live table on a terminal and NDJSON events with -o json", async (t) => {
  await resetEcho();
  await t.step("table on a TTY", async () => {
    const port = freePort();
    // `script` gives kf a pseudo-terminal, as in an interactive shell
    const command = [Deno.execPath(), "run", "-A", "--config", join(REPO, "deno.json"), join(REPO, "main.ts")]
      .concat(["forward", "svc/echo", `${port}:80`]).map((a) => `'${a}'`).join(" ");
    const proc = new Proc("script", ["-qfec", command, "/dev/null"], { ...stateEnv(), COLUMNS: "200" });
    try {
      await proc.waitFor(/NAME\s+LOCAL\s+TARGET\s+POD\s+STATE\s+CONN\s+IN\s+OUT/);
      await proc.waitFor(new RegExp(`echo\\s+${defaultLocal(port)}->80\\s+svc/echo.*\\s+ready\\s+0/0`));
      assert.equal((await httpGet(port)).status, 200);
      await proc.waitFor(/ready\s+0\/1/);
    } finally {
      await proc.stop();
    }
  });
  await t.step("NDJSON", async () => {
    const port = freePort();
    const proc = startKf(["forward", "svc/echo", `${port}:80`, "-o", "json"], stateEnv());
    try {
      await proc.waitFor(/"state":"ready"/);
      const events = proc.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      assert.ok(events.length >= 1);
      const ready = events.find((e) => e.state === "ready");
      assert.equal(ready.event, "status");
      assert.equal(ready.name, "echo");
      assert.deepEqual(ready.listeners, defaultListeners(port, 80));
      assert.match(ready.pod, /^echo-/);
    } finally {
      await proc.stop();
    }
  });
  await t.step("NDJSON: counter changes are batched, and the last event has every connection", async () => {
    const port = freePort();
    const proc = startKf(["forward", "svc/echo", `${port}:80`, "-o", "json"], stateEnv());
    try {
      await proc.waitFor(/"state":"ready"/);
      const before = proc.lines.length;
      for (let i = 0; i < 40; i++) assert.equal((await httpGet(port)).status, 200);
      const last = () => {
        const events = proc.lines.slice(before).filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
        return { events, status: events.filter((e) => e.event === "status").at(-1) };
      };
      await until(
        () => last().status?.totalConnections === 40 && last().status?.openConnections === 0,
        5_000,
      );
      // 40 connections change the counters 80 times; events come at most every 250 ms
      const { events } = last();
      assert.ok(events.length < 40, `${events.length} status events for 40 connections`);
    } finally {
      await proc.stop();
    }
  });
});

Deno.test("kf forward: a half-closing client gets its answer, and finished connections do not linger", async () => {
  await resetEcho();
  const port = freePort();
  const env = stateEnv();
  const proc = startKf(["forward", "svc/echo", `${port}:80`], env);
  try {
    await proc.waitFor(/ready pod=/);
    // send the request, then shut down our sending side (like `nc -N`); the answer comes 1.5 s later
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET /delay?ms=1500 HTTP/1.0\r\n\r\n"));
    await conn.closeWrite();
    const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    assert.match(answer, /^HTTP\/1\.[01] 200/);
    for (let i = 0; i < 20; i++) assert.equal((await httpGet(port)).status, 200);
    // v4 port-forward has no half-close: kf must close the upstream itself once the client is done
    await until(
      async () => {
        const ps = await kf(["ps", "-o", "json"], { env });
        const forward = JSON.parse(ps.stdout).sessions[0].forwards[0];
        return forward.openConnections === 0 && forward.totalConnections === 21;
      },
      5_000,
      "all 21 connections closed",
    );
  } finally {
    await proc.stop();
  }
});

Deno.test("kf forward --transport spdy: several streams on one connection, echo and HTTP, pod churn without loss", async () => {
  await resetEcho();
  const [http, echo] = [freePort(), freePort()];
  await withForward(["svc/echo", `${http}:80`, `${echo}:9000`, "--transport", "spdy"], async () => {
    assert.equal(await echoOnce(echo, "through spdy"), "through spdy");
    const answers = await Promise.all(Array.from({ length: 20 }, () => httpGet(http)));
    assert.deepEqual(answers.filter((a) => a.status !== 200), []);
    const loop = new RequestLoop(http, 50);
    await until(() => loop.results.length >= 5, 10_000, "first requests");
    const before = new Set(await readyPods());
    await kubectl(["delete", "pods", "-l", "app=echo", "--force", "--grace-period=0", "--wait=false"]);
    await until(
      async () => (await readyPods()).filter((p) => !before.has(p)).length >= 2,
      60_000,
      "replacements",
    );
    const count = loop.results.length;
    await until(() => loop.results.length >= count + 10, 20_000, "requests after the churn");
    await loop.stop();
    assert.deepEqual(loop.failures, []);
  });
});

Deno.test("kf forward (auto transport) falls back to SPDY when RBAC grants only create on pods/portforward", async () => {
  await resetEcho("kf-limited");
  const setVerbs = (verbs: string[]) =>
    kubectl([
      "-n",
      "kf-limited",
      "patch",
      "role",
      "kf-limited",
      "--type=json",
      "-p",
      JSON.stringify([{ op: "replace", path: "/rules/1/verbs", value: verbs }]),
    ]);
  assert.equal((await setVerbs(["create"])).code, 0);
  const port = freePort();
  const env = stateEnv();
  try {
    await withForward(["svc/echo", `${port}:80`, "--context", "kf-limited"], async () => {
      const answer = await httpGet(port);
      assert.equal(answer.status, 200, JSON.stringify(answer));
      const ps = await kf(["ps", "-o", "json"], { env });
      assert.equal(ps.code, 0);
    });
    // forced WebSocket says which permission is missing
    const proc = startKf([
      "forward",
      "svc/echo",
      `${freePort()}:80`,
      "--context",
      "kf-limited",
      "--transport",
      "websocket",
    ], env);
    try {
      await proc.waitFor(/ready pod=/);
      const [, p] = await proc.waitFor(/Forwarding 127\.0\.0\.1:(\d+)/);
      await httpGet(Number(p));
      await proc.waitFor(/403.*\n?.*|RBAC needs verb 'get' and 'create'/);
    } finally {
      await proc.stop();
    }
  } finally {
    await setVerbs(["get", "create"]);
  }
});

Deno.test("kf forward on the default address answers on 127.0.0.1 and [::1], with one free port for both", async (t) => {
  await resetEcho();
  if (!HAS_IPV6_LOOPBACK) console.log("this host has no IPv6 loopback: only the 127.0.0.1 half is checked");
  const hosts = HAS_IPV6_LOOPBACK ? ["127.0.0.1", "::1"] : ["127.0.0.1"];
  const answersOnEvery = async (port: number) => {
    for (const hostname of hosts) {
      const result = await httpGet(port, "/", 35_000, hostname);
      assert.equal(result.status, 200, `${hostname}:${port}: ${result.error ?? result.status}`);
      assert.match(result.body ?? "", /echo-/, `${hostname}: the pod answered`);
    }
  };
  await t.step("a chosen port, listed as both addresses in kf ps", async () => {
    const port = freePort();
    const env = stateEnv();
    const proc = startKf(["forward", "svc/echo", `${port}:80`], env);
    try {
      await proc.waitFor(/ready pod=/);
      for (const hostname of hosts) {
        const shown = hostname.includes(":") ? `\\[${hostname}\\]` : hostname.replaceAll(".", "\\.");
        await proc.waitFor(new RegExp(`^Forwarding ${shown}:${port} -> svc/echo:80$`, "m"));
      }
      await answersOnEvery(port);
      const ps = await kf(["ps"], { env });
      assert.match(ps.stdout, new RegExp(` echo +${defaultLocal(port)} `), ps.stdout);
      const json = JSON.parse((await kf(["ps", "-o", "json"], { env })).stdout);
      assert.deepEqual(json.sessions[0].forwards[0].listeners, defaultListeners(port, 80));
    } finally {
      await proc.stop();
    }
  });
  await t.step("port 0: the same free port on both, as kubectl does", async () => {
    const proc = startKf(["forward", "svc/echo", "0:80", "-o", "json"], stateEnv());
    try {
      await proc.waitFor(/"state":"ready"/);
      const ready = proc.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).find((e) =>
        e.state === "ready"
      );
      const port = ready.listeners[0].port;
      assert.ok(port > 0);
      assert.deepEqual(ready.listeners, defaultListeners(port, 80));
      await answersOnEvery(port);
    } finally {
      await proc.stop();
    }
  });
});
