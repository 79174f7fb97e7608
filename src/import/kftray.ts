/**
 * kftray / kftui exported configs (a JSON array of port-forward configs) turned into a kf config.
 *
 * The one real difference: kftray's `remote_port` is a container port, also for services (it resolves
 * the Service's selector and connects to that port on a pod), while kf's `svc/` ports are Service ports
 * mapped through targetPort. So for a service entry the Service is looked up (when a `lookup` is given)
 * and the Service port whose targetPort is that container port is written; a named targetPort is
 * matched against the pods' container ports. Without a lookup, or when none matches, the number is kept
 * and the entry carries a note.
 */

import { stringify } from "yaml";
import { UsageError } from "../errors.ts";

/** One entry of kftray's export, as far as kf reads it (every field is optional in kftray's model). */
export interface KftrayEntry {
  alias?: string;
  service?: string;
  target?: string;
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  local_port?: number;
  remote_port?: number;
  local_address?: string;
  remote_address?: string;
  workload_type?: string;
  protocol?: string;
  domain_enabled?: boolean | string;
  auto_loopback_address?: boolean;
}

/** The Service ports of svc/NAME and the named container ports of its pods; undefined: no such Service. */
export interface ServiceLookup {
  (entry: { context?: string; kubeconfig?: string; namespace?: string; service: string }): Promise<
    { ports: ServicePortInfo[]; namedContainerPorts: Record<string, number> } | undefined
  >;
}

export interface ServicePortInfo {
  port: number;
  name?: string;
  targetPort?: number | string;
  protocol?: string;
}

export interface KfForwardOut {
  name: string;
  target?: string;
  selector?: string;
  context?: string;
  kubeconfig?: string;
  namespace?: string;
  address?: string;
  ports: string[];
}

export interface ImportResult {
  forwards: KfForwardOut[];
  /** Entries not imported, and why (printed on stderr). */
  skipped: string[];
  /** Imported with a caveat (printed on stderr). */
  notes: string[];
}

