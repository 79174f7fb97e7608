/**
 * The environment `kf exec` gives its command: where each forward listens.
 *
 * NAME is the forward's name upper-cased, every character other than A-Z and 0-9 replaced by "_"
 * (`api-v2` -> `API_V2`). For each forward:
 * - `KF_<NAME>_HOST`: the local address of its first port (a loopback address when it listens on all
 *   interfaces; the IPv4 one when it listens on several)
 * - `KF_<NAME>_PORT`: the local port of its first port mapping
 * - `KF_<NAME>_PORT_<REMOTE>`: the local port for each mapping, by its remote port as written (a number or a
 *   port name, normalised like NAME): `KF_API_PORT_80`, `KF_API_PORT_METRICS`
 */

import { UsageError } from "../errors.ts";
import type { ForwardStatus } from "../forward/status.ts";

/** `api-v2` -> `API_V2`. */
export function envName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}

/** Variables for every forward, in forward and port order; two forwards with the same NAME are a usage error. */
export function forwardEnv(statuses: Pick<ForwardStatus, "name" | "listeners">[]): Record<string, string> {
  const env: Record<string, string> = {};
  const owners = new Map<string, string>();
  for (const status of statuses) {
    const name = envName(status.name);
    const other = owners.get(name);
    if (other !== undefined) {
      throw new UsageError(`Forwards '${other}' and '${status.name}' both give KF_${name}_* variables`, {
        hint: "rename one of them (name: in the config, or --name)",
      });
    }
    owners.set(name, status.name);
    const first = status.listeners[0];
    if (!first) continue;
    env[`KF_${name}_HOST`] = connectableHost(status.listeners.filter((l) => l.port === first.port));
    env[`KF_${name}_PORT`] = String(first.port);
    for (const listener of status.listeners) {
      const key = `KF_${name}_PORT_${envName(String(listener.remote))}`;
      env[key] ??= String(listener.port);
    }
  }
  return env;
}

/** An address a client on this machine can connect to, among the ones one port listens on. */
function connectableHost(listeners: { address: string }[]): string {
  const addresses = listeners.map((l) => l.address);
  const address = addresses.find((a) => !a.includes(":")) ?? addresses[0];
  if (address === "0.0.0.0") return "127.0.0.1";
  if (address === "::") return "::1";
  return address;
}

/** The variables as a dotenv file: `KEY=value` lines (values are addresses and ports: nothing to quote). */
export function dotenv(env: Record<string, string>): string {
  return Object.entries(env).map(([key, value]) => `${key}=${value}\n`).join("");
}
