/**
 * 13. HTTP handling cost: kf with `protocol: auto` (each HTTP/1.x request framed, for replay and per-request
 * pod choice) against kf with `protocol: tcp` (opaque bytes), plus a second `protocol: tcp` kf as an A/A
 * control that shows the machine's noise in the same run. `ab -k -c 20` req/s and one large download,
 * each in its own interleaved round; kf's own CPU per request and per MiB (user + system time from /proc,
 * which other processes on a busy machine disturb much less than the rates).
 */

import { type Ctx, interleave, Samples } from "../lib/context.ts";
import { download } from "../lib/net.ts";
import { run } from "../lib/proc.ts";
import { clkTck, cpuSeconds } from "../lib/procfs.ts";
import type { Row, ScenarioResult } from "../lib/report.ts";
import { echoForward, type Running } from "../lib/tools.ts";
import { ensureAb } from "./ab.ts";

/** tcp-b: the A/A control, a second kf with `protocol: tcp`. */
type Way = "auto" | "tcp" | "tcp-b";
const WAYS: Way[] = ["auto", "tcp", "tcp-b"];
const CONCURRENCY = 20;
/** HTTP handling may cost at most this share of the TCP figure. */
const MAX_COST = 0.05;

export async function httpCost(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  await ensureAb(ctx.log);
  const quick = ctx.options.quick;
  const requests = quick ? 2_000 : 20_000;
  const mib = quick ? 64 : 1024;
  const kf = ctx.tools.find((t) => t.id === "kf")!;
  const running: Running[] = [];
  const ports = new Map<Way, number>();
  // keyed by way; the report's kf column carries each way's figure on its own row
  const rps = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
  const mibps = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
  const cpuPerRequest = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
  const cpuPerMib = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
  const pids = new Map<Way, number>();
  const ticks = await clkTck();
  /** kf's CPU seconds (one process per way) so far. */
  const cpu = (way: Way) => cpuSeconds(pids.get(way)!, ticks);
  const errors: string[] = [];
  const ab = async (port: number, n: number): Promise<number> => {
    const out = await run("ab", [
      "-q",
      "-s",
      "30",
      "-k",
      "-c",
      String(CONCURRENCY),
      "-n",
      String(n),
      url(port),
    ]);
    const rate = Number(out.stdout.match(/Requests per second:\s+([\d.]+)/)?.[1]);
    const failed = Number(out.stdout.match(/Failed requests:\s+(\d+)/)?.[1] ?? 0);
    if (!Number.isFinite(rate) || failed > 0) {
      throw new Error(`ab: ${(out.stderr || out.stdout).trim().split("\n").pop()?.slice(0, 200)}`);
    }
    return rate;
  };
  try {
    for (const way of WAYS) {
      // one wire for all three (v4): under the default transport HTTP would go on the SPDY pool and tcp on v4,
      // and the rows would compare transports (scenarios 1 and 11 do that) instead of the HTTP handling
      const forward = {
        ...echoForward(`echo-${way}`),
        protocol: way === "tcp-b" ? "tcp" : way,
        transport: "websocket",
      };
      const started = await kf.start([forward]);
      running.push(started);
      ports.set(way, forward.ports[0].local);
      pids.set(way, started.pids()[0]);
    }
    // warm-up: every kf opens its upstreams and compiles its hot paths
    for (const way of WAYS) {
      await ab(ports.get(way)!, 2_000);
      await download(ports.get(way)!, 1024 * 1024);
    }
    // one round per measurement, so a download never runs in the aftermath of ab (20 upstreams closing)
    await interleave(WAYS, ctx.options.reps, async (way, rep) => {
      try {
        const cpuBefore = cpu(way);
        const rate = await ab(ports.get(way)!, requests);
        const us = (cpu(way) - cpuBefore) * 1e6 / requests;
        rps.get(way)!.push(rate);
        cpuPerRequest.get(way)!.push(us);
        ctx.log(
          `  rep ${rep + 1} ${way}: ab -k ${rate.toFixed(0)} req/s, kf CPU ${us.toFixed(0)} us/request`,
        );
      } catch (error) {
        errors.push(`rep ${rep + 1} ${way}: ${(error as Error).message}`);
      }
    });
    await interleave(WAYS, ctx.options.reps, async (way, rep) => {
      const cpuBefore = cpu(way);
      const result = await download(ports.get(way)!, mib * 1024 * 1024);
      if (!result.ok) {
        errors.push(`rep ${rep + 1} ${way} download: ${result.error}`);
        return;
      }
      const rate = mib / (result.ms / 1000);
      const ms = (cpu(way) - cpuBefore) * 1e3 / mib;
      mibps.get(way)!.push(rate);
      cpuPerMib.get(way)!.push(ms);
      ctx.log(`  rep ${rep + 1} ${way}: download ${rate.toFixed(0)} MiB/s, kf CPU ${ms.toFixed(2)} ms/MiB`);
    });
  } finally {
    await Promise.all(running.map((r) => r.stop()));
  }
  const rows = [
    ...rowsFor(`ab -k -c ${CONCURRENCY} -n ${requests} GET /bytes?n=100`, "req/s", rps),
    ...cpuRows("kf CPU per ab request", "µs", cpuPerRequest),
    ...rowsFor(`download ${mib} MiB, new connection`, "MiB/s", mibps),
    ...cpuRows("kf CPU per MiB downloaded", "ms", cpuPerMib),
  ];
  return {
    id: 13,
    title: "HTTP handling cost",
    method:
      `three kf forwards of svc/echo:80 at once, all on transport websocket (the HTTP handling alone, on one ` +
      `wire): protocol auto (HTTP/1.x framed per request), protocol tcp, ` +
      `and a second protocol tcp as an A/A control; ab -k -c ${CONCURRENCY} -n ${requests} on GET /bytes?n=100, ` +
      `then in a separate interleaved round GET /bytes?n=${mib} MiB on a new connection (MiB/s from connect to ` +
      `the last byte); the cost is 1 - auto/tcp of the medians`,
    reps: ctx.options.reps,
    rows,
    notes: errors.map((e) => `error: ${e}`),
  };
}

