/**
 * The settings a forward takes from a config file's top level, from its own entry, or from command-line
 * flags, and the one set of rules that validates them wherever they come from. Before this module the
 * YAML reader, the ad hoc flags and the CLI each had their own copy (three transport checks with three
 * messages); a rule lives here once and both callers format its reason their way.
 */

import { isIP } from "node:net";
import { UsageError } from "../errors.ts";
import { expandHome } from "../paths.ts";
import { DurationError, parseDuration } from "./duration.ts";

export type Transport = "auto" | "websocket" | "spdy";
export const TRANSPORTS: readonly Transport[] = ["auto", "websocket", "spdy"];
export type Protocol = "auto" | "http" | "tcp";
export const PROTOCOLS: readonly Protocol[] = ["auto", "http", "tcp"];
export type Balance = "sticky" | "round-robin";
export const BALANCES: readonly Balance[] = ["sticky", "round-robin"];

/**
 * Loopback only, as with kubectl: a forward exposes cluster services, so listening on the network must be
 * asked for. `localhost` means both 127.0.0.1 and ::1 (where the host has IPv6 loopback), so clients that
 * resolve localhost to either reach the forward.
 */
export const DEFAULT_ADDRESS = "localhost";
/**
 * Long enough for a rolling restart to bring up a replacement pod, short enough that a client gets an
 * error instead of hanging when nothing will ever be ready.
 */
export const DEFAULT_POD_WAIT_TIMEOUT_MS = 30_000;
/**
 * Hardened clusters set the kubelet's streaming idle timeout to minutes (its default is 4 h), and load
 * balancers in front of API servers cut idle connections after one to six minutes.
 */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000;
/** Keep-alive traffic goes at a third of the limit; below this it would be a busy loop, not a keep-alive. */
export const MIN_STREAM_IDLE_TIMEOUT_MS = 3_000;

/** Validated settings, named as in ForwardSpec; a key is absent when it was not given. */
export interface Settings {
  namespace?: string;
  context?: string;
  /** A leading `~` is expanded; a relative path is resolved by the caller's `resolvePath`. */
  kubeconfig?: string;
  /** Where to listen: IP addresses or `localhost`, at least one, none overlapping another. */
  addresses?: string[];
  podWaitTimeoutMs?: number;
  streamIdleTimeoutMs?: number;
  transport?: Transport;
  protocol?: Protocol;
  balance?: Balance;
  logRequests?: boolean;
}

/** Settings as given on the command line, before validation. */
export interface FlagSettings {
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  /** One address or a comma-separated list, e.g. `localhost,10.0.0.5`. */
  address?: string;
  /** A duration like `30s`; a bare number is seconds. */
  podWaitTimeout?: string;
  /** A duration like `5m`: the shortest idle timeout on the way to the pods. */
  streamIdleTimeout?: string;
  transport?: string;
  protocol?: string;
  balance?: string;
  logRequests?: boolean;
}

export type RuleResult<T> = { value: T } | { problem: string };

/** How one setting is spelled in YAML and on the command line, and what makes a value valid. */
export interface SettingRule<K extends keyof Settings = keyof Settings> {
  /** The key in Settings and ForwardSpec. */
  readonly setting: K;
  /** The YAML key. */
  readonly key: string;
  /** The command-line flag. */
  readonly flag: string;
  /** A valid value, shown when a YAML value has the wrong type. */
  readonly example: string;
  /** YAML numbers are valid too (durations: seconds), not only strings. */
  readonly acceptsNumber?: boolean;
  /** A YAML list of strings is valid too, read as the comma-separated list of its items. */
  readonly acceptsList?: boolean;
  /** A YAML boolean, and nothing else, is the value. */
  readonly acceptsBoolean?: boolean;
  /**
   * The value to use, or why `raw` cannot be used (a reason that says how to fix it). `resolvePath` turns
   * a relative path into the one to use: relative to a config file, or unchanged for a flag.
   */
  parse(
    raw: string | number | boolean,
    resolvePath: (path: string) => string,
  ): RuleResult<NonNullable<Settings[K]>>;
}

const namespace: SettingRule<"namespace"> = {
  setting: "namespace",
  key: "namespace",
  flag: "--namespace",
  example: "default",
  parse: (raw) => {
    const problem = namespaceProblem(String(raw));
    return problem ? { problem } : { value: String(raw) };
  },
};

