import assert from "node:assert/strict";
import { FakeClock } from "../watch/_testing.ts";
import { NetworkSettle, networkSignature, watchNetworkChanges } from "./network_settle.ts";

function setup(options: { settleMs?: number; minIntervalMs?: number } = {}) {
  const clock = new FakeClock();
  const abort = new AbortController();
  const log: string[] = [];
  const settle = new NetworkSettle({
    clock,
    signal: abort.signal,
    settleMs: options.settleMs ?? 2_000,
    minIntervalMs: options.minIntervalMs ?? 10_000,
    onSettling: (settling) => log.push(`${clock.now()} ${settling ? "settling" : "stable"}`),
    onSettled: () => log.push(`${clock.now()} reconnect`),
  });
  return { clock, abort, log, settle };
}

/** Lets the fake clock fire what is due (it runs ahead on its own when nothing else is pending). */
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

Deno.test("NetworkSettle reconnects once the path was stable for the settle period", async () => {
  const { settle, log, abort } = setup();
  settle.changed("woke from sleep");
  assert.equal(settle.state.kind, "settling");
  await tick();
  assert.deepEqual(log, ["0 settling", "2000 reconnect", "2000 stable"]);
  abort.abort();
});

Deno.test("NetworkSettle restarts the settle period at every flap and reconnects once", async () => {
  const { settle, log, clock, abort } = setup();
  settle.changed("the network changed");
  // flaps every 500 ms for 3 s, moved by hand so the settle timer never becomes due in between
  for (let i = 0; i < 6; i++) {
    clock.advance(500);
    settle.changed("the network changed");
  }
  await tick();
  await tick();
  assert.deepEqual(log, ["0 settling", "5000 reconnect", "5000 stable"]);
  abort.abort();
});

Deno.test("NetworkSettle reconnects at most once per minimum interval", async () => {
  const { settle, log, abort } = setup({ settleMs: 1_000, minIntervalMs: 10_000 });
  settle.changed("woke from sleep");
  await tick();
  settle.changed("woke from sleep"); // at 1000, right after the first reconnect
  await tick();
  assert.deepEqual(log, [
    "0 settling",
    "1000 reconnect",
    "1000 stable",
    "1000 settling",
    "11000 reconnect",
    "11000 stable",
  ]);
  abort.abort();
});

Deno.test("NetworkSettle does nothing after its signal aborted", async () => {
  const { settle, log, abort } = setup();
  abort.abort();
  settle.changed("woke from sleep");
  await tick();
  assert.deepEqual(log, []);
});

Deno.test("networkSignature() ignores loopback and order", () => {
  const wifi = { name: "wlan0", family: "IPv4", address: "192.168.1.5", cidr: "192.168.1.5/24" };
  const lo = { name: "lo", family: "IPv4", address: "127.0.0.1", cidr: "127.0.0.1/8" };
  const vpn = { name: "tun0", family: "IPv4", address: "10.8.0.2", cidr: "10.8.0.2/24" };
  const a = networkSignature([wifi, lo, vpn] as Deno.NetworkInterfaceInfo[]);
  const b = networkSignature([vpn, wifi] as Deno.NetworkInterfaceInfo[]);
  assert.equal(a, b);
  assert.notEqual(networkSignature([wifi] as Deno.NetworkInterfaceInfo[]), a);
});

Deno.test("watchNetworkChanges() reports a changed address once per change", async () => {
  const clock = new FakeClock();
  const abort = new AbortController();
  let address = "192.168.1.5";
  const interfaces = () =>
    [{ name: "wlan0", family: "IPv4", address, cidr: `${address}/24` }] as Deno.NetworkInterfaceInfo[];
  let changes = 0;
  watchNetworkChanges(() => changes++, { signal: abort.signal, clock, intervalMs: 2_000, interfaces });
  await tick();
  assert.equal(changes, 0);
  address = "10.0.0.7";
  await tick();
  await tick();
  assert.equal(changes, 1);
  abort.abort();
});
