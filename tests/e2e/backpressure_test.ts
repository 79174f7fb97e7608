/** Memory stays bounded when the local client reads slower than the pod sends; every byte still arrives. */

import assert from "node:assert/strict";
import { freePort, resetEcho, startKf, tempStateDir } from "./_harness.ts";

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// kf-admin authenticates with a client certificate (node:tls under the WebSocket), kf-token with a bearer
// token (Deno's native TLS, src/kube/native_websocket.ts): both must stop reading when the client stalls
for (const context of ["kf-admin", "kf-token"]) {
  Deno.test(`a stalled local reader does not make kf buffer the download (context ${context})`, async () => {
    await resetEcho();
    const port = freePort();
    const proc = startKf(["forward", "svc/echo", `${port}:80`, "--context", context], {
      KF_STATE_DIR: tempStateDir(),
    });
    const total = 400 * 1024 * 1024;
    try {
      await proc.waitFor(/ready pod=/);
      const before = rssMiB(proc.pid);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(
        new TextEncoder().encode(`GET /bytes?n=${total} HTTP/1.1\r\nHost: kf\r\nConnection: close\r\n\r\n`),
      );
      const buffer = new Uint8Array(64 * 1024);
      let received = 0;
      // read a little, then stall: the pod could send 400 MiB in well under the stall time
      while (received < 1024 * 1024) received += (await conn.read(buffer)) ?? 0;
      let peak = 0;
      for (let i = 0; i < 20; i++) {
        await sleep(250);
        peak = Math.max(peak, rssMiB(proc.pid));
      }
      const growth = peak - before;
      console.log(
        `kf RSS before ${before.toFixed(0)} MiB, peak while stalled ${peak.toFixed(0)} MiB (+${
          growth.toFixed(0)
        })`,
      );
      assert.ok(
        growth < 100,
        `kf grew ${growth.toFixed(0)} MiB while the reader stalled; must stay < 100 MiB`,
      );
      // then everything arrives, in full
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received += n;
      }
      conn.close();
      assert.ok(received > total, `received ${received} bytes (headers + ${total} body)`);
    } finally {
      await proc.stop();
    }
  });
}
