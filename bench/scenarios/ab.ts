/**
 * 11. ApacheBench: a real HTTP client (Debian's apache2-utils `ab`) against `svc/echo`, new connections and
 * keep-alive. 12. Slow neighbour: the keep-alive run again while one client of the same forward reads a
 * 2 GiB download at 1 MB/s; how much of its req/s the forward keeps, and how much its RSS grows.
 */

import { type Ctx, Forwarders, interleave, Samples } from "../lib/context.ts";
import { closeQuietly, connect, writeAll } from "../lib/net.ts";
import { run, sleep } from "../lib/proc.ts";
import { MB, totalRss } from "../lib/procfs.ts";
import type { Column, Row, ScenarioResult } from "../lib/report.ts";
import { echoForward } from "../lib/tools.ts";

const CONCURRENCY = 20;

interface AbResult {
  ok: boolean;
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  error?: string;
}

/** `ab` on PATH, installed with apt-get (apache2-utils) when missing. */
export async function ensureAb(log: (line: string) => void): Promise<void> {
  const present = async () => {
    try {
      return (await run("ab", ["-V"])).code === 0;
    } catch {
      return false;
    }
  };
  if (await present()) return;
  log("  ab not found: installing apache2-utils with apt-get");
  const sudo = Deno.uid() === 0 ? [] : ["sudo"];
  const apt = (args: string[]) =>
    run(sudo[0] ?? "apt-get", [...(sudo.length ? ["apt-get"] : []), ...args], {
      env: { DEBIAN_FRONTEND: "noninteractive" },
    });
  if ((await apt(["install", "-y", "apache2-utils"])).code !== 0) {
    await apt(["update"]);
    await apt(["install", "-y", "apache2-utils"]);
  }
  if (!(await present())) throw new Error("ApacheBench (ab) is missing: apt-get install apache2-utils");
}

/** One ab run against 127.0.0.1:port; percentiles from its CSV (-e), req/s and failures from its report. */
async function ab(port: number, args: string[], csvFile: string): Promise<AbResult> {
  const out = await run("ab", [
    "-q",
    "-s",
    "30",
    "-e",
    csvFile,
    ...args,
    `http://127.0.0.1:${port}/`,
  ]);
  const rps = Number(out.stdout.match(/Requests per second:\s+([\d.]+)/)?.[1]);
  const failed = Number(out.stdout.match(/Failed requests:\s+(\d+)/)?.[1] ?? 0) +
    Number(out.stdout.match(/Non-2xx responses:\s+(\d+)/)?.[1] ?? 0);
  const percentiles = new Map<number, number>();
  try {
    for (const line of Deno.readTextFileSync(csvFile).split("\n").slice(1)) {
      const [p, ms] = line.split(",").map(Number);
      if (Number.isFinite(p) && Number.isFinite(ms)) percentiles.set(p, ms);
    }
  } catch {
    // no CSV: ab failed before writing it
  }
  if (!Number.isFinite(rps)) {
    return {
      ok: false,
      rps: 0,
      p50: NaN,
      p99: NaN,
      failed,
      error: (out.stderr.trim().split("\n").pop() ?? `ab exited ${out.code}`).slice(0, 200),
    };
  }
  return { ok: true, rps, p50: percentiles.get(50) ?? NaN, p99: percentiles.get(99) ?? NaN, failed };
}

