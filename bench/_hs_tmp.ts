import { KubeClient } from "../src/kube/client.ts";
import { openSpdyPortForward } from "../src/transport/spdy/port_forward.ts";
import { webSocketDialer } from "../src/transport/websocket/dialer.ts";
const [ctx, pod] = Deno.args;
const client = KubeClient.load({ context: ctx });
const req = new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n");
const pct = (a: number[]) => {
  a.sort((x, y) => x - y);
  return `p50 ${a[a.length >> 1].toFixed(1)} p90 ${a[Math.floor(a.length * 0.9)].toFixed(1)}`;
};
for (const carrier of ["websocket", "upgrade"] as const) {
  const open: number[] = [], first: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const c = await openSpdyPortForward(client, { namespace: "kf-bench", pod, carrier });
    const t1 = performance.now();
    const s = await c.openPort(80);
    const got = Promise.withResolvers<void>();
    s.attach({ data: () => got.resolve(), end: () => got.resolve() });
    s.resume();
    s.send(req);
    await got.promise;
    open.push(t1 - t0);
    first.push(performance.now() - t0);
    s.reset();
    c.destroy();
  }
  console.log(`spdy ${carrier}: connect ${pct(open)}; connect+first byte ${pct(first)} ms`);
}
const dial = webSocketDialer(client, "kf-bench");
const first: number[] = [];
for (let i = 0; i < 30; i++) {
  const t0 = performance.now();
  const s = await dial({ pod, uid: pod, port: 80 }, new AbortController().signal);
  const got = Promise.withResolvers<void>();
  s.receive(() => got.resolve());
  s.write(req);
  await got.promise;
  first.push(performance.now() - t0);
  s.reset();
}
console.log(`v4: connect+first byte ${pct(first)} ms`);
Deno.exit(0);
