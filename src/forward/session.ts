/** Many forwards run together: shared clients and watches, per-forward failure and per-forward stop. */

import type { ForwardSpec } from "../config/mod.ts";
import { formatTarget } from "../config/mod.ts";
import type { Clock } from "../clock.ts";
import type { KubeClient } from "../kube/client.ts";
import type { KubeClientPool } from "../kube/client_pool.ts";
import { ApiError } from "../kube/errors.ts";
import { KfError } from "../errors.ts";
import type { SharedWatches } from "../watch/mod.ts";
import { Forward, type ForwardEvent } from "./forwarder.ts";
import type { ForwardStatus } from "./status.ts";
import type { PodDialer } from "../transport/mod.ts";
import { onResume } from "./liveness.ts";
import { ClusterHealth, readyzProbe } from "../kube/health.ts";
import { DEFAULT_NETWORK_SETTLE_MS, NetworkSettle, watchNetworkChanges } from "./network_settle.ts";

export interface SessionDeps {
  clients: KubeClientPool;
  watches: SharedWatches;
  clock: Clock;
  /** Wraps upstream opening (benchmarks, tests). */
  open?: (client: KubeClient, namespace: string) => PodDialer | undefined;
  /** After a network change or wake, how long the path must be stable before reconnecting. @default 2000 */
  networkSettleMs?: number;
}

export type SessionEvent = ForwardEvent | { type: "failed"; forward: string; error: Error };

/** A forward that could not start: kept so `kf ps` and the table can say why. */
interface FailedForward {
  spec: ForwardSpec;
  error: Error;
  /** Resolved when the client could be loaded. */
  client?: KubeClient;
  /** Wall-clock time of the failure (ms since the epoch), shown as lastErrorAt. */
  at: number;
}

/** The forwards of one `kf forward` process. */
export class ForwardSession {
  readonly forwards: Forward[] = [];
  readonly failed: FailedForward[] = [];
  readonly #deps: SessionDeps;
  readonly #listeners = new Set<(event: SessionEvent) => void>();
  readonly #done = Promise.withResolvers<void>();
  #stopping = false;
  readonly #lifetime = new AbortController();
  /** One reachability tracker per cluster client, shared by that client's forwards; closed with the session. */
  readonly #health = new Map<KubeClient, ClusterHealth>();
  readonly #clientOf = new Map<Forward, KubeClient>();

  constructor(deps: SessionDeps) {
    this.#deps = deps;
  }

