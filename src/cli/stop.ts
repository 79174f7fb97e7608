/** `kf stop`: end sessions, or single forwards inside a running session, from any terminal. */

import { Command, Option } from "@commander-js/extra-typings";
import { KfError, UsageError } from "../errors.ts";
import { checkStateDir, resolveStateDir } from "../state/state_dir.ts";
import { type StopOutcome, stopSessions } from "../state/sessions.ts";
import { type CommandIO, defaultIO } from "./io.ts";
import { paragraphs } from "./help.ts";

export function stopCommand(io: CommandIO = defaultIO) {
  return new Command("stop")
    .summary("Stop kf sessions, or single forwards inside one")
    .description(
      paragraphs(
        "Stop kf sessions, or single forwards in a running session.",
        "TARGET is a session id (k3m9qa), a pid, a forward name (api), or ID/NAME when a forward name is used in several sessions. Stopping a session sends SIGTERM, waits --timeout seconds, then SIGKILL. Stopping a forward asks its session over the control socket; the other forwards keep running (stopping the last running forward stops the session). A process is never signalled when it is not the one the state file names (start time or command line differ: PID reuse).",
        "Exit codes: 0 everything stopped (or already gone), 1 a target was unknown or ambiguous, refused or failed, 2 usage error (no targets and no --all).",
      ),
    )
    .argument("[targets...]", "session ids, pids, forward names, or ID/NAME")
    .option("--all", "stop every session")
    .option(
      "--timeout <seconds>",
      "how long to wait after SIGTERM before SIGKILL (default: 5, or the session's --grace + 3 if longer)",
    )
    .option("-o, --output <format>", "text or json", "text")
    .addOption(new Option("--state-dir <dir>", "state directory (default: $KF_STATE_DIR, ...)").hideHelp())
    .action(async (targets, options) => {
      let timeoutMs: number | undefined; // default: per session, see StopSessionsOptions.timeoutMs
      if (options.timeout !== undefined) {
        const seconds = Number(options.timeout);
        if (options.timeout.trim() === "" || !Number.isFinite(seconds) || seconds < 0) {
          throw new UsageError(`Cannot use --timeout ${options.timeout}`, {
            hint: "give seconds, e.g. --timeout 10",
          });
        }
        timeoutMs = seconds * 1000;
      }
      const format = options.output;
      if (format !== "text" && format !== "json") {
        throw new UsageError(`Cannot use output format '${format}'`, { hint: "use -o text or -o json" });
      }
      const outcomes = await runStop(targets, {
        all: options.all ?? false,
        timeoutMs,
        dir: options.stateDir ?? resolveStateDir(),
        io,
        text: format === "text",
      });
      if (format === "json") io.out(JSON.stringify({ outcomes }) + "\n");
      const failed = outcomes.filter((o) => !o.ok);
      if (failed.length > 0) {
        throw new KfError(`Cannot stop ${failed.length} of ${outcomes.length} targets`, {
          hint: "see the lines above; kf ps shows what is still running",
        });
      }
    });
}

async function runStop(
  targets: string[],
  options: { all: boolean; timeoutMs?: number; dir: string; io: CommandIO; text: boolean },
): Promise<StopOutcome[]> {
  const { io, text } = options;
  if (!options.all && targets.length === 0) {
    throw new UsageError("Nothing to stop", {
      hint: "name a session id or forward name (see kf ps), or use --all",
    });
  }
  await checkStateDir(options.dir); // refuses an unsafe dir; a missing one just holds no sessions
  const outcomes = await stopSessions(options.dir, targets, {
    all: options.all,
    timeoutMs: options.timeoutMs,
    onProblem: (p) => io.err(`warning: cannot read session file ${p.file}: ${p.error}\n`),
    // Print as each target finishes, so a slow SIGTERM does not hold back the others' lines.
    onOutcome: text ? (o) => io.out(o.message + "\n") : undefined,
  });
  if (text && options.all && outcomes.length === 0) io.out("No kf sessions running.\n");
  return outcomes;
}
