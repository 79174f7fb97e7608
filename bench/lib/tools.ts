/** The forwarders under test (kf, kubectl port-forward, kftui) behind one interface: start forwards, stop them. */

import { join } from "node:path";
import { homedir } from "node:os";
import type { Kube } from "./cluster.ts";
import { REPO } from "./cluster.ts";
import { Proc, run, sleep } from "./proc.ts";
import { canConnect } from "./net.ts";
import { KF_V8_FLAGS } from "../../src/runtime/v8_flags.ts";

export type ToolId = "kf" | "kubectl" | "kftui";
export const TOOL_IDS: ToolId[] = ["kf", "kubectl", "kftui"];

/** One forward: to svc/echo (Service ports 80/9000) or to pods by label selector (pod ports 8080/9000). */
export interface ForwardDef {
  name: string;
  /** "svc/echo", or undefined with a selector. */
  target?: string;
  selector?: string;
  ports: { local: number; remote: number }[];
  /** kf's `protocol:` for this forward (auto, http, tcp); unset = kf's default. Other tools ignore it. */
  protocol?: string;
  /** kf's `transport:` for this forward, over the run's --kf-transport; unset = that or kf's default. */
  transport?: string;
}

export interface Running {
  tool: ToolId;
  procs: Proc[];
  /** ms from the first spawn until every forward was listening (and, for kf, had a ready pod). */
  readyMs: number;
  pids(): number[];
  alive(): boolean;
  stop(): Promise<void>;
}

export interface Tool {
  id: ToolId;
  /** Version string for the report. */
  version: string;
  start(forwards: ForwardDef[], options?: { stateDir?: string; timeoutMs?: number }): Promise<Running>;
}

export interface ToolContext {
  kube: Kube;
  /** How to run kf: [command, ...args before "forward"]. */
  kfCommand: string[];
  tempDir: string;
  /** kf's transport for every forward; unset = kf's default. */
  kfTransport?: string;
}

/** `n` distinct free local ports (bound together, then released). */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** The svc/echo forward used by the data-path scenarios: HTTP (80) and echo (9000). */
export function echoForward(name = "echo"): ForwardDef {
  const [http, echo] = freePorts(2);
  return { name, target: "svc/echo", ports: [{ local: http, remote: 80 }, { local: echo, remote: 9000 }] };
}

/** kf's command line: the given binary, or `deno run -A main.ts` with the deno running the bench. */
export function kfCommand(kfBin?: string): string[] {
  if (kfBin) return [kfBin];
  return [
    Deno.execPath(),
    "run",
    "-A",
    KF_V8_FLAGS,
    "--config",
    join(REPO, "deno.json"),
    join(REPO, "main.ts"),
  ];
}

function tempStateDir(ctx: ToolContext): string {
  const dir = Deno.makeTempDirSync({ dir: ctx.tempDir, prefix: "kf-state-" });
  Deno.chmodSync(dir, 0o700);
  return dir;
}

function yamlString(value: string): string {
  return JSON.stringify(value);
}

/** Writes a kf config file for the forwards. */
export function kfConfig(ctx: ToolContext, forwards: ForwardDef[]): string {
  const lines = ctx.kfTransport ? [`transport: ${yamlString(ctx.kfTransport)}`, "forwards:"] : ["forwards:"];
  for (const f of forwards) {
    lines.push(`  - name: ${yamlString(f.name)}`);
    if (f.target) lines.push(`    target: ${yamlString(f.target)}`);
    else lines.push(`    selector: ${yamlString(f.selector!)}`);
    lines.push(`    ports: [${f.ports.map((p) => yamlString(`${p.local}:${p.remote}`)).join(", ")}]`);
    if (f.protocol) lines.push(`    protocol: ${yamlString(f.protocol)}`);
    if (f.transport) lines.push(`    transport: ${yamlString(f.transport)}`);
  }
  const path = Deno.makeTempFileSync({ dir: ctx.tempDir, prefix: "kf-", suffix: ".yaml" });
  Deno.writeTextFileSync(path, lines.join("\n") + "\n");
  return path;
}

function running(tool: ToolId, procs: Proc[], readyMs: number, stopSignal: Deno.Signal = "SIGTERM"): Running {
  return {
    tool,
    procs,
    readyMs,
    pids: () => procs.filter((p) => p.alive).map((p) => p.pid),
    alive: () => procs.every((p) => p.alive),
    stop: async () => {
      await Promise.all(procs.map((p) => p.stop(5_000, stopSignal)));
    },
  };
}

async function stopAll(procs: Proc[], signal: Deno.Signal = "SIGTERM"): Promise<void> {
  await Promise.all(procs.map((p) => p.stop(3_000, signal)));
}

