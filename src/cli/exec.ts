/** `kf exec`: run a command with forwards around it; the forwards live exactly as long as the command. */

import { Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../errors.ts";
import { type CommandIO, defaultIO } from "./io.ts";
import { examples, paragraphs } from "./help.ts";
import { addForwardOptions, type ForwardTargetOptions } from "./forward_options.ts";

/** How long `kf exec` waits for every forward to be ready before it gives up (exit 1). */
const DEFAULT_READY_TIMEOUT = "30s";

export function execCommand(io: CommandIO = defaultIO) {
  const command = new Command("exec")
    .summary("Run a command with forwards around it: start, wait until ready, run, stop")
    .description(
      paragraphs(
        "Start forwards (from -f config files, or one TARGET with PORTS as for kf forward), wait until every one is ready, then run CMD with their local addresses in its environment. When CMD exits the forwards stop and kf exits with CMD's exit code (128+N when a signal N ended it).",
        "For each forward, NAME is its name upper-cased with every character other than A-Z and 0-9 replaced by _ (api-v2 -> API_V2): KF_<NAME>_HOST and KF_<NAME>_PORT are the local address and port of its first port mapping, KF_<NAME>_PORT_<REMOTE> the local port of each mapping by its remote port number or name (KF_API_PORT_80, KF_API_PORT_METRICS).",
        "SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to CMD, and SIGINT too unless kf runs on a terminal (there Ctrl-C already reaches CMD). kf's own messages go to stderr; CMD's output is untouched.",
        "Exit codes: CMD's exit code; 1 a forward did not become ready within --ready-timeout or failed; 2 bad arguments or config; 127 CMD not found.",
      ),
    )
    .addHelpText(
      "after",
      examples([
        [
          "call svc/echo through a free local port",
          "kf exec svc/echo 0:80 -- sh -c 'curl -s http://$KF_ECHO_HOST:$KF_ECHO_PORT/'",
        ],
        [
          "tests against the forwards of a config, variables also in .env.kf",
          "kf exec -f kf.yaml --env-file .env.kf -- npm test",
        ],
      ]),
    )
    .usage("[options] [-f kf.yaml | TARGET PORTS...] -- CMD [ARGS...]")
    .argument("[target]", "svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a pod name")
    .argument("[args...]", "port mappings, then -- and the command to run");
  addForwardOptions(command, {
    name: "name of an ad hoc forward, and so of its variables (default: from the target)",
    logRequests: "report every HTTP request on stderr (method, path, status, pod, duration, bytes)",
  });
  return command
    .option(
      "--ready-timeout <duration>",
      "how long to wait for every forward to be ready",
      DEFAULT_READY_TIMEOUT,
    )
    .option("--env-file <path>", "also write the KF_* variables to this file (dotenv: KEY=value lines)")
    .option("--grace <duration>", "after CMD exits, how long open connections may finish", "2s")
    .addOption(new Option("--state-dir <dir>", "session state directory").hideHelp())
    .action(async (target, args, parsed, command) => {
      const options = parsed as typeof parsed & ForwardTargetOptions;
      const { positionals, argv } = splitCommand(
        [target, ...args].filter((a): a is string => a !== undefined),
        // rawArgs: the command line as given to parse() (public in commander, missing from its typings)
        (command.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? [],
      );
      if (argv.length === 0) {
        throw new UsageError("No command to run", {
          hint: "put it after --, e.g. kf exec svc/api 0:80 -- curl -s http://localhost:$KF_API_PORT/",
        });
      }
      const { exposureWarning, forwardSpecs } = await import("./forward.ts");
      const specs = await forwardSpecs(positionals[0], positionals.slice(1), options);
      for (const spec of specs) {
        const warning = exposureWarning(spec);
        if (warning) io.err(`kf: warning: ${warning}\n`);
      }
      const { runExec } = await import("./exec_run.ts");
      await runExec(specs, argv, {
        io,
        readyTimeout: options.readyTimeout,
        grace: options.grace,
        envFile: options.envFile,
        configFiles: options.file ?? [],
        stateDir: options.stateDir,
      });
    });
}

/**
 * Commander hands kf's operands and the words after `--` over as one list; the words after the first `--`
 * of the raw command line are the command.
 */
export function splitCommand(
  operands: string[],
  rawArgs: string[],
): { positionals: string[]; argv: string[] } {
  const dashes = rawArgs.indexOf("--");
  const count = dashes === -1 ? 0 : rawArgs.length - dashes - 1;
  return {
    positionals: operands.slice(0, operands.length - count),
    argv: operands.slice(operands.length - count),
  };
}
