import assert from "node:assert/strict";
import { FakeClock } from "../watch/_testing.ts";
import type { OpenConnection } from "./native_websocket.ts";
import { SPARE_LINGER_MS, SPARE_MAX_AGE_MS, SpareConnections } from "./spare_connections.ts";

interface FakeConnection extends OpenConnection {
  closed: boolean;
  id: number;
}

/** An opener whose connections the test opens (or fails) by hand, in order. */
function manualOpener(identity = "me") {
  const calls: {
    signal: AbortSignal;
    open(): FakeConnection;
    fail(): void;
    giveUp(): void;
  }[] = [];
  const connections: FakeConnection[] = [];
  const open = (signal: AbortSignal) =>
    new Promise<{ opened: OpenConnection; identity: string } | undefined>((resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      calls.push({
        signal,
        open: () => {
          const connection: FakeConnection = {
            id: connections.length,
            closed: false,
            kernelWatched: false,
            conn: { close: () => connection.closed = true } as unknown as Deno.TcpConn,
          };
          connections.push(connection);
          resolve({ opened: connection, identity });
          return connection;
        },
        fail: () => reject(new Error("connection refused")),
        giveUp: () => resolve(undefined),
      });
    });
  return { open, calls, connections };
}

/** Lets promise chains settle and the fake clock fire its earliest timer once. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("a held spare is opened once and a dial takes it ready", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  const hold = new AbortController();
  spares.hold(hold.signal);
  spares.hold(new AbortController().signal);
  assert.equal(opener.calls.length, 2, "one spare per holder");
  const first = opener.calls[0].open();
  await tick();
  assert.equal(spares.ready, 1);
  assert.equal(await spares.take("me"), first);
  assert.equal(spares.ready, 0);
  assert.equal(first.closed, false, "a taken spare is the caller's to close");
  spares.close();
});

Deno.test("a dial takes a spare still opening rather than dialling beside it", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  const hold = new AbortController();
  spares.hold(hold.signal);
  hold.abort();
  const taking = spares.take("me");
  const connection = opener.calls[0].open();
  assert.equal(await taking, connection);
  await tick();
  assert.equal(spares.ready, 0, "a claimed spare is not parked for others");
  assert.equal(opener.calls.length, 1, "nobody holds one any more: no new spare");
  spares.close();
});

Deno.test("a spare nobody wants any more closes after the linger, not at once", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  const hold = new AbortController();
  spares.hold(hold.signal);
  const connection = opener.calls[0].open();
  await tick();
  hold.abort();
  assert.equal(connection.closed, false, "the dial it was held for comes right after the release");
  for (let i = 0; i < 5 && !connection.closed; i++) await tick();
  assert.equal(connection.closed, true);
  assert.ok(clock.now() >= SPARE_LINGER_MS, `closed at ${clock.now()} ms`);
  assert.equal(spares.ready, 0);
  assert.equal(await spares.take("me"), undefined);
  spares.close();
});

Deno.test("a held spare is replaced when it gets old", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  const hold = new AbortController();
  spares.hold(hold.signal);
  const old = opener.calls[0].open();
  for (let i = 0; i < 5 && opener.calls.length < 2; i++) await tick();
  assert.equal(old.closed, true, "an old spare is closed");
  assert.ok(clock.now() >= SPARE_MAX_AGE_MS);
  assert.equal(opener.calls.length, 2, "and a fresh one opened while it is still held");
  const fresh = opener.calls[1].open();
  await tick();
  hold.abort();
  assert.equal(await spares.take("me"), fresh);
  spares.close();
});

Deno.test("a failed opening is retried after a backoff, not in a loop", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  const hold = new AbortController();
  spares.hold(hold.signal);
  opener.calls[0].fail();
  await tick();
  assert.equal(opener.calls.length, 1, "no retry before the backoff");
  assert.equal(await spares.take("me"), undefined, "no spare to take meanwhile");
  for (let i = 0; i < 5 && opener.calls.length < 2; i++) await tick();
  assert.equal(opener.calls.length, 2);
  assert.ok(clock.now() > 0, "the retry waited on the clock (a backoff with jitter)");
  const firstRetryAt = clock.now();
  opener.calls[1].fail();
  await tick();
  assert.equal(opener.calls.length, 2, "each failure waits again");
  for (let i = 0; i < 5 && opener.calls.length < 3; i++) await tick();
  assert.equal(opener.calls.length, 3);
  assert.ok(clock.now() > firstRetryAt);
  hold.abort();
  spares.close();
});

Deno.test("a client that cannot use spares stops opening them", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  spares.hold(new AbortController().signal);
  opener.calls[0].giveUp();
  await tick();
  spares.hold(new AbortController().signal);
  await tick();
  assert.equal(opener.calls.length, 1);
  assert.equal(await spares.take("me"), undefined);
});

Deno.test("a spare opened with another client certificate serves no dial", async () => {
  const clock = new FakeClock();
  const opener = manualOpener("old certificate");
  const spares = new SpareConnections(opener.open, { clock });
  const hold = new AbortController();
  spares.hold(hold.signal);
  opener.calls[0].open();
  await tick();
  assert.equal(await spares.take("new certificate"), undefined);
  assert.equal(spares.ready, 1);
  hold.abort();
  spares.close();
});

Deno.test("close() closes the ready spares and gives up the openings", async () => {
  const clock = new FakeClock();
  const opener = manualOpener();
  const spares = new SpareConnections(opener.open, { clock });
  spares.hold(new AbortController().signal);
  spares.hold(new AbortController().signal);
  const ready = opener.calls[0].open();
  await tick();
  spares.close();
  assert.equal(ready.closed, true);
  assert.equal(opener.calls[1].signal.aborted, true, "the opening is aborted");
  spares.hold(new AbortController().signal);
  assert.equal(opener.calls.length, 2, "no spares after close()");
});
