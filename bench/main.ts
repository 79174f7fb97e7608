/**
 * kf's benchmark: kf vs kubectl port-forward (and kftui when installed) on the local test cluster, each
 * scenario interleaved per repetition; results to bench/results/ as JSON, Markdown and SVG.
 *
 *   deno task bench                       full run (~30 min)
 *   deno task bench --quick               small sizes, for a CI smoke run (< 3 min)
 *   deno task bench --only 1,3 --reps 7   some scenarios
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { clusterUp, Kube, loadCluster, REPO } from "./lib/cluster.ts";
import type { BenchOptions, Ctx } from "./lib/context.ts";
import { describeMachine } from "./lib/machine.ts";
import { killAll } from "./lib/proc.ts";
import { markdown, ratio, type Results, type ScenarioResult } from "./lib/report.ts";
import { round } from "./lib/stats.ts";
import { chart } from "./lib/svg.ts";
import {
  findKftui,
  kfCommand,
  kfTool,
  kftuiTool,
  kftuiVersion,
  kubectlTool,
  type Tool,
} from "./lib/tools.ts";
import { throughput } from "./scenarios/throughput.ts";
import { connectionSetup } from "./scenarios/connect.ts";
import { roundTrip } from "./scenarios/rtt.ts";
import { concurrency } from "./scenarios/concurrency.ts";
import { churn } from "./scenarios/churn.ts";
import { apiLoad } from "./scenarios/api_load.ts";
import { resources } from "./scenarios/resources.ts";
import { startup } from "./scenarios/startup.ts";
import { artifact } from "./scenarios/artifact.ts";
import { realServers } from "./scenarios/backends.ts";
import { apacheBench, slowNeighbour } from "./scenarios/ab.ts";
import { httpCost } from "./scenarios/http_cost.ts";

type Scenario = (ctx: Ctx) => Promise<Omit<ScenarioResult, "seconds">>;

const SCENARIOS: [number, string, Scenario][] = [
  [1, "Bulk throughput", throughput],
  [2, "Connection setup", connectionSetup],
  [3, "Small request RTT", roundTrip],
  [4, "Concurrency", concurrency],
  [5, "Churn", churn],
  [6, "API load", apiLoad],
  [7, "Resources", resources],
  [8, "Startup", startup],
  [9, "Real servers", realServers],
  [10, "Shipped artifact", artifact],
  [11, "ApacheBench", apacheBench],
  [12, "Slow neighbour", slowNeighbour],
  [13, "HTTP handling cost", httpCost],
];

const HELP = `Usage: deno task bench [options]

  --quick              small sizes and few repetitions (CI smoke run, < 3 min); writes results/quick.*
  --only 1,3           run only these scenarios (1-13); writes results/partial.*
  --reps N             repetitions per scenario (default 5; --quick: 2)
  --idle-seconds N     idle window of scenario 6 (default 300; --quick: 15)
  --slow-mb N          size of the slow-reader download of scenario 7 (default 500; --quick: 5)
  --namespace NS       namespace for the bench's own copy of the demo workload (default kf-bench)
  --context NAME       kubeconfig context for all tools (default kf-admin)
  --kf-transport T     kf's transport: auto (default), websocket or spdy
  --kf-bin PATH        run kf from this binary (e.g. dist/kf from \`deno task compile\`) instead of deno run
  --out DIR            results directory (default bench/results)
  --name NAME          results file name (default latest, quick or partial)
  --no-cluster-up      do not run tests/cluster/up.sh first
`;

function parseOptions(args: string[]): BenchOptions & { name: string } {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      reps: { type: "string" },
      "idle-seconds": { type: "string" },
      "slow-mb": { type: "string" },
      namespace: { type: "string", default: "kf-bench" },
      context: { type: "string", default: "kf-admin" },
      "kf-bin": { type: "string" },
      "kf-transport": { type: "string" },
      out: { type: "string", default: join(REPO, "bench", "results") },
      name: { type: "string" },
      "no-cluster-up": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const number = (text: string | undefined, fallback: number, what: string) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what} needs a positive number, got '${text}'`);
    return n;
  };
  const only = values.only?.split(",").map((s) => Number(s.trim()));
  if (only?.some((n) => !SCENARIOS.some(([id]) => id === n))) {
    throw new Error(`--only takes 1-${SCENARIOS.length}, got '${values.only}'`);
  }
  const quick = values.quick;
  return {
    quick,
    only,
    reps: Math.round(number(values.reps, quick ? 2 : 5, "reps")),
    idleSeconds: number(values["idle-seconds"], quick ? 15 : 300, "idle-seconds"),
    slowMb: number(values["slow-mb"], quick ? 5 : 500, "slow-mb"),
    namespace: values.namespace,
    context: values.context,
    kfBin: values["kf-bin"],
    kfTransport: values["kf-transport"],
    outDir: values.out,
    clusterUp: !values["no-cluster-up"],
    name: values.name ?? (only ? "partial" : quick ? "quick" : "latest"),
  };
}

function log(line: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
}

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const startedAt = new Date();
  const t0 = performance.now();
  const cluster = options.clusterUp ? await clusterUp(log) : loadCluster();
  if (!cluster) throw new Error("No test cluster: run `deno task cluster:up` first");
  const kube = new Kube(cluster, options.namespace, options.context);
  log(`namespace ${options.namespace}: deploying the demo workload (Deployment + Service echo)`);
  await kube.ensureWorkload();

  const tempDir = Deno.makeTempDirSync({ prefix: "kf-bench-" });
  const toolCtx = { kube, kfCommand: kfCommand(options.kfBin), tempDir, kfTransport: options.kfTransport };
  const versions = await kube.versions();
  const kftuiBinary = findKftui();
  const kftuiVersionText = kftuiBinary ? await kftuiVersion(kftuiBinary) : "";
  const kftuiNote = kftuiBinary
    ? `kftui ${kftuiVersionText} (${kftuiBinary})`
    : "kftui not installed (cargo install kftui; see bench/README.md): its column is empty";
  log(kftuiNote);
  const machine = await describeMachine(kube, kftuiBinary ? kftuiVersionText : "not installed");
  const toolsFor = (kube: Kube): Tool[] => {
    const c = { ...toolCtx, kube };
    const tools = [kfTool(c, machine.kf), kubectlTool(c, versions.kubectl)];
    if (kftuiBinary) tools.push(kftuiTool(c, kftuiBinary, kftuiVersionText));
    return tools;
  };
  const ctx: Ctx = { options, kube, tools: toolsFor(kube), toolCtx, toolsFor, log };

  const scenarios: ScenarioResult[] = [];
  for (const [id, title, scenario] of SCENARIOS) {
    if (options.only && !options.only.includes(id)) continue;
    log(`scenario ${id}: ${title}`);
    const s0 = performance.now();
    try {
      scenarios.push({ ...await scenario(ctx), seconds: (performance.now() - s0) / 1000 });
    } catch (error) {
      const message = (error as Error).stack ?? String(error);
      log(`scenario ${id} failed: ${message}`);
      scenarios.push({
        id,
        title,
        method: "",
        reps: 0,
        rows: [],
        notes: [],
        error: message,
        seconds: (performance.now() - s0) / 1000,
      });
      killAll();
    }
    await kube.resetEcho().catch((error) => log(`reset failed: ${error}`));
  }

  const { name, ...rest } = options;
  const results: Results = {
    machine,
    command: `deno task bench ${Deno.args.join(" ")}`.trim(),
    options: { ...rest, name },
    tools: { kftui: { installed: !!kftuiBinary, note: kftuiNote } },
    startedAt: startedAt.toISOString(),
    seconds: (performance.now() - t0) / 1000,
    scenarios,
  };
  Deno.mkdirSync(options.outDir, { recursive: true });
  const base = join(options.outDir, name);
  Deno.writeTextFileSync(`${base}.json`, JSON.stringify(results, null, 2) + "\n");
  Deno.writeTextFileSync(`${base}.md`, markdown(results, `${name}.svg`));
  Deno.writeTextFileSync(`${base}.svg`, chart(results));
  Deno.removeSync(tempDir, { recursive: true });

  console.log("\n" + summary(results));
  log(`results: ${base}.{json,md,svg} (${Math.round(results.seconds)} s)`);
  return scenarios.some((s) => s.error) ? 1 : 0;
}

/** The closing note: every kf/kubectl ratio and every missed goal. */
function summary(results: Results): string {
  const lines = ["Ratios kf/kubectl:"];
  for (const s of results.scenarios) {
    if (s.error) lines.push(`  ${s.id}. ${s.title}: FAILED (${s.error.split("\n")[0]})`);
    for (const row of s.rows) {
      const r = ratio(row);
      const values = Object.entries(row.values).map(([k, v]) => `${k} ${round(v)}`).join(", ");
      const goal = row.met === undefined
        ? ""
        : row.met
        ? `  [goal ${row.goal}: met]`
        : `  [goal ${row.goal}: MISSED]`;
      lines.push(
        `  ${s.id}. ${row.metric} (${row.unit}): ${values}${
          r === undefined ? "" : `; ratio ${r.toFixed(2)}`
        }${goal}`,
      );
    }
  }
  const missed = results.scenarios.flatMap((s) => s.rows.filter((r) => r.met === false));
  lines.push(missed.length ? `Goals missed (${missed.length}):` : "All goals met.");
  for (const row of missed) lines.push(`  ${row.scenario}. ${row.metric}: goal ${row.goal}`);
  lines.push(results.tools.kftui.note);
  return lines.join("\n");
}

if (import.meta.main) {
  const onSignal = () => {
    killAll();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let code = 1;
  try {
    code = await main();
  } catch (error) {
    console.error(`bench: ${(error as Error).message}`);
  } finally {
    killAll();
  }
  Deno.exit(code);
}
