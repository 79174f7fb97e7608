import { runFuzz } from "../_fuzz.ts";

const TARGETS = new URL("./_fuzz_targets.ts", import.meta.url);

for (const name of ["v4Decoder", "spdyFrames", "spdyHeaderBlock", "spdyHeaderDecompression"]) {
  Deno.test(`fuzz ${name}: no crash, no hang, typed errors only (fixed seed)`, async () => {
    const report = await runFuzz(TARGETS, name);
    console.log(
      `${name}: ${report.iterations} iterations in ${report.elapsedMs.toFixed(0)} ms, ` +
        `${report.rejected} rejected with typed errors (seed ${report.seed})`,
    );
  });
}
