/** What every scenario gets: options, the cluster, the tools, and helpers to interleave them. */

import type { Kube } from "./cluster.ts";
import type { Column } from "./report.ts";
import { median } from "./stats.ts";
import { type ForwardDef, type Running, type Tool, type ToolContext, type ToolId } from "./tools.ts";

export interface BenchOptions {
  quick: boolean;
  only?: number[];
  reps: number;
  idleSeconds: number;
  slowMb: number;
  namespace: string;
  context: string;
  kfBin?: string;
  /** kf's `transport:` (auto, websocket, spdy); unset = kf's default. */
  kfTransport?: string;
  outDir: string;
  clusterUp: boolean;
}

export interface Ctx {
  options: BenchOptions;
  kube: Kube;
  /** The tools that can run here: kf, kubectl, and kftui when installed. */
  tools: Tool[];
  toolCtx: ToolContext;
  /** The same tools, using another Kube (another kubeconfig/context). */
  toolsFor(kube: Kube): Tool[];
  log(line: string): void;
}

/** Rotates the order each repetition so that no tool always runs first (or right after another). */
export function rotation<T>(items: T[], rep: number): T[] {
  const k = rep % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Runs fn for every column, interleaved: rep 1 (kf, kubectl, ...), rep 2 (kubectl, ..., kf), ... */
export async function interleave<C extends string>(
  columns: C[],
  reps: number,
  fn: (column: C, rep: number) => Promise<void>,
): Promise<void> {
  for (let rep = 0; rep < reps; rep++) {
    for (const column of rotation(columns, rep)) await fn(column, rep);
  }
}

/** Per-column sample lists with a median. */
export class Samples {
  readonly values: Partial<Record<Column, number[]>> = {};

  add(column: Column, value: number): void {
    (this.values[column] ??= []).push(value);
  }

  median(column: Column): number | undefined {
    const list = this.values[column];
    return list?.length ? median(list) : undefined;
  }

  medians(): Partial<Record<Column, number>> {
    const out: Partial<Record<Column, number>> = {};
    for (const column of Object.keys(this.values) as Column[]) out[column] = this.median(column);
    return out;
  }

  sum(column: Column): number | undefined {
    return this.values[column]?.reduce((a, b) => a + b, 0);
  }

  sums(): Partial<Record<Column, number>> {
    const out: Partial<Record<Column, number>> = {};
    for (const column of Object.keys(this.values) as Column[]) out[column] = this.sum(column);
    return out;
  }
}

export interface Endpoint {
  http: number;
  echo: number;
}

/**
 * One running forward of svc/echo (HTTP + echo ports) per tool for a data-path scenario, plus the direct
 * backend. `endpoint(column)` restarts a tool whose process died (counted in `restarts`).
 */
export class Forwarders {
  readonly #ctx: Ctx;
  readonly #running = new Map<ToolId, { run: Running; forward: ForwardDef }>();
  readonly restarts: Partial<Record<ToolId, number>> = {};

  constructor(ctx: Ctx) {
    this.#ctx = ctx;
  }

  get columns(): Column[] {
    return [...this.#ctx.tools.map((t) => t.id), "direct"];
  }

  async start(makeForward: () => ForwardDef): Promise<void> {
    for (const tool of this.#ctx.tools) {
      const forward = makeForward();
      this.#running.set(tool.id, { run: await tool.start([forward]), forward });
    }
  }

  async endpoint(column: Column): Promise<Endpoint> {
    const cluster = this.#ctx.kube.cluster;
    if (column === "direct") return { http: cluster.directHttpPort, echo: cluster.directEchoPort };
    let entry = this.#running.get(column)!;
    if (!entry.run.alive()) {
      this.#ctx.log(
        `  ${column} exited; restarting it:\n${entry.run.procs.map((p) => p.tail(5)).join("\n")}`,
      );
      this.restarts[column] = (this.restarts[column] ?? 0) + 1;
      await entry.run.stop();
      await this.#ctx.kube.resetEcho();
      const tool = this.#ctx.tools.find((t) => t.id === column)!;
      entry = { run: await tool.start([entry.forward]), forward: entry.forward };
      this.#running.set(column, entry);
    }
    const ports = entry.forward.ports;
    return {
      http: ports.find((p) => p.remote === 80 || p.remote === 8080)!.local,
      echo: ports.find((p) => p.remote === 9000)?.local ?? 0,
    };
  }

  pids(column: ToolId): number[] {
    return this.#running.get(column)?.run.pids() ?? [];
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#running.values()].map((e) => e.run.stop()));
    this.#running.clear();
  }

  notes(): string[] {
    return Object.entries(this.restarts).map(([tool, n]) => `${tool} exited and was restarted ${n} time(s)`);
  }
}
