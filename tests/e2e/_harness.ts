/** Helpers for black-box tests: run kf and kubectl as a user would, against the local test cluster. */

import { dirname, join } from "node:path";
import { concatBytes } from "../../src/bytes.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { fileURLToPath } from "node:url";
import { homedir } from "node:os";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DENO = Deno.execPath();

export interface ClusterEnv {
  kubeconfig: string;
  /** PATH with the cluster's kubectl first. */
  path: string;
  dir: string;
  env: Record<string, string>;
}

/** Reads the env file that `deno task cluster:up` writes; fails with the command to run when absent. */
export function clusterEnv(): ClusterEnv {
  const cacheHome = Deno.env.get("XDG_CACHE_HOME") ?? join(homedir(), ".cache");
  const dir = Deno.env.get("KF_CLUSTER_DIR") ?? join(cacheHome, "kf", "cluster");
  let text: string;
  try {
    text = Deno.readTextFileSync(join(dir, "env"));
  } catch {
    throw new Error(`No test cluster at ${dir}: run \`deno task cluster:up\` first`);
  }
  const env: Record<string, string> = {};
  for (const match of text.matchAll(/^export (\w+)="(.*)"$/gm)) {
    env[match[1]] = match[2].replace(/\$PATH/g, Deno.env.get("PATH") ?? "").replace(/\\\$/g, "$");
  }
  return { kubeconfig: env.KUBECONFIG, path: env.PATH, dir, env };
}

export const cluster = clusterEnv();

/** Environment for kf and kubectl children: the test cluster and a private state dir. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { ...cluster.env, KUBECONFIG: cluster.kubeconfig, PATH: cluster.path, NO_COLOR: "1", ...extra };
}

export async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command, {
    args,
    env: childEnv(options.env),
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

export function kubectl(args: string[], options: { context?: string } = {}) {
  const context = options.context ? ["--context", options.context] : [];
  return run("kubectl", [...context, ...args]);
}

/** Runs `kf ARGS` to completion. */
export function kf(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}) {
  return run(
    DENO,
    ["run", "-A", "--config", join(REPO, "deno.json"), join(REPO, "main.ts"), ...args],
    options,
  );
}