const context: SettingRule<"context"> = {
  setting: "context",
  key: "context",
  flag: "--context",
  example: "dev (see kubectl config get-contexts)",
  parse: (raw) =>
    raw === ""
      ? { problem: "it is empty; name one from kubectl config get-contexts" }
      : { value: String(raw) },
};

const kubeconfig: SettingRule<"kubeconfig"> = {
  setting: "kubeconfig",
  key: "kubeconfig",
  flag: "--kubeconfig",
  example: "~/.kube/config",
  parse: (raw, resolvePath) =>
    raw === "" ? { problem: "it is empty; give a file path" } : { value: resolvePath(String(raw)) },
};

const address: SettingRule<"addresses"> = {
  setting: "addresses",
  key: "address",
  flag: "--address",
  example: "127.0.0.1",
  acceptsList: true,
  parse: (raw) => parseAddresses(String(raw)),
};

const podWaitTimeout: SettingRule<"podWaitTimeoutMs"> = {
  setting: "podWaitTimeoutMs",
  key: "podWaitTimeout",
  flag: "--pod-wait-timeout",
  example: "30s",
  acceptsNumber: true,
  parse: (raw) => {
    try {
      return { value: parseDuration(raw as string | number) };
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      return { problem: error.reason };
    }
  },
};

const streamIdleTimeout: SettingRule<"streamIdleTimeoutMs"> = {
  setting: "streamIdleTimeoutMs",
  key: "streamIdleTimeout",
  flag: "--stream-idle-timeout",
  example: "5m",
  acceptsNumber: true,
  parse: (raw) => {
    let ms: number;
    try {
      ms = parseDuration(raw as string | number);
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      return { problem: error.reason };
    }
    return ms < MIN_STREAM_IDLE_TIMEOUT_MS
      ? { problem: "it is below 3s; give the idle timeout of the kubelet or load balancer, e.g. 5m" }
      : { value: ms };
  },
};

const transport: SettingRule<"transport"> = {
  setting: "transport",
  key: "transport",
  flag: "--transport",
  example: "auto",
  parse: (raw) =>
    TRANSPORTS.includes(raw as Transport)
      ? { value: raw as Transport }
      : { problem: `use one of: ${TRANSPORTS.join(", ")}` },
};

const protocol: SettingRule<"protocol"> = {
  setting: "protocol",
  key: "protocol",
  flag: "--protocol",
  example: "auto",
  parse: (raw) =>
    PROTOCOLS.includes(raw as Protocol)
      ? { value: raw as Protocol }
      : { problem: `use one of: ${PROTOCOLS.join(", ")}` },
};

const balance: SettingRule<"balance"> = {
  setting: "balance",
  key: "balance",
  flag: "--balance",
  example: "sticky",
  parse: (raw) =>
    BALANCES.includes(raw as Balance)
      ? { value: raw as Balance }
      : { problem: `use one of: ${BALANCES.join(", ")}` },
};

const logRequests: SettingRule<"logRequests"> = {
  setting: "logRequests",
  key: "logRequests",
  flag: "--log-requests",
  example: "true",
  acceptsBoolean: true,
  parse: (raw) => typeof raw === "boolean" ? { value: raw } : { problem: "use true or false" },
};

/** Every setting, in the order a config file documents them. */
export const SETTING_RULES: readonly SettingRule[] = [
  namespace,
  context,
  kubeconfig,
  address,
  podWaitTimeout,
  streamIdleTimeout,
  transport,
  protocol,
  balance,
  logRequests,
] as SettingRule[];

const FLAG_NAMES: Record<keyof Settings, keyof FlagSettings> = {
  namespace: "namespace",
  context: "context",
  kubeconfig: "kubeconfig",
  addresses: "address",
  podWaitTimeoutMs: "podWaitTimeout",
  streamIdleTimeoutMs: "streamIdleTimeout",
  transport: "transport",
  protocol: "protocol",
  balance: "balance",
  logRequests: "logRequests",
};

/**
 * Validates command-line settings with the same rules as a config file. A relative kubeconfig stays
 * relative to the current directory.
 *
 * @throws {UsageError} for the first invalid value, naming the flag
 */
export function settingsFromFlags(flags: FlagSettings, homeDir?: string): Settings {
  const settings: Record<string, unknown> = {};
  for (const rule of SETTING_RULES) {
    const raw = flags[FLAG_NAMES[rule.setting]];
    if (raw === undefined) continue;
    const result = rule.parse(raw, (path) => expandHome(path, homeDir));
    if ("problem" in result) throw new UsageError(`Cannot use ${rule.flag} "${raw}": ${result.problem}`);
    settings[rule.setting] = result.value;
  }
  return settings as Settings;
}

