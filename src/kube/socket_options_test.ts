import assert from "node:assert/strict";
import { KERNEL_DEAD_PATH_MS, KERNEL_KEEPALIVE, SocketOptions, type SocketState } from "./socket_options.ts";

/** What tune() leaves on a socket: TCP_NODELAY and the kernel keepalive of KERNEL_KEEPALIVE. */
const TUNED = {
  noDelay: true,
  keepAlive: true,
  keepIdleS: KERNEL_KEEPALIVE.idleS,
  keepIntervalS: KERNEL_KEEPALIVE.intervalS,
  keepCount: KERNEL_KEEPALIVE.count,
  userTimeoutMs: Deno.build.os === "linux" ? KERNEL_KEEPALIVE.userTimeoutMs : 0,
};

function flags(state: SocketState | undefined) {
  return state && { noDelay: state.noDelay, keepAlive: state.keepAlive };
}

Deno.test("SocketOptions finds each of many loopback connections by its ports and sets TCP_NODELAY and the kernel keepalive", async () => {
  const options = SocketOptions.open();
  assert.ok(options, `libc's socket calls load on ${Deno.build.os}`);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  const dialled: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      dialled.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
    }
    // the accepted ends share the listener's local port: only the peer port tells them apart
    while (accepted.length < dialled.length) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const conn of [...dialled].reverse()) {
      assert.deepEqual(flags(options.read(conn)), { noDelay: false, keepAlive: false });
      assert.deepEqual(options.tune(conn), { noDelay: true, kernelWatched: true });
      assert.deepEqual(options.read(conn), TUNED);
    }
    assert.deepEqual(flags(options.read(accepted[7])), { noDelay: false, keepAlive: false });
    // the kernel gives up on a silent path about when kf's pings did (20 s idle + 10 s without a pong)
    assert.ok(KERNEL_DEAD_PATH_MS <= 30_000, `dead path found within ${KERNEL_DEAD_PATH_MS} ms`);
  } finally {
    for (const conn of [...dialled, ...accepted]) conn.close();
    listener.close();
    await accepting.catch(() => {});
    options.close();
  }
});

Deno.test("SocketOptions: a connection whose socket is gone is not tuned", async () => {
  const options = SocketOptions.open()!;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const { localAddr, remoteAddr } = conn;
    conn.close();
    assert.equal(options.tune({ localAddr, remoteAddr } as Deno.Conn), undefined);
    assert.equal(options.read({ localAddr, remoteAddr } as Deno.Conn), undefined);
  } finally {
    listener.close();
    options.close();
  }
});

Deno.test("SocketOptions tells IPv4 and IPv6 sockets apart and tunes an IPv6 one", async () => {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: "::1", port: 0 });
  } catch {
    return; // no IPv6 loopback on this host
  }
  const options = SocketOptions.open()!;
  const accepting = listener.accept();
  try {
    const conn = await Deno.connect({ hostname: "::1", port: listener.addr.port });
    const accepted = await accepting;
    try {
      assert.deepEqual(options.tune(conn), { noDelay: true, kernelWatched: true });
      assert.deepEqual(options.read(conn), TUNED);
      // the same ports as IPv4 endpoints name no socket
      const { localAddr, remoteAddr } = conn as { localAddr: Deno.NetAddr; remoteAddr: Deno.NetAddr };
      const asIPv4 = {
        localAddr: { ...localAddr, hostname: "127.0.0.1" },
        remoteAddr: { ...remoteAddr, hostname: "127.0.0.1" },
      } as Deno.Conn;
      assert.equal(options.read(asIPv4), undefined);
    } finally {
      conn.close();
      accepted.close();
    }
  } finally {
    listener.close();
    options.close();
  }
});
