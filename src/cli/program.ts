/** The kf command tree (commander): every command, its help and its exit codes. main.ts runs it. */

import process from "node:process";
import { Command, CommanderError, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { formatError, KfError } from "../errors.ts";
import { type CommandIO, defaultIO } from "./io.ts";
import { psCommand } from "./ps.ts";
import { stopCommand } from "./stop.ts";
import { forwardCommand } from "./forward.ts";
import { VERSION } from "./version_number.ts";
import { versionCommand } from "./version.ts";
import { execCommand } from "./exec.ts";
import { ExitWith } from "./exit.ts";
import { completeCommand, completionCommand } from "./completion.ts";
import { importCommand } from "./import.ts";
import { paragraphs } from "./help.ts";

/** A detached session writes to its log file instead of a terminal. */
function processIO(): CommandIO {
  const logFile = Deno.env.get("KF_LOG_FILE");
  if (!logFile) return defaultIO;
  const file = Deno.openSync(logFile, { append: true, create: true, mode: 0o600 });
  const write = (text: string) => {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
  };
  return { out: write, err: write };
}

/**
 * Help is wrapped by commander at the terminal's width (descriptions are written as plain paragraphs for
 * that); without a terminal at $COLUMNS, else 80. kf writes no colours, so NO_COLOR needs nothing more.
 */
function helpWidth(file: { isTerminal(): boolean }): number {
  try {
    const columns = file.isTerminal() ? Deno.consoleSize().columns : 0;
    if (columns > 0) return columns;
  } catch {
    // no console size (e.g. a pseudo-terminal without one): fall through
  }
  const columns = Number(Deno.env.get("COLUMNS"));
  return Number.isInteger(columns) && columns > 20 ? columns : 80;
}

const outputConfiguration = (io: CommandIO) => ({
  writeOut: io.out,
  writeErr: io.err,
  getOutHelpWidth: () => helpWidth(Deno.stdout),
  getErrHelpWidth: () => helpWidth(Deno.stderr),
  getOutHasColors: () => false,
  getErrHasColors: () => false,
});

/**
 * Every command writes through io, wraps at the terminal width and exits through main() (exitOverride).
 * Subcommands are listed by name only, so their summaries get the width to wrap in.
 */
function configureTree(command: CommandUnknownOpts, io: CommandIO): void {
  command.configureOutput(outputConfiguration(io)).exitOverride().configureHelp({
    subcommandTerm: (sub) => [sub.name(), ...sub.aliases()].join("|"),
  });
  for (const sub of command.commands) configureTree(sub, io);
}

export function buildProgram(io: CommandIO): Command {
  // the kubectl plugin launcher (kubectl-kf) sets "kubectl kf", so usage lines show what the user typed
  const program = new Command(Deno.env.get("KF_PROGRAM_NAME") || "kf")
    .description(
      paragraphs(
        "Kubernetes port-forwarding that survives pod restarts, rollouts, sleep and VPN drops.",
        "Exit codes: 0 success, 1 runtime failure (no forward could start, stop failed), 2 usage or config error.",
      ),
    )
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)");
  const commands = [
    forwardCommand(io),
    execCommand(io),
    psCommand(io),
    stopCommand(io),
    importCommand(io),
    versionCommand(io),
    completionCommand(io, () => program as never),
  ];
  for (const command of commands) program.addCommand(command as never);
  program.addCommand(completeCommand(io, () => program as never) as never, { hidden: true });
  configureTree(program as never, io);
  return program;
}

export async function main(args: string[]): Promise<number> {
  // client-node's dependencies use node's deprecated punycode; the warning means nothing to kf's users
  process.noDeprecation = true;
  const io = processIO();
  try {
    await buildProgram(io).parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    // `kf ... | head` closing the pipe early is normal, not an error
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    // the command already reported what happened (kf exec: the exit code of the command it ran)
    if (error instanceof ExitWith) return error.code;
    if (error instanceof CommanderError) {
      // help and version end with code 0; usage mistakes with 2 (commander already printed them)
      return error.exitCode === 0 ? 0 : 2;
    }
    io.err(`kf: ${formatError(error)}\n`);
    return error instanceof KfError ? error.exitCode : 1;
  }
}
