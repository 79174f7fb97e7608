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
import type { OpenUpstream } from "./upstream.ts";
import { onResume } from "./liveness.ts";

export interface SessionDeps {
  clients: KubeClientPool;
  watches: SharedWatches;
  clock: Clock;
  /** Wraps upstream opening (benchmarks, tests). */
  open?: (client: KubeClient, namespace: string) => OpenUpstream | undefined;
}

export type SessionEvent = ForwardEvent | { type: "failed"; forward: string; error: Error };

/** A forward that could not start: kept so `kf ps` and the table can say why. */
interface FailedForward {
  spec: ForwardSpec;
  error: Error;
  /** Resolved when the client could be loaded. */
  client?: KubeClient;
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
      });
      forward.subscribe((event) => this.#emit(event));
      try {
        forward.start();
        this.forwards.push(forward);
      } catch (error) {
        this.#recordFailure(item.spec, error as Error, item.client);
      }
    }
    if (this.forwards.length === 0) this.#done.resolve();
    // after a laptop sleep the watch streams and warm sockets look open but are dead: renew them now
    onResume(() => {
      this.#deps.watches.resync();
      for (const forward of this.forwards) forward.renewUpstreams();
    }, { signal: this.#lifetime.signal });
    this.done.then(() => this.#lifetime.abort());
  }

  statuses(): ForwardStatus[] {
    return [
      ...this.forwards.map((f) => f.status()),
      ...this.failed.map(({ spec, error, client }) => ({
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
        lastErrorAt: Date.now(),
      })),
    ];
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
    this.failed.push({ spec, error, client });
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
