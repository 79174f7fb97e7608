/**
 * What HTTP handling costs: kf with `--protocol auto` (HTTP/1.x framed per request) against the same kf
 * with `--protocol tcp` (opaque bytes), on the local test cluster, interleaved per repetition:
 *
 * - `ab -k -c 20 -n N` (keep-alive, 20 connections) against GET /bytes?n=100: requests per second
 * - one 1 GiB download (GET /bytes, a new connection): MiB/s
 *
 * Goal: HTTP handling costs at most 5 % in both. A second `--protocol tcp` forward runs alongside as an A/A
 * control (tcp-b against tcp): its ratio is the noise of the machine in the same run. Writes
 * bench/results/http_cost.md and .json.
 *
 *   deno run -A bench/http_cost.ts [--reps 5] [--requests 20000] [--mib 1024] [--context kf-admin]
 *     [--only ab|download]
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { download } from "./lib/net.ts";
import { median } from "./lib/stats.ts";
import { kfCommand } from "./lib/tools.ts";
import { loadCluster, REPO } from "./lib/cluster.ts";
import { clkTck, cpuSeconds } from "./lib/procfs.ts";

const { values: flags } = parseArgs({
  options: {
    reps: { type: "string", default: "5" },
    requests: { type: "string", default: "20000" },
    mib: { type: "string", default: "1024" },
    context: { type: "string" },
    only: { type: "string" },
    out: { type: "string", default: join(REPO, "bench", "results") },
  },
});
const reps = Number(flags.reps);
const requests = Number(flags.requests);
const bytes = Number(flags.mib) * 1024 * 1024;
const cluster = loadCluster();
if (!cluster) throw new Error("no test cluster: run `deno task cluster:up` first");
const clusterEnv = cluster.env;
/** tcp-b: a second `--protocol tcp` forward, the A/A control. */
type Mode = "auto" | "tcp" | "tcp-b";
const MODES: Mode[] = ["auto", "tcp", "tcp-b"];
const runAb = flags.only !== "download";
const runDownload = flags.only !== "ab";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startKf(mode: Mode): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const port = freePort();
  const [command, ...args] = kfCommand();
  const context = flags.context ? ["--context", flags.context] : [];
  const protocol = mode === "tcp-b" ? "tcp" : mode;
  const child = new Deno.Command(command, {
    args: [...args, "forward", "svc/echo", `${port}:80`, "--protocol", protocol, ...context],
    env: { ...clusterEnv, KF_STATE_DIR: Deno.makeTempDirSync({ prefix: "kf-bench-state-" }) },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = Date.now() + 30_000;
  while (!/ready pod=/.test(seen)) {
    if (Date.now() > deadline) throw new Error(`kf --protocol ${mode} did not become ready: ${seen}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`kf exited: ${seen}`);
    seen += value;
  }
  // keep draining so kf never blocks on a full pipe
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});
  return {
    port,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

async function abRate(port: number): Promise<number> {
  const out = await new Deno.Command("ab", {
    args: ["-k", "-c", "20", "-n", String(requests), `http://127.0.0.1:${port}/bytes?n=100`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(text)?.[1] ?? NaN);
  const rate = Number(/Requests per second:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  if (out.code !== 0 || failed !== 0 || Number.isNaN(rate)) throw new Error(`ab failed: ${text.slice(-500)}`);
  return rate;
}

/** Per mode: the rates, and kf's own CPU time per request / per MiB (user + system, from /proc). */
const samples: Record<
  Mode,
  { rps: number[]; mibps: number[]; cpuPerRequest: number[]; cpuPerMib: number[] }
> = {
  auto: { rps: [], mibps: [], cpuPerRequest: [], cpuPerMib: [] },
  tcp: { rps: [], mibps: [], cpuPerRequest: [], cpuPerMib: [] },
  "tcp-b": { rps: [], mibps: [], cpuPerRequest: [], cpuPerMib: [] },
};
const ticks = await clkTck();
const load = Deno.loadavg();
const forwards = { auto: await startKf("auto"), tcp: await startKf("tcp"), "tcp-b": await startKf("tcp-b") };
try {
  for (const mode of MODES) {
    await abRate(forwards[mode].port); // warm-up
    await download(forwards[mode].port, 1024 * 1024);
  }
  // each measurement type in its own interleaved round, so one never runs in the other's aftermath (20
  // upstreams closing after ab) for one mode only
  const round = async (what: "ab" | "download") => {
    for (let rep = 0; rep < reps; rep++) {
      // rotate which mode goes first, so a drift in machine load does not favour one
      const order = [...MODES.slice(rep % MODES.length), ...MODES.slice(0, rep % MODES.length)];
      for (const mode of order) {
        const cpuBefore = cpuSeconds(forwards[mode].pid, ticks);
        if (what === "ab") {
          const rps = await abRate(forwards[mode].port);
          const us = (cpuSeconds(forwards[mode].pid, ticks) - cpuBefore) * 1e6 / requests;
          samples[mode].rps.push(rps);
          samples[mode].cpuPerRequest.push(us);
          console.log(`rep ${rep + 1} ${mode}: ${rps.toFixed(0)} req/s, kf CPU ${us.toFixed(0)} us/request`);
        } else {
          const d = await download(forwards[mode].port, bytes);
          if (!d.ok) throw new Error(`download failed: ${d.error}`);
          const mib = bytes / 1024 / 1024;
          const mibps = mib / (d.ms / 1000);
          const ms = (cpuSeconds(forwards[mode].pid, ticks) - cpuBefore) * 1e3 / mib;
          samples[mode].mibps.push(mibps);
          samples[mode].cpuPerMib.push(ms);
          console.log(`rep ${rep + 1} ${mode}: ${mibps.toFixed(0)} MiB/s, kf CPU ${ms.toFixed(2)} ms/MiB`);
        }
      }
    }
  };
  if (runAb) await round("ab");
  if (runDownload) await round("download");
} finally {
  await Promise.all(Object.values(forwards).map((f) => f.stop()));
}

const row = (metric: string, unit: string, of: (mode: Mode) => number[], lowerIsBetter = false) => {
  const a = median(of("auto"));
  const t = median(of("tcp"));
  const b = median(of("tcp-b"));
  const cost = (lowerIsBetter ? a / t - 1 : 1 - a / t) * 100;
  return {
    metric,
    unit,
    auto: a,
    tcp: t,
    tcpB: b,
    ratio: a / t,
    /** The A/A control: the same code on both sides. */
    controlRatio: b / t,
    costPercent: cost,
    met: cost <= 5,
    samples: { auto: of("auto"), tcp: of("tcp"), "tcp-b": of("tcp-b") },
  };
};
const rows = [
  ...runAb
    ? [
      row(`ab -k -c 20 -n ${requests}, GET /bytes?n=100`, "req/s", (m) => samples[m].rps),
      row("kf CPU per request (ab)", "us", (m) => samples[m].cpuPerRequest, true),
    ]
    : [],
  ...runDownload
    ? [
      row(`download ${flags.mib} MiB, one connection`, "MiB/s", (m) => samples[m].mibps),
      row("kf CPU per MiB (download)", "ms", (m) => samples[m].cpuPerMib, true),
    ]
    : [],
];
/** Figures of 100 and more without decimals, smaller ones (CPU ms per MiB) with two. */
const fixed = (v: number) => v.toFixed(Math.abs(v) >= 100 ? 0 : 2);
const md = [
  "# HTTP handling cost: `--protocol auto` vs `--protocol tcp`",
  "",
  `${new Date().toISOString()}, ${reps} repetitions (median), interleaved; load average at start ${
    load.map((l) => l.toFixed(2)).join(" ")
  }; ${Deno.build.target}`,
  "",
  "| metric | unit | auto (HTTP) | tcp | auto/tcp | cost | <= 5 % | A/A control: tcp-b | tcp-b/tcp |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...rows.map((r) =>
    `| ${r.metric} | ${r.unit} | ${fixed(r.auto)} | ${fixed(r.tcp)} | ${r.ratio.toFixed(3)} | ${
      r.costPercent.toFixed(1)
    } % | ${r.met ? "yes" : "no"} | ${fixed(r.tcpB)} | ${r.controlRatio.toFixed(3)} |`
  ),
  "",
  "Samples (auto / tcp / tcp-b): " +
  rows.map((r) =>
    `${r.metric}: ${r.samples.auto.map(fixed).join(", ")} / ${r.samples.tcp.map(fixed).join(", ")} / ${
      r.samples["tcp-b"].map(fixed).join(", ")
    }`
  ).join("; "),
  "",
  "tcp-b is a second `--protocol tcp` forward measured in the same interleaved rounds: tcp-b/tcp shows how far",
  "two identical forwards differ on this machine in the same run (the noise floor of the auto/tcp ratio). The kf",
  "CPU rows are the forward process's user + system time over the run (/proc), which the load of other processes",
  "on the machine changes much less than the rates; their cost column is auto's extra CPU over tcp's.",
  "",
].join("\n");
Deno.mkdirSync(flags.out!, { recursive: true });
Deno.writeTextFileSync(join(flags.out!, "http_cost.md"), md);
Deno.writeTextFileSync(
  join(flags.out!, "http_cost.json"),
  JSON.stringify({ reps, requests, bytes, load, rows }, null, 2) + "\n",
);
console.log(md);
