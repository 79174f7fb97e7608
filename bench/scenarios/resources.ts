/**
 * 7. Resources: RSS and CPU with many forwards and open connections; RSS while a slow client reads a large
 * download (backpressure keeps memory bounded, or it does not).
 */

import { type Ctx, interleave, Samples } from "../lib/context.ts";
import { closeQuietly, download, openEchoConnection, slowDownload } from "../lib/net.ts";
import { sleep } from "../lib/proc.ts";
import { clkTck, MB, totalCpu, totalRss } from "../lib/procfs.ts";
import type { Column, Row, ScenarioResult } from "../lib/report.ts";
import { freePorts, type Running, type ToolId } from "../lib/tools.ts";

export async function resources(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const quick = ctx.options.quick;
  const forwardCount = quick ? 10 : 50;
  const connectionCount = quick ? 40 : 200;
  // /proc counts CPU in 10 ms ticks: over 5 s one tick is 0.2 % of a core, too coarse for a 0.5 % goal
  const holdSeconds = quick ? 2 : 15;
  const reps = quick ? 1 : ctx.options.reps;
  const ticks = await clkTck();
  const rssIdle = new Samples();
  const rssLoaded = new Samples();
  const cpuStart = new Samples();
  const cpuHold = new Samples();
  const notes: string[] = [];
  const ids = ctx.tools.map((t) => t.id) as ToolId[];

  await ctx.kube.resetEcho();
  await interleave(ids, reps, async (id, rep) => {
    const tool = ctx.tools.find((t) => t.id === id)!;
    const ports = freePorts(forwardCount);
    const forwards = ports.map((port, i) => ({
      name: `r${String(i).padStart(2, "0")}`,
      target: "svc/echo",
      ports: [{ local: port, remote: 9000 }],
    }));
    const run = await tool.start(forwards, { timeoutMs: 120_000 });
    const conns: Deno.TcpConn[] = [];
    try {
      await sleep(1_000);
      rssIdle.add(id, totalRss(run.pids()) / MB);
      // open the connections a few at a time, round-robin over the forwards, each with one echo round trip
      for (let i = 0; i < connectionCount; i += 10) {
        const batch = Array.from(
          { length: Math.min(10, connectionCount - i) },
          (_, j) => openEchoConnection(ports[(i + j) % ports.length]),
        );
        conns.push(...await Promise.all(batch));
      }
      const cpu0 = totalCpu(run.pids(), ticks);
      await sleep(holdSeconds * 1000);
      const cpu1 = totalCpu(run.pids(), ticks);
      const rss = totalRss(run.pids()) / MB;
      rssLoaded.add(id, rss);
      cpuStart.add(id, cpu0);
      cpuHold.add(id, ((cpu1 - cpu0) / holdSeconds) * 100);
      if (!run.alive()) notes.push(`${id} exited during repetition ${rep + 1}`);
      ctx.log(
        `  rep ${rep + 1} ${id}: ${run.pids().length} process(es), RSS ${
          rss.toFixed(0)
        } MB, CPU to start+connect ${cpu0.toFixed(2)} s, idle CPU ${
          (((cpu1 - cpu0) / holdSeconds) * 100).toFixed(1)
        } %`,
      );
    } finally {
      for (const conn of conns) closeQuietly(conn);
      await run.stop();
    }
  });

  // slow reader: every tool at once (each its own process), one download each, read at 1 MB/s
  const slowBytes = ctx.options.slowMb * 1_000_000;
  const growth: Partial<Record<Column, number>> = {};
  const peak: Partial<Record<Column, number>> = {};
  const slowOk: Partial<Record<Column, number>> = {};
  const started = new Map<ToolId, { run: Running; port: number }>();
  try {
    await ctx.kube.resetEcho();
    for (const tool of ctx.tools) {
      const [port] = freePorts(1);
      const run = await tool.start([{
        name: "slow",
        target: "svc/echo",
        ports: [{ local: port, remote: 80 }],
      }]);
      started.set(tool.id, { run, port });
      // warm the path once with a small transfer
      await download(port, 1_000_000);
    }
    await sleep(1_000);
    ctx.log(
      `  slow reader: ${ctx.options.slowMb} MB at 1 MB/s through ${[...started.keys()].join(", ")} at once`,
    );
    await Promise.all([...started].map(async ([id, { run, port }]) => {
      const base = totalRss(run.pids());
      let top = base;
      const result = await slowDownload(port, slowBytes, 1_000_000, (bytes) => {
        const rss = totalRss(run.pids());
        top = Math.max(top, rss);
        if (id === "kf" && Math.round(bytes / 1e6) % 30 === 0) {
          ctx.log(`    ${(bytes / 1e6).toFixed(0)} MB read; kf RSS ${(rss / MB).toFixed(0)} MB`);
        }
      });
      top = Math.max(top, totalRss(run.pids()));
      growth[id] = (top - base) / MB;
      peak[id] = top / MB;
      slowOk[id] = result.ok ? 0 : 1;
      if (!result.ok) notes.push(`slow reader through ${id} failed: ${result.error}`);
      ctx.log(
        `  slow reader ${id}: RSS ${(base / MB).toFixed(0)} -> peak ${(top / MB).toFixed(0)} MB, ${
          result.ok ? "complete" : result.error
        }`,
      );
    }));
  } finally {
    await Promise.all([...started.values()].map((s) => s.run.stop()));
  }

  const loaded = rssLoaded.medians();
  const rows: Row[] = [
    {
      scenario: 7,
      metric: `RSS, ${forwardCount} forwards + ${connectionCount} open connections`,
      unit: "MB",
      better: "lower",
      values: loaded,
      samples: rssLoaded.values,
      goal: "< 150 MB",
      met: loaded.kf !== undefined && loaded.kf < 150,
      note: "kubectl: sum over its processes (one per forward)",
    },
    {
      scenario: 7,
      metric: `RSS, ${forwardCount} forwards, no connections`,
      unit: "MB",
      better: "lower",
      values: rssIdle.medians(),
      samples: rssIdle.values,
    },
    {
      scenario: 7,
      metric: `CPU time to start ${forwardCount} forwards + open ${connectionCount} connections`,
      unit: "s",
      better: "lower",
      values: cpuStart.medians(),
      samples: cpuStart.values,
    },
    {
      scenario: 7,
      metric: `CPU while holding ${connectionCount} idle connections`,
      unit: "% core",
      better: "lower",
      values: cpuHold.medians(),
      samples: cpuHold.values,
      goal: "<= kubectl + 0.5 % core",
      met: (() => {
        const v = cpuHold.medians();
        return v.kf !== undefined && v.kubectl !== undefined && v.kf <= v.kubectl + 0.5;
      })(),
    },
    {
      scenario: 7,
      metric: `RSS growth while a client reads ${ctx.options.slowMb} MB at 1 MB/s`,
      unit: "MB",
      better: "lower",
      values: growth,
      goal: "< 100 MB",
      met: growth.kf !== undefined && growth.kf < 100 && slowOk.kf === 0,
    },
    {
      scenario: 7,
      metric: "peak RSS during the slow read",
      unit: "MB",
      better: "lower",
      values: peak,
    },
  ];
  return {
    id: 7,
    title: "Resources",
    method:
      `RSS (VmRSS) and CPU (utime+stime) from /proc/<pid>; ${forwardCount} forwards of svc/echo:9000 (kubectl: one ` +
      `process per forward, summed), ${connectionCount} connections opened round-robin with one echo round trip each, ` +
      `then held ${holdSeconds} s. Slow reader: one GET /bytes of ${ctx.options.slowMb} MB per tool, all tools at ` +
      "once, read at 1 MB/s in 64 KiB reads; RSS sampled every second, growth = peak - RSS before the read",
    reps,
    rows,
    notes: [
      ...notes,
      ...(ctx.options.slowMb !== 500
        ? [`slow reader ran with --slow-mb ${ctx.options.slowMb} (the issue's figure is 500)`]
        : []),
    ],
  };
}