export async function apacheBench(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  await ensureAb(ctx.log);
  const quick = ctx.options.quick;
  const runs = [
    { key: "new", label: "new connection per request", args: ["-n", quick ? "500" : "2000"] },
    { key: "keepalive", label: "keep-alive", args: ["-k", "-n", quick ? "1000" : "5000"] },
  ] as const;
  const samples = Object.fromEntries(
    runs.map((
      r,
    ) => [r.key, { rps: new Samples(), p50: new Samples(), p99: new Samples(), failed: new Samples() }]),
  ) as Record<(typeof runs)[number]["key"], Record<"rps" | "p50" | "p99" | "failed", Samples>>;
  const errors: string[] = [];
  const forwarders = new Forwarders(ctx);
  const csv = Deno.makeTempFileSync({ dir: ctx.toolCtx.tempDir, suffix: ".csv" });
  try {
    await forwarders.start(() => echoForward());
    // warm-up: the first connections of a forward open its upstream connections
    for (const column of forwarders.columns) {
      await ab((await forwarders.endpoint(column)).http, ["-n", "200", "-c", String(CONCURRENCY)], csv);
    }
    await interleave(forwarders.columns, ctx.options.reps, async (column: Column, rep) => {
      const { http } = await forwarders.endpoint(column);
      for (const r of runs) {
        const result = await ab(http, [...r.args, "-c", String(CONCURRENCY)], csv);
        const s = samples[r.key];
        if (result.ok) {
          s.rps.add(column, result.rps);
          s.p50.add(column, result.p50);
          s.p99.add(column, result.p99);
        } else errors.push(`rep ${rep + 1} ${column} ${r.label}: ${result.error}`);
        s.failed.add(column, result.failed);
        ctx.log(
          `  rep ${rep + 1} ${column} ${r.label}: ${
            result.rps.toFixed(0)
          } req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, ${result.failed} failed`,
        );
      }
    });
  } finally {
    await forwarders.stop();
  }
  const rows: Row[] = [];
  for (const r of runs) {
    const s = samples[r.key];
    const rps = s.rps.medians();
    const factor = r.key === "new" ? 1.3 : 1.2;
    rows.push(
      {
        scenario: 11,
        metric: `ab ${r.args.join(" ")} -c ${CONCURRENCY} (${r.label}): req/s`,
        unit: "req/s",
        better: "higher",
        values: rps,
        samples: s.rps.values,
        goal: `>= ${factor}x kubectl`,
        met: rps.kf !== undefined && rps.kubectl !== undefined && rps.kf >= factor * rps.kubectl,
      },
      {
        scenario: 11,
        metric: `ab ${r.label}: latency p50`,
        unit: "ms",
        better: "lower",
        values: s.p50.medians(),
        samples: s.p50.values,
      },
      {
        scenario: 11,
        metric: `ab ${r.label}: latency p99`,
        unit: "ms",
        better: "lower",
        values: s.p99.medians(),
        samples: s.p99.values,
      },
      {
        scenario: 11,
        metric: `ab ${r.label}: failed requests (all repetitions)`,
        unit: "count",
        better: "lower",
        values: s.failed.sums(),
      },
    );
  }
  return {
    id: 11,
    title: "ApacheBench",
    method:
      `ApacheBench (apache2-utils) \`ab ${runs[0].args.join(" ")} -c ${CONCURRENCY}\` (a new connection ` +
      `per request) and \`ab ${
        runs[1].args.join(" ")
      } -c ${CONCURRENCY}\` (keep-alive) on GET / of svc/echo; ` +
      "req/s from ab's report, latency percentiles from its CSV (-e); one unmeasured ab -n 200 warm-up per column",
    reps: ctx.options.reps,
    rows,
    notes: [...errors.map((e) => `error: ${e}`), ...forwarders.notes()],
  };
}

/** GET /bytes?n=total read at about 1 MB/s until `stop` aborts: the slow client. */
async function slowReader(port: number, total: number, stop: AbortSignal): Promise<number> {
  let conn: Deno.TcpConn | undefined;
  let bytes = 0;
  try {
    conn = await connect(port);
    await writeAll(
      conn,
      new TextEncoder().encode(`GET /bytes?n=${total} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`),
    );
    const started = performance.now();
    const buffer = new Uint8Array(64 * 1024);
    while (!stop.aborted) {
      const ahead = bytes - ((performance.now() - started) / 1000) * MB;
      if (ahead > 0) await sleep((ahead / MB) * 1000);
      const got = await conn.read(buffer);
      if (got === null) break;
      bytes += got;
    }
  } finally {
    closeQuietly(conn);
  }
  return bytes;
}

