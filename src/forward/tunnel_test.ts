/** The tunnel over in-memory pod streams, with a real loopback TCP connection as the client. */

import assert from "node:assert/strict";
import { systemClock } from "../clock.ts";
import { MemoryPodStream } from "../transport/_testing.ts";
import { PodPortError } from "../transport/mod.ts";
import type { Upstream } from "./prewarm.ts";
import { Tunnel, type TunnelResult } from "./tunnel.ts";
import { loopbackPair, until } from "./_testing.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const encode = (value: string) => new TextEncoder().encode(value);

/** A client connection to the tunnel, and the tunnel running over the streams handed out in order. */
async function harness(streams: MemoryPodStream[]) {
  const { local, client } = await loopbackPair();
  const excluded: string[][] = [];
  const abort = new AbortController();
  const tunnel = new Tunnel({
    local,
    counters: { bytesIn: 0, bytesOut: 0 },
    signal: abort.signal,
    clock: systemClock,
    acquire: (exclude): Promise<Upstream> => {
      excluded.push([...exclude]);
      const stream = streams[excluded.length - 1];
      if (!stream) return Promise.reject(new Error("no more pods"));
      return Promise.resolve({ stream, endpoint: { pod: stream.pod, uid: stream.pod, port: 80 }, early: [] });
    },
  });
  const result: Promise<TunnelResult> = tunnel.run();
  return { client, tunnel, result, excluded, abort };
}

async function readAll(conn: Deno.Conn): Promise<string> {
  let out = "";
  for await (const chunk of conn.readable) out += text(chunk);
  return out;
}

Deno.test("bytes flow both ways, and the pod's close ends the client's connection after the last byte", async () => {
  const pod = new MemoryPodStream("echo-1");
  const { client, result } = await harness([pod]);
  await client.write(encode("hello"));
  await until(() => pod.writtenText() === "hello", "the pod to get the request");
  pod.podSends("world");
  pod.podCloses();
  assert.equal(await readAll(client), "world");
  assert.deepEqual(await result, { pod: "echo-1", error: undefined });
});

Deno.test("a pod that goes away before its first byte: the client's bytes go to another pod, unnoticed", async () => {
  const gone = new MemoryPodStream("echo-1");
  const next = new MemoryPodStream("echo-2");
  const { client, result, excluded } = await harness([gone, next]);
  await client.write(encode("GET / HTTP/1.0\r\n\r\n"));
  await until(() => gone.writtenText().length > 0, "the first pod to get the request");
  gone.podFails(new PodPortError("echo-1", "pod not found", true));
  await until(() => next.writtenText() === "GET / HTTP/1.0\r\n\r\n", "the replay on the second pod");
  assert.deepEqual(excluded, [[], ["echo-1"]], "the second pick avoids the pod that is gone");
  next.podSends("HTTP/1.0 200 OK\r\n\r\nhi");
  next.podCloses();
  assert.equal(await readAll(client), "HTTP/1.0 200 OK\r\n\r\nhi");
  assert.deepEqual(await result, { pod: "echo-2", error: undefined });
});

Deno.test("a stream that merely broke before the first byte is replayed without blaming its pod", async () => {
  const broken = new MemoryPodStream("echo-1");
  const next = new MemoryPodStream("echo-1");
  const { client, result, excluded } = await harness([broken, next]);
  await client.write(encode("ping"));
  await until(() => broken.writtenText() === "ping", "the request");
  broken.podFails(new Error("socket hang up"));
  await until(() => next.writtenText() === "ping", "the replay");
  assert.deepEqual(excluded, [[], []], "an API server restart says nothing against the pod");
  next.podSends("pong");
  next.podCloses();
  assert.equal(await readAll(client), "pong");
  await result;
});

Deno.test("a pod deleted under a connection before its first byte: replayed on another pod", async () => {
  const doomed = new MemoryPodStream("echo-1");
  const next = new MemoryPodStream("echo-2");
  const { client, tunnel, result, excluded } = await harness([doomed, next]);
  await client.write(encode("req"));
  await until(() => doomed.writtenText() === "req", "the request");
  tunnel.podDeleted("echo-1");
  await until(() => next.writtenText() === "req", "the replay");
  assert.ok(doomed.wasReset);
  assert.deepEqual(excluded, [[], ["echo-1"]]);
  next.podSends("ok");
  next.podCloses();
  assert.equal(await readAll(client), "ok");
  await result;
});

