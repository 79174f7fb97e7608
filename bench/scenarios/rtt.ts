/** 3. Small request RTT: 64-byte ping-pongs on one kept connection to the TCP echo. */

import { type Ctx, Forwarders, interleave, Samples } from "../lib/context.ts";
import { pingPong } from "../lib/net.ts";
import type { ScenarioResult } from "../lib/report.ts";
import { percentile } from "../lib/stats.ts";
import { echoForward } from "../lib/tools.ts";

export async function roundTrip(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const count = ctx.options.quick ? 1_000 : 10_000;
  const forwarders = new Forwarders(ctx);
  const p50 = new Samples();
  const p99 = new Samples();
  const errors: string[] = [];
  try {
    await forwarders.start(() => echoForward());
    for (const column of forwarders.columns) await pingPong((await forwarders.endpoint(column)).echo, 100);
    await interleave(forwarders.columns, ctx.options.reps, async (column, rep) => {
      const { echo } = await forwarders.endpoint(column);
      try {
        const rtts = await pingPong(echo, count, 64);
        p50.add(column, percentile(rtts, 50) * 1000);
        p99.add(column, percentile(rtts, 99) * 1000);
        ctx.log(
          `  rep ${rep + 1} ${column}: p50 ${(percentile(rtts, 50) * 1000).toFixed(0)} µs, p99 ${
            (percentile(rtts, 99) * 1000).toFixed(0)
          } µs`,
        );
      } catch (error) {
        errors.push(`rep ${rep + 1} ${column}: ${(error as Error).message}`);
      }
    });
  } finally {
    await forwarders.stop();
  }
  const v50 = p50.medians();
  const v99 = p99.medians();
  const le = (v: Partial<Record<string, number>>) =>
    v.kf !== undefined && v.kubectl !== undefined && v.kf <= v.kubectl;
  return {
    id: 3,
    title: "Small request RTT",
    method:
      `${count} round trips of a 64-byte message on one kept connection to the pod's TCP echo (port 9000)`,
    reps: ctx.options.reps,
    rows: [
      {
        scenario: 3,
        metric: `RTT p50, ${count} ping-pongs`,
        unit: "µs",
        better: "lower",
        values: v50,
        samples: p50.values,
        goal: "<= kubectl",
        met: le(v50),
      },
      {
        scenario: 3,
        metric: `RTT p99, ${count} ping-pongs`,
        unit: "µs",
        better: "lower",
        values: v99,
        samples: p99.values,
        goal: "<= kubectl",
        met: le(v99),
      },
    ],
    notes: [...errors.map((e) => `error: ${e}`), ...forwarders.notes()],
  };
}
