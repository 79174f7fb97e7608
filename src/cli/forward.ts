/** `kf forward`: run forwards from config files or one ad hoc target, in the foreground or detached. */

import { Command, Option } from "@commander-js/extra-typings";
// The config loader (and with it the yaml parser) is imported when forwards are built, not for `kf ps` or
// --help: only types and the small setting checks at the top.
import type { ForwardSpec } from "../config/mod.ts";
import { isLoopback } from "../config/settings.ts";
import { parseDuration } from "../config/duration.ts";
import { UsageError } from "../errors.ts";
import { type CommandIO, defaultIO } from "./io.ts";
import { examples, paragraphs } from "./help.ts";
import { addForwardOptions, type ForwardTargetOptions } from "./forward_options.ts";

/** How long open connections may finish after Ctrl-C / SIGTERM. */
const DEFAULT_GRACE = "2s";

export interface ForwardCommandOptions extends ForwardTargetOptions {
  output: string;
  networkSettle?: string;
  grace: string;
  detach?: boolean;
  stateDir?: string;
}

export function forwardCommand(io: CommandIO = defaultIO) {
  const command = new Command("forward")
    .alias("fwd")
    .summary("Forward local ports to pods, following them through restarts and rollouts")
    .description(
      paragraphs(
        "Forward local ports to pods, following them through restarts and rollouts.",
        "TARGET is kubectl-style: svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a pod name; or pick pods by label with -l. Ports: LOCAL:REMOTE, REMOTE (same local port), :REMOTE or 0:REMOTE (any free port); REMOTE may be a port name. For svc/ the remote is the Service port, mapped to each pod's targetPort.",
        "Exit codes: 0 stopped cleanly, 1 no forward could start, 2 bad arguments or config.",
      ),
    )
    .addHelpText(
      "after",
      examples([
        ["every forward of a config file", "kf forward -f kf.yaml"],
        [
          "Service port 80 of svc/api in namespace dev on local port 8080",
          "kf forward svc/api 8080:80 -n dev",
        ],
        ["any ready pod labelled app=db", "kf forward -l app=db 5432"],
        ["any free local port (reported), remote port by name", "kf forward svc/api 0:http"],
        ["in the background: prints the session id and the ports", "kf forward -f kf.yaml --detach"],
      ]),
    )
    .argument("[target]", "svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a pod name")
    .argument("[ports...]", "port mappings, e.g. 8080:80 5432 9000:metrics");
  addForwardOptions(command, {
    name: "name of an ad hoc forward (default: from the target)",
    logRequests: "report every HTTP request (method, path, status, pod, duration, bytes)",
  });
  return command
    .addOption(new Option("-o, --output <format>", "text, or json for NDJSON events").default("text"))
    .option(
      "--network-settle <duration>",
      "after a network change or wake, how long the path must be stable before reconnecting (default 2s)",
    )
    .option("--grace <duration>", "on stop, how long open connections may finish", DEFAULT_GRACE)
    .option("-d, --detach", "run in the background; print the session id and ports once listening")
    .addOption(new Option("--state-dir <dir>", "session state directory").hideHelp())
    .action(async (target, ports, parsed) => {
      const options = parsed as typeof parsed & ForwardTargetOptions;
      if (options.output !== "text" && options.output !== "json") {
        throw new UsageError(`Unknown output format '${options.output}'`, { hint: "use -o text or -o json" });
      }
      const specs = await forwardSpecs(target, ports, options);
      for (const spec of specs) {
        const warning = exposureWarning(spec);
        if (warning) io.err(`kf: warning: ${warning}\n`);
      }
      if (options.detach) {
        const { runDetached } = await import("./detach.ts");
        await runDetached({ io, stateDir: options.stateDir });
        return;
      }
      const { runSession } = await import("./forward_session.ts");
      await runSession(specs, {
        io,
        output: options.output,
        graceMs: parseDuration(options.grace),
        configFiles: options.file ?? [],
        stateDir: options.stateDir,
        networkSettleMs: options.networkSettle === undefined
          ? undefined
          : parseDuration(options.networkSettle),
      });
    });
}

/**
 * One line for a forward that listens beyond loopback (e.g. `--address 0.0.0.0`): anyone who can reach
 * the address can use the forward with kf's credentials, so it is said out loud; undefined otherwise.
 */
export function exposureWarning(spec: ForwardSpec): string | undefined {
  const exposed = spec.addresses.filter((address) => !isLoopback(address));
  if (exposed.length === 0) return undefined;
  return `forward '${spec.name}' listens on ${exposed.join(", ")}, not only loopback: anyone who can reach ` +
    "that address can use the forward";
}

/** Turns the arguments into forward specs; every problem is a UsageError (exit 2). */
export async function forwardSpecs(
  target: string | undefined,
  ports: string[],
  options: Omit<ForwardCommandOptions, "output" | "grace">,
): Promise<ForwardSpec[]> {
  const { adHocForward, loadConfigFiles } = await import("../config/mod.ts");
  if (options.file?.length) {
    if (target || options.selector) {
      throw new UsageError("Give either -f config files or a target, not both", {
        hint: "kf forward -f kf.yaml, or kf forward svc/api 8080:80",
      });
    }
    const only = options.only?.split(",").map((s) => s.trim()).filter(Boolean);
    const config = await loadConfigFiles(options.file, {
      only,
      // validated like the ad hoc flags, then they replace each forward's own value
      overrides: {
        namespace: options.namespace,
        context: options.context,
        kubeconfig: options.kubeconfig,
        address: options.address,
        podWaitTimeout: options.podWaitTimeout,
        streamIdleTimeout: options.streamIdleTimeout,
        transport: options.transport,
        protocol: options.protocol,
        balance: options.balance,
        logRequests: options.logRequests,
      },
    });
    return config.forwards;
  }
  if (options.only) throw new UsageError("--only needs -f", { hint: "kf forward -f kf.yaml --only api,db" });
  // with -l, the first positional is already a port
  const allPorts = options.selector && target ? [target, ...ports] : ports;
  if (!target && !options.selector) {
    throw new UsageError("Nothing to forward", {
      hint: "kf forward svc/NAME LOCAL:REMOTE, kf forward -l app=x PORT, or kf forward -f kf.yaml",
    });
  }
  if (allPorts.length === 0) {
    throw new UsageError("No ports given", { hint: "add LOCAL:REMOTE, e.g. kf forward svc/api 8080:80" });
  }
  return [adHocForward({
    target: options.selector ? undefined : target,
    selector: options.selector,
    ports: allPorts,
    namespace: options.namespace,
    context: options.context,
    kubeconfig: options.kubeconfig,
    address: options.address,
    podWaitTimeout: options.podWaitTimeout,
    streamIdleTimeout: options.streamIdleTimeout,
    name: options.name,
    transport: options.transport,
    protocol: options.protocol,
    balance: options.balance,
    logRequests: options.logRequests,
  })];
}
