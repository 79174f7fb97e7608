/** The options that say what to forward and how, shared by `kf forward` and `kf exec`: one list, one wording. */

import { Option } from "@commander-js/extra-typings";

/** Their values as commander hands them over. */
export interface ForwardTargetOptions {
  file?: string[];
  only?: string;
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  address?: string;
  selector?: string;
  name?: string;
  transport?: string;
  protocol?: string;
  balance?: string;
  logRequests?: boolean;
  podWaitTimeout?: string;
  streamIdleTimeout?: string;
}

/**
 * Adds them to a command. Not typed through commander's chain on purpose: a generic builder that returned
 * the chained type made `deno check` take minutes; the action reads them as ForwardTargetOptions.
 */
export function addForwardOptions(
  command: { addOption(option: Option): unknown },
  help: { name: string; logRequests: string },
): void {
  const options = [
    new Option("-f, --file <path>", "config file (repeatable)")
      .argParser((value: string, previous: string[] = []) => [...previous, value]),
    new Option("--only <names>", "with -f: run only these forwards (comma-separated)"),
    new Option("-n, --namespace <ns>", "namespace (default: the context's)"),
    new Option("--context <name>", "kubeconfig context (default: current-context)"),
    new Option("--kubeconfig <path>", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"),
    new Option(
      "--address <ips>",
      "local addresses to listen on, comma-separated (default: localhost = 127.0.0.1 and ::1)",
    ),
    new Option("-l, --selector <selector>", "pick pods by label selector instead of a target"),
    new Option("--name <name>", help.name),
    new Option(
      "--transport <kind>",
      "auto (WebSocket, then pooled SPDY for HTTP; SPDY when RBAC allows only create), websocket or spdy",
    ),
    new Option("--protocol <kind>", "auto (HTTP/1.x handled per request, anything else TCP), http or tcp"),
    new Option("--balance <kind>", "HTTP requests: sticky (one pod while ready) or round-robin"),
    new Option("--log-requests", help.logRequests),
    new Option("--pod-wait-timeout <duration>", "how long a new connection waits for a ready pod (e.g. 30s)"),
    new Option(
      "--stream-idle-timeout <duration>",
      "shortest idle timeout on the way to pods (kubelet, load balancer); idle connections get " +
        "keep-alive traffic at a third of it (default 5m)",
    ),
  ];
  for (const option of options) command.addOption(option as Option);
}
