/**
 * 5. Churn: a 20 req/s loop of new connections through each tool while every pod is force-deleted 3 times;
 * failed requests, and the time from a replacement pod turning Ready to the first request it served.
 */

import { type Ctx, Samples } from "../lib/context.ts";
import { type GetResult, httpGet } from "../lib/net.ts";
import { sleep, until } from "../lib/proc.ts";
import type { Column, Row, ScenarioResult } from "../lib/report.ts";
import { max, median } from "../lib/stats.ts";
import { freePorts, type Running, type ToolId } from "../lib/tools.ts";

const ROUNDS = 3;
const INTERVAL_MS = 50;

/** Sequential GETs every INTERVAL_MS on new connections (like `while curl; sleep`). */
class RequestLoop {
  readonly results: GetResult[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(port: number) {
    this.#done = (async () => {
      while (this.#running) {
        const started = performance.now();
        this.results.push(await httpGet(port, "/", 15_000));
        const wait = INTERVAL_MS - (performance.now() - started);
        if (wait > 0) await sleep(wait);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

export async function churn(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const reps = ctx.options.quick ? 1 : ctx.options.reps;
  const failures = new Samples();
  const requests = new Samples();
  const handovers = new Map<ToolId, number[]>();
  const exits = new Map<ToolId, number>();
  const errorsSeen = new Map<ToolId, Set<string>>();
  for (let rep = 0; rep < reps; rep++) {
    await ctx.kube.resetEcho();
    const watch = ctx.kube.watchReady();
    const running = new Map<ToolId, Running>();
    const loops = new Map<ToolId, RequestLoop>();
    try {
      await watch.synced(ctx.kube);
      for (const tool of ctx.tools) {
        const [port] = freePorts(1);
        running.set(
          tool.id,
          await tool.start([{ name: "echo", target: "svc/echo", ports: [{ local: port, remote: 80 }] }]),
        );
        loops.set(tool.id, new RequestLoop(port));
      }
      await until(() => [...loops.values()].every((l) => l.results.length >= 10), 20_000, "first requests");
      const deletedAt: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const before = new Set(await ctx.kube.readyPods());
        deletedAt.push(performance.now());
        await ctx.kube.deleteAllPods();
        await until(
          async () => {
            const now = await ctx.kube.readyPods();
            return now.length >= 2 && now.every((p) => !before.has(p));
          },
          60_000,
          "replacement pods",
        );
        // let every loop run on the new pods for a moment (at most 15 s) before the next round
        const counts = new Map([...loops].map(([id, l]) => [id, l.results.length]));
        await until(
          () => [...loops].every(([id, l]) => l.results.length >= counts.get(id)! + 10),
          15_000,
          "requests after the round",
        ).catch(() => {});
      }
      await Promise.all([...loops.values()].map((l) => l.stop()));
      for (const [id, loop] of loops) {
        const failed = loop.results.filter((r) => !r.ok);
        failures.add(id, failed.length);
        requests.add(id, loop.results.length);
        const seen = errorsSeen.get(id) ?? new Set();
        for (const r of failed) seen.add(r.error ?? "?");
        errorsSeen.set(id, seen);
        // handover: a replacement pod's first response, measured from the moment it turned Ready
        const firstServed = new Map<string, number>();
        for (const r of loop.results) {
          if (r.ok && r.body && !firstServed.has(r.body)) firstServed.set(r.body, r.endedAt);
        }
        const list = handovers.get(id) ?? [];
        for (const [pod, at] of firstServed) {
          const readyAt = watch.readyAt.get(pod);
          if (readyAt !== undefined && readyAt > deletedAt[0]) list.push(at - readyAt);
        }
        handovers.set(id, list);
        const run = running.get(id)!;
        if (!run.alive()) exits.set(id, (exits.get(id) ?? 0) + 1);
        ctx.log(
          `  rep ${rep + 1} ${id}: ${loop.results.length} requests, ${failed.length} failed, handovers ${
            list.slice(-ROUNDS).map((ms) => ms.toFixed(0)).join("/")
          } ms${run.alive() ? "" : " (process exited)"}`,
        );
      }
    } finally {
      await Promise.all([...loops.values()].map((l) => l.stop()));
      await Promise.all([...running.values()].map((r) => r.stop()));
      await watch.stop();
    }
  }
  await ctx.kube.resetEcho();
  const failed = failures.sums();
  const total = requests.sums();
  const handoverP50: Partial<Record<Column, number>> = {};
  const handoverMax: Partial<Record<Column, number>> = {};
  const handoverCount: Partial<Record<Column, number>> = {};
  for (const tool of ctx.tools) {
    const list = handovers.get(tool.id) ?? [];
    handoverCount[tool.id] = list.length;
    if (list.length) {
      handoverP50[tool.id] = median(list);
      handoverMax[tool.id] = max(list);
    }
  }
  const rows: Row[] = [
    {
      scenario: 5,
      metric: `failed requests during ${ROUNDS * reps} force-deletions of all pods`,
      unit: "count",
      better: "lower",
      values: failed,
      goal: "0",
      met: failed.kf === 0,
      note: `of ${Object.entries(total).map(([k, v]) => `${k} ${v}`).join(", ")} requests`,
    },
    {
      scenario: 5,
      metric: "requests sent (20 req/s loop)",
      unit: "count",
      better: "none",
      values: total,
    },
    {
      scenario: 5,
      metric: "handover p50: replacement pod Ready -> first request it served",
      unit: "ms",
      better: "lower",
      values: handoverP50,
      goal: "< 100 ms",
      met: handoverP50.kf !== undefined && handoverP50.kf < 100,
    },
    {
      scenario: 5,
      metric: "handover max",
      unit: "ms",
      better: "lower",
      values: handoverMax,
    },
    {
      scenario: 5,
      metric: `replacement pods served (of ${ROUNDS * reps} rounds)`,
      unit: "count",
      better: "higher",
      values: handoverCount,
    },
  ];
  const notes = [
    "Ready time = when a watch on the pods (kubectl get --raw ...?watch=1, in the bench) delivered the Ready " +
    "event; the loop sends a request every 50 ms, so up to 50 ms of each handover is the loop's own wait",
  ];
  for (const [id, n] of exits) notes.push(`${id} exited during the churn in ${n} of ${reps} repetition(s)`);
  for (const [id, seen] of errorsSeen) {
    if (seen.size) notes.push(`${id} errors: ${[...seen].slice(0, 4).join("; ")}`);
  }
  return {
    id: 5,
    title: "Churn",
    method:
      `Per repetition: fresh forwards of svc/echo:80 for every tool, each with a loop of GET / on a new connection ` +
      `every 50 ms (20 req/s, all loops at once); then ${ROUNDS} rounds of \`kubectl delete pods -l app=echo --force ` +
      "--grace-period=0\`, each waiting for 2 new Ready pods and 10 more requests per loop",
    reps,
    rows,
    notes,
    details: { handovers: Object.fromEntries(handovers), requests: total, failures: failed },
  };
}
