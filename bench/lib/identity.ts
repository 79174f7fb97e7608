/**
 * Exact attribution of API traffic to the tool under test, on a cluster that others may use at the same time:
 * the tool runs as its own ServiceAccount (`kf-bench`), whose requests an own FlowSchema counts
 * (apiserver_flowcontrol_dispatched_requests_total{flow_schema="kf-bench"}), and it reaches the apiserver
 * through a counting TCP relay, which counts its new connections (each port-forward upgrade of a WebSocket
 * client is one; they bypass API priority and fairness).
 */

import { Cluster, Kube } from "./cluster.ts";
import { run } from "./proc.ts";

export const BENCH_USER = "kf-bench";

/** A TCP relay to the apiserver that counts accepted connections. */
export class CountingRelay {
  readonly #listener: Deno.TcpListener;
  readonly #upstream: { hostname: string; port: number };
  readonly #conns = new Set<Deno.Conn>();
  /** Connections accepted so far. */
  connections = 0;
  /** Client connections open now. */
  open = 0;

  constructor(upstream: { hostname: string; port: number }) {
    this.#upstream = upstream;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.connections++;
        this.#relay(conn);
      }
    } catch {
      // closed
    }
  }

  async #relay(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    this.open++;
    let server: Deno.TcpConn | undefined;
    try {
      server = await Deno.connect(this.#upstream);
      this.#conns.add(server);
      client.setNoDelay(true);
      server.setNoDelay(true);
      await Promise.allSettled([
        client.readable.pipeTo(server.writable),
        server.readable.pipeTo(client.writable),
      ]);
    } catch {
      // upstream refused or reset
    } finally {
      this.open--;
      for (const conn of [client, server]) {
        if (!conn) continue;
        this.#conns.delete(conn);
        try {
          conn.close();
        } catch {
          // closed by pipeTo
        }
      }
    }
  }

  close(): void {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
    this.#conns.clear();
  }
}

export interface BenchIdentity {
  /** A Kube whose kubeconfig/context is the bench's ServiceAccount behind the relay. */
  kube: Kube;
  relay: CountingRelay;
  flowSchema: string;
  close(): void;
}

function manifest(namespace: string): string {
  const items = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: BENCH_USER, namespace } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: BENCH_USER, namespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
      subjects: [{ kind: "ServiceAccount", name: BENCH_USER, namespace }],
    },
    {
      apiVersion: "flowcontrol.apiserver.k8s.io/v1",
      kind: "FlowSchema",
      metadata: { name: `${BENCH_USER}-${namespace}` },
      spec: {
        priorityLevelConfiguration: { name: "global-default" },
        matchingPrecedence: 500,
        distinguisherMethod: { type: "ByUser" },
        rules: [{
          subjects: [{ kind: "ServiceAccount", serviceAccount: { name: BENCH_USER, namespace } }],
          resourceRules: [{
            verbs: ["*"],
            apiGroups: ["*"],
            resources: ["*"],
            namespaces: ["*"],
            clusterScope: true,
          }],
          nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
        }],
      },
    },
  ];
  return JSON.stringify({ apiVersion: "v1", kind: "List", items });
}

/** Sets up the ServiceAccount, its RoleBinding and FlowSchema, a token, the relay, and a kubeconfig for them. */
export async function benchIdentity(kube: Kube, tempDir: string): Promise<BenchIdentity> {
  const ns = kube.namespace;
  const applied = await run("kubectl", ["--context", kube.context, "apply", "-f", "-"], {
    env: kube.cluster.env,
    stdin: manifest(ns),
  });
  if (applied.code !== 0) throw new Error(`cannot set up the bench identity: ${applied.stderr}`);
  const token = (await kube.kubectlOk(["create", "token", BENCH_USER, "-n", ns, "--duration", "6h"])).trim();
  const config = JSON.parse(await kube.kubectlOk(["config", "view", "--raw", "-o", "json"]));
  const contextEntry = config.contexts.find((c: { name: string }) => c.name === kube.context);
  const clusterEntry = config.clusters.find((c: { name: string }) => c.name === contextEntry.context.cluster);
  const server = new URL(clusterEntry.cluster.server);
  const ca = clusterEntry.cluster["certificate-authority-data"] ??
    btoa(Deno.readTextFileSync(clusterEntry.cluster["certificate-authority"]));
  const relay = new CountingRelay({ hostname: server.hostname, port: Number(server.port || 443) });
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: BENCH_USER,
      cluster: { server: `https://127.0.0.1:${relay.port}`, "certificate-authority-data": ca },
    }],
    users: [{ name: BENCH_USER, user: { token } }],
    contexts: [{ name: BENCH_USER, context: { cluster: BENCH_USER, user: BENCH_USER, namespace: ns } }],
    "current-context": BENCH_USER,
  };
  const path = `${tempDir}/kubeconfig-${BENCH_USER}.json`;
  Deno.writeTextFileSync(path, JSON.stringify(kubeconfig, null, 2), { mode: 0o600 });
  const cluster: Cluster = {
    ...kube.cluster,
    kubeconfig: path,
    env: { ...kube.cluster.env, KUBECONFIG: path },
  };
  return {
    kube: new Kube(cluster, ns, BENCH_USER),
    relay,
    flowSchema: `${BENCH_USER}-${ns}`,
    close: () => relay.close(),
  };
}
