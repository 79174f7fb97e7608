/**
 * Port-forward WebSockets to an API server that wants a client certificate (kf-admin, as kind, minikube and
 * kubeadm configs do) ride Deno's native TLS with TCP_NODELAY set on their socket, and carry data. Token
 * connections too; on both, the kernel's keepalive watches the socket (so kf does not ping it every 20 s).
 */

import assert from "node:assert/strict";
import { KubeClient } from "../../src/kube/client.ts";
import { NativeWebSocket } from "../../src/kube/native_websocket.ts";
import { KERNEL_KEEPALIVE, SocketOptions } from "../../src/kube/socket_options.ts";
import { cluster, readyPods } from "./_harness.ts";

const KERNEL_WATCHED = {
  noDelay: true,
  keepAlive: true,
  keepIdleS: KERNEL_KEEPALIVE.idleS,
  keepIntervalS: KERNEL_KEEPALIVE.intervalS,
  keepCount: KERNEL_KEEPALIVE.count,
  userTimeoutMs: KERNEL_KEEPALIVE.userTimeoutMs,
};

/** A v4 port-forward WebSocket to an echo pod's port 9000 as `context`, and how that context authenticates. */
async function openPortForward(context: string) {
  const client = KubeClient.load({ kubeconfig: cluster.kubeconfig, context });
  const tls = await client.httpsOptions();
  const [pod] = await readyPods();
  const ws = await client.openWebSocket(`/api/v1/namespaces/default/pods/${pod}/portforward`, {
    query: { ports: "9000" },
    protocols: ["v4.channel.k8s.io"],
  });
  return { ws, certificate: Boolean(tls.cert && tls.key) };
}

Deno.test("a client-certificate port-forward WebSocket is on native TLS with TCP_NODELAY and the kernel keepalive, and echoes through the pod", async () => {
  const { ws, certificate } = await openPortForward("kf-admin");
  assert.ok(certificate, "kf-admin authenticates with a client certificate");
  const options = SocketOptions.open()!;
  try {
    assert.ok(ws instanceof NativeWebSocket, "the WebSocket is kf's native-TLS one, not ws over node:tls");
    assert.deepEqual(options.read((ws as unknown as NativeWebSocket).addresses as Deno.Conn), KERNEL_WATCHED);
    assert.equal((ws as unknown as NativeWebSocket).kernelWatched, true);
    // v4: each message starts with its channel (0: data of the first port); the first message per channel
    // is the port number
    const data: Uint8Array[] = [];
    ws.on("message", (message: Uint8Array) => {
      if (message[0] === 0) data.push(message.subarray(1));
    });
    const received = () => new TextDecoder().decode(new Uint8Array(data.flatMap((m) => [...m])));
    for (const word of ["hello ", "through ", "native TLS"]) {
      ws.send(new Uint8Array([0, ...new TextEncoder().encode(word)]));
    }
    const deadline = Date.now() + 10_000;
    // the first data message is the port number (2 bytes, little-endian 9000)
    while (!received().endsWith("native TLS") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(received().slice(2), "hello through native TLS");
  } finally {
    ws.terminate();
    options.close();
  }
});

Deno.test("a token port-forward WebSocket gets the kernel keepalive too", async () => {
  const { ws, certificate } = await openPortForward("kf-token");
  assert.ok(!certificate, "kf-token authenticates with a bearer token");
  const options = SocketOptions.open()!;
  try {
    assert.ok(ws instanceof NativeWebSocket);
    assert.equal((ws as unknown as NativeWebSocket).kernelWatched, true);
    assert.deepEqual(options.read((ws as unknown as NativeWebSocket).addresses as Deno.Conn), KERNEL_WATCHED);
  } finally {
    ws.terminate();
    options.close();
  }
});
