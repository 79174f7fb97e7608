import assert from "node:assert/strict";
import type { KubeClient } from "../../kube/client.ts";
import { ApiError } from "../../kube/errors.ts";
import type { Clock } from "../../clock.ts";
import { FakeClock } from "../../watch/_testing.ts";
import type { PodPort } from "../pod_stream.ts";
import type { PortStream, SpdyCarrier, SpdyPortForwardConnection } from "./port_forward.ts";
import { SpdyPool } from "./pool.ts";
import { portStreamOver } from "./_testing.ts";

/** Just enough of a SPDY port-forward connection for the pool: streams that the test ends by hand. */
class FakeConnection {
  readonly carrier: SpdyCarrier;
  readonly streams: { port: number; finish(): void }[] = [];
  readonly #closed = Promise.withResolvers<Error | undefined>();
  readonly closed = this.#closed.promise;
  usable = true;
  closedBy?: "close" | "destroy";

  constructor(carrier: SpdyCarrier) {
    this.carrier = carrier;
  }

  openPortNow(port: number): PortStream {
    const pod = new TransformStream<Uint8Array, Uint8Array>();
    const writer = pod.writable.getWriter();
    const stream = portStreamOver(pod.readable, new WritableStream(), {
      reset: () => void writer.abort().catch(() => {}),
    });
    // the pod ends its side: the stream socket sees EOF and hands the connection back
    this.streams.push({ port, finish: () => writer.close().catch(() => {}) });
    return stream;
  }

  ping(): Promise<number> {
    return Promise.resolve(1);
  }

  close(): void {
    this.closedBy ??= "close";
    this.usable = false;
    this.#closed.resolve(undefined);
  }

  destroy(): void {
    this.closedBy ??= "destroy";
    this.usable = false;
    this.#closed.resolve(new Error("destroyed"));
  }
}

const pod1: PodPort = { pod: "echo-1", uid: "u1", port: 8080 };
const pod2: PodPort = { pod: "echo-2", uid: "u2", port: 8080 };
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

/** A clock whose timers never fire: for tests about what happens before any idle timeout. */
const stillClock: Clock = {
  now: () => 0,
  sleep: (_ms, signal) =>
    new Promise((_resolve, reject) => signal?.addEventListener("abort", () => reject(signal.reason))),
};

function harness(
  options: {
    refuseTunnel?: boolean;
    refuseUpgrade?: boolean;
    refuseSpdy?: boolean;
    clock?: Clock;
    onlyServedPods?: boolean;
    carriers?: SpdyCarrier[];
  } = {},
) {
  const clock = options.clock ?? stillClock;
  const abort = new AbortController();
  const dialled: FakeConnection[] = [];
  const carriers: SpdyCarrier[] = [];
  const attempts: SpdyCarrier[] = [];
  const pool = new SpdyPool({} as KubeClient, "default", {
    signal: abort.signal,
    clock,
    onlyServedPods: options.onlyServedPods,
    carriers: options.carriers,
    onCarrier: (carrier) => carriers.push(carrier),
    dial: (_pod, carrier) => {
      attempts.push(carrier);
      if (
        options.refuseSpdy || (options.refuseTunnel && carrier === "websocket") ||
        (options.refuseUpgrade && carrier === "upgrade")
      ) {
        return Promise.reject(new ApiError(403, "Forbidden"));
      }
      const connection = new FakeConnection(carrier);
      dialled.push(connection);
      return Promise.resolve(connection as unknown as SpdyPortForwardConnection);
    },
  });
  const owner = {};
  return { clock, abort, dialled, carriers, attempts, pool, owner };
}

Deno.test("the pool keeps one spare to a new pod and two once it is used; each local connection gets a connection of its own", async () => {
  const { abort, dialled, pool, owner } = harness();
  pool.warm(owner, pod1);
  await settle();
  assert.equal(dialled.length, 1, "one spare: a handover costs one handshake");
  const a = await pool.open(pod1, abort.signal);
  const b = await pool.open(pod1, abort.signal);
  await settle();
  const used = dialled.filter((c) => c.streams.length > 0);
  assert.equal(used.length, 2, "two local connections, two SPDY connections");
  assert.equal(dialled.length, 4, "two spares once the pod is in use");
  a.reset();
  b.reset();
  abort.abort();
});

