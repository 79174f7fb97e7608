/** Loads kf's YAML config files and ad-hoc flags into validated, normalized forward specs. */

import { dirname, join } from "node:path";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, YAMLParseError } from "yaml";
import type { Document, Node as YamlNode, YAMLMap, YAMLSeq } from "yaml";
import { UsageError } from "../errors.ts";
import { expandHome } from "../paths.ts";
import { ConfigError, ConfigErrors } from "./config_error.ts";
import { parseDuration } from "./duration.ts";
import { parsePortMapping, PortMappingError } from "./ports.ts";
import type { PortMapping } from "./ports.ts";
import { parseSelector, parseTarget, SelectorError, TargetError } from "./target.ts";
import type { Target } from "./target.ts";
import {
  addressesOverlap,
  type Balance,
  BALANCES,
  DEFAULT_ADDRESS,
  DEFAULT_POD_WAIT_TIMEOUT_MS,
  DEFAULT_STREAM_IDLE_TIMEOUT_MS,
  type FlagSettings,
  nameProblem,
  type Protocol,
  PROTOCOLS,
  SETTING_RULES,
  type Settings,
  settingsFromFlags,
  type Transport,
  TRANSPORTS,
} from "./settings.ts";

export {
  BALANCES,
  DEFAULT_ADDRESS,
  DEFAULT_POD_WAIT_TIMEOUT_MS,
  DEFAULT_STREAM_IDLE_TIMEOUT_MS,
  parseDuration,
  PROTOCOLS,
  settingsFromFlags,
  TRANSPORTS,
};
export type { Balance, Protocol, Settings, Transport };
export type { FlagSettings };

/** One forward, normalized: what the engine listens on and where it sends each connection. */
export interface ForwardSpec {
  /** Unique within a session. */
  name: string;
  target: Target;
  /** At least one. */
  ports: PortMapping[];
  /** Undefined means the context's namespace, resolved later by the engine. */
  namespace?: string;
  /** Undefined means the kubeconfig's current context. */
  context?: string;
  /** Undefined means `KUBECONFIG` or `~/.kube/config`; a leading `~/` is already expanded. */
  kubeconfig?: string;
  /**
   * Where to listen, at least one: IP addresses, or `localhost` for 127.0.0.1 and ::1 (see listenHosts).
   * @default {["localhost"]}
   */
  addresses: string[];
  /**
   * How connections reach the pod: "websocket" (one WebSocket v4 each), "spdy" (streams on pooled SPDY
   * connections per pod, tunnelled in a WebSocket like kubectl, or the legacy upgrade), or "auto": v4 for a
   * pod's first connections, then its HTTP connections on pooled SPDY; all SPDY when RBAC allows only
   * `create` on pods/portforward. @default {"auto"}
   */
  transport?: Transport;
  /**
   * "auto": a connection that starts with an HTTP/1.x request line is forwarded request by request (safe
   * replay, per-request pod choice), anything else as opaque TCP; "http": always HTTP; "tcp": never.
   * @default {"auto"}
   */
  protocol?: Protocol;
  /** Which pod each HTTP request goes to: the current one while ready, or each ready pod in turn. @default {"sticky"} */
  balance?: Balance;
  /** Every HTTP request is reported (method, path without query, status, pod, duration, bytes). */
  logRequests?: boolean;
  /** How long a new local connection waits for a ready pod. @default {30000} */
  podWaitTimeoutMs: number;
  /**
   * The shortest idle timeout on the way to the pod (the kubelet's --streaming-connection-idle-timeout, a
   * load balancer): open connections carry keep-alive traffic at a third of it. @default {300000}
   */
  streamIdleTimeoutMs?: number;
  /** Where the forward was declared; undefined for forwards from command-line flags. */
  source?: { file: string; line: number; column: number };
}

/** Every forward of one `kf forward` run, and the config files they came from (as given). */
export interface SessionConfig {
  forwards: ForwardSpec[];
  files: string[];
}

export interface ParseConfigOptions {
  /** Expands a leading `~` in `kubeconfig`. @default {Deno.env HOME or USERPROFILE} */
  homeDir?: string;
}

