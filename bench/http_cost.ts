/**
 * What HTTP handling costs: kf with `--protocol auto` (HTTP/1.x framed per request) against the same kf
 * with `--protocol tcp` (opaque bytes), on the local test cluster, interleaved per repetition:
 *
 * - `ab -k -c 20 -n N` (keep-alive, 20 connections) against GET /bytes?n=100: requests per second
 * - one 1 GiB download (GET /bytes, a new connection): MiB/s
 *
 * Goal: HTTP handling costs at most 5 % in both. Writes bench/results/http_cost.md and .json.
 *
 *   deno run -A bench/http_cost.ts [--reps 5] [--requests 20000] [--mib 1024] [--context kf-admin]
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { download } from "./lib/net.ts";
import { median } from "./lib/stats.ts";
import { kfCommand } from "./lib/tools.ts";
import { loadCluster, REPO } from "./lib/cluster.ts";

const { values: flags } = parseArgs({
  options: {
    reps: { type: "string", default: "5" },
    requests: { type: "string", default: "20000" },
    mib: { type: "string", default: "1024" },
    context: { type: "string" },
    out: { type: "string", default: join(REPO, "bench", "results") },
  },
});
const reps = Number(flags.reps);
const requests = Number(flags.requests);
const bytes = Number(flags.mib) * 1024 * 1024;
const cluster = loadCluster();
if (!cluster) throw new Error("no test cluster: run `deno task cluster:up` first");
const clusterEnv = cluster.env;
type Mode = "auto" | "tcp";
const MODES: Mode[] = ["auto", "tcp"];

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startKf(mode: Mode): Promise<{ port: number; stop(): Promise<void> }> {
  const port = freePort();
  const [command, ...args] = kfCommand();
  const context = flags.context ? ["--context", flags.context] : [];
  const child = new Deno.Command(command, {
    args: [...args, "forward", "svc/echo", `${port}:80`, "--protocol", mode, ...context],
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

const samples: Record<Mode, { rps: number[]; mibps: number[] }> = {
  auto: { rps: [], mibps: [] },
  tcp: { rps: [], mibps: [] },
};
const load = Deno.loadavg();
const forwards = { auto: await startKf("auto"), tcp: await startKf("tcp") };
try {
  for (const mode of MODES) {
    await abRate(forwards[mode].port); // warm-up
    await download(forwards[mode].port, 1024 * 1024);
  }
  for (let rep = 0; rep < reps; rep++) {
    // alternate which mode goes first, so a drift in machine load does not favour one
    for (const mode of rep % 2 === 0 ? MODES : [...MODES].reverse()) {
      const rps = await abRate(forwards[mode].port);
      const d = await download(forwards[mode].port, bytes);
      if (!d.ok) throw new Error(`download failed: ${d.error}`);
      const mibps = bytes / 1024 / 1024 / (d.ms / 1000);
      samples[mode].rps.push(rps);
      samples[mode].mibps.push(mibps);
      console.log(`rep ${rep + 1} ${mode}: ${rps.toFixed(0)} req/s, ${mibps.toFixed(0)} MiB/s`);
    }
  }
} finally {
  await forwards.auto.stop();
  await forwards.tcp.stop();
}

const row = (metric: string, unit: string, auto: number[], tcp: number[]) => {
  const a = median(auto);
  const t = median(tcp);
  const cost = (1 - a / t) * 100;
  return {
    metric,
    unit,
    auto: a,
    tcp: t,
    ratio: a / t,
    costPercent: cost,
    met: cost <= 5,
    samples: { auto, tcp },
  };
};
const rows = [
  row(`ab -k -c 20 -n ${requests}, GET /bytes?n=100`, "req/s", samples.auto.rps, samples.tcp.rps),
  row(`download ${flags.mib} MiB, one connection`, "MiB/s", samples.auto.mibps, samples.tcp.mibps),
];
const md = [
  "# HTTP handling cost: `--protocol auto` vs `--protocol tcp`",
  "",
  `${new Date().toISOString()}, ${reps} repetitions (median), interleaved; load average at start ${
    load.map((l) => l.toFixed(2)).join(" ")
  }; ${Deno.build.target}`,
  "",
  "| metric | unit | auto (HTTP) | tcp | auto/tcp | cost | goal <= 5 % |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  ...rows.map((r) =>
    `| ${r.metric} | ${r.unit} | ${r.auto.toFixed(0)} | ${r.tcp.toFixed(0)} | ${r.ratio.toFixed(3)} | ${
      r.costPercent.toFixed(1)
    } % | ${r.met ? "yes" : "no"} |`
  ),
  "",
  "Samples (auto / tcp): " +
  rows.map((r) =>
    `${r.unit}: ${r.samples.auto.map((v) => v.toFixed(0)).join(", ")} / ${
      r.samples.tcp.map((v) => v.toFixed(0)).join(", ")
    }`
  ).join("; "),
  "",
].join("\n");
Deno.mkdirSync(flags.out!, { recursive: true });
Deno.writeTextFileSync(join(flags.out!, "http_cost.md"), md);
Deno.writeTextFileSync(
  join(flags.out!, "http_cost.json"),
  JSON.stringify({ reps, requests, bytes, load, rows }, null, 2) + "\n",
);
console.log(md);