Deno.test("a connection the pod finished cleanly or kf released carries the next local connection; a cut one is dropped", async () => {
  const { abort, dialled, pool, owner } = harness();
  pool.warm(owner, pod1);
  await settle();
  const first = await pool.open(pod1, abort.signal);
  const closed = first.closed;
  first.receive(() => {});
  await settle();
  const carrier = dialled.find((c) => c.streams.length === 1)!;
  carrier.streams[0].finish();
  await closed;
  await settle();
  // the finished connection went back to the pool and is the first idle one: no new dial for the second
  const before = dialled.length;
  const second = await pool.open(pod1, abort.signal);
  await settle();
  assert.equal(carrier.streams.length, 2, "the same SPDY connection carried both, one after the other");
  assert.equal(dialled.length, before, "no dial: two idle spares remain");
  // released (kf had the whole answer, e.g. an HTTP response): the connection carries the next one too
  second.receive(() => {});
  second.release();
  await settle();
  const third = await pool.open(pod1, abort.signal);
  await settle();
  assert.equal(carrier.streams.length, 3, "a released stream leaves its connection in the pool");
  assert.equal(carrier.closedBy, undefined);
  third.reset();
  await settle();
  const cut = dialled.find((c) => c.closedBy === "destroy");
  assert.ok(cut, "the connection of the cut stream was destroyed, not reused");
  abort.abort();
});

Deno.test("a pod that is no longer picked loses its idle connections at once and its busy ones when they end", async () => {
  const { abort, dialled, pool, owner } = harness();
  pool.warm(owner, pod1);
  await settle();
  const busy = await pool.open(pod1, abort.signal);
  busy.receive(() => {});
  await settle();
  pool.warm(owner, pod2);
  await settle();
  const toPod1 = dialled.slice(0, 3);
  const busyConnection = toPod1.find((c) => c.streams.length === 1)!;
  assert.deepEqual(toPod1.filter((c) => c !== busyConnection).map((c) => c.closedBy), ["close", "close"]);
  assert.equal(busyConnection.closedBy, undefined, "the busy one still serves its client");
  const ended = busy.closed;
  busyConnection.streams[0].finish();
  await ended;
  await settle();
  assert.equal(busyConnection.closedBy, "close");
  assert.equal(dialled.slice(3).length, 1, "one spare to the new pod");
  abort.abort();
});

Deno.test("idle connections beyond the spares are closed after 30 s idle, the spares stay", async () => {
  const clock = new FakeClock();
  const { abort, dialled, pool, owner } = harness({ clock });
  pool.warm(owner, pod1);
  await settle();
  const sockets = await Promise.all(Array.from({ length: 5 }, () => pool.open(pod1, abort.signal)));
  for (const socket of sockets) socket.receive(() => {});
  await settle();
  const busy = dialled.filter((c) => c.streams.length === 1);
  assert.equal(busy.length, 5);
  const open = () => dialled.filter((c) => !c.closedBy).length;
  const releasedAt = clock.now();
  for (const connection of busy) connection.streams[0].finish();
  await settle();
  // the fake clock jumps to each timer as it is due: wait for the sweep, then check when it struck
  for (let i = 0; i < 50 && open() > 2; i++) await settle();
  assert.ok(clock.now() - releasedAt >= 30_000, `closed after ${clock.now() - releasedAt} ms idle`);
  assert.equal(open(), 2, "back to the spares");
  abort.abort();
});