/**
 * Parses and validates one config file's text. Pure apart from reading `HOME` when a `kubeconfig`
 * starts with `~` and `homeDir` is not given.
 *
 * @throws {ConfigErrors} with every problem found, in position order
 */
export function parseConfigText(text: string, file: string, options: ParseConfigOptions = {}): ForwardSpec[] {
  const parsed = parseFile(text, file, options);
  const errors = [...parsed.errors, ...findDuplicates(parsed.forwards)];
  if (errors.length > 0) throw new ConfigErrors(sortErrors(errors, [file]));
  return parsed.forwards.map((forward) => forward.spec);
}

export interface LoadConfigOptions extends ParseConfigOptions {
  /** Keep only the forwards with these names, in file order; an unknown name is an error. */
  only?: string[];
  /**
   * Command-line settings that replace every forward's own (`-n`, `--address`, ...), validated by the
   * same rules as the files' values, before any file is read.
   */
  overrides?: FlagSettings;
}

/**
 * Reads and validates config files. Forwards are concatenated in file order; each file's top-level
 * defaults apply to its own forwards only; names and local ports must be unique across all files.
 *
 * @throws {UsageError} when a file cannot be read (missing, unreadable, a directory), when an override is
 *   invalid, or when `only` names a forward that does not exist
 * @throws {ConfigErrors} with every problem found in every file
 */
export async function loadConfigFiles(
  paths: string[],
  options: LoadConfigOptions = {},
): Promise<SessionConfig> {
  if (paths.length === 0) {
    throw new UsageError("Cannot load config: no config file given", {
      hint: "Pass a config file path, or forward ad hoc with a target and ports",
    });
  }
  const overrides = settingsFromFlags(options.overrides ?? {}, options.homeDir);
  const texts = await Promise.all(paths.map(readConfigFile));
  const forwards: ParsedForward[] = [];
  const errors: ConfigError[] = [];
  paths.forEach((path, i) => {
    const parsed = parseFile(texts[i], path, options);
    forwards.push(...parsed.forwards);
    errors.push(...parsed.errors);
  });
  errors.push(...findDuplicates(forwards));
  if (errors.length > 0) throw new ConfigErrors(sortErrors(errors, paths));
  let specs = forwards.map((forward) => ({ ...forward.spec, ...overrides }));
  if (options.only) specs = selectForwards(specs, options.only);
  return { forwards: specs, files: [...paths] };
}

/** Arguments of an ad-hoc forward, as the CLI flags give them. */
export interface AdHocForwardArgs {
  /** `svc/api`, `deploy/x`, a bare pod name, ...; exactly one of target and selector. */
  target?: string;
  /** A label selector, as for `-l`. */
  selector?: string;
  /** Port mappings as `parsePortMapping` accepts them; at least one. */
  ports: string[];
  namespace?: string;
  context?: string;
  /** A leading `~/` is expanded; relative paths stay relative to the current directory. */
  kubeconfig?: string;
  /** One address or a comma-separated list. @default {"localhost"} */
  address?: string;
  /** A duration like `30s`; a bare number is seconds. @default {"30s"} */
  podWaitTimeout?: string;
  /** A duration like `5m`. @default {"5m"} */
  streamIdleTimeout?: string;
  /** @default {"auto"} */
  transport?: string;
  /** @default {"auto"} */
  protocol?: string;
  /** @default {"sticky"} */
  balance?: string;
  logRequests?: boolean;
  /** @default {the target's name, e.g. "api" for svc/api; for a selector, its first key=value's value} */
  name?: string;
}

/**
 * Builds the spec for `kf forward svc/api 8080:80 -n dev` from its flags.
 *
 * @throws {UsageError} (or a subclass naming the bad value) for the first invalid argument
 */
