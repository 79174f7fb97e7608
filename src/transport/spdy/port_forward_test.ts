// Runs against the real local cluster (tests/cluster/up.sh); skipped only when its env file is missing.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type WebSocket from "ws";
import { KubeClient } from "../../kube/client.ts";
import { encodeData, PORT_FORWARD_PROTOCOL, PortForwardDecoder } from "../websocket/v4_frames.ts";
import { PodPortError } from "../errors.ts";
import {
  openSpdyPortForward,
  type PortStream,
  type SpdyCarrier,
  type SpdyPortForwardConnection,
} from "./port_forward.ts";

// the same cluster the e2e harness uses: $KF_CLUSTER_DIR, else the default under the cache home
const CLUSTER_DIR = Deno.env.get("KF_CLUSTER_DIR") ??
  path.join(Deno.env.get("XDG_CACHE_HOME") ?? path.join(os.homedir(), ".cache"), "kf", "cluster");
const ENV_FILE = path.join(CLUSTER_DIR, "env");
const NO_CLUSTER = !fs.existsSync(ENV_FILE);
const NAMESPACE = "default";

/** KUBECONFIG and PATH (with the cluster's kubectl) from the env file up.sh writes. */
function clusterEnv(): { KUBECONFIG: string; PATH: string } {
  const vars: Record<string, string> = {};
  for (const line of fs.readFileSync(ENV_FILE, "utf8").split("\n")) {
    const match = line.match(/^export (\w+)="(.*)"$/);
    if (match) vars[match[1]] = match[2].replace("$PATH", Deno.env.get("PATH") ?? "");
  }
  return { KUBECONFIG: vars.KUBECONFIG, PATH: vars.PATH };
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const command = new Deno.Command("kubectl", {
    args,
    env: clusterEnv(),
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  });
  const child = command.spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

/** A pod like the echo deployment's (same image and ports) that no Service selects; Ready when this resolves. */
async function createPod(name: string): Promise<void> {
  const template = JSON.parse(await kubectl(["get", "deploy", "echo", "-n", NAMESPACE, "-o", "json"]));
  const container = template.spec.template.spec.containers[0];
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NAMESPACE, labels: { "kf-test": "spdy" } },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: container.name, image: container.image, ports: container.ports }],
    },
  };
  await kubectl(["create", "-f", "-"], JSON.stringify(pod));
  await kubectl(["wait", "--for=condition=Ready", `pod/${name}`, "-n", NAMESPACE, "--timeout=60s"]);
}

