/** HttpConnection over in-memory pod streams, with a real loopback client: the replay rules of issue #9. */

import assert from "node:assert/strict";
import { systemClock } from "../../clock.ts";
import { MemoryPodStream } from "../../transport/_testing.ts";
import { PodPortError } from "../../transport/mod.ts";
import type { Upstream } from "../prewarm.ts";
import { HttpConnection, type RequestLogEntry } from "./connection.ts";
import { loopbackPair, until } from "../_testing.ts";

const encode = (value: string) => new TextEncoder().encode(value);
const ok = (body: string, extra = "") =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

/**
 * A client connection to an HttpConnection whose streams are new per acquire. With `keep`, the connection gets
 * a keeper (what a forward gives it): what it hands back lands in `kept`, and an acquire that may reuse takes
 * one of `reusable` first.
 */
async function harness(options: { reusable?: MemoryPodStream[]; keep?: boolean } = {}) {
  const pods = ["pod-a", "pod-b", "pod-c", "pod-d"];
  const { local, client } = await loopbackPair();
  const streams: MemoryPodStream[] = [];
  const excluded: string[][] = [];
  const requests: RequestLogEntry[] = [];
  const kept: Upstream[] = [];
  const reuseAsked: boolean[] = [];
  const podFailures: string[] = [];
  const abort = new AbortController();
  const connection = new HttpConnection({
    local,
    counters: { bytesIn: 0, bytesOut: 0 },
    signal: abort.signal,
    clock: systemClock,
    choose: (exclude) => pods.find((p) => !exclude.has(p)),
    acquire: (exclude, _signal, _prefer, reuse): Promise<Upstream> => {
      excluded.push([...exclude]);
      reuseAsked.push(reuse === true);
      const pod = pods.find((p) => !exclude.has(p));
      if (!pod) return Promise.reject(new Error("no ready pod"));
      const endpoint = { pod, uid: pod, port: 80 };
      const old = reuse ? options.reusable?.pop() : undefined;
      if (old) return Promise.resolve({ stream: old, endpoint, early: [], reused: true });
      const stream = new MemoryPodStream(pod);
      streams.push(stream);
      return Promise.resolve({ stream, endpoint, early: [] });
    },
    keep: options.keep ? (upstream) => kept.push(upstream) : undefined,
    onPodFailed: (pod) => podFailures.push(pod),
    onRequest: (entry) => requests.push(entry),
  });
  const result = connection.run();
  const reader = client.readable.getReader();
  let buffered = "";
  /** Reads until `count` complete responses (Content-Length framed) arrived; returns them. */
  const responses = async (count: number): Promise<string[]> => {
    const out: string[] = [];
    while (out.length < count) {
      const end = buffered.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length >= end + 4 + length) {
          out.push(buffered.slice(0, end + 4 + length));
          buffered = buffered.slice(end + 4 + length);
          continue;
        }
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`closed after ${out.length} responses`);
      buffered += new TextDecoder().decode(value);
    }
    return out;
  };
  /** Everything the client receives until kf closes the connection. */
  const readAll = async (): Promise<string> => {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      buffered += new TextDecoder().decode(chunk.value);
    }
    const all = buffered;
    buffered = "";
    return all;
  };
  const stop = async () => {
    reader.releaseLock();
    try {
      client.close();
    } catch {
      // closed already
    }
    abort.abort();
    await result;
  };
  return {
    client,
    streams,
    excluded,
    requests,
    kept,
    reuseAsked,
    podFailures,
    reader,
    responses,
    readAll,
    stop,
    result,
  };
}

