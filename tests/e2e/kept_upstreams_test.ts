/**
 * Clients that open a connection per request (`Connection: close`, HTTP/1.0 as ApacheBench sends it) through
 * `kf forward svc/echo`: every answer is right and complete, and kf's hop to the pod stays open for the next
 * connection instead of one pod stream per request. Counted at the API server: with `--transport websocket`
 * every pod stream is a port-forward WebSocket, one CONNECT in apiserver_request_total once it closes (kf is
 * stopped before counting, so every stream it opened is counted). `--protocol tcp` is the control.
 */

import assert from "node:assert/strict";
import { freePort, kubectl, sleep, startKf, tempStateDir } from "./_harness.ts";

/** Port-forward CONNECTs the API server has finished, all answer codes. */
async function portForwardConnects(): Promise<number> {
  const { stdout } = await kubectl(["get", "--raw", "/metrics"]);
  let total = 0;
  for (const line of stdout.split("\n")) {
    if (
      line.startsWith("apiserver_request_total{") && line.includes('subresource="portforward"') &&
      line.includes('verb="CONNECT"')
    ) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** One request on a new connection; the whole response as text (the server or kf closes after it). */
async function oneShot(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let text = "";
    const buffer = new Uint8Array(4096);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

async function run(protocol: "auto" | "tcp", requests: string[]) {
  const port = freePort();
  const before = await portForwardConnects();
  const kf = startKf(
    ["forward", "svc/echo", `${port}:80`, "--protocol", protocol, "--transport", "websocket", "-o", "json"],
    { KF_STATE_DIR: tempStateDir() },
  );
  const answers: string[] = [];
  try {
    await kf.waitFor(/"state":"ready"/, 30_000);
    for (const request of requests) answers.push(await oneShot(port, request));
  } finally {
    await kf.stop();
  }
  // the API server counts a CONNECT when its WebSocket has closed
  await sleep(1_000);
  return { answers, streams: (await portForwardConnects()) - before };
}

const CLOSE_11 = "GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n";
const PLAIN_10 = "GET / HTTP/1.0\r\nHost: echo\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n";

Deno.test("a connection per request (Connection: close, HTTP/1.0): every answer complete, a handful of pod streams instead of one per request", async () => {
  const requests = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? CLOSE_11 : PLAIN_10));
  const { answers, streams } = await run("auto", requests);
  for (const answer of answers) {
    // the pod's name is the body (Content-Length framed), and the client's connection was closed after it
    const match = answer.match(
      /^HTTP\/1\.[01] 200 OK\r\n[\s\S]*?Content-Length: (\d+)\r\n[\s\S]*?\r\n\r\n(.*)$/s,
    );
    assert.ok(match, `a complete answer: ${JSON.stringify(answer)}`);
    assert.equal(match[2].length, Number(match[1]));
    assert.match(match[2], /^echo-/);
  }
  console.log(
    `auto: ${requests.length} client connections, ${streams} pod streams (port-forward WebSockets)`,
  );
  // the warm sockets kf keeps (2), the first connection's, and a spare or two
  assert.ok(streams <= 8, `${streams} pod streams for ${requests.length} client connections`);
});

Deno.test("protocol tcp forwards each connection as it is: a pod stream per client connection (the count's control)", async () => {
  const requests = Array.from({ length: 20 }, () => CLOSE_11);
  const { answers, streams } = await run("tcp", requests);
  for (const answer of answers) assert.match(answer, /^HTTP\/1\.1 200 OK/);
  console.log(`tcp: ${requests.length} client connections, ${streams} pod streams (port-forward WebSockets)`);
  assert.ok(streams >= requests.length, `${streams} pod streams for ${requests.length} client connections`);
});
