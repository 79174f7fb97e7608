/** The local test cluster: its env file, kubectl, the bench's demo namespace, pod readiness, apiserver metrics. */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { homedir } from "node:os";
import { Proc, run, type RunResult, sleep, until } from "./proc.ts";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface Cluster {
  dir: string;
  kubeconfig: string;
  /** Environment for every child (kf, kubectl, kftui): the cluster's env file over the bench's own. */
  env: Record<string, string>;
  directHttpPort: number;
  directEchoPort: number;
}

function clusterDir(): string {
  const cacheHome = Deno.env.get("XDG_CACHE_HOME") ?? join(homedir(), ".cache");
  return Deno.env.get("KF_CLUSTER_DIR") ?? join(cacheHome, "kf", "cluster");
}

/** Reads `$KF_CLUSTER_DIR/env` (written by tests/cluster/up.sh); undefined when there is none. */
export function loadCluster(): Cluster | undefined {
  const dir = clusterDir();
  let text: string;
  try {
    text = Deno.readTextFileSync(join(dir, "env"));
  } catch {
    return undefined;
  }
  const env: Record<string, string> = { ...Deno.env.toObject() };
  for (const match of text.matchAll(/^export (\w+)="(.*)"$/gm)) {
    env[match[1]] = match[2].replace(/\$PATH/g, Deno.env.get("PATH") ?? "").replace(/\\\$/g, "$");
  }
  env.NO_COLOR = "1";
  return {
    dir,
    kubeconfig: env.KUBECONFIG,
    env,
    directHttpPort: Number(env.KF_FAKELET_DIRECT_HTTP_PORT ?? 18980),
    directEchoPort: Number(env.KF_FAKELET_DIRECT_ECHO_PORT ?? 18990),
  };
}

/** Starts the cluster if it is down (idempotent; fast when it is up). */
export async function clusterUp(log: (line: string) => void): Promise<Cluster> {
  const out = await run("bash", [join(REPO, "tests", "cluster", "up.sh")], { cwd: REPO });
  if (out.code !== 0) {
    throw new Error(`tests/cluster/up.sh failed (${out.code}):\n${out.stderr.slice(-2000)}`);
  }
  const cluster = loadCluster();
  if (!cluster) throw new Error(`tests/cluster/up.sh wrote no env file in ${clusterDir()}`);
  log(`cluster up (${(out.ms / 1000).toFixed(1)} s)`);
  return cluster;
}

export class Kube {
  readonly cluster: Cluster;
  readonly namespace: string;
  readonly context: string;

  constructor(cluster: Cluster, namespace: string, context: string) {
    this.cluster = cluster;
    this.namespace = namespace;
    this.context = context;
  }

  kubectl(args: string[]): Promise<RunResult> {
    return run("kubectl", ["--context", this.context, ...args], { env: this.cluster.env });
  }

