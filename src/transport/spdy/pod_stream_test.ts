import assert from "node:assert/strict";
import { PodPortError } from "../errors.ts";
import { SpdyPodStream } from "./pod_stream.ts";
import { portStreamOver } from "./_testing.ts";
import type { SpdyPortForwardConnection } from "./port_forward.ts";

/** A stream pair whose pod side the test plays: `pod.write` sends to kf, `fromKf` collects kf's bytes. */
function pair(errorText?: PodPortError) {
  const toKf = new TransformStream<Uint8Array, Uint8Array>();
  const fromKf: Uint8Array[] = [];
  let kfClosedWrite = false;
  let reset = false;
  const port = portStreamOver(
    toKf.readable,
    new WritableStream({
      write: (chunk) => void fromKf.push(chunk),
      close: () => void (kfClosedWrite = true),
    }),
    { error: Promise.resolve(errorText), reset: () => void (reset = true) },
  );
  const connection = { pod: "db-1", ping: () => Promise.resolve(1) } as unknown as SpdyPortForwardConnection;
  const done: boolean[] = [];
  const stream = new SpdyPodStream(connection, port, { onDone: (clean) => done.push(clean) });
  return {
    stream,
    pod: toKf.writable.getWriter(),
    fromKf,
    done,
    kfClosedWrite: () => kfClosedWrite,
    wasReset: () => reset,
  };
}

const encode = (value: string) => new TextEncoder().encode(value);
const decode = (chunks: Uint8Array[]) => chunks.map((c) => new TextDecoder().decode(c)).join("");
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("SPDY stream: bytes both ways; closeWrite() is a real half-close; the pod's FIN is a clean end", async () => {
  const { stream, pod, fromKf, done, kfClosedWrite } = pair();
  const got: Uint8Array[] = [];
  stream.receive((chunk) => got.push(chunk));
  stream.write(encode("select 1"));
  assert.equal(stream.closeWrite(), true);
  await pod.write(encode("1 row"));
  await pod.close();
  assert.equal(await stream.closed, undefined);
  assert.equal(decode(fromKf), "select 1");
  assert.equal(kfClosedWrite(), true);
  assert.equal(decode(got), "1 row");
  assert.deepEqual(done, [true], "the connection can carry the next stream");
});

Deno.test("SPDY stream: a chunk read while nobody receives is kept for the next receiver", async () => {
  const { stream, pod } = pair();
  const first: string[] = [];
  stream.receive((chunk) => first.push(decode([chunk])));
  await pod.write(encode("a"));
  await tick();
  stream.receive(undefined);
  await pod.write(encode("b"));
  await tick();
  const second: string[] = [];
  stream.receive((chunk) => second.push(decode([chunk])));
  assert.deepEqual(first, ["a"]);
  assert.deepEqual(second, ["b"]);
  stream.reset();
});

Deno.test("SPDY stream: the kubelet's error text is the stream's typed end", async () => {
  const refused = new PodPortError("db-1", "connection refused", false);
  const { stream, pod } = pair(refused);
  stream.receive(() => {});
  await pod.close();
  assert.equal(await stream.closed, refused);
});

Deno.test("SPDY stream: reset() cuts both streams and does not give the connection back", async () => {
  const { stream, done, wasReset } = pair();
  stream.receive(() => {});
  const reason = new Error("pod deleted");
  stream.reset(reason);
  assert.equal(await stream.closed, reason);
  assert.equal(wasReset(), true);
  assert.deepEqual(done, [false]);
  assert.equal(stream.open, false);
});

Deno.test("SPDY stream: release() is a clean end (the connection is reused), reset(reason) keeps its reason", async () => {
  const released = pair();
  released.stream.receive(() => {});
  released.stream.release();
  assert.equal(await released.stream.closed, undefined);
  assert.deepEqual(released.done, [true]);
  assert.equal(released.wasReset(), true, "the pair is reset on the wire");
  const cut = pair();
  cut.stream.receive(() => {});
  const reason = new Error("cut by kf");
  cut.stream.reset(reason);
  assert.equal(await cut.stream.closed, reason);
  assert.deepEqual(cut.done, [false]);
});
