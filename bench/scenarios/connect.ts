/** 2. Connection setup: time to first byte of `GET /` on new connections, one after the other. */

import { type Ctx, Forwarders, interleave, Samples } from "../lib/context.ts";
import { httpGet } from "../lib/net.ts";
import type { ScenarioResult } from "../lib/report.ts";
import { percentile } from "../lib/stats.ts";
import { echoForward } from "../lib/tools.ts";

export async function connectionSetup(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const count = ctx.options.quick ? 50 : 200;
  const forwarders = new Forwarders(ctx);
  const p50 = new Samples();
  const p99 = new Samples();
  const failures = new Samples();
  const errors = new Set<string>();
  try {
    await forwarders.start(() => echoForward());
    for (const column of forwarders.columns) await httpGet((await forwarders.endpoint(column)).http);
    await interleave(forwarders.columns, ctx.options.reps, async (column, rep) => {
      const { http } = await forwarders.endpoint(column);
      const ttfb: number[] = [];
      let failed = 0;
      for (let i = 0; i < count; i++) {
        const r = await httpGet(http, "/", 10_000);
        if (r.ok) ttfb.push(r.firstByteAt - r.startedAt);
        else {
          failed++;
          errors.add(`${column}: ${r.error}`);
        }
      }
      p50.add(column, percentile(ttfb, 50));
      p99.add(column, percentile(ttfb, 99));
      failures.add(column, failed);
      ctx.log(
        `  rep ${rep + 1} ${column}: p50 ${percentile(ttfb, 50).toFixed(2)} ms, p99 ${
          percentile(ttfb, 99).toFixed(2)
        } ms, ${failed} failed`,
      );
    });
  } finally {
    await forwarders.stop();
  }
  const v50 = p50.medians();
  const v99 = p99.medians();
  return {
    id: 2,
    title: "Connection setup",
    method:
      `${count} new connections one after the other, each \`GET /\` with Connection: close; time from connect() to the ` +
      "first response byte; p50/p99 per repetition, then the median of those",
    reps: ctx.options.reps,
    rows: [
      {
        scenario: 2,
        metric: `time to first byte p50, ${count} sequential connections`,
        unit: "ms",
        better: "lower",
        values: v50,
        samples: p50.values,
        goal: "<= 0.8x kubectl",
        met: v50.kf !== undefined && v50.kubectl !== undefined && v50.kf <= 0.8 * v50.kubectl,
      },
      {
        scenario: 2,
        metric: `time to first byte p99, ${count} sequential connections`,
        unit: "ms",
        better: "lower",
        values: v99,
        samples: p99.values,
        goal: "<= 0.8x kubectl",
        met: v99.kf !== undefined && v99.kubectl !== undefined && v99.kf <= 0.8 * v99.kubectl,
      },
      {
        scenario: 2,
        metric: "failed connections (all repetitions)",
        unit: "count",
        better: "lower",
        values: failures.sums(),
      },
    ],
    notes: [...[...errors].slice(0, 10).map((e) => `error: ${e}`), ...forwarders.notes()],
  };
}