function url(port: number): string {
  return `http://127.0.0.1:${port}/bytes?n=100`;
}

function medians(samples: Map<Way, number[]>): Map<Way, number | undefined> {
  const out = new Map<Way, number | undefined>();
  for (const way of WAYS) {
    const s = new Samples();
    for (const v of samples.get(way)!) s.add("kf", v);
    out.set(way, s.median("kf"));
  }
  return out;
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && b > 0 ? a / b : undefined;

/** One row per way, for a figure where higher (rates) or lower (CPU) is better. */
function figures(metric: string, unit: string, samples: Map<Way, number[]>, better: Row["better"]): Row[] {
  const median = medians(samples);
  const labels: Record<Way, string> = {
    auto: "protocol auto",
    tcp: "protocol tcp",
    "tcp-b": "protocol tcp (A/A control)",
  };
  return WAYS.map((way) => ({
    scenario: 13,
    metric: `${metric}, kf ${labels[way]}`,
    unit,
    better,
    values: { kf: median.get(way) },
    samples: { kf: samples.get(way)! },
  }));
}

/** kf's CPU per unit of work for each way, and auto's against tcp's (no goal: the goal is on the rates). */
function cpuRows(metric: string, unit: string, samples: Map<Way, number[]>): Row[] {
  const median = medians(samples);
  return [
    ...figures(metric, unit, samples, "lower"),
    {
      scenario: 13,
      metric: `${metric}: auto / tcp`,
      unit: "ratio",
      better: "lower",
      values: { kf: ratio(median.get("auto"), median.get("tcp")) },
      note: `A/A control tcp-b / tcp: ${ratio(median.get("tcp-b"), median.get("tcp"))?.toFixed(3)}`,
    },
  ];
}

function rowsFor(metric: string, unit: string, samples: Map<Way, number[]>): Row[] {
  const [auto, tcp, control] = WAYS.map((w) => medians(samples).get(w));
  const cost = ratio(auto, tcp);
  const noise = ratio(control, tcp);
  return [
    ...figures(metric, unit, samples, "higher"),
    {
      scenario: 13,
      metric: `${metric}: auto / tcp`,
      unit: "ratio",
      better: "higher",
      values: { kf: cost },
      goal: `>= ${1 - MAX_COST} (HTTP costs <= ${MAX_COST * 100} %)`,
      met: cost === undefined ? undefined : cost >= 1 - MAX_COST,
      note: noise === undefined ? undefined : `A/A control tcp-b / tcp: ${noise.toFixed(3)}`,
    },
    {
      scenario: 13,
      metric: `${metric}: A/A control, tcp-b / tcp`,
      unit: "ratio",
      better: "none",
      values: { kf: noise },
    },
  ];
}
