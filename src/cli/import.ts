/** `kf import kftray FILE.json`: a kf config from another tool's saved forwards, printed to stdout. */

import { Command } from "@commander-js/extra-typings";
import { KfError, UsageError } from "../errors.ts";
import type { CommandIO } from "./io.ts";
import { examples, paragraphs } from "./help.ts";

/** How long one Service lookup may take before the entry keeps its port unchecked. */
const LOOKUP_TIMEOUT_MS = 5_000;

export function importCommand(io: CommandIO) {
  const command = new Command("import")
    .summary("Print a kf config made from another tool's saved forwards (kftray, kftui)")
    .description(
      paragraphs(
        "Print a kf config made from another tool's saved forwards.",
        "Exit codes: 0 printed, 1 no entry could be imported, 2 the file cannot be read or is not an export.",
      ),
    );
  command.addCommand(
    new Command("kftray")
      .summary("Convert a kftray or kftui JSON export (Export Local File)")
      .description(
        paragraphs(
          "Convert a kftray or kftui JSON export (Export Local File) to a kf config on stdout; what cannot be converted is reported on stderr.",
          "alias becomes the forward name, service a svc/ target, workload_type pod with its target a label selector; context, kubeconfig, namespace and local_address carry over. kftray's remote_port is a container port, while kf's svc/ ports are Service ports: each Service is looked up in its context and the Service port whose targetPort is that container port is written (--offline keeps the numbers and says so). proxy and expose workloads and UDP are not supported by kf and are skipped.",
        ),
      )
      .addHelpText(
        "after",
        examples([
          [
            "convert, then run the forwards",
            "kf import kftray configs.json > kf.yaml && kf forward -f kf.yaml",
          ],
        ]),
      )
      .argument("<file>", "the exported JSON file")
      .option("--offline", "do not look up Services; keep remote_port numbers as they are")
      .action(async (file, options) => {
        let text: string;
        try {
          text = await Deno.readTextFile(file);
        } catch (error) {
          throw new UsageError(`Cannot read ${file}: ${(error as Error).message}`, {
            hint: "give the path of a kftray JSON export",
          });
        }
        const { convertKftray, parseKftrayExport, renderKfConfig } = await import("../import/kftray.ts");
        const entries = parseKftrayExport(text, file);
        const lookup = options.offline ? undefined : await serviceLookup();
        try {
          const result = await convertKftray(entries, lookup?.lookup);
          for (const line of result.skipped) io.err(`skipped ${line}\n`);
          for (const line of result.notes) io.err(`note: ${line}\n`);
          if (result.forwards.length === 0) {
            throw new KfError(`No entry of ${file} can be forwarded by kf`, {
              hint: "kf forwards TCP to services and pods; see the reasons above",
            });
          }
          io.out(renderKfConfig(result, file));
        } finally {
          lookup?.close();
        }
      }),
  );
  return command;
}

/** Looks Services up with kf's own client, one client per (kubeconfig, context), loaded only when needed. */
async function serviceLookup() {
  const { KubeClientPool } = await import("../kube/client_pool.ts");
  const { ApiError } = await import("../kube/errors.ts");
  const clients = new KubeClientPool();
  type Service = {
    spec?: {
      selector?: Record<string, string>;
      ports?: { port: number; name?: string; targetPort?: number | string; protocol?: string }[];
    };
  };
  type PodList = {
    items: { spec?: { containers?: { ports?: { name?: string; containerPort: number }[] }[] } }[];
  };
  const lookup = async (
    where: { context?: string; kubeconfig?: string; namespace?: string; service: string },
  ) => {
    const client = clients.get({ context: where.context, kubeconfig: where.kubeconfig });
    const namespace = encodeURIComponent(where.namespace ?? client.defaultNamespace);
    let service: Service;
    try {
      service = await client.getJson<Service>(
        `/api/v1/namespaces/${namespace}/services/${encodeURIComponent(where.service)}`,
        { timeoutMs: LOOKUP_TIMEOUT_MS },
      );
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
    const ports = service.spec?.ports ?? [];
    const namedContainerPorts: Record<string, number> = {};
    const selector = Object.entries(service.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
    if (selector && ports.some((p) => typeof p.targetPort === "string" && !/^\d+$/.test(p.targetPort))) {
      // a named targetPort: its number comes from the pods' container ports
      const pods = await client.getJson<PodList>(`/api/v1/namespaces/${namespace}/pods`, {
        query: { labelSelector: selector, limit: "5" },
        timeoutMs: LOOKUP_TIMEOUT_MS,
      });
      for (const pod of pods.items) {
        for (const container of pod.spec?.containers ?? []) {
          for (const port of container.ports ?? []) {
            if (port.name) namedContainerPorts[port.name] ??= port.containerPort;
          }
        }
      }
    }
    return { ports, namedContainerPorts };
  };
  return { lookup, close: () => clients.close() };
}
