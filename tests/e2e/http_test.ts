/**
 * HTTP-aware forwarding with real keep-alive clients: python requests.Session, curl with many URLs on one
 * connection, Node's fetch and `ab -k`, through kf while every pod is force-deleted 3 times and the
 * Deployment is restarted. Also: the replay rule on a request cut mid-flight, WebSocket and Upgrade through
 * an HTTP forward, TLS left opaque, round-robin, and the request log.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  forceDeletePods,
  freePort,
  kubectl,
  Proc,
  readyPods,
  REPO,
  resetEcho,
  sleep,
  startKf,
  tempStateDir,
  until,
} from "./_harness.ts";

const CLIENTS = join(REPO, "tests", "e2e", "http_clients");

/** A counter key no other test run uses. */
const uniqueKey = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

async function startForward(args: string[] = []): Promise<{ kf: Proc; port: number }> {
  const port = freePort();
  const kf = startKf(["forward", "svc/echo", `${port}:80`, ...args], { KF_STATE_DIR: tempStateDir() });
  await kf.waitFor(/ready pod=|"state":"ready"/);
  return { kf, port };
}

/** Raw HTTP/1.1 exchange on its own connection; answers status, headers (lower-case) and body. */
async function rawRequest(
  port: number,
  request: string,
): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let text = "";
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      const length = /content-length: *(\d+)/i.exec(text);
      if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) break;
    }
    const [head, ...rest] = text.split("\r\n\r\n");
    const [statusLine, ...lines] = head.split("\r\n");
    const headers = new Map(
      lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
    );
    return { status: Number(statusLine.split(" ")[1]), headers, body: rest.join("\r\n\r\n") };
  } finally {
    conn.close();
  }
}

async function counter(port: number, key: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/count?key=${key}`);
  return Number(await response.text());
}

/** 3 rounds of force-deleting every echo pod, then `kubectl rollout restart`, each waited for. */
async function churnAndRestart(): Promise<void> {
  for (let round = 0; round < 3; round++) {
    await forceDeletePods();
    await sleep(2_000);
  }
  const restart = await kubectl(["rollout", "restart", "deploy/echo"]);
  assert.equal(restart.code, 0, restart.stderr);
  const status = await kubectl(["rollout", "status", "deploy/echo", "--timeout=120s"]);
  assert.equal(status.code, 0, status.stderr);
  await until(async () => (await readyPods()).length === 2, 60_000, "2 ready pods after the restart");
  await sleep(2_000);
}

interface ClientResult {
  requests: number;
  failed: number;
  posts_ok?: number;
  errors: string[];
  connections?: number;
}

/** Runs `command` until the stop file appears; its last stdout line is a JSON ClientResult. */
function startClient(command: string, args: string[]): { stop(): Promise<ClientResult> } {
  const stopFile = Deno.makeTempFileSync({ prefix: "kf-client-stop-" });
  Deno.removeSync(stopFile);
  const child = new Deno.Command(command, { args: [...args, stopFile], stdout: "piped", stderr: "piped" })
    .spawn();
  const output = child.output();
  return {
    async stop() {
      Deno.writeTextFileSync(stopFile, "");
      const { stdout, stderr, code } = await output;
      Deno.removeSync(stopFile);
      const lines = new TextDecoder().decode(stdout).trim().split("\n");
      assert.equal(code, 0, `${command} failed: ${new TextDecoder().decode(stderr)}`);
      return JSON.parse(lines[lines.length - 1]);
    },
  };
}

/** Repeats a batch command (one keep-alive connection or pool per batch) until stopped; sums what it parsed. */
function repeat(batch: () => Promise<ClientResult>): { stop(): Promise<ClientResult> } {
  let running = true;
  const total: ClientResult = { requests: 0, failed: 0, errors: [], connections: 0 };
  const done = (async () => {
    while (running) {
      const r = await batch();
      total.requests += r.requests;
      total.failed += r.failed;
      total.errors.push(...r.errors);
      total.connections! += r.connections ?? 0;
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return total;
    },
  };
}

/** curl with 100 URLs at 20/s: one connection for the whole batch (num_connects says so). */
async function curlBatch(port: number): Promise<ClientResult> {
  const out = await new Deno.Command("curl", {
    args: [
      "-s",
      "--rate",
      "20/s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code} %{num_connects}\\n",
      `http://127.0.0.1:${port}/?i=[1-100]`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean);
  const bad = lines.filter((l) => !l.startsWith("200 "));
  return {
    requests: 100,
    failed: 100 - lines.length + bad.length,
    errors: bad.length || lines.length < 100 ? [`curl exit ${out.code}: ${bad.slice(0, 3).join(", ")}`] : [],
    connections: lines.reduce((sum, l) => sum + Number(l.split(" ")[1] ?? 0), 0),
  };
}