  /** Resolves when every forward has stopped (all stopped one by one, or stop()). */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  subscribe(listener: (event: SessionEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts each forward; one that cannot start is recorded as failed and the others go on. */
  async start(specs: ForwardSpec[]): Promise<void> {
    const namespaceChecks = new Map<string, Promise<Error | undefined>>();
    const prepared = await Promise.all(specs.map(async (spec) => {
      try {
        const client = this.#deps.clients.get({ kubeconfig: spec.kubeconfig, context: spec.context });
        const namespace = spec.namespace ?? client.defaultNamespace;
        const key = `${spec.kubeconfig ?? ""}|${client.contextName}|${namespace}`;
        if (!namespaceChecks.has(key)) namespaceChecks.set(key, checkNamespace(client, namespace));
        const problem = await namespaceChecks.get(key);
        if (problem) throw problem;
        return { spec, client };
      } catch (error) {
        return { spec, error: error as Error };
      }
    }));
    for (const item of prepared) {
      if ("error" in item) {
        this.#recordFailure(item.spec, item.error!);
        continue;
      }
      const namespace = item.spec.namespace ?? item.client.defaultNamespace;
      const forward = new Forward(item.spec, {
        client: item.client,
        watches: this.#deps.watches,
        clock: this.#deps.clock,
        open: this.#deps.open?.(item.client, namespace),
        health: this.#healthOf(item.client),
      });
      this.#clientOf.set(forward, item.client);
      forward.subscribe((event) => this.#emit(event));
      try {
        forward.start();
        this.forwards.push(forward);
      } catch (error) {
        this.#recordFailure(item.spec, error as Error, item.client);
      }
    }
    if (this.forwards.length === 0) this.#done.resolve();
    // after a laptop sleep or a network change the watch streams and warm sockets look open but are
    // probably dead: renew them once the path has been stable for a moment
    const settle = new NetworkSettle({
      clock: this.#deps.clock,
      signal: this.#lifetime.signal,
      settleMs: this.#deps.networkSettleMs ?? DEFAULT_NETWORK_SETTLE_MS,
      onSettling: (settling) => {
        for (const forward of this.forwards) forward.setSettling(settling);
      },
      onSettled: () => {
        this.#deps.watches.resync();
        for (const forward of this.forwards) forward.renewUpstreams();
      },
    });
    const signal = this.#lifetime.signal;
    onResume(() => settle.changed("woke from sleep"), { signal });
    watchNetworkChanges(() => settle.changed("the network changed"), { signal, clock: this.#deps.clock });
    this.done.then(() => {
      this.#lifetime.abort();
      for (const health of this.#health.values()) health.close();
    });
  }

  /** The cluster's shared health; when it recovers, failing watches and warm sockets retry at once. */
  #healthOf(client: KubeClient): ClusterHealth {
    const existing = this.#health.get(client);
    if (existing) return existing;
    const health = new ClusterHealth({
      probe: readyzProbe((path, options) => client.getText(path, options)),
      clock: this.#deps.clock,
      server: client.server,
    });
    let unreachable = false;
    health.subscribe(() => {
      const was = unreachable;
      unreachable = health.state.kind === "unreachable";
      if (!was || health.state.kind !== "healthy") return;
      // the outage is over: do not let backoffs grown during it delay the watches and warm sockets
      this.#deps.watches.retryFailing(client);
      for (const [forward, owner] of this.#clientOf) if (owner === client) forward.renewUpstreams();
    });
    this.#health.set(client, health);
    return health;
  }

  statuses(): ForwardStatus[] {
    return [
      ...this.forwards.map((f) => f.status()),
      ...this.failed.map(({ spec, error, client, at }) => ({
        name: spec.name,
        target: formatTarget(spec.target),
        // unknown when the kubeconfig itself failed to load
        context: client?.contextName ?? spec.context ?? "",
        namespace: spec.namespace ?? client?.defaultNamespace ?? "",
        listeners: spec.ports.flatMap((p) =>
          spec.addresses.map((address) => ({ address, port: p.local, remote: p.remote }))
        ),
        state: "failed" as const,
        openConnections: 0,
        totalConnections: 0,
        bytesIn: 0,
        bytesOut: 0,
        lastError: error.message,
        lastErrorAt: at,
      })),
    ];
  }

  /** Connections open now and accepted so far, over all forwards (failed ones have none). */
  connections(): { open: number; total: number } {
    let open = 0;
    let total = 0;
    for (const forward of this.forwards) {
      const status = forward.status();
      open += status.openConnections;
      total += status.totalConnections;
    }
    return { open, total };
  }

  /** Stops one forward by name; the session ends when none is left running. */
  async stopForward(name: string, graceMs?: number): Promise<{ ok: boolean; error?: string }> {
    const forward = this.forwards.find((f) => f.spec.name === name);
    if (!forward) {
      return {
        ok: false,
        error: `no forward '${name}'; forwards: ${this.forwards.map((f) => f.spec.name).join(", ")}`,
      };
    }
    await forward.stop(graceMs);
    if (this.forwards.every((f) => f.signal.aborted)) this.#done.resolve();
    return { ok: true };
  }

  /** Stops every forward, letting open connections finish within graceMs. */
  async stop(graceMs?: number): Promise<void> {
    if (this.#stopping) return await this.done;
    this.#stopping = true;
    await Promise.all(this.forwards.map((f) => f.stop(graceMs)));
    this.#deps.clients.close();
    this.#done.resolve();
  }

  /** Cuts every connection now, also during a stop's grace period. */
  abort(): void {
    for (const forward of this.forwards) forward.abort();
  }

  #recordFailure(spec: ForwardSpec, error: Error, client?: KubeClient): void {
    this.failed.push({ spec, error, client, at: Date.now() });
    this.#emit({ type: "failed", forward: spec.name, error });
  }

  #emit(event: SessionEvent): void {
    for (const listener of [...this.#listeners]) listener(event);
  }
}

/** A missing namespace is reported with the ones that exist; no permission to look means we just go on. */
async function checkNamespace(client: KubeClient, namespace: string): Promise<Error | undefined> {
  try {
    await client.getJson(`/api/v1/namespaces/${encodeURIComponent(namespace)}`, { timeoutMs: 10_000 });
    return undefined;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) return undefined;
    let known = "";
    try {
      const list = await client.getJson<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces");
      known = list.items.map((n) => n.metadata.name).join(", ");
    } catch {
      // listing namespaces is often forbidden; the message just says less
    }
    return new KfError(`Namespace '${namespace}' not found in context '${client.contextName}'`, {
      hint: known ? `namespaces: ${known}` : "check -n / namespace in the config",
    });
  }
}
