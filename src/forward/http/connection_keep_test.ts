/**
 * HttpConnection with a keeper of idle upstreams (what a forward gives it): the hop to the pod stays open
 * for the next connection, whatever the client's hop does, and only requests that can be resent ride an
 * upstream that an earlier connection left.
 */

import assert from "node:assert/strict";
import { systemClock } from "../../clock.ts";
import { MemoryPodStream } from "../../transport/_testing.ts";
import type { Upstream } from "../prewarm.ts";
import { HttpConnection } from "./connection.ts";
import { loopbackPair, until } from "../_testing.ts";

const encode = (value: string) => new TextEncoder().encode(value);
const ok = (body: string, extra = "") =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

/** One client connection; `kept` holds what the connection handed back, `reusable` what acquire may reuse. */
async function harness(reusable: MemoryPodStream[] = []) {
  const { local, client } = await loopbackPair();
  const fresh: MemoryPodStream[] = [];
  const kept: Upstream[] = [];
  const reuseAsked: boolean[] = [];
  const podFailures: string[] = [];
  const abort = new AbortController();
  const connection = new HttpConnection({
    local,
    counters: { bytesIn: 0, bytesOut: 0 },
    signal: abort.signal,
    clock: systemClock,
    choose: () => "pod-a",
    acquire: (_exclude, _signal, _prefer, reuse): Promise<Upstream> => {
      reuseAsked.push(reuse === true);
      const endpoint = { pod: "pod-a", uid: "uid-a", port: 80 };
      const old = reuse ? reusable.pop() : undefined;
      if (old) return Promise.resolve({ stream: old, endpoint, early: [], reused: true });
      const stream = new MemoryPodStream("pod-a");
      fresh.push(stream);
      return Promise.resolve({ stream, endpoint, early: [] });
    },
    keep: (upstream) => kept.push(upstream),
    onPodFailed: (pod) => podFailures.push(pod),
  });
  const result = connection.run();
  const readAll = async () => {
    let text = "";
    for await (const chunk of client.readable) text += new TextDecoder().decode(chunk);
    return text;
  };
  const stop = async () => {
    try {
      client.close();
    } catch {
      // closed
    }
    abort.abort();
    await result;
  };
  return { client, fresh, kept, reuseAsked, podFailures, readAll, result, stop };
}

Deno.test("HTTP keep: a `Connection: close` client gets its answer and its close; the upstream, asked to stay, is kept", async () => {
  const h = await harness();
  try {
    await h.client.write(encode("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    await until(() => h.fresh[0]?.writtenText().includes("GET /a"), "the request upstream");
    assert.equal(h.fresh[0].writtenText(), "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "no close toward the pod");
    h.fresh[0].podSends(ok("a"));
    assert.match(await h.readAll(), /200 OK[\s\S]*\r\n\r\na$/);
    await h.result;
    assert.equal(h.kept.length, 1);
    assert.equal(h.kept[0].stream, h.fresh[0]);
    assert.equal(h.fresh[0].open, true, "kept open for the next connection");
    assert.deepEqual(h.reuseAsked, [true], "a GET may ride a kept upstream");
  } finally {
    await h.stop();
  }
});

Deno.test("HTTP keep: a response that closes, an unfinished response, or an upgrade is never kept", async () => {
  const closing = await harness();
  try {
    await closing.client.write(encode("GET /a HTTP/1.0\r\n\r\n"));
    await until(() => closing.fresh[0]?.writtenText().includes("GET /a"), "the request");
    assert.match(
      closing.fresh[0].writtenText(),
      /Connection: keep-alive\r\n\r\n$/,
      "1.0 asks for keep-alive",
    );
    closing.fresh[0].podSends(ok("a", "Connection: close\r\n"));
    await closing.readAll();
    await closing.result;
    assert.equal(closing.kept.length, 0);
    assert.equal(closing.fresh[0].wasReleased || closing.fresh[0].wasReset, true);
  } finally {
    await closing.stop();
  }
  const cut = await harness();
  try {
    await cut.client.write(encode("GET /big HTTP/1.1\r\n\r\n"));
    await until(() => cut.fresh[0]?.writtenText().includes("GET /big"), "the request");
    cut.fresh[0].podSends("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    const reader = cut.client.readable.getReader();
    await reader.read(); // the response has started
    reader.releaseLock();
  } finally {
    // the forward stops mid-response
    await cut.stop();
  }
  assert.equal(cut.kept.length, 0, "mid-response: reset, not kept");
  assert.equal(cut.fresh[0].wasReset, true);
});

Deno.test("HTTP keep: a POST does not ride a kept upstream; a GET does, and a kept one that closes under it is resent without blaming the pod", async () => {
  const old = new MemoryPodStream("pod-a");
  const h = await harness([old]);
  try {
    await h.client.write(encode("POST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"));
    await until(() => h.fresh[0]?.writtenText().includes("POST /p"), "the POST on a fresh upstream");
    assert.deepEqual(h.reuseAsked, [false]);
    assert.equal(old.written.length, 0);
    h.fresh[0].podSends(ok("p"));
    await until(() => h.fresh[0].open && h.reuseAsked.length === 1, "");
  } finally {
    await h.stop();
  }
  const stale = new MemoryPodStream("pod-a");
  const g = await harness([stale]);
  try {
    await g.client.write(encode("GET /g HTTP/1.1\r\nConnection: close\r\n\r\n"));
    await until(() => stale.writtenText().includes("GET /g"), "the GET on the kept upstream");
    // the server had closed it just then
    stale.podCloses();
    await until(() => g.fresh[0]?.writtenText().includes("GET /g"), "the resend on a fresh upstream");
    g.fresh[0].podSends(ok("g"));
    assert.match(await g.readAll(), /200 OK[\s\S]*g$/);
    assert.deepEqual(g.podFailures, [], "a kept upstream closing says nothing about the pod");
  } finally {
    await g.stop();
  }
});