/** ab -k -c 10 -n 2000: ten keep-alive connections; fixed-length answers so ab checks every length. */
async function abBatch(port: number): Promise<ClientResult> {
  const out = await new Deno.Command("ab", {
    args: ["-k", "-c", "10", "-n", "2000", "-s", "35", `http://127.0.0.1:${port}/bytes?n=100`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const complete = Number(/Complete requests:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const ok = out.code === 0 && complete === 2000;
  return {
    requests: 2000,
    failed: failed + non2xx + (ok ? 0 : 2000 - complete),
    errors: failed + non2xx > 0 || !ok
      ? [
        `ab exit ${out.code}: ${
          text.split("\n").filter((l) => /Failed|Non-2xx|Complete|apr_/.test(l)).join("; ")
        }${new TextDecoder().decode(out.stderr).trim()}`,
      ]
      : [],
  };
}

Deno.test("keep-alive clients lose no request through 3 force-deletions and a rollout restart", async () => {
  await resetEcho();
  const { kf, port } = await startForward();
  const base = `http://127.0.0.1:${port}`;
  const pythonKey = uniqueKey("python");
  const nodeKey = uniqueKey("node");
  const plainKey = uniqueKey("plain");
  try {
    const python = startClient("python3", [join(CLIENTS, "session_client.py"), base, pythonKey, "keyed"]);
    const plain = startClient("python3", [join(CLIENTS, "session_client.py"), base, plainKey, "plain"]);
    const node = startClient("node", [join(CLIENTS, "fetch_client.mjs"), base, nodeKey]);
    const curl = repeat(() => curlBatch(port));
    const ab = repeat(() => abBatch(port));
    await sleep(2_000);
    await churnAndRestart();
    console.log("churn and restart done; stopping the clients");
    const results = {
      python: await python.stop(),
      plainPost: await plain.stop(),
      node: await node.stop(),
      curl: await curl.stop(),
      ab: await ab.stop(),
    };
    for (const [name, r] of Object.entries(results)) {
      console.log(
        `kf ${name}: ${r.requests} requests, ${r.failed} failed, connections ${r.connections ?? "?"}` +
          (r.posts_ok !== undefined ? `, ${r.posts_ok} POSTs ok` : "") +
          (r.errors.length ? ` errors: ${r.errors.slice(0, 5).join(" | ")}` : ""),
      );
    }
    const counts = {
      python: await counter(port, pythonKey),
      node: await counter(port, nodeKey),
      plain: await counter(port, plainKey),
    };
    console.log(`POST counters: ${JSON.stringify(counts)}`);
    for (const name of ["python", "node", "curl", "ab"] as const) {
      assert.equal(results[name].failed, 0, `${name}: ${results[name].errors.join(" | ")}`);
    }
    assert.equal(results.python.connections, 1, "requests.Session must have used one connection");
    // a resent POST carried its Idempotency-Key: the backend counted each client POST exactly once
    assert.equal(counts.python, results.python.posts_ok);
    assert.equal(counts.node, results.node.posts_ok);
    // plain POSTs are never resent: each failure is kf's 502, and no POST was executed twice
    for (const error of results.plainPost.errors) assert.match(error, /^502 pod-went-away kf: pod /);
    assert.ok(counts.plain >= results.plainPost.posts_ok!, "every successful POST was counted");
    assert.ok(
      counts.plain <= results.plainPost.posts_ok! + results.plainPost.failed,
      "no POST counted twice",
    );
  } finally {
    await kf.stop();
    const dump = Deno.env.get("KF_TEST_DUMP");
    if (dump) Deno.writeTextFileSync(dump, kf.output);
    await resetEcho();
  }
});

/** The pod serving this forward's requests now. */
async function servingPod(port: number): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${port}/`)).text();
}

async function forceDelete(pod: string): Promise<void> {
  const out = await kubectl(["delete", "pod", pod, "--force", "--grace-period=0", "--wait=false"]);
  assert.equal(out.code, 0, out.stderr);
}

Deno.test("a POST cut mid-request gets kf's 502 and is not executed twice; a keyed one is resent", async () => {
  await resetEcho();
  const { kf, port } = await startForward();
  try {
    for (const keyed of [false, true]) {
      const key = uniqueKey(keyed ? "keyed" : "cut");
      const pod = await servingPod(port);
      const headers = keyed ? `Idempotency-Key: ${key}\r\n` : "";
      const answer = rawRequest(
        port,
        `POST /count?key=${key}&delay=2500 HTTP/1.1\r\nHost: kf\r\n${headers}Content-Length: 1\r\n\r\nx`,
      );
      await sleep(800);
      await forceDelete(pod);
      const response = await answer;
      if (keyed) {
        assert.equal(response.status, 200, response.body);
        assert.notEqual(response.headers.get("x-pod"), pod, "the resend went to another pod");
        assert.equal(response.body, "1");
      } else {
        assert.equal(response.status, 502, response.body);
        assert.equal(response.headers.get("via"), "1.1 kf");
        assert.equal(response.headers.get("x-kf-error"), "pod-went-away");
        assert.match(
          response.body,
          new RegExp(`^kf: pod ${pod} went away mid-request; not resent because POST`),
        );
        assert.equal(response.body.trim().split("\n").length, 1, "a one-line body");
      }
      assert.equal(await counter(port, key), 1, "executed once");
      await resetEcho();
    }
  } finally {
    await kf.stop();
    await resetEcho();
  }
});

Deno.test("a GET cut before its response is resent to another pod on the same client connection", async () => {
  await resetEcho();
  const { kf, port } = await startForward();
  try {
    const pod = await servingPod(port);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const request = (path: string) =>
      conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: kf\r\n\r\n`));
    const read = async () => {
      const buffer = new Uint8Array(4096);
      let text = "";
      while (!/\r\n\r\n[\s\S]*echo-\S+$/.test(text)) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      return text;
    };
    await request("/");
    const first = await read();
    assert.match(first, new RegExp(`${pod}$`));
    await request("/delay?ms=2500");
    await sleep(800);
    await forceDelete(pod);
    const second = await read();
    assert.match(second, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(second, new RegExp(pod));
    // the connection stays open: the next request on it goes to a ready pod
    await request("/");
    assert.match(await read(), /^HTTP\/1\.1 200 /);
    conn.close();
  } finally {
    await kf.stop();
    await resetEcho();
  }
});