export async function slowNeighbour(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  await ensureAb(ctx.log);
  const quick = ctx.options.quick;
  const total = 2 * 1024 * MB;
  const requests = quick ? "1000" : "5000";
  const kept = new Samples();
  const alone = new Samples();
  const beside = new Samples();
  const growth = new Samples();
  const errors: string[] = [];
  const forwarders = new Forwarders(ctx);
  const csv = Deno.makeTempFileSync({ dir: ctx.toolCtx.tempDir, suffix: ".csv" });
  const args = ["-k", "-t", "60", "-n", requests, "-c", String(CONCURRENCY)];
  try {
    await forwarders.start(() => echoForward());
    for (const column of forwarders.columns) {
      await ab((await forwarders.endpoint(column)).http, ["-n", "200", "-c", String(CONCURRENCY)], csv);
    }
    await interleave(forwarders.columns, ctx.options.reps, async (column: Column, rep) => {
      const { http } = await forwarders.endpoint(column);
      const pids = column === "direct" ? [] : forwarders.pids(column);
      const before = await ab(http, args, csv);
      const rss0 = totalRss(pids);
      let peak = rss0;
      const stop = new AbortController();
      const reading = slowReader(http, total, stop.signal).catch((error) => {
        errors.push(`rep ${rep + 1} ${column} slow reader: ${(error as Error).message}`);
        return 0;
      });
      const sampler = setInterval(() => peak = Math.max(peak, totalRss(pids)), 500);
      let during: AbResult;
      try {
        // let the slow reader's buffers fill up first: that is when a shared connection stalls
        await sleep(3_000);
        during = await ab(http, args, csv);
        peak = Math.max(peak, totalRss(pids));
      } finally {
        clearInterval(sampler);
        stop.abort();
      }
      const read = await reading;
      for (const [what, r] of [["alone", before], ["beside the slow reader", during]] as const) {
        if (!r.ok) errors.push(`rep ${rep + 1} ${column} ${what}: ${r.error}`);
      }
      alone.add(column, before.rps);
      beside.add(column, during.rps);
      if (before.rps > 0) kept.add(column, (100 * during.rps) / before.rps);
      if (pids.length) growth.add(column, (peak - rss0) / MB);
      ctx.log(
        `  rep ${rep + 1} ${column}: ${before.rps.toFixed(0)} req/s alone, ${
          during.rps.toFixed(0)
        } beside a 1 MB/s reader (${(read / MB).toFixed(0)} MB read), RSS +${
          ((peak - rss0) / MB).toFixed(1)
        } MB`,
      );
    });
  } finally {
    await forwarders.stop();
  }
  const keptValues = kept.medians();
  const growthValues = growth.medians();
  return {
    id: 12,
    title: "Slow neighbour",
    method:
      `\`ab ${args.join(" ")}\` (keep-alive, ${CONCURRENCY} connections) alone, then again while one more ` +
      `client of the same forward reads GET /bytes?n=${total} at 1 MB/s (started 3 s before, stopped after); ` +
      "share of the req/s kept, and RSS growth (peak sampled every 0.5 s minus RSS before the slow reader)",
    reps: ctx.options.reps,
    rows: [
      {
        scenario: 12,
        metric: "keep-alive req/s kept beside a 1 MB/s reader of 2 GiB",
        unit: "%",
        better: "higher",
        values: keptValues,
        samples: kept.values,
        goal: ">= 90 %",
        met: keptValues.kf !== undefined && keptValues.kf >= 90,
      },
      {
        scenario: 12,
        metric: "keep-alive req/s alone",
        unit: "req/s",
        better: "higher",
        values: alone.medians(),
        samples: alone.values,
      },
      {
        scenario: 12,
        metric: "keep-alive req/s beside the slow reader",
        unit: "req/s",
        better: "higher",
        values: beside.medians(),
        samples: beside.values,
      },
      {
        scenario: 12,
        metric: "RSS growth while the slow reader reads",
        unit: "MB",
        better: "lower",
        values: growthValues,
        samples: growth.values,
        goal: "< 100 MB",
        met: growthValues.kf !== undefined && growthValues.kf < 100,
      },
    ],
    notes: [...errors.slice(0, 10).map((e) => `error: ${e}`), ...forwarders.notes()],
  };
}
