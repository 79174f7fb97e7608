/** kf's config: forward targets, port mappings, durations and the YAML config file, validated. */

export {
  adHocForward,
  BALANCES,
  DEFAULT_ADDRESS,
  DEFAULT_POD_WAIT_TIMEOUT_MS,
  DEFAULT_STREAM_IDLE_TIMEOUT_MS,
  defaultForwardName,
  loadConfigFiles,
  parseConfigText,
  parseDuration,
  PROTOCOLS,
  settingsFromFlags,
  TRANSPORTS,
} from "./config.ts";
export type {
  AdHocForwardArgs,
  Balance,
  FlagSettings,
  ForwardSpec,
  LoadConfigOptions,
  ParseConfigOptions,
  Protocol,
  SessionConfig,
  Settings,
  Transport,
} from "./config.ts";
export { ConfigError, ConfigErrors } from "./config_error.ts";
export { addressesOverlap, isLoopback, listenHosts, parseAddresses } from "./settings.ts";
export type { ListenHost } from "./settings.ts";
export type { ConfigErrorOptions } from "./config_error.ts";
export { DurationError } from "./duration.ts";
export { formatPortMapping, parsePortMapping, PortMappingError } from "./ports.ts";
export type { PortMapping } from "./ports.ts";
export { formatTarget, parseSelector, parseTarget, SelectorError, TargetError } from "./target.ts";
export type { Target, WorkloadKind } from "./target.ts";
