/**
 * Idle connections outlive the kubelet's streaming idle timeout. The fakelet runs the kubelet's streaming
 * code with --streaming-connection-idle-timeout; this file restarts the cluster's fakelet with a short one
 * (restoring it afterwards) and keeps a TCP echo connection idle for three times that long, through each
 * transport. What the kubelet's idle timers count (read from k8s.io/streaming and spdystream v0.36.3/v0.5.1):
 * - WebSocket (wsstream.Conn): the deadline moves on every data message it receives or sends; WebSocket
 *   pings are answered inside golang.org/x/net/websocket and do not move it. kf sends a data frame with no
 *   payload, which the kubelet writes to the pod as zero bytes (nothing reaches the backend).
 * - SPDY (spdystream's idleAwareFramer): every frame read or written resets the timer, PING included, so kf
 *   pings the connection below the limit.
 * kf without the limit (keep-alive every 100 s, pings after 20 s idle) and kubectl port-forward (SPDY pings
 * every 10 s) are expected to lose the connection: the proof that the short timeout really cuts idle
 * connections and that kf's keep-alive traffic, and nothing else, keeps them.
 */

import assert from "node:assert/strict";
import { freePort, Proc, sleep, startKf, tempStateDir } from "./_harness.ts";
import { type Component, component, kill, start } from "./_components.ts";

const IDLE_TIMEOUT_S = 3;
const ECHO_PORT = 9000;

/**
 * Connects, checks one echo, stays idle for idleMs, then tells whether a second echo still comes back.
 * The echo returns every byte the backend got: an exact second echo also shows that the keep-alive
 * traffic never reached the backend.
 */
async function survivesIdle(port: number, idleMs: number): Promise<{ alive: boolean; detail: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const echo = async (text: string): Promise<string> => {
      await conn.write(new TextEncoder().encode(text));
      const buffer = new Uint8Array(1024);
      let got = "";
      const deadline = Date.now() + 5_000;
      while (got.length < text.length && Date.now() < deadline) {
        const n = await Promise.race([conn.read(buffer), sleep(deadline - Date.now()).then(() => -1)]);
        if (n === null) return `${got}<EOF>`;
        if (n === -1) return `${got}<timeout>`;
        got += new TextDecoder().decode(buffer.subarray(0, n as number));
      }
      return got;
    };
    const first = await echo("before");
    if (first !== "before") return { alive: false, detail: `first echo: ${first}` };
    await sleep(idleMs);
    const second = await echo("after").catch((error) => `<${(error as Error).message}>`);
    return { alive: second === "after", detail: `after ${idleMs} ms idle: ${second}` };
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the peer
    }
  }
}

/** Runs fn with the cluster's fakelet restarted with a short idle timeout; restores it after. */
async function withShortIdleTimeout(fn: () => Promise<void>): Promise<void> {
  const original: Component = component("fakelet");
  const short = {
    ...original,
    args: [
      ...original.args.filter((a, i, all) =>
        !a.startsWith("--streaming-connection-idle-timeout") &&
        all[i - 1] !== "--streaming-connection-idle-timeout"
      ),
      `--streaming-connection-idle-timeout=${IDLE_TIMEOUT_S}s`,
    ],
  };
  await kill("fakelet");
  await start(short);
  await sleep(500); // listening
  try {
    await fn();
  } finally {
    await kill("fakelet");
    await start(original);
    await sleep(500);
  }
}

Deno.test(`an idle connection outlives a ${IDLE_TIMEOUT_S} s kubelet idle timeout through kf (websocket, spdy); kubectl loses it`, async () => {
  await withShortIdleTimeout(async () => {
    const idleMs = 3 * IDLE_TIMEOUT_S * 1000;
    const runs: { label: string; proc: Proc; port: number }[] = [];
    // with the limit given, and without it (the 5 min default: keep-alive far apart), which shows that the
    // keep-alive traffic is what keeps the connection, not something else on the way
    for (const limit of [`${IDLE_TIMEOUT_S}s`, undefined]) {
      for (const transport of ["websocket", "spdy"]) {
        const port = freePort();
        const proc = startKf([
          "forward",
          "svc/echo",
          `${port}:${ECHO_PORT}`,
          "--transport",
          transport,
          ...(limit ? ["--stream-idle-timeout", limit] : []),
        ], { KF_STATE_DIR: tempStateDir() });
        runs.push({
          label: `kf --transport ${transport}${limit ? ` --stream-idle-timeout ${limit}` : ""}`,
          proc,
          port,
        });
      }
    }
    const kubectlPort = freePort();
    const kubectlProc = new Proc("kubectl", ["port-forward", "svc/echo", `${kubectlPort}:${ECHO_PORT}`]);
    runs.push({ label: "kubectl port-forward", proc: kubectlProc, port: kubectlPort });
    try {
      await Promise.all(
        runs.map((r) => r.proc.waitFor(r.label.startsWith("kf") ? /ready pod=/ : /Forwarding from/)),
      );
      // all three idle at the same time: one wait for the whole test
      const results = await Promise.all(runs.map((r) => survivesIdle(r.port, idleMs)));
      runs.forEach((r, i) =>
        console.log(`${r.label}: ${results[i].alive ? "alive" : "lost"} (${results[i].detail})`)
      );
      assert.ok(results[0].alive, `kf websocket: ${results[0].detail}`);
      assert.ok(results[1].alive, `kf spdy: ${results[1].detail}`);
      assert.ok(!results[2].alive, `kf websocket without the limit should lose it: ${results[2].detail}`);
      assert.ok(!results[3].alive, `kf spdy without the limit should lose it: ${results[3].detail}`);
      assert.ok(!results[4].alive, `kubectl was expected to lose the idle connection: ${results[4].detail}`);
    } finally {
      await Promise.all(runs.map((r) => r.proc.stop()));
    }
  });
});
