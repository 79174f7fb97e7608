/** The options that say what to forward and how, shared by `kf forward` and `kf exec`. */

import { type Command, Option, type OptionValues } from "@commander-js/extra-typings";

/** Adds -f/--only, the target's namespace/context/kubeconfig, addresses and the per-forward settings. */
export function withForwardOptions<Args extends unknown[], Opts extends OptionValues>(
  command: Command<Args, Opts>,
  nameHelp: string,
) {
  return command
    .option(
      "-f, --file <path>",
      "config file (repeatable)",
      (value, previous: string[] = []) => [...previous, value],
    )
    .option("--only <names>", "with -f: run only these forwards (comma-separated)")
    .option("-n, --namespace <ns>", "namespace (default: the context's)")
    .option("--context <name>", "kubeconfig context (default: current-context)")
    .option("--kubeconfig <path>", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    .option(
      "--address <ips>",
      "local addresses to listen on, comma-separated (default: localhost = 127.0.0.1 and ::1)",
    )
    .option("-l, --selector <selector>", "pick pods by label selector instead of a target")
    .option("--name <name>", nameHelp)
    .addOption(
      new Option(
        "--transport <kind>",
        "auto (WebSocket, then pooled SPDY for HTTP; SPDY when RBAC allows only create), websocket or spdy",
      ),
    )
    .addOption(
      new Option("--protocol <kind>", "auto (HTTP/1.x handled per request, anything else TCP), http or tcp"),
    )
    .addOption(new Option("--balance <kind>", "HTTP requests: sticky (one pod while ready) or round-robin"))
    .option("--log-requests", "report every HTTP request (method, path, status, pod, duration, bytes)")
    .option("--pod-wait-timeout <duration>", "how long a new connection waits for a ready pod (e.g. 30s)")
    .option(
      "--stream-idle-timeout <duration>",
      "shortest idle timeout on the way to pods (kubelet, load balancer); idle connections get keep-alive " +
        "traffic at a third of it (default 5m)",
    );
}