export function adHocForward(args: AdHocForwardArgs): ForwardSpec {
  if (args.target !== undefined && args.selector !== undefined) {
    throw new UsageError("Cannot forward to both a target and a selector", {
      hint: "Pass either a target like svc/api or a selector like -l app=api",
    });
  }
  let target: Target;
  if (args.target !== undefined) target = parseTarget(args.target);
  else if (args.selector !== undefined) target = { kind: "selector", selector: parseSelector(args.selector) };
  else {
    throw new UsageError("Cannot forward without a target", {
      hint: "Pass a target like svc/api, deploy/web or a pod name, or a selector like -l app=api",
    });
  }
  if (args.ports.length === 0) {
    throw new UsageError("Cannot forward without a port", {
      hint: "Pass one or more ports like 8080:80, 5432 or :8080 (a free local port)",
    });
  }
  const ports = args.ports.map((port) => parsePortMapping(port));
  const name = args.name ?? defaultForwardName(target) ?? "forward";
  const problem = nameProblem(name);
  if (problem) throw new UsageError(`Cannot use --name "${name}": ${problem}`);
  const settings = settingsFromFlags(args);
  return {
    name,
    target,
    ports,
    namespace: settings.namespace,
    context: settings.context,
    kubeconfig: settings.kubeconfig,
    addresses: settings.addresses ?? [DEFAULT_ADDRESS],
    podWaitTimeoutMs: settings.podWaitTimeoutMs ?? DEFAULT_POD_WAIT_TIMEOUT_MS,
    ...optional("streamIdleTimeoutMs", settings.streamIdleTimeoutMs),
    ...optional("transport", settings.transport),
    ...optional("protocol", settings.protocol),
    ...optional("balance", settings.balance),
    ...optional("logRequests", settings.logRequests),
  };
}

/** `{key: value}` when value is set, else `{}`: specs carry no keys for unset options. */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : { [key]: value } as { [P in K]?: V };
}

/**
 * The name a forward gets when none is given: the object's name (`svc/api` -> "api"), or for a selector
 * the value of its first `key=value` (`app=db,tier!=cache` -> "db"); undefined when there is none.
 */
export function defaultForwardName(target: Target): string | undefined {
  if (target.kind !== "selector") return target.name;
  for (const requirement of target.selector.split(",")) {
    const match = /^[^=!<>\s]+=([^=].*|)$/.exec(requirement);
    if (match && match[1] !== "") return match[1];
  }
  return undefined;
}