Deno.test("WebSocket and a raw Upgrade work through an HTTP forward; TLS bytes stay opaque", async () => {
  await resetEcho();
  const { kf, port } = await startForward(["--log-requests"]);
  const echoPort = freePort();
  const echo = startKf(["forward", "svc/echo", `${echoPort}:9000`, "--log-requests"], {
    KF_STATE_DIR: tempStateDir(),
  });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => ws.send("hello through kf");
      ws.onmessage = (event) => {
        messages.push(String(event.data));
        if (messages.length === 1) ws.send("second");
        else ws.close();
      };
      ws.onclose = () => resolve();
      ws.onerror = () => reject(new Error("WebSocket error"));
    });
    assert.deepEqual(messages, ["hello through kf", "second"]);

    // a plain GET, then an Upgrade on the same connection: opaque echo after the 101
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: kf\r\n\r\n"));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!/\r\n\r\necho-\S+$/.test(text)) {
      text += new TextDecoder().decode(buffer.subarray(0, (await conn.read(buffer))!));
    }
    await conn.write(
      new TextEncoder().encode(
        "GET /upgrade HTTP/1.1\r\nHost: kf\r\nConnection: Upgrade\r\nUpgrade: kf-echo\r\n\r\nGET / HTTP/1.1\r\n\r\n",
      ),
    );
    text = "";
    while (!text.includes("GET / HTTP/1.1\r\n\r\n")) {
      text += new TextDecoder().decode(buffer.subarray(0, (await conn.read(buffer))!));
    }
    assert.match(text, /^HTTP\/1\.1 101 /);
    conn.close();

    // a TLS ClientHello is not HTTP: forwarded byte for byte (to the TCP echo) and never logged as a request
    await echo.waitFor(/ready pod=/);
    const hello = Uint8Array.from([
      0x16,
      0x03,
      0x01,
      0x00,
      0x2f,
      0x01,
      0x00,
      0x00,
      0x2b,
      0x03,
      0x03,
      ...new Array(40).fill(7),
    ]);
    const tls = await Deno.connect({ hostname: "127.0.0.1", port: echoPort });
    await tls.write(hello);
    const back = new Uint8Array(hello.length);
    let got = 0;
    while (got < hello.length) got += (await tls.read(back.subarray(got)))!;
    assert.deepEqual(back, hello);
    tls.close();
    await sleep(300);
    assert.doesNotMatch(echo.output, / 200 | 400 /, "no request logged on the TLS connection");
    assert.match(kf.output, /GET \/ws 101 pod=/);
    assert.match(kf.output, /GET \/upgrade 101 pod=/);
  } finally {
    await echo.stop();
    await kf.stop();
  }
});