// Forward names show up in `--only` lists, logs and state files, so keep them to one shell-safe word.
const FORWARD_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const MAX_FORWARD_NAME_LENGTH = 253;

/** Why `name` cannot name a forward, or undefined when it can. */
export function nameProblem(name: string): string | undefined {
  if (name.length > MAX_FORWARD_NAME_LENGTH) return `it is longer than ${MAX_FORWARD_NAME_LENGTH} characters`;
  if (!FORWARD_NAME.test(name)) {
    return "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
  }
  return undefined;
}

// Namespaces are DNS-1123 labels.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function namespaceProblem(namespace: string): string | undefined {
  if (DNS_LABEL.test(namespace)) return undefined;
  return "use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
}

// ------------------------------------------------------------------------------------------ addresses

const ADDRESS_EXAMPLES =
  "use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost";

/** `localhost,10.0.0.5` -> ["localhost", "10.0.0.5"]; each must be an IP address or localhost, none twice. */
export function parseAddresses(text: string): RuleResult<string[]> {
  const items = text.split(",").map((item) => item.trim());
  if (items.every((item) => item === "")) return { problem: `it is empty; ${ADDRESS_EXAMPLES}` };
  if (items.some((item) => item === "")) {
    return { problem: "it has an empty entry between commas; remove the extra ','" };
  }
  for (const item of items) {
    if (item !== "localhost" && isIP(item) === 0) {
      return {
        problem: items.length > 1 ? `"${item}" is not an address; ${ADDRESS_EXAMPLES}` : ADDRESS_EXAMPLES,
      };
    }
  }
  const addresses = items.map((item) => item === "localhost" ? item : item.toLowerCase());
  for (let i = 0; i < addresses.length; i++) {
    for (let j = 0; j < i; j++) {
      if (addressesOverlap([addresses[j]], [addresses[i]])) {
        return { problem: overlapProblem(addresses[j], addresses[i]) };
      }
    }
  }
  return { value: addresses };
}

function overlapProblem(a: string, b: string): string {
  if (a === b) return `${a} is listed twice; list each address once`;
  const wildcard = [a, b].find((x) => x === "::" || x === "0.0.0.0");
  if (wildcard) {
    const every = wildcard === "::" ? "every address" : "every IPv4 address";
    return `${a} and ${b} overlap: ${wildcard} already listens on ${every}; keep one`;
  }
  return `${a} and ${b} overlap: localhost is 127.0.0.1 and ::1; keep one`;
}

/** One socket to listen on for a forward address. */
export interface ListenHost {
  /** What to bind: an IP address. */
  hostname: string;
  /**
   * True for ::1 from `localhost`: skipped when the host has no IPv6 loopback (as kubectl does). Any
   * other failure, such as the port being taken, still fails the forward, because a client that
   * resolves localhost to ::1 would then reach whatever holds it.
   */
  skipIfUnavailable: boolean;
}

/** The sockets behind a forward's addresses: `localhost` is 127.0.0.1 and ::1, as with kubectl. */
export function listenHosts(addresses: readonly string[]): ListenHost[] {
  return addresses.flatMap((address) =>
    address === "localhost"
      ? [{ hostname: "127.0.0.1", skipIfUnavailable: false }, { hostname: "::1", skipIfUnavailable: true }]
      : [{ hostname: address, skipIfUnavailable: false }]
  );
}

/** Whether an address only accepts connections from this machine. */
export function isLoopback(address: string): boolean {
  if (address === "localhost") return true;
  if (isIP(address) === 4) return address.startsWith("127.");
  const lower = address.toLowerCase();
  return lower === "::1" || lower === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(lower);
}

/** Whether listening on both address lists with the same port would fail with "address in use". */
export function addressesOverlap(a: readonly string[], b: readonly string[]): boolean {
  const hosts = (list: readonly string[]) => listenHosts(list).map((host) => host.hostname.toLowerCase());
  const [xs, ys] = [hosts(a), hosts(b)];
  return xs.some((x) =>
    ys.some((y) => {
      if (x === y || x === "::" || y === "::") return true;
      // 0.0.0.0 takes the port on every IPv4 interface
      return (x === "0.0.0.0" && isIP(y) === 4) || (y === "0.0.0.0" && isIP(x) === 4);
    })
  );
}
