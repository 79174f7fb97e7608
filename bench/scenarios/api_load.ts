/**
 * 6. API load: what the apiserver served while 20 forwards over 5 selectors sat idle. Each tool runs as the
 * bench's own ServiceAccount behind a counting relay (see lib/identity.ts), so its requests are counted exactly
 * even when other clients use the cluster: API requests from the apiserver's /metrics (its FlowSchema's
 * dispatched requests), new connections from the relay; apiserver_request_total by verb and resource and
 * apiserver_longrunning_requests give the breakdown (those include other clients, if any).
 */

import type { Ctx } from "../lib/context.ts";
import { diff, type Metrics, sumBy } from "../lib/cluster.ts";
import { benchIdentity } from "../lib/identity.ts";
import { sleep } from "../lib/proc.ts";
import type { Column, Row, ScenarioResult } from "../lib/report.ts";
import { type ForwardDef, freePorts } from "../lib/tools.ts";

/** Five different selectors that all match the echo pods (a forward tool must watch each one separately). */
export const SELECTORS = [
  "app=echo",
  "app in (echo)",
  "app=echo,bench!=a",
  "app=echo,bench!=b",
  "app=echo,!bench",
];

function requests(metrics: Metrics): Map<string, number> {
  return sumBy(metrics, "apiserver_request_total", (l) => {
    if (l.component && l.component !== "apiserver") return undefined;
    return `${l.verb} ${l.resource || "(non-resource)"}${l.subresource ? `/${l.subresource}` : ""} (${
      l.scope || "-"
    })`;
  });
}

/** Open long-running requests (watches, port-forwards) that are not cluster-wide, by "VERB resource[/sub]". */
function longRunning(metrics: Metrics): Map<string, number> {
  return sumBy(metrics, "apiserver_longrunning_requests", (l) => {
    if (l.scope === "cluster") return undefined;
    return `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ""}`;
  });
}

/** Requests of the flow schema by type ("regular" or "watch"; a watch counts when it starts). */
function flowRequests(metrics: Metrics, flowSchema: string, type: "regular" | "watch"): number {
  return sumBy(
    metrics,
    "apiserver_flowcontrol_request_execution_seconds_count",
    (l) => l.flow_schema === flowSchema && l.type === type ? "x" : undefined,
  ).get("x") ?? 0;
}

function record(map: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...map].filter(([, v]) => v !== 0).sort());
}

export function apiLoadForwards(): ForwardDef[] {
  return freePorts(20).map((port, i) => ({
    name: `f${String(i).padStart(2, "0")}`,
    selector: SELECTORS[i % SELECTORS.length],
    ports: [{ local: port, remote: 8080 }],
  }));
}

