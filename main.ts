/**
 * kf: Kubernetes port-forwarding that follows pods through restarts. Entry point: runs the command tree of
 * src/cli/program.ts and exits with its code.
 *
 * `kf --version` and a plain `kf ps` (run from prompts, scripts and `watch`) are answered here without
 * loading that tree: commander imports Node's fs and child_process, whose compatibility modules cost Deno
 * ~45 ms to load (measured: `import "node:fs"` alone takes a Deno program from ~25 to ~70 ms). Anything
 * else, including every variant these fast paths do not recognise, goes through commander unchanged.
 */

import { VERSION } from "./src/cli/version_number.ts";
import { defaultIO } from "./src/cli/io.ts";
import { renderOnce } from "./src/cli/ps_listing.ts";
import { resolveStateDir } from "./src/state/state_dir.ts";
import { formatError, KfError } from "./src/errors.ts";

/** The output format of a `kf ps` these paths answer, or undefined for commander to parse it. */
function plainPsFormat(args: readonly string[]): "table" | "json" | undefined {
  if (args[0] !== "ps") return undefined;
  const rest = args.slice(1);
  let format: string | undefined = "table";
  if (rest.length === 2 && (rest[0] === "-o" || rest[0] === "--output")) format = rest[1];
  else if (rest.length === 1 && rest[0].startsWith("--output=")) format = rest[0].slice("--output=".length);
  else if (rest.length === 1 && rest[0].startsWith("-o") && rest[0].length > 2) format = rest[0].slice(2);
  else if (rest.length !== 0) format = undefined;
  return format === "table" || format === "json" ? format : undefined;
}

/** Answers the commands described above; undefined when commander has to. */
async function quickCommand(args: readonly string[]): Promise<number | undefined> {
  // a detached session writes to a log file: only program.ts knows how
  if (Deno.env.get("KF_LOG_FILE")) return undefined;
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    defaultIO.out(`${VERSION}\n`);
    return 0;
  }
  const format = plainPsFormat(args);
  if (!format) return undefined;
  try {
    defaultIO.out(await renderOnce(resolveStateDir(), format, defaultIO));
    return 0;
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    defaultIO.err(`kf: ${formatError(error)}\n`);
    return error instanceof KfError ? error.exitCode : 1;
  }
}

if (import.meta.main) {
  const code = await quickCommand(Deno.args) ??
    await (await import("./src/cli/program.ts")).main(Deno.args);
  Deno.exit(code);
}
