/** `kf ps`: the running kf sessions and their forwards, as a table or JSON, once or refreshed in place. */

import { Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../errors.ts";
import { paragraphs } from "./help.ts";
import { resolveStateDir } from "../state/state_dir.ts";
import { type CommandIO, defaultIO } from "./io.ts";
import { renderOnce, watch } from "./ps_listing.ts";

export function psCommand(io: CommandIO = defaultIO) {
  return new Command("ps")
    .summary("List running kf sessions and their forwards")
    .description(
      paragraphs(
        "List running kf sessions and their forwards.",
        "A session whose process died (dead), or whose pid now belongs to another process (stale, PID reuse), is shown once and its state file removed.",
        "Exit codes: 0 listed (also when nothing runs), 1 the state directory cannot be used, 2 usage error.",
      ),
    )
    .option("-o, --output <format>", "table or json", "table")
    .option("-w, --watch", "redraw every second until Ctrl-C (with -o json: one JSON document per line)")
    .addOption(new Option("--state-dir <dir>", "state directory (default: $KF_STATE_DIR, ...)").hideHelp())
    .action(async (options) => {
      const format = options.output;
      if (format !== "table" && format !== "json") {
        throw new UsageError(`Cannot use output format '${format}'`, { hint: "use -o table or -o json" });
      }
      const dir = options.stateDir ?? resolveStateDir();
      if (!options.watch) {
        io.out(await renderOnce(dir, format, io));
        return;
      }
      await watch(dir, format, io);
    });
}