Deno.test("after the pod's first byte a failure cuts the client: nothing is replayed", async () => {
  const pod = new MemoryPodStream("echo-1");
  const spare = new MemoryPodStream("echo-2");
  const { client, result, excluded } = await harness([pod, spare]);
  await client.write(encode("download"));
  await until(() => pod.writtenText() === "download", "the request");
  pod.podSends("part of it");
  const failure = new PodPortError("echo-1", "pod not found", true);
  pod.podFails(failure);
  const outcome = await result;
  assert.equal(outcome.error, failure);
  assert.equal(excluded.length, 1, "no second pod");
  assert.equal(spare.written.length, 0);
  const received = await readAll(client).catch(() => "(reset)");
  assert.ok(received === "part of it" || received === "(reset)", received);
});

Deno.test("past the replay limit the client's bytes are not kept: a failure before the answer is not retried", async () => {
  const pod = new MemoryPodStream("echo-1");
  const spare = new MemoryPodStream("echo-2");
  const { client, result, excluded } = await harness([pod, spare]);
  const upload = new Uint8Array(1_500_000);
  await client.write(upload);
  await until(() => pod.written.reduce((n, c) => n + c.length, 0) === upload.length, "the upload");
  pod.podFails(new PodPortError("echo-1", "pod not found", true));
  const outcome = await result;
  assert.ok(outcome.error instanceof PodPortError);
  assert.equal(excluded.length, 1);
  client.close();
});

Deno.test("half-close: the client's EOF reaches a pod stream that can say it, and the answer still arrives", async () => {
  const pod = new MemoryPodStream("echo-1", { halfCloses: true });
  const { client, result } = await harness([pod]);
  await client.write(encode("request"));
  await client.closeWrite();
  await until(() => pod.writeClosed, "the half-close to reach the pod");
  assert.equal(pod.writtenText(), "request");
  pod.podSends("answer");
  pod.podCloses();
  assert.equal(await readAll(client), "answer");
  assert.equal((await result).error, undefined);
  assert.equal(pod.wasReset, false, "the pod closed it: kf did not have to guess");
});

Deno.test("without half-close, a client's EOF ends the stream once the pod has been quiet after its answer", async () => {
  const pod = new MemoryPodStream("echo-1", { halfCloses: false });
  const { client, result } = await harness([pod]);
  await client.write(encode("request"));
  await client.closeWrite();
  await until(() => pod.writtenText() === "request", "the request");
  pod.podSends("answer");
  const started = Date.now();
  assert.equal(await readAll(client), "answer");
  const waited = Date.now() - started;
  assert.ok(pod.wasReset, "kf closed the stream the pod never closes");
  assert.ok(waited >= 400 && waited < 3_000, `closed ${waited} ms after the answer (quiet limit 500 ms)`);
  assert.equal((await result).error, undefined);
});

Deno.test("a slow reader pauses its pod stream at 1 MiB queued and resumes it as the client reads", async () => {
  const pod = new MemoryPodStream("bulk-1");
  const { client, result } = await harness([pod]);
  await client.write(encode("GET /big"));
  await until(() => pod.written.length > 0, "the request");
  const chunk = new Uint8Array(64 * 1024).fill(7);
  let sent = 0;
  // the pod sends while the stream is not paused; the client reads nothing yet
  while (!pod.paused && sent < 64 << 20) {
    pod.podSends(chunk);
    sent += chunk.length;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.ok(pod.paused, "paused before 64 MiB");
  assert.ok(sent < 8 << 20, `paused after ${sent} bytes: memory stays bounded`);
  let received = 0;
  const reader = client.readable.getReader();
  while (received < sent) received += (await reader.read()).value!.length;
  await until(() => !pod.paused, "the resume once the client caught up");
  pod.podCloses();
  while (!(await reader.read()).done) { /* drain */ }
  assert.equal(received, sent);
  await result;
});

Deno.test("a client that connects and leaves without a byte ends the tunnel at once", async () => {
  const pod = new MemoryPodStream("echo-1");
  const { client, result } = await harness([pod]);
  client.close();
  assert.equal((await result).error, undefined);
  await until(() => !pod.open, "the stream to close");
});
