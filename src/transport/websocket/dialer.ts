/** Dials `pods/{pod}/portforward` over WebSocket v4: one WebSocket (one TLS connection) per forwarded connection. */

import { type Clock, systemClock } from "../../clock.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { PodDialer } from "../pod_stream.ts";
import { WebSocketPodStream } from "./pod_stream.ts";
import { PORT_FORWARD_PROTOCOL } from "./v4_frames.ts";

/** Needs RBAC `create` on pods/portforward, and `get` (a WebSocket upgrade is a GET) on servers that check it. */
export function webSocketDialer(
  client: KubeClient,
  namespace: string,
  clock: Clock = systemClock,
): PodDialer {
  return async (target, signal) => {
    const ws = await client.openWebSocket(
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${
        encodeURIComponent(target.pod)
      }/portforward`,
      {
        query: { ports: String(target.port) },
        protocols: [PORT_FORWARD_PROTOCOL],
        signal,
        purpose: { verb: "create", resource: "pods/portforward", namespace, name: target.pod },
      },
    );
    return new WebSocketPodStream(ws, target.pod, clock);
  };
}