async function deletePod(name: string): Promise<void> {
  await kubectl([
    "delete",
    "pod",
    name,
    "-n",
    NAMESPACE,
    "--grace-period=0",
    "--force",
    "--ignore-not-found",
  ]);
}

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const encode = (text: string) => new TextEncoder().encode(text);

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of readable) {
    chunks.push(chunk);
    size += chunk.length;
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Sends one HTTP/1.1 request, half-closes, reads the answer to its end: [status line, body]. */
async function httpGet(stream: PortStream, target: string): Promise<[string, string]> {
  const writer = stream.writable.getWriter();
  await writer.write(encode(`GET ${target} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n`));
  await writer.close();
  const answer = new TextDecoder().decode(await readAll(stream.readable));
  const headEnd = answer.indexOf("\r\n\r\n");
  return [answer.slice(0, answer.indexOf("\r\n")), answer.slice(headEnd + 4)];
}

/** Waits (bounded) until every stream of the connection finished: nothing leaks per forwarded connection. */
async function noStreamsLeft(pf: SpdyPortForwardConnection): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (pf.streamCount > 0) {
    if (Date.now() > deadline) assert.fail(`${pf.streamCount} SPDY streams still open`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

for (const carrier of ["upgrade", "websocket"] satisfies SpdyCarrier[]) {
  Deno.test({
    name: `openSpdyPortForward() over the ${
      carrier === "websocket" ? "WebSocket tunnel" : "SPDY upgrade"
    } against the local cluster (skipped without $KF_CLUSTER_DIR/env)`,
    ignore: NO_CLUSTER,
    async fn(t) {
      const { KUBECONFIG } = NO_CLUSTER ? { KUBECONFIG: "" } : clusterEnv();
      const client = KubeClient.load({ kubeconfig: KUBECONFIG, context: "kf-admin" });
      const suffix = crypto.randomUUID().slice(0, 8);
      const pod = `spdy-test-${suffix}`;
      const doomedPod = `spdy-test-${suffix}-gone`;
      let forward: SpdyPortForwardConnection | undefined;
      try {
        await within(90_000, "creating the test pods", Promise.all([createPod(pod), createPod(doomedPod)]));
        forward = await within(
          10_000,
          "the SPDY upgrade",
          openSpdyPortForward(client, { namespace: NAMESPACE, pod, carrier }),
        );
        const pf = forward;

        await t.step("an HTTP GET goes through one stream", async () => {
          const stream = await pf.openPort(8080);
          const [status, body] = await within(10_000, "GET /", httpGet(stream, "/"));
          assert.equal(status, "HTTP/1.1 200 OK");
          assert.equal(body, pod);
          assert.equal(await within(5_000, "the error stream", stream.error), undefined);
          await noStreamsLeft(pf);
        });

        await t.step("50 concurrent streams on one connection each answer", async () => {
          const bodies = await within(
            20_000,
            "50 concurrent GETs",
            Promise.all(
              Array.from({ length: 50 }, async () => (await httpGet(await pf.openPort(8080), "/"))[1]),
            ),
          );
          assert.deepEqual(new Set(bodies), new Set([pod]));
          assert.equal(bodies.length, 50);
          await noStreamsLeft(pf);
        });

        await t.step("100 MB download with a reader pausing 2 s keeps memory bounded", async () => {
          const size = 100 * 1024 * 1024;
          const stream = await pf.openPort(8080);
          const writer = stream.writable.getWriter();
          await writer.write(
            encode(`GET /bytes?n=${size} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n`),
          );
          await writer.close();
          const reader = stream.readable.getReader();
          let received = 0;
          let growthMb = -1;
          await within(
            60_000,
            "the 100 MB download",
            (async () => {
              for (;;) {
                const { value, done } = await reader.read();
                if (done) break;
                received += value.length;
                if (growthMb < 0 && received > 10 * 1024 * 1024) {
                  const before = Deno.memoryUsage().rss;
                  await new Promise((resolve) => setTimeout(resolve, 2_000));
                  growthMb = (Deno.memoryUsage().rss - before) / 1024 / 1024;
                }
              }
            })(),
          );
          console.log(`    RSS growth during the 2 s pause: ${growthMb.toFixed(1)} MB`);
          assert.ok(growthMb < 50, `RSS grew ${growthMb.toFixed(1)} MB while the reader paused`);
          const answer = received - size;
          assert.ok(
            answer > 0 && answer < 1024,
            `all ${size} body bytes arrived (got ${received} with headers)`,
          );
        });

        await t.step("50 MB upload to /sink", async () => {
          const size = 50 * 1024 * 1024;
          const stream = await pf.openPort(8080);
          const writer = stream.writable.getWriter();
          const answer = readAll(stream.readable);
          await within(
            60_000,
            "the 50 MB upload",
            (async () => {
              await writer.write(
                encode(
                  `POST /sink HTTP/1.1\r\nHost: pod\r\nConnection: close\r\nContent-Length: ${size}\r\n\r\n`,
                ),
              );
              const chunk = new Uint8Array(256 * 1024);
              for (let sent = 0; sent < size; sent += chunk.length) await writer.write(chunk);
              await writer.close();
            })(),
          );
          const text = new TextDecoder().decode(await within(30_000, "the /sink answer", answer));
          assert.equal(text.slice(text.indexOf("\r\n\r\n") + 4), String(size));
        });

        await t.step("half-close: the pod still answers after our FIN", async () => {
          // HTTP without `Connection: close`: the server only learns we are done from the FIN
          const http = await pf.openPort(8080);
          const writer = http.writable.getWriter();
          await writer.write(encode("GET / HTTP/1.1\r\nHost: pod\r\n\r\n"));
          await writer.close();
          const answer = new TextDecoder().decode(await within(10_000, "the answer", readAll(http.readable)));
          assert.ok(answer.startsWith("HTTP/1.1 200 OK") && answer.endsWith(pod), answer);

          // the TCP echo sends everything back, then closes because it saw our FIN
          const echo = await pf.openPort(9000);
          const payload = crypto.getRandomValues(new Uint8Array(65536)).map((b, i) => (b + i) & 0xff);
          const echoed = readAll(echo.readable);
          const echoWriter = echo.writable.getWriter();
          for (let i = 0; i < 16; i++) await echoWriter.write(payload);
          await echoWriter.close();
          const back = await within(10_000, "the echo", echoed);
          assert.equal(back.length, 16 * payload.length);
          assert.deepEqual(back.subarray(15 * payload.length), payload);
        });

        await t.step(
          "a port nobody listens on fails only its own stream, with the kubelet's text",
          async () => {
            const running = await pf.openPort(9000);
            const refused = await pf.openPort(81);
            const error = await within(10_000, "the error text", refused.error);
            assert.match(error?.message ?? "", /port 81 .*connection refused/);
            assert.equal(error?.podGone, false);
            await assert.rejects(() => within(5_000, "the refused stream", readAll(refused.readable)));
            // a stream opened before and one opened after both still work
            const writer = running.writable.getWriter();
            await writer.write(encode("still here"));
            await writer.close();
            assert.equal(
              new TextDecoder().decode(await within(5_000, "echo", readAll(running.readable))),
              "still here",
            );
            assert.equal((await httpGet(await pf.openPort(8080), "/"))[1], pod);
            assert.equal(pf.usable, true);
          },
        );

        await t.step("a deleted pod ends the connection", async () => {
          const doomed = await within(
            10_000,
            "the upgrade",
            openSpdyPortForward(client, { namespace: NAMESPACE, pod: doomedPod, carrier }),
          );
          try {
            const stream = await doomed.openPort(9000);
            const writer = stream.writable.getWriter();
            await writer.write(encode("hi"));
            const reader = stream.readable.getReader();
            assert.equal(new TextDecoder().decode((await within(5_000, "echo", reader.read())).value), "hi");
            await deletePod(doomedPod);
            const reason = await within(20_000, "the connection to end", doomed.closed);
            assert.ok(reason instanceof PodPortError && reason.podGone, String(reason));
            assert.match((await stream.error)?.message ?? "", /not found|not running/);
            await assert.rejects(() => within(5_000, "the broken stream", reader.read()));
            await assert.rejects(() => doomed.openPort(9000));
            assert.equal(doomed.usable, false);
          } finally {
            doomed.destroy();
          }
        });

        await t.step("the kf-limited context can forward over SPDY", async () => {
          const limited = KubeClient.load({ kubeconfig: KUBECONFIG, context: "kf-limited" });
          try {
            const pods = await limited.getJson<
              { items: { metadata: { name: string }; status: { phase: string } }[] }
            >(
              "/api/v1/namespaces/kf-limited/pods",
              { query: { labelSelector: "app=echo" } },
            );
            const target = pods.items.find((p) => p.status.phase === "Running")?.metadata.name;
            assert.ok(target, "a running echo pod in kf-limited");
            const conn = await within(
              10_000,
              "the upgrade",
              openSpdyPortForward(limited, { namespace: "kf-limited", pod: target, carrier }),
            );
            try {
              assert.equal(
                (await within(10_000, "GET /", httpGet(await conn.openPort(8080), "/")))[1],
                target,
              );
            } finally {
              conn.destroy();
            }
          } finally {
            limited.close();
          }
        });

        await t.step("measure: open + first byte, 200 SPDY streams vs 200 WebSockets (printed)", async () => {
          const request = encode("GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n");
          const spdy: number[] = [];
          for (let i = 0; i < 200; i++) {
            const start = performance.now();
            const stream = await pf.openPort(8080);
            const writer = stream.writable.getWriter();
            writer.write(request).catch(() => {});
            const reader = stream.readable.getReader();
            await within(5_000, "a first byte", reader.read());
            spdy.push(performance.now() - start);
            reader.releaseLock();
            writer.releaseLock();
            await stream.readable.cancel().catch(() => {});
            stream.reset();
          }
          const ws: number[] = [];
          const wsPath = `/api/v1/namespaces/${NAMESPACE}/pods/${pod}/portforward`;
          for (let i = 0; i < 200; i++) {
            const start = performance.now();
            const socket: WebSocket = await client.openWebSocket(wsPath, {
              query: { ports: "8080" },
              protocols: [PORT_FORWARD_PROTOCOL],
            });
            try {
              const decoder = new PortForwardDecoder();
              const firstByte = new Promise<void>((resolve) => {
                socket.on("message", (data: Uint8Array) => {
                  if (decoder.decode(data)?.kind === "data") resolve();
                });
              });
              socket.send(encodeData(request));
              await within(5_000, "a first byte", firstByte);
              ws.push(performance.now() - start);
            } finally {
              socket.terminate();
            }
          }
          const report = (name: string, samples: number[]) => {
            const sorted = [...samples].sort((a, b) => a - b);
            console.log(
              `    ${name}: p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${
                percentile(sorted, 99).toFixed(2)
              } ms`,
            );
          };
          report("SPDY stream on an open connection", spdy);
          report("new WebSocket per connection", ws);
          await noStreamsLeft(pf);
        });
      } finally {
        forward?.destroy();
        client.close();
        await Promise.allSettled([deletePod(pod), deletePod(doomedPod)]);
      }
    },
  });
}