Deno.test("round-robin spreads the requests of one keep-alive connection over the ready pods", async () => {
  await resetEcho();
  const { kf, port } = await startForward(["--balance", "round-robin"]);
  try {
    const out = await new Deno.Command("curl", {
      args: ["-s", "-w", " %{num_connects}\\n", `http://127.0.0.1:${port}/?i=[1-10]`],
      stdout: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    const pods = new Set(lines.map((l) => l.split(" ")[0]));
    const connects = lines.reduce((sum, l) => sum + Number(l.split(" ")[1]), 0);
    assert.equal(lines.length, 10);
    assert.equal(connects, 1, "one client connection");
    assert.deepEqual([...pods].sort(), (await readyPods()).sort(), "every ready pod served requests");
  } finally {
    await kf.stop();
  }
});

Deno.test("--log-requests: an NDJSON event per request with path but no query and no header values", async () => {
  await resetEcho();
  const { kf, port } = await startForward(["--log-requests", "-o", "json"]);
  try {
    const response = await fetch(`http://127.0.0.1:${port}/count?key=token-s3cret`, {
      method: "POST",
      body: "x",
      headers: { Authorization: "Bearer hunter2" },
    });
    await response.text();
    const line = await kf.waitFor(/\{[^\n]*"event":"request"[^\n]*\}/);
    const event = JSON.parse(line[0]);
    assert.equal(event.forward, "echo");
    assert.equal(event.method, "POST");
    assert.equal(event.path, "/count");
    assert.equal(event.status, 200);
    assert.match(event.pod, /^echo-/);
    assert.equal(typeof event.durationMs, "number");
    assert.ok(event.bytesOut > 0 && event.bytesIn > 0);
    assert.ok(!Number.isNaN(Date.parse(event.time)));
    assert.doesNotMatch(kf.output, /hunter2|s3cret/);
  } finally {
    await kf.stop();
  }
});