Deno.test("HTTP: a keep-alive connection whose pod stream died between requests sends the next one to a new stream", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /one"), "the first request");
    h.streams[0].podSends(ok("one"));
    assert.match((await h.responses(1))[0], /one$/);
    h.streams[0].podFails(new PodPortError("pod-a", "pod not found", true));
    await until(() => !h.streams[0].open, "the stream to end");
    await h.client.write(encode("GET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(
      () => h.streams[1]?.writtenText() === "GET /two HTTP/1.1\r\nHost: x\r\n\r\n",
      "the second stream",
    );
    h.streams[1].podSends(ok("two"));
    assert.match((await h.responses(1))[0], /^HTTP\/1.1 200 OK[\s\S]*two$/);
    assert.deepEqual(h.requests.map((r) => [r.path, r.status]), [["/one", 200], ["/two", 200]]);
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: a GET whose pod goes away before the response is resent to another pod, unnoticed", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /slow"), "the request");
    h.streams[0].podFails(new PodPortError("pod-a", "pod not found", true));
    await until(() => h.streams[1]?.writtenText().includes("GET /slow"), "the resend");
    assert.ok(h.excluded[1].includes("pod-a"), "the resend avoids the pod that went away");
    h.streams[1].podSends(ok("done"));
    assert.match((await h.responses(1))[0], /200 OK[\s\S]*done$/);
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: a GET whose carrier broke (not the pod) is resent without avoiding the pod", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /again"), "the request");
    // e.g. the pooled SPDY connection died with the API server: nothing is known about the pod
    h.streams[0].podFails(new Error("SPDY connection lost: the connection closed"));
    await until(() => h.streams[1]?.writtenText().includes("GET /again"), "the resend");
    assert.deepEqual(h.excluded[1], [], "the pod is still the one to use");
    assert.equal(h.streams[1].pod, "pod-a");
    h.streams[1].podSends(ok("again"));
    assert.match((await h.responses(1))[0], /200 OK[\s\S]*again$/);
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: a POST without Idempotency-Key is never resent: kf answers 502 and names itself", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"));
    await until(() => h.streams[0]?.writtenText().endsWith("hi"), "the POST");
    h.streams[0].podFails(new PodPortError("pod-a", "pod not found", true));
    const [response] = await h.responses(1);
    assert.match(response, /^HTTP\/1.1 502 Bad Gateway/);
    assert.match(response, /X-Kf-Error: pod-went-away/i);
    assert.match(response, /Via: 1.1 kf/i);
    assert.match(response, /went away mid-request/);
    assert.ok(h.streams.slice(1).every((s) => !s.writtenText().includes("POST")), "not sent anywhere else");
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: a POST with an Idempotency-Key is resent when its pod goes away before answering", async () => {
  const h = await harness();
  try {
    await h.client.write(
      encode("POST /pay HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k1\r\nContent-Length: 2\r\n\r\nhi"),
    );
    await until(() => h.streams[0]?.writtenText().endsWith("hi"), "the POST");
    h.streams[0].podFails(new Error("socket hang up"));
    await until(() => h.streams[1]?.writtenText().endsWith("hi"), "the resend");
    h.streams[1].podSends(ok("paid"));
    assert.match((await h.responses(1))[0], /200 OK[\s\S]*paid$/);
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: a response already started is cut when its pod goes away (nothing can be redone)", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /big"), "the request");
    h.streams[0].podSends("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    h.streams[0].podFails(new PodPortError("pod-a", "pod not found", true));
    const outcome = await h.result;
    assert.ok(outcome.error instanceof PodPortError);
    assert.equal(h.streams.length, 1, "no second pod");
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: pipelined requests go out in order on one stream and their answers come back in order", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /2"), "both requests");
    assert.ok(h.streams[0].writtenText().indexOf("GET /1") < h.streams[0].writtenText().indexOf("GET /2"));
    h.streams[0].podSends(ok("first") + ok("second"));
    const answers = await h.responses(2);
    assert.match(answers[0], /first$/);
    assert.match(answers[1], /second$/);
    assert.equal(h.streams.length, 1);
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP: a stream whose answer has ended is released (its carrier reused), one cut mid-answer is reset", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /done HTTP/1.0\r\nHost: x\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /done"), "the request");
    h.streams[0].podSends(ok("done"));
    assert.match((await h.responses(1))[0], /done$/);
    await until(() => !h.streams[0].open, "the connection to end after its HTTP/1.0 answer");
    assert.equal(h.streams[0].wasReleased, true);
    assert.equal(h.streams[0].wasReset, false);
  } finally {
    await h.stop();
  }
  const cut = await harness();
  try {
    await cut.client.write(encode("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    await until(() => cut.streams[0]?.writtenText().includes("GET /slow"), "the request");
    cut.streams[0].podSends("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart");
  } finally {
    await cut.stop();
  }
  assert.equal(cut.streams[0].wasReset, true);
  assert.equal(cut.streams[0].wasReleased, false);
});

