/** How a pod is picked: readiness, named-port resolution, and the sticky choice of the pod new connections use. */

import type { Pod, Service, ServicePort } from "../kube/types.ts";

/** A pod and the container port a connection should reach on it. */
export interface Endpoint {
  pod: string;
  uid: string;
  port: number;
}

/** A pod can take new connections: Running, Ready=True, not being deleted. */
export function isPodReady(pod: Pod): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  if (pod.status?.phase !== "Running") return false;
  return pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** Resolves a container port given as a number or a name against one pod's containers. */
export function resolveContainerPort(pod: Pod, port: number | string): number | undefined {
  if (typeof port === "number") return port;
  for (const container of pod.spec?.containers ?? []) {
    for (const candidate of container.ports ?? []) {
      if (candidate.name === port && (candidate.protocol ?? "TCP") === "TCP") return candidate.containerPort;
    }
  }
  return undefined;
}

/** Finds the Service port a user named (by number or name); undefined when the Service has no such port. */
export function findServicePort(service: Service, port: number | string): ServicePort | undefined {
  const ports = service.spec?.ports ?? [];
  return typeof port === "number"
    ? ports.find((p) => p.port === port && (p.protocol ?? "TCP") === "TCP")
    : ports.find((p) => p.name === port);
}

/**
 * Maps what the user asked for to a container port of this pod. For a Service, the remote is a Service
 * port mapped through its targetPort, which may be a name that differs per pod mid-rollout.
 */
export function endpointFor(pod: Pod, remote: number | string, service?: Service): Endpoint | undefined {
  let containerPort: number | string = remote;
  if (service) {
    const servicePort = findServicePort(service, remote);
    if (!servicePort) return undefined;
    containerPort = servicePort.targetPort ?? servicePort.port;
    if (typeof containerPort === "string" && /^\d+$/.test(containerPort)) {
      containerPort = Number(containerPort);
    }
  }
  const port = resolveContainerPort(pod, containerPort);
  if (port === undefined) return undefined;
  return { pod: pod.metadata.name, uid: pod.metadata.uid ?? pod.metadata.name, port };
}

/**
 * Chooses the pod for new connections: the current one while it stays ready (sticky, so keep-alive
 * pools and caches stay warm), otherwise the newest ready pod — during a rollout that is the new version,
 * and the old ones are about to go.
 */
export function choosePod(
  pods: Pod[],
  options: { current?: string; exclude?: ReadonlySet<string>; usable?: (pod: Pod) => boolean } = {},
): Pod | undefined {
  const candidates = pods.filter((pod) =>
    isPodReady(pod) && !options.exclude?.has(pod.metadata.name) && (options.usable?.(pod) ?? true)
  );
  const sticky = candidates.find((pod) => pod.metadata.name === options.current);
  if (sticky) return sticky;
  return candidates.sort(newestFirst)[0];
}

/**
 * Pods that may be picked next, for warm connections that dial nothing in the pod (SPDY): the other ready
 * pods and those Running but not Ready yet (a replacement about to become ready), newest first.
 */
export function standbyPods(pods: Pod[], chosen: string | undefined, limit: number): Pod[] {
  return pods.filter((pod) =>
    pod.metadata.name !== chosen && !pod.metadata.deletionTimestamp && pod.status?.phase === "Running"
  ).sort(newestFirst).slice(0, limit);
}

function newestFirst(a: Pod, b: Pod): number {
  const byAge = (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? "");
  return byAge !== 0 ? byAge : a.metadata.name.localeCompare(b.metadata.name);
}

/**
 * Round-robin over the ready pods (by name, so every connection agrees on the order): the first candidate
 * after `last`, wrapping around. Pods that come and go simply join or leave the cycle.
 */
export function choosePodRoundRobin(
  pods: Pod[],
  options: { last?: string; exclude?: ReadonlySet<string>; usable?: (pod: Pod) => boolean } = {},
): Pod | undefined {
  const candidates = pods.filter((pod) =>
    isPodReady(pod) && !options.exclude?.has(pod.metadata.name) && (options.usable?.(pod) ?? true)
  ).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  if (options.last === undefined) return candidates[0];
  return candidates.find((pod) => pod.metadata.name > options.last!) ?? candidates[0];
}
