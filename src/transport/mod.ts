/**
 * Wire formats behind one seam. A forwarded connection to a pod port is a {@link PodStream}; each transport
 * is a {@link PodDialer}:
 *
 * - `websocket/`: `v4.channel.k8s.io`, one WebSocket per connection (its framing lives only there);
 * - `spdy/`: SPDY/3.1 port-forward streams on a pool of connections, carried by the legacy HTTP upgrade or
 *   tunnelled in a WebSocket (`SPDY/3.1+portforward.k8s.io`, kubectl >= 1.31);
 * - `fallback.ts`: the chain between them.
 *
 * ```ts
 * const dial = webSocketDialer(client, "default");
 * const stream = await dial({ pod: "api-0", uid, port: 8080 }, signal);
 * stream.receive((bytes) => console.log(bytes.length));
 * stream.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
 * console.log(await stream.closed); // undefined, or why it ended
 * ```
 */

export type { PodDialer, PodPort, PodReceiver, PodStream, SelfWarming } from "./pod_stream.ts";
export { classifyPodError, PathTimeoutError, podErrorFromText, PodPortError } from "./errors.ts";
export { fallbackDialer } from "./fallback.ts";
export { webSocketDialer } from "./websocket/dialer.ts";
export { spdyDialer, SpdyPool, type SpdyPoolOptions } from "./spdy/pool.ts";
export { SpdyConnectionClosedError } from "./spdy/errors.ts";
export type { SpdyCarrier } from "./spdy/port_forward.ts";