export async function apiLoad(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const idle = ctx.options.idleSeconds;
  await ctx.kube.resetEcho();
  const identity = await benchIdentity(ctx.kube, ctx.toolCtx.tempDir);
  const details: Record<string, unknown> = {};
  const idleRegular: Partial<Record<Column, number>> = {};
  const idleWatches: Partial<Record<Column, number>> = {};
  const idleConnections: Partial<Record<Column, number>> = {};
  const startRegular: Partial<Record<Column, number>> = {};
  const startWatches: Partial<Record<Column, number>> = {};
  const startConnections: Partial<Record<Column, number>> = {};
  const openConnections: Partial<Record<Column, number>> = {};
  const notes: string[] = [];
  try {
    for (const tool of ctx.toolsFor(identity.kube)) {
      const forwards = apiLoadForwards();
      const m0 = await ctx.kube.metrics();
      const c0 = identity.relay.connections;
      const run = await tool.start(forwards, { timeoutMs: 120_000 });
      try {
        // let the start settle (first lists, watches, prewarmed upstreams)
        await sleep(3_000);
        const m1 = await ctx.kube.metrics();
        const c1 = identity.relay.connections;
        ctx.log(
          `  ${tool.id}: ${forwards.length} forwards up in ${run.readyMs.toFixed(0)} ms; idle for ${idle} s`,
        );
        await sleep(idle * 1000);
        const m2 = await ctx.kube.metrics();
        const c2 = identity.relay.connections;
        if (!run.alive()) {
          throw new Error(`${tool.id} exited during the idle window:\n${run.procs[0].tail()}`);
        }
        const fs = identity.flowSchema;
        startRegular[tool.id] = flowRequests(m1, fs, "regular") - flowRequests(m0, fs, "regular");
        startWatches[tool.id] = flowRequests(m1, fs, "watch") - flowRequests(m0, fs, "watch");
        idleRegular[tool.id] = flowRequests(m2, fs, "regular") - flowRequests(m1, fs, "regular");
        idleWatches[tool.id] = flowRequests(m2, fs, "watch") - flowRequests(m1, fs, "watch");
        startConnections[tool.id] = c1 - c0;
        idleConnections[tool.id] = c2 - c1;
        openConnections[tool.id] = identity.relay.open;
        const open = diff(longRunning(m0), longRunning(m1));
        const during = diff(requests(m1), requests(m2));
        details[tool.id] = {
          startupByVerb: record(diff(requests(m0), requests(m1))),
          idleByVerb: record(during),
          openLongRunning: record(open),
          openLongRunningAfterIdle: record(diff(longRunning(m0), longRunning(m2))),
        };
        ctx.log(
          `  ${tool.id}: start: ${startRegular[tool.id]} requests + ${startWatches[tool.id]} watches, ` +
            `${startConnections[tool.id]} connections; idle: ${idleRegular[tool.id]} requests + ` +
            `${idleWatches[tool.id]} watches, ${idleConnections[tool.id]} new connections, ` +
            `${openConnections[tool.id]} open`,
        );
      } finally {
        await run.stop();
      }
    }
  } finally {
    identity.close();
  }
  for (const tool of ctx.tools) {
    notes.push(
      `${tool.id}: apiserver_request_total during the idle window, all clients, by verb: ${
        JSON.stringify((details[tool.id] as { idleByVerb?: unknown })?.idleByVerb ?? {})
      }`,
    );
  }
  const rows: Row[] = [
    {
      scenario: 6,
      metric:
        `API requests (not watches) during ${idle} s idle, 20 forwards over ${SELECTORS.length} selectors`,
      unit: "count",
      better: "lower",
      values: idleRegular,
      goal: "0 (no polling)",
      met: idleRegular.kf === 0,
    },
    {
      scenario: 6,
      metric: `watches (re)started during ${idle} s idle`,
      unit: "count",
      better: "lower",
      values: idleWatches,
    },
    {
      scenario: 6,
      metric: `new apiserver connections during ${idle} s idle (port-forward upgrades)`,
      unit: "count",
      better: "lower",
      values: idleConnections,
    },
    {
      scenario: 6,
      metric: "watches started for 20 forwards",
      unit: "count",
      better: "none",
      values: startWatches,
      goal: `${SELECTORS.length} (one per selector)`,
      met: startWatches.kf === SELECTORS.length,
    },
    {
      scenario: 6,
      metric: "API requests (not watches) to start 20 forwards",
      unit: "count",
      better: "lower",
      values: startRegular,
    },
    {
      scenario: 6,
      metric: "apiserver connections opened to start 20 forwards",
      unit: "count",
      better: "lower",
      values: startConnections,
    },
    {
      scenario: 6,
      metric: "apiserver connections held open while idle",
      unit: "count",
      better: "lower",
      values: openConnections,
    },
  ];
  return {
    id: 6,
    title: "API load",
    method:
      `Each tool in turn starts 20 forwards over ${SELECTORS.length} selectors (kf: selectors \`${
        SELECTORS.join("`, `")
      }\`; kubectl: 20 \`kubectl port-forward deploy/echo\` processes, as it has no selectors; kftui: 20 pod configs ` +
      `with those selectors), settles 3 s, then sits idle for ${idle} s. The tool runs as the ServiceAccount ` +
      "kf-bench/kf-bench with its own FlowSchema, whose apiserver_flowcontrol_request_execution_seconds_count " +
      "by type (regular / watch; from `kubectl get --raw /metrics`) counts exactly its API requests and the " +
      "watches it starts (port-forward upgrades bypass priority and fairness), and it reaches the apiserver " +
      "through a TCP relay in the bench that counts its connections; apiserver_request_total by verb and " +
      "resource and apiserver_longrunning_requests, which include every other client of the cluster, are in " +
      "the notes and in the JSON",
    reps: 1,
    rows,
    notes,
    details,
  };
}