  async kubectlOk(args: string[]): Promise<string> {
    const out = await this.kubectl(args);
    if (out.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${out.stderr.trim()}`);
    return out.stdout;
  }

  /** Creates the bench namespace with the demo workload (Deployment + Service echo) and waits for 2 Ready pods. */
  async ensureWorkload(): Promise<void> {
    const ns = this.namespace;
    const created = await this.kubectl(["create", "namespace", ns]);
    if (created.code !== 0 && !created.stderr.includes("AlreadyExists")) {
      throw new Error(`kubectl create namespace ${ns} failed: ${created.stderr.trim()}`);
    }
    await this.kubectlOk(["-n", ns, "apply", "-f", join(REPO, "tests", "cluster", "demo.yaml")]);
    await this.resetEcho();
  }

  /** Names of the Ready, not deleting, echo pods. */
  async readyPods(): Promise<string[]> {
    const text = await this.kubectlOk(["get", "pods", "-n", this.namespace, "-l", "app=echo", "-o", "json"]);
    const list = JSON.parse(text) as { items: PodLike[] };
    return list.items.filter(isReady).map((p) => p.metadata.name);
  }

  /** Back to 2 Ready replicas and no terminating pods (between scenarios). */
  async resetEcho(): Promise<void> {
    await this.kubectlOk(["scale", "-n", this.namespace, "deploy/echo", "--replicas=2"]);
    await until(
      async () => {
        const text = await this.kubectlOk([
          "get",
          "pods",
          "-n",
          this.namespace,
          "-l",
          "app=echo",
          "-o",
          "json",
        ]);
        const items = (JSON.parse(text) as { items: PodLike[] }).items;
        return items.length === 2 && items.every(isReady);
      },
      60_000,
      `2 ready echo pods in ${this.namespace}`,
    );
  }

  /** Force-deletes every echo pod without waiting. */
  async deleteAllPods(): Promise<void> {
    await this.kubectlOk([
      "delete",
      "pods",
      "-n",
      this.namespace,
      "-l",
      "app=echo",
      "--force",
      "--grace-period=0",
      "--wait=false",
    ]);
  }

  /** The apiserver's Prometheus metrics. */
  async metrics(): Promise<Metrics> {
    return parseMetrics(await this.kubectlOk(["get", "--raw", "/metrics"]));
  }

  async versions(): Promise<{ kubectl: string; apiserver: string }> {
    const out = await this.kubectl(["version", "-o", "json"]);
    try {
      const doc = JSON.parse(out.stdout);
      return {
        kubectl: doc.clientVersion?.gitVersion ?? "?",
        apiserver: doc.serverVersion?.gitVersion ?? "?",
      };
    } catch {
      return { kubectl: "?", apiserver: "?" };
    }
  }

  /** Watches the echo pods and records when each was first seen Ready (performance.now() of the event). */
  watchReady(): ReadyWatch {
    return new ReadyWatch(this);
  }
}

interface PodLike {
  metadata: { name: string; deletionTimestamp?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

function isReady(pod: PodLike): boolean {
  return !pod.metadata.deletionTimestamp &&
    (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

/** A raw watch (`kubectl get --raw '...?watch=1'`, one JSON event per line) on the echo pods. */
export class ReadyWatch {
  readonly readyAt = new Map<string, number>();
  readonly #proc: Proc;

  constructor(kube: Kube) {
    const path = `/api/v1/namespaces/${kube.namespace}/pods?watch=1&labelSelector=app%3Decho`;
    this.#proc = new Proc(
      "pod watch",
      "kubectl",
      ["--context", kube.context, "get", "--raw", path],
      kube.cluster.env,
    );
    this.#proc.until((lines) => {
      for (const line of lines.splice(0)) {
        try {
          const event = JSON.parse(line.text) as { object?: PodLike };
          const pod = event.object;
          if (pod?.metadata && isReady(pod) && !this.readyAt.has(pod.metadata.name)) {
            this.readyAt.set(pod.metadata.name, line.at);
          }
        } catch {
          // not an event line
        }
      }
      return undefined;
    }, 24 * 3600_000).catch(() => {});
  }

  /** Waits until the watch has reported the pods that are Ready now. */
  async synced(kube: Kube): Promise<void> {
    const pods = await kube.readyPods();
    await until(() => pods.every((p) => this.readyAt.has(p)), 10_000, "pod watch");
  }

  async stop(): Promise<void> {
    await this.#proc.stop(1_000);
  }
}

/** Samples by metric name, each with its labels. */
export type Metrics = Map<string, { labels: Record<string, string>; value: number }[]>;

export function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const l of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const list = out.get(match[1]) ?? [];
    list.push({ labels, value: Number(match[3]) });
    out.set(match[1], list);
  }
  return out;
}

/** Sum of a metric's samples whose labels pass the filter, grouped by key(labels). */
export function sumBy(
  metrics: Metrics,
  name: string,
  key: (labels: Record<string, string>) => string | undefined,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const sample of metrics.get(name) ?? []) {
    const k = key(sample.labels);
    if (k !== undefined) out.set(k, (out.get(k) ?? 0) + sample.value);
  }
  return out;
}

/** after - before per key (keys of either). */
export function diff(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const d = (after.get(key) ?? 0) - (before.get(key) ?? 0);
    if (d !== 0) out.set(key, d);
  }
  return out;
}

export { sleep };