/** A config file that cannot be read is a config error (exit 2), like one that does not parse. */
async function readConfigFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot read config file ${path}: not found`, {
        hint: "Check the path; a relative path starts at the current directory",
        cause: error,
      });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`Cannot read config file ${path}: permission denied`, {
        hint: "Make the file readable by the user running kf",
        cause: error,
      });
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`Cannot read config file ${path}: it is a directory`, {
        hint: "Pass the path of a YAML file inside it",
        cause: error,
      });
    }
    const detail = error instanceof Error ? error.message : String(error);
    throw new UsageError(`Cannot read config file ${path}: ${detail}`, { cause: error });
  }
}

function selectForwards(forwards: ForwardSpec[], only: string[]): ForwardSpec[] {
  const available = new Set(forwards.map((forward) => forward.name));
  const unknown = only.filter((name) => !available.has(name));
  if (unknown.length > 0) {
    const quoted = unknown.map((name) => `"${name}"`).join(", ");
    throw new UsageError(
      `Cannot select ${unknown.length > 1 ? "forwards" : "forward"} ${quoted}: not in the config; ` +
        `available: ${[...available].join(", ")}`,
      { hint: "Use one of the available names" },
    );
  }
  const wanted = new Set(only);
  return forwards.filter((forward) => wanted.has(forward.name));
}

// ---------------------------------------------------------------------------------------------------
// Validation of one file's YAML tree. Every check records an error and carries on, so a user sees all
// problems at once; a value that fails its check is left out and the forward is dropped at the end.

const SETTING_KEYS = SETTING_RULES.map((rule) => rule.key);
const TOP_LEVEL_KEYS = [...SETTING_KEYS, "forwards"];
const FORWARD_KEYS = ["name", "target", "selector", "ports", ...SETTING_KEYS];
// Keys people reach for from kubectl flags or other tools, mapped to what kf calls them.
const KEY_ALIASES: Record<string, string> = {
  ns: "namespace",
  n: "namespace",
  l: "selector",
  labels: "selector",
  labelselector: "selector",
  svc: "target",
  service: "target",
  pod: "target",
  deployment: "target",
  resource: "target",
  port: "ports",
  bind: "address",
  listen: "address",
  host: "address",
  timeout: "podWaitTimeout",
  forward: "forwards",
};

interface Position {
  line: number;
  column: number;
}

/** A forward with the positions the cross-forward checks report at. */
interface ParsedForward {
  spec: ForwardSpec;
  file: string;
  /** The `name` value, or the target when the name was derived from it. */
  namePosition: Position & { path: string };
  nameFromTarget: boolean;
  portPositions: Array<Position & { path: string }>;
}

/** Top-level values that forwards inherit; a key is absent when not given or invalid. */
type Defaults = Settings;

interface Entry {
  key: string;
  keyNode: YamlNode;
  /** The node to read, aliases resolved; null for `key:` with nothing after it. */
  value: YamlNode | null;
  /** The node as written, for positions. */
  at: YamlNode;
  path: string;
}

function parseFile(
  text: string,
  file: string,
  options: ParseConfigOptions,
): { forwards: ParsedForward[]; errors: ConfigError[] } {
  const reader = new FileReader(text, file, options);
  const forwards = reader.read();
  return { forwards, errors: reader.errors };
}

class FileReader {
  readonly errors: ConfigError[] = [];
  #lines = new LineCounter();
  #text: string;
  #file: string;
  #options: ParseConfigOptions;
  #doc?: Document.Parsed;

  constructor(text: string, file: string, options: ParseConfigOptions) {
    this.#text = text;
    this.#file = file;
    this.#options = options;
  }

  read(): ParsedForward[] {
    const doc = parseDocument(this.#text, { lineCounter: this.#lines, prettyErrors: true });
    this.#doc = doc;
    if (doc.errors.length > 0) {
      for (const error of doc.errors) this.#syntaxError(error);
      return [];
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
      this.#error(
        { line: 1, column: 1 },
        "",
        "the config file is empty; add a 'forwards:' list, e.g. forwards: [{target: svc/api, ports: [8080:80]}]",
      );
      return [];
    }
    const top = this.#deref(doc.contents);
    if (!isMap(top)) {
      this.#error(
        doc.contents,
        "",
        `the top level must be a map with a 'forwards:' list, not ${
          describe(top)
        }; start the file with forwards:`,
      );
      return [];
    }
    const entries = this.#entries(top, "", TOP_LEVEL_KEYS, FORWARD_KEYS);
    const defaults = this.#readSettings(entries);
    const forwardsEntry = entries.get("forwards");
    if (!forwardsEntry) {
      this.#error(
        top,
        "",
        "missing 'forwards'; add a list like forwards: [{target: svc/api, ports: [8080:80]}]",
      );
      return [];
    }
    const list = forwardsEntry.value;
    if (!isSeq(list)) {
      this.#error(
        forwardsEntry.value ? forwardsEntry.at : forwardsEntry.keyNode,
        forwardsEntry.path,
        `'forwards' must be a list, not ${describe(list)}; write each forward as '- target: ...' below it`,
      );
      return [];
    }
    if (list.items.length === 0) {
      this.#error(
        forwardsEntry.at,
        forwardsEntry.path,
        "'forwards' is empty; add at least one forward like {target: svc/api, ports: [8080:80]}",
      );
      return [];
    }
    const forwards: ParsedForward[] = [];
    list.items.forEach((item, i) => {
      const forward = this.#readForward(item as YamlNode, `forwards[${i}]`, defaults);
      if (forward) forwards.push(forward);
    });
    return forwards;
  }

  #readForward(node: YamlNode, path: string, defaults: Defaults): ParsedForward | undefined {
    const map = this.#deref(node);
    if (!isMap(map)) {
      this.#error(
        node,
        path,
        `each forward must be a map, not ${
          describe(map)
        }; write e.g. '- {target: svc/api, ports: [8080:80]}'`,
      );
      return undefined;
    }
    const entries = this.#entries(map, `${path}.`, FORWARD_KEYS, TOP_LEVEL_KEYS);
    let ok = true;
    const settings = this.#readSettings(entries);

    const targetEntry = entries.get("target");
    const selectorEntry = entries.get("selector");
    let target: Target | undefined;
    if (targetEntry && selectorEntry) {
      const [, later] = [targetEntry, selectorEntry].sort((a, b) => offset(a.keyNode) - offset(b.keyNode));
      this.#error(
        later.keyNode,
        later.path,
        "both 'target' and 'selector' are set; keep one: 'target' for a named object, 'selector' for " +
          "any matching pod",
      );
      ok = false;
    } else if (targetEntry) {
      const text = this.#string(targetEntry, "svc/api");
      if (text !== undefined) {
        try {
          target = parseTarget(text);
        } catch (error) {
          if (!(error instanceof TargetError)) throw error;
          this.#error(targetEntry.at, targetEntry.path, `invalid target "${text}": ${error.reason}`);
        }
      }
    } else if (selectorEntry) {
      const text = this.#string(selectorEntry, "app=api");
      if (text !== undefined) {
        try {
          target = { kind: "selector", selector: parseSelector(text) };
        } catch (error) {
          if (!(error instanceof SelectorError)) throw error;
          this.#error(selectorEntry.at, selectorEntry.path, `invalid selector "${text}": ${error.reason}`);
        }
      }
    } else {
      this.#error(
        map,
        path,
        "forward has neither 'target' nor 'selector'; add e.g. target: svc/api or selector: app=api",
      );
      ok = false;
    }

    let name: string | undefined;
    let nameFromTarget = false;
    let namePosition: (Position & { path: string }) | undefined;
    const nameEntry = entries.get("name");
    if (nameEntry) {
      name = this.#string(nameEntry, "api");
      const problem = name === undefined ? undefined : nameProblem(name);
      if (problem) {
        this.#error(nameEntry.at, nameEntry.path, `invalid name "${name}": ${problem}`);
        name = undefined;
      }
      namePosition = { ...this.#position(nameEntry.at), path: nameEntry.path };
    } else if (target) {
      name = defaultForwardName(target);
      const from = (targetEntry ?? selectorEntry)!;
      namePosition = { ...this.#position(from.at), path: from.path };
      nameFromTarget = true;
      if (name === undefined) {
        this.#error(
          map,
          path,
          "forward has no 'name' and its selector has no key=value to take one from; add e.g. name: db",
        );
      }
    }

    const ports = this.#readPorts(entries.get("ports"), map, path);
    if (!ok || target === undefined || name === undefined || namePosition === undefined || !ports) {
      return undefined;
    }
    const position = this.#position(node);
    return {
      spec: {
        name,
        target,
        ports: ports.map((port) => port.mapping),
        namespace: settings.namespace ?? defaults.namespace,
        context: settings.context ?? defaults.context,
        kubeconfig: settings.kubeconfig ?? defaults.kubeconfig,
        addresses: settings.addresses ?? defaults.addresses ?? [DEFAULT_ADDRESS],
        podWaitTimeoutMs: settings.podWaitTimeoutMs ?? defaults.podWaitTimeoutMs ??
          DEFAULT_POD_WAIT_TIMEOUT_MS,
        ...optional("streamIdleTimeoutMs", settings.streamIdleTimeoutMs ?? defaults.streamIdleTimeoutMs),
        ...optional("transport", settings.transport ?? defaults.transport),
        ...optional("protocol", settings.protocol ?? defaults.protocol),
        ...optional("balance", settings.balance ?? defaults.balance),
        ...optional("logRequests", settings.logRequests ?? defaults.logRequests),
        ...optional("protocol", settings.protocol ?? defaults.protocol),
        ...optional("balance", settings.balance ?? defaults.balance),
        ...optional("logRequests", settings.logRequests ?? defaults.logRequests),
        source: { file: this.#file, ...position },
      },
      file: this.#file,
      namePosition,
      nameFromTarget,
      portPositions: ports.map((port) => port.position),
    };
  }

  /** Returns undefined when any port is invalid, so a forward never starts with some ports missing. */
  #readPorts(
    entry: Entry | undefined,
    map: YAMLMap,
    path: string,
  ): Array<{ mapping: PortMapping; position: Position & { path: string } }> | undefined {
    if (!entry) {
      this.#error(map, path, "forward has no 'ports'; add e.g. ports: [8080:80] (LOCAL:REMOTE)");
      return undefined;
    }
    if (!isSeq(entry.value)) {
      this.#error(
        entry.value ? entry.at : entry.keyNode,
        entry.path,
        `'ports' must be a list, not ${describe(entry.value)}; write e.g. ports: [8080:80, 5432]`,
      );
      return undefined;
    }
    if (entry.value.items.length === 0) {
      this.#error(entry.at, entry.path, "'ports' is empty; add at least one, e.g. ports: [8080:80]");
      return undefined;
    }
    const ports: Array<{ mapping: PortMapping; position: Position & { path: string } }> = [];
    let ok = true;
    entry.value.items.forEach((item, i) => {
      const at = item as YamlNode;
      const itemPath = `${entry.path}[${i}]`;
      const node = this.#deref(at);
      const value = isScalar(node) ? node.value : undefined;
      if (typeof value !== "string" && typeof value !== "number") {
        this.#error(
          at,
          itemPath,
          `a port must be a number or a string like "8080:80", not ${describe(node)}`,
        );
        ok = false;
        return;
      }
      try {
        ports.push({ mapping: parsePortMapping(value), position: { ...this.#position(at), path: itemPath } });
      } catch (error) {
        if (!(error instanceof PortMappingError)) throw error;
        this.#error(at, itemPath, `invalid port "${value}": ${error.reason}`);
        ok = false;
      }
    });
    return ok ? ports : undefined;
  }

  /** Reads the settings shared by the top level and each forward, each with its rule from settings.ts. */
  #readSettings(entries: Map<string, Entry>): Settings {
    const settings: Record<string, unknown> = {};
    for (const rule of SETTING_RULES) {
      const entry = entries.get(rule.key);
      if (!entry) continue;
      const raw = rule.acceptsBoolean
        ? this.#boolean(entry)
        : rule.acceptsNumber
        ? this.#stringOrNumber(entry, rule.example)
        : rule.acceptsList && isSeq(entry.value)
        ? this.#stringList(entry, rule.example)
        : this.#string(entry, rule.example);
      if (raw === undefined) continue;
      const result = rule.parse(raw, (path) => this.#resolvePath(path));
      if ("problem" in result) {
        this.#error(entry.at, entry.path, `invalid ${rule.key} "${raw}": ${result.problem}`);
      } else settings[rule.setting] = result.value;
    }
    return settings as Settings;
  }

  /** A config file's relative kubeconfig path is relative to the file, so the file works from any cwd. */
  #resolvePath(path: string): string {
    if (path === "~" || path.startsWith("~/")) return expandHome(path, this.#options.homeDir);
    if (path.startsWith("/")) return path;
    return join(dirname(this.#file), path);
  }

  /** The map's pairs by key; unknown and non-string keys are reported and left out. */
  #entries(map: YAMLMap, prefix: string, known: string[], elsewhere: string[]): Map<string, Entry> {
    const entries = new Map<string, Entry>();
    for (const pair of map.items) {
      const keyNode = pair.key as YamlNode | null;
      const key = keyNode && isScalar(keyNode) ? keyNode.value : undefined;
      if (keyNode === null || typeof key !== "string") {
        this.#error(keyNode ?? map, prefix.replace(/\.$/, ""), "keys must be plain words like 'name'");
        continue;
      }
      const path = `${prefix}${key}`;
      if (!known.includes(key)) {
        this.#error(keyNode, path, unknownKeyMessage(key, known, elsewhere, prefix === ""));
        continue;
      }
      const at = (pair.value as YamlNode | null) ?? keyNode;
      const value = pair.value === null ? null : this.#deref(pair.value as YamlNode);
      entries.set(key, { key, keyNode, value: isNull(value) ? null : value, at, path });
    }
    return entries;
  }

  /** The entry's value as a string or number (a duration's seconds), or undefined after reporting it. */
  #stringOrNumber(entry: Entry, example: string): string | number | undefined {
    const value = entry.value && isScalar(entry.value) ? entry.value.value : undefined;
    if (typeof value === "string" || typeof value === "number") return value;
    this.#error(
      entry.value ? entry.at : entry.keyNode,
      entry.path,
      `'${entry.key}' must be a duration like ${example}, not ${describe(entry.value)}`,
    );
    return undefined;
  }

  /** A list of strings, joined by commas like the flag's value; undefined after reporting a bad item. */
  #stringList(entry: Entry, example: string): string | undefined {
    const items: string[] = [];
    for (const [i, item] of (entry.value as YAMLSeq).items.entries()) {
      const node = this.#deref(item as YamlNode);
      if (node && isScalar(node) && typeof node.value === "string") {
        items.push(node.value);
        continue;
      }
      this.#error(
        item as YamlNode,
        `${entry.path}[${i}]`,
        `each '${entry.key}' entry must be a string like ${example}, not ${describe(node)}`,
      );
      return undefined;
    }
    return items.join(",");
  }

  /** The entry's value as a string, or undefined after reporting that it is not one. */
  #boolean(entry: Entry): boolean | undefined {
    const node = entry.value;
    if (node && isScalar(node) && typeof node.value === "boolean") return node.value;
    this.#error(
      node ? entry.at : entry.keyNode,
      entry.path,
      `'${entry.key}' must be true or false, not ${describe(node)}`,
    );
    return undefined;
  }

  #string(entry: Entry, example: string): string | undefined {
    const node = entry.value;
    if (node && isScalar(node) && typeof node.value === "string") return node.value;
    const hint = node && isScalar(node) && (typeof node.value === "number" || typeof node.value === "boolean")
      ? `; quote it: ${entry.key}: "${node.source ?? node.value}"`
      : "";
    this.#error(
      node ? entry.at : entry.keyNode,
      entry.path,
      `'${entry.key}' must be a string like ${example}, not ${describe(node)}${hint}`,
    );
    return undefined;
  }

  #deref(node: YamlNode): YamlNode | null {
    if (!isAlias(node)) return node;
    const resolved = this.#doc ? node.resolve(this.#doc) : undefined;
    if (!resolved) {
      this.#error(node, "", `alias *${node.source} has no matching anchor &${node.source}; define it first`);
      return null;
    }
    return resolved as YamlNode;
  }

  #syntaxError(error: YAMLParseError): void {
    const [start] = error.linePos ?? [this.#lines.linePos(error.pos[0])];
    // With prettyErrors, yaml appends " at line L, column C:" and a source excerpt; the position is ours.
    const detail = error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, "");
    let reason: string;
    if (error.code === "MULTIPLE_DOCS") {
      reason = "a config file holds one YAML document; remove the '---' line or split it into two files";
    } else if (error.code === "DUPLICATE_KEY") {
      reason = "this key is already set in the same map; remove one of them";
    } else if (error.code === "TAB_AS_INDENT") {
      reason = "YAML does not allow tabs for indentation; indent with spaces";
    } else {
      reason = `invalid YAML: ${lowerFirst(detail)}; fix the syntax here`;
    }
    this.#push({ line: start.line, column: start.col }, "", reason, error);
  }

  #position(at: YamlNode | Position): Position {
    if ("line" in at) return at;
    const { line, col } = this.#lines.linePos(offset(at));
    return { line, column: col };
  }

  #error(at: YamlNode | Position, path: string, reason: string): void {
    this.#push(this.#position(at), path, reason);
  }

  #push(position: Position, path: string, reason: string, cause?: unknown): void {
    this.errors.push(new ConfigError(reason, { file: this.#file, ...position, path, cause }));
  }
}

/** Reports names and local ports used twice, at the later use, naming where the first one is. */
function findDuplicates(forwards: ParsedForward[]): ConfigError[] {
  const errors: ConfigError[] = [];
  const names = new Map<string, ParsedForward>();
  const ports: Array<{ addresses: string[]; local: number; forward: ParsedForward; position: Position }> = [];
  for (const forward of forwards) {
    const { name } = forward.spec;
    const first = names.get(name);
    if (first) {
      const where = formatPosition(first.file, first.namePosition);
      const reason = forward.nameFromTarget
        ? `forward name "${name}" (taken from its target) is already used at ${where}; add a unique 'name:'`
        : `forward name "${name}" is already used at ${where}; names must be unique, rename one`;
      errors.push(configError(forward.file, forward.namePosition, reason));
    } else {
      names.set(name, forward);
    }
    forward.spec.ports.forEach((mapping, i) => {
      const position = forward.portPositions[i];
      // Port 0 asks the OS for a free port, so it never collides.
      if (mapping.local === 0) return;
      const clash = ports.find((used) =>
        used.local === mapping.local && addressesOverlap(used.addresses, forward.spec.addresses)
      );
      if (clash) {
        errors.push(configError(
          forward.file,
          position,
          `local port ${mapping.local} on ${forward.spec.addresses.join(",")} is already used by forward ` +
            `"${clash.forward.spec.name}" at ${formatPosition(clash.forward.file, clash.position)}; ` +
            "pick another local port, or 0 for a free one",
        ));
      } else {
        ports.push({ addresses: forward.spec.addresses, local: mapping.local, forward, position });
      }
    });
  }
  return errors;
}

function configError(file: string, position: Position & { path: string }, reason: string): ConfigError {
  return new ConfigError(reason, { file, line: position.line, column: position.column, path: position.path });
}

function formatPosition(file: string, position: Position): string {
  return `${file}:${position.line}:${position.column}`;
}

function sortErrors(errors: ConfigError[], files: string[]): ConfigError[] {
  const rank = (error: ConfigError) => files.indexOf(error.file);
  return errors.toSorted((a, b) => rank(a) - rank(b) || a.line - b.line || a.column - b.column);
}

function unknownKeyMessage(key: string, known: string[], elsewhere: string[], topLevel: boolean): string {
  if (key === "<<") {
    return "merge keys ('<<') are not supported; put shared settings at the top level instead";
  }
  const suggestion = closestKey(key, known);
  if (suggestion) return `unknown key '${key}'; did you mean '${suggestion}'?`;
  if (elsewhere.includes(key)) {
    return topLevel
      ? `'${key}' belongs to a forward; move it into an entry under 'forwards:'`
      : `'${key}' is only valid at the top level of the file; move it there`;
  }
  return `unknown key '${key}'; valid keys here are ${known.map((k) => `'${k}'`).join(", ")}`;
}

/** The known key the user most likely meant: same but for case, an alias, or a small typo. */
function closestKey(key: string, known: string[]): string | undefined {
  const lower = key.toLowerCase();
  const exact = known.find((candidate) => candidate.toLowerCase() === lower);
  if (exact) return exact;
  const alias = KEY_ALIASES[lower];
  if (alias && known.includes(alias)) return alias;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  // A third of the word can be wrong before the suggestion is more confusing than helpful.
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: edits, plus swapping two neighbours (`prots`) as one typo. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

function describe(node: YamlNode | null | undefined): string {
  if (node === null || node === undefined) return "nothing";
  if (isMap(node)) return "a map";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    if (node.value === null) return "nothing";
    if (typeof node.value === "string") return `the string "${node.value}"`;
    if (typeof node.value === "number") return `the number ${node.source ?? node.value}`;
    if (typeof node.value === "boolean") return `the boolean ${node.value}`;
  }
  return "an unsupported value";
}

function isNull(node: YamlNode | null): node is null {
  return node === null || (isScalar(node) && node.value === null);
}

function offset(node: YamlNode): number {
  return node.range?.[0] ?? 0;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
