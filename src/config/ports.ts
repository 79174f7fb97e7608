/** Parses kubectl-style port mappings (`8080:80`, `:5000`, `9000:metrics`). */

import { UsageError } from "../errors.ts";

/** One local port forwarded to one remote port; `local: 0` means "pick a free port when listening". */
export interface PortMapping {
  local: number;
  /** A port number, or a named container/service port resolved by the engine. */
  remote: number | string;
}

/** A port mapping cannot be parsed; `reason` says why and how to fix it. */
export class PortMappingError extends UsageError {
  override name = "PortMappingError";
  readonly input: string;
  readonly reason: string;

  constructor(input: string, reason: string) {
    super(`Cannot use "${input}" as a port mapping: ${reason}`);
    this.input = input;
    this.reason = reason;
  }
}

const MAX_PORT = 65535;
// IANA_SVC_NAME, the rule Kubernetes applies to named ports: at most 15 lowercase letters, digits and
// '-', at least one letter, no leading, trailing or doubled '-'.
const PORT_NAME = /^[a-z0-9]([a-z0-9]|-(?!-))*$/;
const MAX_PORT_NAME_LENGTH = 15;

/**
 * Parses one port mapping with kubectl's syntax:
 * - `5000` or the number 5000: listen on local 5000, forward to remote 5000
 * - `8888:5000`: listen on local 8888, forward to remote 5000
 * - `0:5000` or `:5000`: listen on a free local port chosen when listening, forward to remote 5000
 * - `9000:metrics`: listen on local 9000, forward to the port named `metrics` on the pod or service
 * - `:metrics` or `0:metrics`: a free local port, forward to the port named `metrics`
 *
 * A named port alone (`metrics`) is rejected: the local port cannot default to a name.
 * Remote ports are 1-65535; local ports 0-65535.
 */
export function parsePortMapping(spec: string | number): PortMapping {
  const input = String(spec);
  if (typeof spec === "number") {
    const remote = checkPortNumber(input, spec, "port");
    return { local: remote, remote };
  }
  const text = spec.trim();
  if (text === "") throw new PortMappingError(input, "it is empty; write e.g. 8080:80 or 5432");
  const parts = text.split(":");
  if (parts.length > 2) {
    throw new PortMappingError(input, "expected LOCAL:REMOTE with a single ':'; write e.g. 8080:80");
  }
  if (parts.length === 1) {
    if (!isDigits(text)) {
      if (isPortName(text)) {
        throw new PortMappingError(
          input,
          `"${text}" is a named port, so the local port cannot default to it; ` +
            `write LOCAL:${text} (e.g. 9000:${text}) or :${text} for a free local port`,
        );
      }
      throw new PortMappingError(input, "expected a port number or LOCAL:REMOTE; write e.g. 8080:80 or 5432");
    }
    const remote = checkPortNumber(input, Number(text), "port");
    return { local: remote, remote };
  }
  const [localText, remoteText] = parts.map((part) => part.trim());
  let local = 0;
  if (localText !== "") {
    if (!isDigits(localText)) {
      throw new PortMappingError(
        input,
        `local port "${localText}" must be a number (0 picks a free port); write e.g. 8080:${remoteText}`,
      );
    }
    local = checkPortNumber(input, Number(localText), "local port", { allowZero: true });
  }
  if (remoteText === "") {
    throw new PortMappingError(
      input,
      `the remote port after ':' is missing; write e.g. ${localText || 0}:80`,
    );
  }
  if (isDigits(remoteText)) {
    return { local, remote: checkPortNumber(input, Number(remoteText), "remote port") };
  }
  const nameProblem = portNameProblem(remoteText);
  if (nameProblem) throw new PortMappingError(input, `remote port "${remoteText}" ${nameProblem}`);
  return { local, remote: remoteText };
}

/** Formats a mapping back into the syntax `parsePortMapping` accepts: `8080:80`, `0:metrics`. */
export function formatPortMapping(mapping: PortMapping): string {
  return `${mapping.local}:${mapping.remote}`;
}

function isDigits(text: string): boolean {
  return /^\d+$/.test(text);
}

function isPortName(text: string): boolean {
  return portNameProblem(text) === undefined;
}

/** Returns why `name` is not a valid IANA_SVC_NAME, or undefined when it is one. */
function portNameProblem(name: string): string | undefined {
  if (name.length > MAX_PORT_NAME_LENGTH || !PORT_NAME.test(name) || name.endsWith("-")) {
    return `is neither a port number nor a valid port name; names have at most ${MAX_PORT_NAME_LENGTH} ` +
      "lowercase letters, digits and '-', as in the pod's or service's 'ports[].name'";
  }
  if (!/[a-z]/.test(name)) return "must contain a letter to be a port name, or be a number 1-65535";
  return undefined;
}

function checkPortNumber(
  input: string,
  port: number,
  what: string,
  options: { allowZero?: boolean } = {},
): number {
  const min = options.allowZero ? 0 : 1;
  if (!Number.isInteger(port)) {
    throw new PortMappingError(input, `${what} ${port} is not a whole number; write e.g. 8080:80 or 5432`);
  }
  if (port < min || port > MAX_PORT) {
    throw new PortMappingError(
      input,
      `${what} ${port} is out of range; use ${min}-${MAX_PORT}` +
        (options.allowZero ? " (0 picks a free port)" : ""),
    );
  }
  return port;
}