Deno.test("a refused tunnel switches to the SPDY upgrade once, and reports it", async () => {
  const { abort, dialled, carriers, pool, owner } = harness({ refuseTunnel: true });
  pool.warm(owner, pod1);
  await settle();
  const socket = await pool.open(pod1, abort.signal);
  assert.deepEqual(carriers, ["upgrade"]);
  assert.ok(dialled.length > 0 && dialled.every((c) => c.carrier === "upgrade"));
  assert.equal(pool.carrier, "upgrade");
  socket.reset();
  abort.abort();
});

Deno.test("upgrade first (auto's pool): a refused upgrade switches to the tunnel once, and reports it", async () => {
  const { abort, dialled, carriers, attempts, pool, owner } = harness({
    refuseUpgrade: true,
    carriers: ["upgrade", "websocket"],
  });
  pool.warm(owner, pod1);
  await settle();
  const socket = await pool.open(pod1, abort.signal);
  assert.equal(attempts[0], "upgrade");
  assert.deepEqual(carriers, ["websocket"]);
  assert.ok(dialled.length > 0 && dialled.every((c) => c.carrier === "websocket"));
  assert.equal(pool.carrier, "websocket");
  socket.reset();
  abort.abort();
});

Deno.test("a server that refuses SPDY altogether fails the open with its answer and stops the spares", async () => {
  const clock = new FakeClock();
  const { abort, attempts, pool, owner } = harness({ refuseSpdy: true, clock });
  pool.warm(owner, pod1);
  await settle();
  await assert.rejects(() => pool.open(pod1, abort.signal), (error) => error instanceof ApiError);
  const tried = attempts.length;
  for (let i = 0; i < 10; i++) await settle(); // the fake clock would fire any retry timer now
  assert.equal(attempts.length, tried, "no retries of the spares once SPDY is refused");
  assert.ok(attempts.includes("websocket") && attempts.includes("upgrade"), "both carriers were tried");
  abort.abort();
});

Deno.test("a standby pod gets one idle connection, which carries the first local connection once it is picked", async () => {
  const { abort, dialled, pool, owner } = harness();
  pool.warm(owner, pod1, [pod2]);
  await settle();
  assert.equal(dialled.length, 2, "one spare to the picked pod, one to the standby");
  const toPod2 = dialled[1];
  // the picked pod goes away; the standby is picked
  pool.warm(owner, pod2, []);
  await settle();
  assert.equal(dialled[0].closedBy, "close", "the old pod's idle connection is closed");
  const before = dialled.length;
  const socket = await pool.open(pod2, abort.signal);
  assert.equal(toPod2.streams.length, 1, "the standby connection carried it");
  assert.ok(dialled.length >= before, "spares are topped up afterwards");
  socket.reset();
  abort.abort();
});

Deno.test("with onlyServedPods the pool opens nothing for a pod until it was served elsewhere, then keeps two idle connections", async () => {
  const { abort, dialled, pool, owner } = harness({ onlyServedPods: true });
  pool.warm(owner, pod1, [pod2]);
  await settle();
  assert.equal(
    dialled.length,
    0,
    "no handshake beside the first connections' own (and none to standby pods)",
  );
  assert.equal(pool.hasIdle(pod1), false);
  assert.equal(pool.serves(pod1), false);
  pool.served(pod1);
  assert.equal(pool.serves(pod1), true);
  await settle();
  assert.equal(dialled.length, 2, "two spares once the pod has served a connection");
  assert.equal(pool.hasIdle(pod1), true);
  assert.equal(pool.hasIdle(pod2), false, "idle connections are per pod");
  const socket = await pool.open(pod1, abort.signal);
  await settle();
  assert.equal(dialled.filter((c) => c.streams.length > 0).length, 1, "it went on an idle connection");
  assert.equal(dialled.length, 3, "topped up to two idle ones");
  pool.served(pod1);
  await settle();
  assert.equal(dialled.length, 3, "served again: nothing more");
  // the pod is no longer picked: its idle connections go, and nothing is idle for it
  pool.warm(owner, pod2);
  await settle();
  assert.equal(pool.hasIdle(pod1), false);
  assert.equal(dialled.length, 3, "the new pod gets nothing before it serves");
  socket.reset();
  abort.abort();
});