// ---------------------------------------------------------------- with a keeper of idle upstreams
// (what a forward gives it): the hop to the pod stays open for the next connection, and only requests
// that can be resent ride an upstream an earlier connection left

Deno.test("HTTP keep: a `Connection: close` client gets its answer and its close; the upstream, asked to stay, is kept", async () => {
  const h = await harness({ keep: true });
  try {
    await h.client.write(encode("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    await until(() => h.streams[0]?.writtenText().includes("GET /a"), "the request upstream");
    assert.equal(h.streams[0].writtenText(), "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "no close toward the pod");
    h.streams[0].podSends(ok("a"));
    assert.match(await h.readAll(), /200 OK[\s\S]*\r\n\r\na$/);
    await h.result;
    assert.equal(h.kept.length, 1);
    assert.equal(h.kept[0].stream, h.streams[0]);
    assert.equal(h.streams[0].open, true, "kept open for the next connection");
    assert.deepEqual(h.reuseAsked, [true], "a GET may ride a kept upstream");
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP keep: a response that closes, an unfinished response, or an upgrade is never kept", async () => {
  const closing = await harness({ keep: true });
  try {
    await closing.client.write(encode("GET /a HTTP/1.0\r\n\r\n"));
    await until(() => closing.streams[0]?.writtenText().includes("GET /a"), "the request");
    assert.match(
      closing.streams[0].writtenText(),
      /Connection: keep-alive\r\n\r\n$/,
      "1.0 asks for keep-alive",
    );
    closing.streams[0].podSends(ok("a", "Connection: close\r\n"));
    await closing.readAll();
    await closing.result;
    assert.equal(closing.kept.length, 0);
    assert.equal(closing.streams[0].wasReleased || closing.streams[0].wasReset, true);
  } finally {
    await closing.stop();
  }
  const cut = await harness({ keep: true });
  try {
    await cut.client.write(encode("GET /big HTTP/1.1\r\n\r\n"));
    await until(() => cut.streams[0]?.writtenText().includes("GET /big"), "the request");
    cut.streams[0].podSends("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    await cut.reader.read(); // the response has started
  } finally {
    // the forward stops mid-response
    await cut.stop();
  }
  assert.equal(cut.kept.length, 0, "mid-response: reset, not kept");
  assert.equal(cut.streams[0].wasReset, true);
});

Deno.test("HTTP keep: a POST does not ride a kept upstream; a GET does, and a kept one that closes under it is resent without blaming the pod", async () => {
  const old = new MemoryPodStream("pod-a");
  const h = await harness({ keep: true, reusable: [old] });
  try {
    await h.client.write(encode("POST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"));
    await until(() => h.streams[0]?.writtenText().includes("POST /p"), "the POST on a fresh upstream");
    assert.deepEqual(h.reuseAsked, [false]);
    assert.equal(old.written.length, 0);
    h.streams[0].podSends(ok("p"));
    await until(() => h.streams[0].open && h.reuseAsked.length === 1, "");
  } finally {
    await h.stop();
  }
  const stale = new MemoryPodStream("pod-a");
  const g = await harness({ keep: true, reusable: [stale] });
  try {
    await g.client.write(encode("GET /g HTTP/1.1\r\nConnection: close\r\n\r\n"));
    await until(() => stale.writtenText().includes("GET /g"), "the GET on the kept upstream");
    // the server had closed it just then
    stale.podCloses();
    await until(() => g.streams[0]?.writtenText().includes("GET /g"), "the resend on a fresh upstream");
    g.streams[0].podSends(ok("g"));
    assert.match(await g.readAll(), /200 OK[\s\S]*g$/);
    assert.deepEqual(g.podFailures, [], "a kept upstream closing says nothing about the pod");
  } finally {
    await g.stop();
  }
});
