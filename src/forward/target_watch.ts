/** Follows what a target (svc/deploy/sts/rs/pod/selector) means right now: its Service and its pods, from watches. */

import type { Target } from "../config/mod.ts";
import type { KubeClient } from "../kube/client.ts";
import { ApiError } from "../kube/errors.ts";
import type { LabelSelectorRequirement, Pod, Service, Workload } from "../kube/types.ts";
import type { SharedWatches, Store, WatchLease } from "../watch/mod.ts";
import type { Clock } from "../clock.ts";
import { Backoff } from "../watch/backoff.ts";

const WORKLOAD_PATHS: Record<string, string> = {
  deployment: "deployments",
  statefulset: "statefulsets",
  replicaset: "replicasets",
};

export interface TargetWatchOptions {
  client: KubeClient;
  watches: SharedWatches;
  target: Target;
  namespace: string;
  clock: Clock;
}

/**
 * The live meaning of one target. A Service is watched so a selector change is followed without a restart;
 * a workload's selector is immutable, so it is read once (retrying while the workload does not exist).
 */
export class TargetWatch {
  readonly #options: TargetWatchOptions;
  readonly #listeners = new Set<() => void>();
  #podLease?: WatchLease<Pod>;
  #podSelector?: string;
  #unsubscribePods?: () => void;
  #serviceLease?: WatchLease<Service>;
  #problem?: string;
  #problemError?: Error;

  constructor(options: TargetWatchOptions) {
    this.#options = options;
  }

  /** Starts watching; runs until the signal aborts. */
  start(signal: AbortSignal): void {
    const { target, client, watches, namespace } = this.#options;
    signal.addEventListener("abort", () => this.#stop(), { once: true });
    switch (target.kind) {
      case "selector":
        this.#usePods({ labelSelector: target.selector });
        break;
      case "pod":
        this.#usePods({ fieldSelector: `metadata.name=${target.name}` });
        break;
      case "service": {
        this.#serviceLease = watches.acquire<Service>(client, {
          resource: "services",
          namespace,
          fieldSelector: `metadata.name=${target.name}`,
        });
        const onService = () => this.#followService();
        const unsubscribe = this.#serviceLease.store.subscribe(onService);
        signal.addEventListener("abort", unsubscribe, { once: true });
        onService();
        break;
      }
      default:
        this.#resolveWorkload(signal);
    }
  }

  /** The Service, for a svc/ target once seen. */
  get service(): Service | undefined {
    return this.#serviceLease?.store.list()[0];
  }

  /** Pods currently matched (any readiness). */
  pods(): Pod[] {
    return this.#podLease?.store.list() ?? [];
  }

  /** The pod store's health: degraded while its watch fails. */
  get podStore(): Store<Pod> | undefined {
    return this.#podLease?.store;
  }

  /** Why no pod can be chosen right now, if the target itself is the reason. */
  get problem(): string | undefined {
    return this.#problem;
  }

  get problemError(): Error | undefined {
    return this.#problemError;
  }

  /** Called on every change of the service, the pods or the problem. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #setProblem(problem: string | undefined, error?: Error): void {
    if (problem === this.#problem) return;
    this.#problem = problem;
    this.#problemError = error;
    this.#notify();
  }

  #followService(): void {
    const store = this.#serviceLease!.store;
    const service = store.list()[0];
    const { target, namespace } = this.#options;
    const name = target.kind === "selector" ? "" : target.name;
    if (!service) {
      if (store.status.state === "degraded") {
        this.#setProblem(
          `cannot watch service '${name}': ${store.status.lastError?.message}`,
          store.status.lastError,
        );
      } else if (store.synced) {
        this.#setProblem(`service '${name}' not found in namespace '${namespace}'; waiting for it to appear`);
      }
      this.#notify();
      return;
    }
    const selector = service.spec?.selector;
    if (!selector || Object.keys(selector).length === 0) {
      this.#dropPods();
      this.#setProblem(
        `service '${name}' has no selector (${
          service.spec?.type ?? "ClusterIP"
        }); forward to a pod or -l selector instead`,
      );
      this.#notify();
      return;
    }
    this.#setProblem(undefined);
    this.#usePods({ labelSelector: formatMatchLabels(selector) });
    this.#notify();
  }

  async #resolveWorkload(signal: AbortSignal): Promise<void> {
    const { target, client, namespace, clock } = this.#options;
    if (target.kind === "selector") return;
    const resource = WORKLOAD_PATHS[target.kind];
    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/${resource}/${
      encodeURIComponent(target.name)
    }`;
    // a missing workload is checked at most every 5 s: it appears soon after `kubectl apply`
    const backoff = new Backoff({ clock, maxMs: 5_000 });
    while (!signal.aborted) {
      try {
        const workload = await client.getJson<Workload>(path, {
          signal,
          purpose: { verb: "get", resource, namespace, name: target.name },
        });
        const selector = workloadSelector(workload);
        if (!selector) {
          this.#setProblem(`${target.kind} '${target.name}' has no pod selector`);
          return;
        }
        this.#setProblem(undefined);
        this.#usePods({ labelSelector: selector });
        return;
      } catch (error) {
        if (signal.aborted) return;
        const missing = error instanceof ApiError && error.status === 404;
        this.#setProblem(
          missing
            ? `${target.kind} '${target.name}' not found in namespace '${namespace}'; waiting for it to appear`
            : `cannot read ${target.kind} '${target.name}': ${(error as Error).message}`,
          error as Error,
        );
        await clock.sleep(backoff.next(), signal).catch(() => {});
      }
    }
  }

  #usePods(selection: { labelSelector?: string; fieldSelector?: string }): void {
    const id = `${selection.labelSelector ?? ""}|${selection.fieldSelector ?? ""}`;
    if (this.#podLease && this.#podSelector === id) return;
    const { client, watches, namespace } = this.#options;
    const lease = watches.acquire<Pod>(client, { resource: "pods", namespace, ...selection });
    // acquire the new selection before releasing the old, so a shared watch is not restarted needlessly
    this.#dropPods();
    this.#podLease = lease;
    this.#podSelector = id;
    this.#unsubscribePods = lease.store.subscribe(() => this.#notify());
    this.#notify();
  }

  #dropPods(): void {
    this.#unsubscribePods?.();
    this.#podLease?.release();
    this.#podLease = undefined;
    this.#podSelector = undefined;
  }

  #stop(): void {
    this.#dropPods();
    this.#serviceLease?.release();
    this.#serviceLease = undefined;
    this.#listeners.clear();
  }
}

/** `{app: "x", tier: "y"}` -> `app=x,tier=y`. */
export function formatMatchLabels(labels: Record<string, string>): string {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`).join(",");
}

/** A workload's spec.selector as a label selector string, or undefined when it selects nothing. */
export function workloadSelector(workload: Workload): string | undefined {
  const parts: string[] = [];
  const selector = workload.spec?.selector;
  if (selector?.matchLabels) parts.push(formatMatchLabels(selector.matchLabels));
  for (const requirement of selector?.matchExpressions ?? []) parts.push(formatRequirement(requirement));
  const text = parts.filter(Boolean).join(",");
  return text || undefined;
}

function formatRequirement(requirement: LabelSelectorRequirement): string {
  const values = (requirement.values ?? []).join(",");
  switch (requirement.operator) {
    case "In":
      return `${requirement.key} in (${values})`;
    case "NotIn":
      return `${requirement.key} notin (${values})`;
    case "Exists":
      return requirement.key;
    case "DoesNotExist":
      return `!${requirement.key}`;
  }
}
