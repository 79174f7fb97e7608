/** 4. Concurrency: many connections at once, each downloading the same amount. */

import { type Ctx, Forwarders, interleave, Samples } from "../lib/context.ts";
import { download } from "../lib/net.ts";
import type { ScenarioResult } from "../lib/report.ts";
import { echoForward } from "../lib/tools.ts";

export async function concurrency(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const connections = 100;
  const bytes = ctx.options.quick ? 1_000_000 : 10_000_000;
  const forwarders = new Forwarders(ctx);
  const seconds = new Samples();
  const failures = new Samples();
  const errors = new Set<string>();
  const buffers = Array.from({ length: connections }, () => new Uint8Array(256 * 1024));
  try {
    await forwarders.start(() => echoForward());
    for (const column of forwarders.columns) await download((await forwarders.endpoint(column)).http, 1000);
    await interleave(forwarders.columns, ctx.options.reps, async (column, rep) => {
      const { http } = await forwarders.endpoint(column);
      const started = performance.now();
      const results = await Promise.all(buffers.map((buffer) => download(http, bytes, buffer)));
      const total = (performance.now() - started) / 1000;
      const failed = results.filter((r) => !r.ok);
      for (const r of failed) errors.add(`${column}: ${r.error}`);
      seconds.add(column, total);
      failures.add(column, failed.length);
      ctx.log(`  rep ${rep + 1} ${column}: ${total.toFixed(2)} s, ${failed.length} errors`);
    });
  } finally {
    await forwarders.stop();
  }
  const time = seconds.medians();
  const errorCount = failures.sums();
  return {
    id: 4,
    title: "Concurrency",
    method:
      `${connections} connections opened at once, each GET /bytes?n=${bytes}; total time until all finished; an error ` +
      "is a failed connect, a non-200 status or a short body",
    reps: ctx.options.reps,
    rows: [
      {
        scenario: 4,
        metric: `total time, ${connections} x ${bytes / 1e6} MB at once`,
        unit: "s",
        better: "lower",
        values: time,
        samples: seconds.values,
        goal: "<= kubectl",
        met: time.kf !== undefined && time.kubectl !== undefined && time.kf <= time.kubectl,
      },
      {
        scenario: 4,
        metric: `errors (all repetitions, ${connections * ctx.options.reps} connections)`,
        unit: "count",
        better: "lower",
        values: errorCount,
        goal: "0",
        met: errorCount.kf === 0,
      },
    ],
    notes: [...[...errors].slice(0, 10).map((e) => `error: ${e}`), ...forwarders.notes()],
  };
}
