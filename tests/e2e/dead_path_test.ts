/**
 * A path to the API server that dies silently (a VPN drop, a NAT that forgot the connection): every packet kf
 * sends to the API server is dropped (iptables, as root). The kernel's tuned keepalive on kf's sockets must
 * end the forwarded connection within ~30 s, with the reason, without a ping from kf; after the path is back,
 * new connections work.
 */

import assert from "node:assert/strict";
import { freePort, kubectl, sleep, startKf, tempStateDir, until } from "./_harness.ts";

/** The API server's port, from the test kubeconfig. */
async function apiServerPort(): Promise<number> {
  const { stdout } = await kubectl([
    "config",
    "view",
    "--minify",
    "-o",
    "jsonpath={.clusters[0].cluster.server}",
  ]);
  return Number(new URL(stdout.trim()).port || 443);
}

/** Local ports of the process's TCP connections to that port (from `ss`). */
async function socketsTo(pid: number, port: number): Promise<number[]> {
  const { stdout } = await new Deno.Command("ss", { args: ["-Htnp", "state", "established"] }).output();
  const ports: number[] = [];
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    if (!line.includes(`pid=${pid},`)) continue;
    const [local, peer] = line.trim().split(/\s+/).slice(2, 4);
    if (peer?.endsWith(`:${port}`)) ports.push(Number(local.slice(local.lastIndexOf(":") + 1)));
  }
  return ports;
}

async function iptables(args: string[]): Promise<void> {
  const result = await new Deno.Command("iptables", { args, stderr: "piped" }).output();
  if (!result.success) {
    throw new Error(
      `iptables ${args.join(" ")} failed (this test needs root and iptables; scripts/test.sh installs it): ${
        new TextDecoder().decode(result.stderr)
      }`,
    );
  }
}

async function echoConnection(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode("ping"));
  const buffer = new Uint8Array(16);
  let got = 0;
  while (got < 4) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the echo connection closed");
    got += n;
  }
  return conn;
}

Deno.test("a silently dead path to the API server ends a forwarded connection within ~30 s by the kernel's keepalive, and kf works again after", async () => {
  const port = freePort();
  const run = startKf(["forward", "svc/echo", `${port}:9000`, "-o", "json"], {
    KF_STATE_DIR: tempStateDir(),
  });
  const rules: string[][] = [];
  try {
    await run.waitFor(/"state":"ready"/, 30_000);
    const conn = await echoConnection(port);
    const apiPort = await apiServerPort();
    const ports = await until(
      async () => {
        const found = await socketsTo(run.pid, apiPort);
        return found.length > 0 ? found : undefined;
      },
      10_000,
      "kf's connections to the API server",
    );
    // kf's side of every connection to the API server goes silent: no data, no ACKs, no keepalive answers
    for (const local of ports!) {
      const rule = ["OUTPUT", "-p", "tcp", "-s", "127.0.0.1", "--sport", String(local), "-j", "DROP"];
      await iptables(["-A", ...rule]);
      rules.push(rule);
    }
    const droppedAt = Date.now();
    const ended = await Promise.race([
      conn.read(new Uint8Array(16)).then((n) => ({ n }), (error) => ({ error })),
      sleep(60_000).then(() => "still open after 60 s"),
    ]);
    const seconds = (Date.now() - droppedAt) / 1000;
    console.log(`dead path: the forwarded connection ended ${seconds.toFixed(1)} s after the drop`);
    assert.notEqual(ended, "still open after 60 s");
    // the kernel gives up after 15 s idle + 3 probes 5 s apart (or 30 s of unacknowledged data)
    assert.ok(seconds >= 20 && seconds < 45, `ended after ${seconds.toFixed(1)} s`);
    const reason = await run.waitFor(/"event":"connection-error".*"error":"([^"]*)"/, 5_000);
    assert.match(reason[1], /went unanswered for 30 s \(TCP keepalive\)/);
    try {
      conn.close();
    } catch {
      // closed by kf already
    }
    for (const rule of rules.splice(0)) await iptables(["-D", ...rule]);
    // the path is back: a new connection is forwarded (on new sockets; the dead ones are gone)
    const again = await until(
      () => echoConnection(port).catch(() => undefined),
      30_000,
      "a connection after",
    );
    again!.close();
  } finally {
    for (const rule of rules) await iptables(["-D", ...rule]).catch(() => {});
    await run.stop();
  }
});
