/**
 * 9. Real servers: pgbench (PostgreSQL) and redis-benchmark (Redis) through each forwarder to svc/pg and
 * svc/redis in namespace default (tests/cluster/backends.sh runs the servers), kf once per transport, kubectl
 * port-forward, and the server directly; interleaved per repetition.
 */

import { type Ctx, interleave, Samples } from "../lib/context.ts";
import { Kube } from "../lib/cluster.ts";
import { run } from "../lib/proc.ts";
import type { Column, Row, ScenarioResult } from "../lib/report.ts";
import { freePorts, kfTool, type Running } from "../lib/tools.ts";

/** One measured way to reach the servers: kf with a transport, kubectl, or direct. */
type Way = "kf-auto" | "kf-spdy" | "kubectl" | "direct";
const WAYS: Way[] = ["kf-auto", "kf-spdy", "kubectl", "direct"];

interface Ports {
  pg: number;
  redis: number;
}

export async function realServers(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const env = ctx.kube.cluster.env;
  if (!env.KF_BACKEND_PG_PORT || !env.KF_BACKEND_REDIS_PORT) {
    throw new Error("the cluster has no real backends (tests/cluster/backends.sh): run tests/cluster/up.sh");
  }
  const seconds = ctx.options.quick ? 5 : 20;
  const redisRequests = ctx.options.quick ? 20_000 : 100_000;
  const kube = new Kube(ctx.kube.cluster, "default", ctx.kube.context);
  const [kfBase, kubectl] = ctx.toolsFor(kube);
  const tools = {
    "kf-auto": kfBase,
    "kf-spdy": kfTool({ ...ctx.toolCtx, kube, kfTransport: "spdy" }, kfBase.version),
    kubectl,
  };
  const running: Running[] = [];
  const ports = new Map<Way, Ports>();
  ports.set("direct", { pg: Number(env.KF_BACKEND_PG_PORT), redis: Number(env.KF_BACKEND_REDIS_PORT) });
  const tps = new Samples();
  const set = new Samples();
  const get = new Samples();
  // Samples are keyed by report column; kf's transports are told apart by row
  const spdyTps = new Samples();
  const spdySet = new Samples();
  const spdyGet = new Samples();
  const errors: string[] = [];
  try {
    for (const way of ["kf-auto", "kf-spdy", "kubectl"] as const) {
      const [pg, redis] = freePorts(2);
      const forwards = [
        { name: "pg", target: "svc/pg", ports: [{ local: pg, remote: 5432 }] },
        { name: "redis", target: "svc/redis", ports: [{ local: redis, remote: 6379 }] },
      ];
      running.push(await tools[way].start(forwards));
      ports.set(way, { pg, redis });
    }
    const pgEnv = { ...env, PGPASSWORD: "kf" };
    await interleave(WAYS, ctx.options.reps, async (way, rep) => {
      const p = ports.get(way)!;
      const column: Column = way === "kf-auto" || way === "kf-spdy" ? "kf" : way;
      const pgbench = await run("pgbench", [
        "-h",
        "127.0.0.1",
        "-p",
        String(p.pg),
        "-U",
        "kf",
        "-n",
        "-c",
        "8",
        "-j",
        "2",
        "-T",
        String(seconds),
        "kf",
      ], { env: pgEnv });
      const tpsMatch = pgbench.stdout.match(/tps = ([\d.]+)/);
      if (pgbench.code !== 0 || !tpsMatch) {
        errors.push(
          `rep ${rep + 1} ${way} pgbench: ${(pgbench.stderr || pgbench.stdout).trim().slice(0, 200)}`,
        );
      } else (way === "kf-spdy" ? spdyTps : tps).add(column, Number(tpsMatch[1]));
      const redis = await run("redis-benchmark", [
        "-p",
        String(p.redis),
        "-q",
        "-n",
        String(redisRequests),
        "-c",
        "50",
        "-t",
        "set,get",
      ], { env });
      const setMatch = redis.stdout.match(/SET: ([\d.]+) requests per second/);
      const getMatch = redis.stdout.match(/GET: ([\d.]+) requests per second/);
      if (redis.code !== 0 || !setMatch || !getMatch) {
        errors.push(
          `rep ${rep + 1} ${way} redis-benchmark: ${(redis.stderr || redis.stdout).trim().slice(0, 200)}`,
        );
      } else {
        (way === "kf-spdy" ? spdySet : set).add(column, Number(setMatch[1]));
        (way === "kf-spdy" ? spdyGet : get).add(column, Number(getMatch[1]));
      }
      ctx.log(
        `  rep ${rep + 1} ${way}: pgbench ${tpsMatch?.[1] ?? "failed"} tps, redis SET ${
          setMatch?.[1] ?? "-"
        } GET ${getMatch?.[1] ?? "-"} ops/s`,
      );
    });
  } finally {
    await Promise.all(running.map((r) => r.stop()));
  }
  const row = (metric: string, unit: string, kf: Samples, others: Samples): Row => {
    const values = { ...others.medians(), kf: kf.median("kf") };
    return {
      scenario: 9,
      metric,
      unit,
      better: "higher",
      values,
      samples: { ...others.values, kf: kf.values.kf },
      goal: ">= kubectl",
      met: values.kf !== undefined && values.kubectl !== undefined && values.kf >= values.kubectl,
    };
  };
  return {
    id: 9,
    title: "Real servers",
    method:
      `pgbench -c 8 -j 2 -T ${seconds} (TPC-B like, scale 1) to svc/pg and redis-benchmark -q -n ${redisRequests} ` +
      "-c 50 -t set,get to svc/redis (namespace default; PostgreSQL 15 and Redis 7 on loopback behind the fakelet); " +
      "kf once with its default transport and once with --transport spdy, each row's kubectl and direct figures " +
      "are the same runs",
    reps: ctx.options.reps,
    rows: [
      row(`pgbench -c 8 TPS, kf default transport`, "tps", tps, tps),
      row(`pgbench -c 8 TPS, kf spdy`, "tps", spdyTps, tps),
      row(`redis SET ops/s, kf default transport`, "ops/s", set, set),
      row(`redis SET ops/s, kf spdy`, "ops/s", spdySet, set),
      row(`redis GET ops/s, kf default transport`, "ops/s", get, get),
      row(`redis GET ops/s, kf spdy`, "ops/s", spdyGet, get),
    ],
    notes: errors.map((e) => `error: ${e}`),
  };
}
