/** 1. Bulk throughput: one connection, N bytes each direction (GET /bytes, POST /sink). */

import { type Ctx, Forwarders, interleave, Samples } from "../lib/context.ts";
import { download, upload } from "../lib/net.ts";
import type { Column, Row, ScenarioResult } from "../lib/report.ts";
import { echoForward } from "../lib/tools.ts";

const MiB = 1024 * 1024;

export async function throughput(ctx: Ctx): Promise<Omit<ScenarioResult, "seconds">> {
  const bytes = ctx.options.quick ? 32 * MiB : 1024 * MiB;
  const size = bytes >= 1024 * MiB ? `${bytes / 1024 / MiB} GiB` : `${bytes / MiB} MiB`;
  const forwarders = new Forwarders(ctx);
  const down = new Samples();
  const up = new Samples();
  const errors: string[] = [];
  const buffer = new Uint8Array(MiB);
  try {
    await forwarders.start(() => echoForward());
    // warm-up: one small transfer per column
    for (const column of forwarders.columns) {
      await download((await forwarders.endpoint(column)).http, MiB, buffer);
    }
    await interleave(forwarders.columns, ctx.options.reps, async (column: Column, rep) => {
      const { http } = await forwarders.endpoint(column);
      const d = await download(http, bytes, buffer);
      const u = await upload(http, bytes, buffer);
      for (const [what, r, samples] of [["download", d, down], ["upload", u, up]] as const) {
        if (r.ok) samples.add(column, bytes / MiB / (r.ms / 1000));
        else errors.push(`rep ${rep + 1} ${column} ${what}: ${r.error}`);
      }
      ctx.log(
        `  rep ${rep + 1} ${column}: down ${(bytes / MiB / (d.ms / 1000)).toFixed(0)} MiB/s, up ${
          (bytes / MiB / (u.ms / 1000)).toFixed(0)
        } MiB/s`,
      );
    });
  } finally {
    await forwarders.stop();
  }
  const rows: Row[] = [["download", down], ["upload", up]].map(([what, samples]) => {
    const s = samples as Samples;
    const values = s.medians();
    return {
      scenario: 1,
      metric: `${what} ${size}, one connection`,
      unit: "MiB/s",
      better: "higher" as const,
      values,
      samples: s.values,
      goal: ">= 1.2x kubectl",
      met: values.kf !== undefined && values.kubectl !== undefined
        ? values.kf >= 1.2 * values.kubectl
        : false,
    };
  });
  return {
    id: 1,
    title: "Bulk throughput",
    method:
      `A new connection per transfer: GET /bytes?n=${bytes} (pod -> client) and POST /sink with a ${bytes}-byte body ` +
      "(client -> pod), 1 MiB reads/writes; MiB/s from connect to the last byte / the server's byte count",
    reps: ctx.options.reps,
    rows,
    notes: [...errors.map((e) => `error: ${e}`), ...forwarders.notes()],
  };
}