/** kftray's "use the default kubeconfig" spelling. */
const DEFAULT_KUBECONFIG = "default";
const FORWARD_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** Parses the exported text; anything but an array of objects is a usage error naming the file (exit 2). */
export function parseKftrayExport(text: string, file: string): KftrayEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file}: not valid JSON: ${(error as Error).message}`, {
      hint: "give a file exported by kftray or kftui (Export Local File): a JSON array of configs",
    });
  }
  // kftui also reads a single config object; accept it the same way
  const entries = Array.isArray(data) ? data : data && typeof data === "object" ? [data] : undefined;
  if (!entries) {
    throw new UsageError(`${file}: expected a JSON array of kftray configs, found ${typeof data}`, {
      hint: "give a file exported by kftray or kftui (Export Local File)",
    });
  }
  entries.forEach((entry, i) => {
    if (!entry || typeof entry !== "object" || Array.isArray(entry)) {
      throw new UsageError(`${file}: entry ${i + 1} is not an object`, {
        hint: 'each config is an object like {"service": "api", "local_port": 8080, "remote_port": 80}',
      });
    }
    for (const key of ["local_port", "remote_port"] as const) {
      const value = (entry as Record<string, unknown>)[key];
      if (value !== undefined && value !== null && !(Number.isInteger(value) && (value as number) >= 0)) {
        throw new UsageError(
          `${file}: entry ${i + 1}: ${key} must be a port number, found ${JSON.stringify(value)}`,
        );
      }
    }
  });
  return entries as KftrayEntry[];
}

function present(value: string | undefined | null): string | undefined {
  const text = typeof value === "string" ? value.trim() : "";
  return text === "" ? undefined : text;
}

/** Converts the entries; unsupported ones (proxy, expose, udp, unknown) are skipped with a reason. */
export async function convertKftray(entries: KftrayEntry[], lookup?: ServiceLookup): Promise<ImportResult> {
  const result: ImportResult = { forwards: [], skipped: [], notes: [] };
  const used = new Set<string>();
  for (const [i, entry] of entries.entries()) {
    const label = present(entry.alias) ?? present(entry.service) ?? present(entry.target) ?? `entry ${i + 1}`;
    const workload = (present(entry.workload_type) ?? "service").toLowerCase();
    const protocol = (present(entry.protocol) ?? "tcp").toLowerCase();
    if (workload === "proxy" || workload === "expose") {
      result.skipped.push(
        `${label}: workload_type ${workload} is not supported by kf (it needs a relay pod)`,
      );
      continue;
    }
    if (protocol !== "tcp") {
      result.skipped.push(`${label}: protocol ${protocol} is not supported by kf (TCP only)`);
      continue;
    }
    if (workload !== "service" && workload !== "pod") {
      result.skipped.push(`${label}: unknown workload_type '${entry.workload_type}'`);
      continue;
    }
    const remote = entry.remote_port;
    if (remote === undefined || remote === null || remote === 0) {
      result.skipped.push(`${label}: no remote_port`);
      continue;
    }
    const out: Omit<KfForwardOut, "name" | "ports"> = {};
    const context = present(entry.context);
    if (context) out.context = context;
    const kubeconfig = present(entry.kubeconfig);
    if (kubeconfig && kubeconfig !== DEFAULT_KUBECONFIG) out.kubeconfig = kubeconfig;
    const namespace = present(entry.namespace);
    if (namespace) out.namespace = namespace;
    // kftray's default 127.0.0.1 is left to kf's default, localhost: 127.0.0.1 and ::1
    const address = present(entry.local_address);
    if (address && address !== "127.0.0.1") out.address = address;

    let remotePort: number = remote;
    if (workload === "service") {
      const service = present(entry.service) ?? present(entry.target);
      if (!service) {
        result.skipped.push(`${label}: workload_type service without a service name`);
        continue;
      }
      out.target = `svc/${service}`;
      const mapped = await servicePortFor({ ...out, service }, remote, lookup);
      if (mapped.port !== undefined) remotePort = mapped.port;
      if (mapped.note) result.notes.push(`${label}: ${mapped.note}`);
    } else {
      const selector = present(entry.target);
      if (!selector) {
        result.skipped.push(`${label}: workload_type pod without a target (label selector)`);
        continue;
      }
      out.selector = selector;
    }
    if (entry.auto_loopback_address) {
      result.notes.push(
        `${label}: auto_loopback_address is not supported; listening on ${out.address ?? "127.0.0.1"}`,
      );
    }
    if (entry.domain_enabled === true || entry.domain_enabled === "true") {
      result.notes.push(
        `${label}: domain_enabled (a hosts-file entry for the alias) is not supported; skipped that part`,
      );
    }
    const local = entry.local_port === undefined || entry.local_port === null ? remote : entry.local_port;
    const name = uniqueName(label, used);
    if (name !== label) {
      result.notes.push(`${label}: named ${name} (kf forward names are unique: letters, digits, . _ -)`);
    }
    result.forwards.push({ name, ...out, ports: [`${local}:${remotePort}`] });
  }
  return result;
}

/** A valid, unique kf forward name from the alias: other characters become '-', duplicates get -2, -3... */
function uniqueName(label: string, used: Set<string>): string {
  let base = label.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  if (!FORWARD_NAME.test(base)) base = "forward";
  let name = base;
  for (let n = 2; used.has(name); n++) name = `${base}-${n}`;
  used.add(name);
  return name;
}

/** The Service port kf needs for kftray's container port, or a note on why the number is kept. */
async function servicePortFor(
  where: { context?: string; kubeconfig?: string; namespace?: string; service: string },
  containerPort: number,
  lookup?: ServiceLookup,
): Promise<{ port?: number; note?: string }> {
  const keep = `kept ${containerPort}, which kf reads as a Service port of svc/${where.service}`;
  if (!lookup) {
    return {
      note: `remote_port ${containerPort} is a container port in kftray; not checked (--offline): ${keep}`,
    };
  }
  let found: Awaited<ReturnType<ServiceLookup>>;
  try {
    found = await lookup(where);
  } catch (error) {
    return { note: `could not look up svc/${where.service} (${(error as Error).message}): ${keep}` };
  }
  if (!found) return { note: `svc/${where.service} not found: ${keep}` };
  const tcp = found.ports.filter((p) => (p.protocol ?? "TCP") === "TCP");
  const matches = tcp.filter((p) => {
    const target = p.targetPort ?? p.port;
    if (typeof target === "number" || /^\d+$/.test(String(target))) return Number(target) === containerPort;
    return found.namedContainerPorts[target] === containerPort;
  });
  if (matches.length >= 1) {
    const [first] = matches;
    if (first.port === containerPort) return { port: first.port };
    return {
      port: first.port,
      note: `container port ${containerPort} is behind Service port ${first.port}${
        first.name ? ` (${first.name})` : ""
      }: written as that`,
    };
  }
  if (tcp.some((p) => p.port === containerPort)) {
    return { note: `no Service port targets container port ${containerPort}; ${keep} (it exists as one)` };
  }
  return { note: `no Service port of svc/${where.service} targets container port ${containerPort}: ${keep}` };
}

/** The kf YAML config for the result, with a header naming the source. */
export function renderKfConfig(result: ImportResult, source: string): string {
  const header = `# kf config imported from kftray export ${source}\n# run: kf forward -f THIS_FILE\n`;
  if (result.forwards.length === 0) return header + "forwards: []\n";
  return header + stringify({ forwards: result.forwards }, { lineWidth: 0 });
}