export function kfTool(ctx: ToolContext, version: string): Tool {
  return {
    id: "kf",
    version,
    async start(forwards, options = {}) {
      const config = kfConfig(ctx, forwards);
      const [command, ...pre] = ctx.kfCommand;
      const env = { ...ctx.kube.cluster.env, KF_STATE_DIR: options.stateDir ?? tempStateDir(ctx) };
      const args = [...pre, "forward", "-f", config, "-n", ctx.kube.namespace, "--context", ctx.kube.context];
      const proc = new Proc("kf", command, args, env);
      const names = new Set(forwards.map((f) => f.name));
      try {
        // "2026-01-01T00:00:00.000Z NAME 127.0.0.1:P->80 svc/echo ready pod=echo-..."
        const at = await proc.until((lines) => {
          const ready = new Set<string>();
          let last = 0;
          for (const line of lines) {
            const match = line.text.match(/^\S+ (\S+) .* ready pod=/);
            if (match && names.has(match[1]) && !ready.has(match[1])) {
              ready.add(match[1]);
              last = line.at;
            }
          }
          return ready.size === names.size ? last : undefined;
        }, options.timeoutMs ?? 60_000);
        return running("kf", [proc], at - proc.startedAt);
      } catch (error) {
        await stopAll([proc]);
        throw error;
      }
    },
  };
}

export function kubectlTool(ctx: ToolContext, version: string): Tool {
  return {
    id: "kubectl",
    version,
    async start(forwards, options = {}) {
      // kubectl port-forward takes one target per process and no label selector: a selector forward
      // becomes deploy/echo (same pods, pod ports)
      const procs = forwards.map((f) =>
        new Proc(`kubectl ${f.name}`, "kubectl", [
          "--context",
          ctx.kube.context,
          "-n",
          ctx.kube.namespace,
          "port-forward",
          "--address",
          "127.0.0.1",
          f.target ?? "deploy/echo",
          ...f.ports.map((p) => `${p.local}:${p.remote}`),
        ], ctx.kube.cluster.env)
      );
      try {
        const ats = await Promise.all(procs.map((proc, i) =>
          proc.until((lines) => {
            const want = new Set(forwards[i].ports.map((p) => p.local));
            let last = 0;
            for (const line of lines) {
              const match = line.text.match(/^Forwarding from 127\.0\.0\.1:(\d+) ->/);
              if (match && want.delete(Number(match[1]))) last = line.at;
            }
            return want.size === 0 ? last : undefined;
          }, options.timeoutMs ?? 60_000)
        ));
        const first = Math.min(...procs.map((p) => p.startedAt));
        return running("kubectl", procs, Math.max(...ats) - first);
      } catch (error) {
        await stopAll(procs);
        throw error;
      }
    },
  };
}

/** kftui's config entries (its `--json` format). */
export function kftuiConfigs(ctx: ToolContext, forwards: ForwardDef[]): unknown[] {
  return forwards.flatMap((f) =>
    f.ports.map((p, i) => ({
      alias: f.ports.length > 1 ? `${f.name}-${i}` : f.name,
      context: ctx.kube.context,
      kubeconfig: ctx.kube.cluster.kubeconfig,
      namespace: ctx.kube.namespace,
      ...(f.target ? { service: f.target.replace(/^svc\//, ""), workload_type: "service" } : {
        target: f.selector,
        workload_type: "pod",
      }),
      local_port: p.local,
      remote_port: p.remote,
      local_address: "127.0.0.1",
      protocol: "tcp",
    }))
  );
}

export function kftuiTool(ctx: ToolContext, binary: string, version: string): Tool {
  return {
    id: "kftui",
    version,
    async start(forwards, options = {}) {
      const home = Deno.makeTempDirSync({ dir: ctx.tempDir, prefix: "kftui-home-" });
      const json = JSON.stringify(kftuiConfigs(ctx, forwards));
      const proc = new Proc("kftui", binary, ["--non-interactive", "--auto-start", "--json", json], {
        ...ctx.kube.cluster.env,
        HOME: home,
        KUBECONFIG: ctx.kube.cluster.kubeconfig,
      });
      try {
        const timeoutMs = options.timeoutMs ?? 60_000;
        await proc.waitFor(/Port forwards started|Keeping port forwards active/, timeoutMs);
        // then every port must accept connections
        const ports = forwards.flatMap((f) => f.ports.map((p) => p.local));
        const deadline = performance.now() + timeoutMs;
        for (const port of ports) {
          while (!(await canConnect(port))) {
            if (performance.now() > deadline || !proc.alive) {
              throw new Error(`kftui: port ${port} never listened`);
            }
            await sleep(20);
          }
        }
        return running("kftui", [proc], performance.now() - proc.startedAt, "SIGINT");
      } catch (error) {
        await stopAll([proc], "SIGINT");
        throw error;
      }
    },
  };
}

/** kftui's binary, if installed (PATH or ~/.cargo/bin). */
export function findKftui(): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), join(homedir(), ".cargo", "bin")];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, "kftui");
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function kftuiVersion(binary: string): Promise<string> {
  const out = await run(binary, ["--version"]).catch(() => undefined);
  return out?.stdout.trim().replace(/^kftui\s*/, "") || "?";
}