/** A long-running child (kf forward, kubectl port-forward) whose output lines can be awaited. */
export class Proc {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(command: string, args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(command, {
      args,
      env: childEnv(env),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#collect(this.child.stdout);
    this.#collect(this.child.stderr);
    this.exited = this.child.status;
  }

  get pid(): number {
    return this.child.pid;
  }

  get output(): string {
    return this.lines.join("\n");
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      this.lines.push(...parts);
      for (const wake of [...this.#waiters]) wake();
    }
    if (pending) this.lines.push(pending);
    for (const wake of [...this.#waiters]) wake();
  }

  /** Resolves with the first line matching pattern; rejects after timeoutMs with the output so far. */
  waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (const line of this.lines) {
          const match = line.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${pattern}; output:\n${this.output}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit status. */
  async stop(graceMs = 5_000): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}

/** Starts `kf ARGS` in the background. */
export function startKf(args: string[], env: Record<string, string> = {}): Proc {
  return new Proc(
    DENO,
    ["run", "-A", "--config", join(REPO, "deno.json"), join(REPO, "main.ts"), ...args],
    env,
  );
}

/** A free local TCP port (bound and released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Whether this machine has IPv6 loopback (::1): kf's default address `localhost` then listens there too. */
export const HAS_IPV6_LOOPBACK: boolean = (() => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();

/** The listeners kf reports for `port` on its default address: 127.0.0.1, and ::1 where the host has it. */
export function defaultListeners(port: number, remote: number | string) {
  return HAS_IPV6_LOOPBACK
    ? [{ address: "127.0.0.1", port, remote }, { address: "::1", port, remote }]
    : [{ address: "127.0.0.1", port, remote }];
}

/** How `kf ps` and the live table show the default address: "127.0.0.1+[::1]:PORT" (regex source). */
export function defaultLocal(port: number): string {
  return `127\\.0\\.0\\.1${HAS_IPV6_LOOPBACK ? "\\+\\[::1\\]" : ""}:${port}`;
}

/** A fresh private state dir for one test. */
export function tempStateDir(): string {
  const dir = Deno.makeTempDirSync({ prefix: "kf-state-" });
  Deno.chmodSync(dir, 0o700);
  return dir;
}

export interface HttpResult {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
  startedAt: number;
  endedAt: number;
}

/**
 * One HTTP GET on a NEW connection (Connection: close), like a curl loop: each request goes through
 * the forward's connection handling, which is what pod churn tests must exercise.
 */
export async function httpGet(
  port: number,
  path = "/",
  timeoutMs = 35_000,
  hostname = "127.0.0.1",
): Promise<HttpResult> {
  const startedAt = performance.now();
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    await conn.write(
      new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: kf\r\nConnection: close\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = new TextDecoder().decode(concatBytes(chunks));
    const match = text.match(/^HTTP\/1\.[01] (\d{3})/);
    const body = text.split("\r\n\r\n").slice(1).join("\r\n\r\n");
    const status = match ? Number(match[1]) : undefined;
    return {
      ok: status === 200,
      status,
      body,
      error: match ? undefined : "no HTTP response",
      startedAt,
      endedAt: performance.now(),
    };
  } catch (error) {
    return { ok: false, error: (error as Error).message, startedAt, endedAt: performance.now() };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // closed by the peer
    }
  }
}

/** Runs a GET every intervalMs (sequential, like `while curl; sleep`) until stopped. */
export class RequestLoop {
  readonly results: HttpResult[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(port: number, intervalMs = 50) {
    this.#done = (async () => {
      while (this.#running) {
        const started = performance.now();
        this.results.push(await httpGet(port));
        const wait = intervalMs - (performance.now() - started);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    })();
  }

  get failures(): HttpResult[] {
    return this.results.filter((r) => !r.ok);
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls fn until it returns a truthy value (for cluster state that has no event to wait on). */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 30_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Names of the Ready pods with the label selector. */
export async function readyPods(selector = "app=echo", namespace = "default"): Promise<string[]> {
  const out = await kubectl(["get", "pods", "-n", namespace, "-l", selector, "-o", "json"]);
  if (out.code !== 0) throw new Error(out.stderr);
  const list = JSON.parse(out.stdout) as {
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      status?: { conditions?: { type: string; status: string }[] };
    }[];
  };
  return list.items.filter((p) =>
    !p.metadata.deletionTimestamp &&
    p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
  ).map((p) => p.metadata.name);
}

/**
 * `kubectl delete pods -l SELECTOR --force --grace-period=0`, then waits until at least two Ready pods exist
 * and none of them existed before. Resolves with the pods that were Ready before the deletion.
 */
export async function forceDeletePods(
  selector = "app=echo",
  options: { namespace?: string; what?: string } = {},
): Promise<Set<string>> {
  const namespace = options.namespace ?? "default";
  const before = new Set(await readyPods(selector, namespace));
  const out = await kubectl([
    "delete",
    "pods",
    "-n",
    namespace,
    "-l",
    selector,
    "--force",
    "--grace-period=0",
    "--wait=false",
  ]);
  if (out.code !== 0) throw new Error(`kubectl delete pods -l ${selector} failed: ${out.stderr}`);
  // watched, not polled: a kubectl every 100 ms costs ~40 ms of CPU each, on the 2 cores where the
  // replacements start and the forward under test hands over to them
  await waitForPods(
    selector,
    namespace,
    (pods) => {
      const ready = pods.filter(isReadyPod).map((p) => p.metadata.name);
      return ready.length >= 2 && ready.every((p) => !before.has(p));
    },
    60_000,
    options.what ?? `replacement pods for ${selector}`,
  );
  return before;
}

interface PodSummary {
  metadata: { name: string; deletionTimestamp?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

function isReadyPod(pod: PodSummary): boolean {
  return !pod.metadata.deletionTimestamp &&
    pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
}

/** Waits until `done` holds for the pods with the label selector: a list, then a watch (no polling). */
export async function waitForPods(
  selector: string,
  namespace: string,
  done: (pods: PodSummary[]) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const client = KubeClient.load({ kubeconfig: cluster.kubeconfig });
  const path = `/api/v1/namespaces/${namespace}/pods`;
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const list = await client.getJson<{ items: PodSummary[]; metadata: { resourceVersion: string } }>(
        path,
        {
          query: { labelSelector: selector },
        },
      );
      const pods = new Map(list.items.map((pod) => [pod.metadata.name, pod]));
      if (done([...pods.values()])) return;
      const watch = new AbortController();
      const timer = setTimeout(() => watch.abort(), Math.max(0, deadline - Date.now()));
      try {
        const events = client.streamJsonLines(path, {
          query: {
            watch: "1",
            labelSelector: selector,
            resourceVersion: list.metadata.resourceVersion,
            timeoutSeconds: String(Math.ceil(timeoutMs / 1000)),
          },
          signal: watch.signal,
        }) as AsyncIterable<{ type: string; object: PodSummary }>;
        for await (const event of events) {
          // an ERROR (e.g. 410 Gone) ends this watch: the outer loop lists again
          if (event.type === "ERROR") break;
          if (event.type === "DELETED") pods.delete(event.object.metadata.name);
          else pods.set(event.object.metadata.name, event.object);
          if (done([...pods.values()])) return;
        }
      } catch (error) {
        if (!watch.signal.aborted) throw error;
      } finally {
        clearTimeout(timer);
        watch.abort();
      }
    }
    throw new Error(`timed out waiting for ${what}`);
  } finally {
    client.close();
  }
}

/** Restores the demo deployment to 2 ready replicas (tests that scale or restart it call this after). */
export async function resetEcho(namespace = "default"): Promise<void> {
  await kubectl(["scale", "-n", namespace, "deploy/echo", "--replicas=2"]);
  await until(async () => (await readyPods("app=echo", namespace)).length >= 2, 60_000, "2 ready echo pods");
}
