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

/** Loopback only: a forward exposes cluster services, so listening on the network must be asked for. */
export const DEFAULT_ADDRESS = "127.0.0.1";
/**
 * Long enough for a rolling restart to bring up a replacement pod, short enough that a client gets an
 * error instead of hanging when nothing will ever be ready.
 */
export const DEFAULT_POD_WAIT_TIMEOUT_MS = 30_000;

/** Validated settings, named as in ForwardSpec; a key is absent when it was not given. */
export interface Settings {
  namespace?: string;
  context?: string;
  /** A leading `~` is expanded; a relative path is resolved by the caller's `resolvePath`. */
  kubeconfig?: string;
  address?: string;
  podWaitTimeoutMs?: number;
  transport?: Transport;
}

/** Settings as given on the command line, before validation. */
export interface FlagSettings {
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  address?: string;
  /** A duration like `30s`; a bare number is seconds. */
  podWaitTimeout?: string;
  transport?: string;
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
  /**
   * The value to use, or why `raw` cannot be used (a reason that says how to fix it). `resolvePath` turns
   * a relative path into the one to use: relative to a config file, or unchanged for a flag.
   */
  parse(raw: string | number, resolvePath: (path: string) => string): RuleResult<NonNullable<Settings[K]>>;
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

const address: SettingRule<"address"> = {
  setting: "address",
  key: "address",
  flag: "--address",
  example: "127.0.0.1",
  parse: (raw) => {
    const problem = addressProblem(String(raw));
    return problem ? { problem } : { value: String(raw) };
  },
};

const podWaitTimeout: SettingRule<"podWaitTimeoutMs"> = {
  setting: "podWaitTimeoutMs",
  key: "podWaitTimeout",
  flag: "--pod-wait-timeout",
  example: "30s",
  acceptsNumber: true,
  parse: (raw) => {
    try {
      return { value: parseDuration(raw) };
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      return { problem: error.reason };
    }
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

/** Every setting, in the order a config file documents them. */
export const SETTING_RULES: readonly SettingRule[] = [
  namespace,
  context,
  kubeconfig,
  address,
  podWaitTimeout,
  transport,
] as SettingRule[];

const FLAG_NAMES: Record<keyof Settings, keyof FlagSettings> = {
  namespace: "namespace",
  context: "context",
  kubeconfig: "kubeconfig",
  address: "address",
  podWaitTimeoutMs: "podWaitTimeout",
  transport: "transport",
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

function addressProblem(address: string): string | undefined {
  if (address === "localhost" || isIP(address) !== 0) return undefined;
  return "use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost";
}
