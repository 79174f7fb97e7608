import assert from "node:assert/strict";
import { listenHosts } from "../config/mod.ts";
import { ListenFailure, type ListenFn, listenOnHosts } from "./listen.ts";

/** Whether this machine can listen on ::1 (containers often have no IPv6 loopback). */
function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** A fake listen: records calls, fails as told, returns listeners whose port is the one asked (or 40000+n). */
function fakeListen(fail: (hostname: string, port: number, call: number) => Error | undefined) {
  const calls: string[] = [];
  let closed = 0;
  const listen: ListenFn = ({ hostname, port }) => {
    const call = calls.length;
    calls.push(`${hostname}:${port}`);
    const error = fail(hostname!, port!, call);
    if (error) throw error;
    const actual = port === 0 ? 40000 + call : port!;
    return {
      addr: { transport: "tcp", hostname, port: actual },
      close: () => closed++,
    } as unknown as Deno.TcpListener;
  };
  return { listen, calls, closed: () => closed };
}

Deno.test("listenOnHosts() binds localhost on 127.0.0.1 and ::1 with the same free port (real sockets)", () => {
  const bound = listenOnHosts(listenHosts(["localhost"]), 0);
  try {
    const hosts = bound.listeners.map((l) => l.hostname);
    if (!hasIpv6Loopback()) {
      console.log("skipped the ::1 half: this host has no IPv6 loopback");
      assert.deepEqual(hosts, ["127.0.0.1"]);
      return;
    }
    assert.deepEqual(hosts, ["127.0.0.1", "::1"]);
    assert.ok(bound.port > 0);
    for (const { listener } of bound.listeners) {
      assert.equal((listener.addr as Deno.NetAddr).port, bound.port);
    }
  } finally {
    for (const { listener } of bound.listeners) listener.close();
  }
});

Deno.test("listenOnHosts() leaves ::1 out when the host has no IPv6 loopback", () => {
  const fake = fakeListen((hostname) =>
    hostname === "::1"
      ? new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)")
      : undefined
  );
  const bound = listenOnHosts(listenHosts(["localhost"]), 8080, fake.listen);
  assert.deepEqual(bound.listeners.map((l) => l.hostname), ["127.0.0.1"]);
  assert.equal(bound.port, 8080);
});

Deno.test("listenOnHosts() fails when ::1 is taken: a client resolving localhost to ::1 would reach the other program", () => {
  const fake = fakeListen((hostname) => hostname === "::1" ? new Deno.errors.AddrInUse("in use") : undefined);
  assert.throws(
    () => listenOnHosts(listenHosts(["localhost"]), 8080, fake.listen),
    (error: unknown) => error instanceof ListenFailure && error.hostname === "::1" && error.port === 8080,
  );
  assert.equal(fake.closed(), 1, "the 127.0.0.1 listener was closed again");
});

Deno.test("listenOnHosts() picks another free port when the first one is taken on a later host", () => {
  // the first free port (40000) is taken on ::1; the second pick (40002) is free on both
  const fake = fakeListen((hostname, port) =>
    hostname === "::1" && port === 40000 ? new Deno.errors.AddrInUse("in use") : undefined
  );
  const bound = listenOnHosts(listenHosts(["localhost"]), 0, fake.listen);
  assert.equal(bound.port, 40002);
  assert.deepEqual(fake.calls, ["127.0.0.1:0", "::1:40000", "127.0.0.1:0", "::1:40002"]);
});

Deno.test("listenOnHosts() does not pick again for a port the user chose, nor skip explicit addresses", () => {
  const inUse = fakeListen((hostname) =>
    hostname === "10.0.0.5" ? new Deno.errors.AddrInUse("in use") : undefined
  );
  assert.throws(
    () => listenOnHosts(listenHosts(["localhost", "10.0.0.5"]), 8080, inUse.listen),
    ListenFailure,
  );
  assert.equal(inUse.calls.length, 3);
  const noSuchAddress = fakeListen((hostname) =>
    hostname === "::1" ? new Deno.errors.AddrNotAvailable("Cannot assign requested address") : undefined
  );
  assert.throws(() => listenOnHosts(listenHosts(["::1"]), 8080, noSuchAddress.listen), ListenFailure);
});
