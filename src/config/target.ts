/** Parses kubectl-style forward targets (`svc/api`, `deploy/x`, a bare pod name) and label selectors. */

import { UsageError } from "../errors.ts";

export type WorkloadKind = "service" | "deployment" | "statefulset" | "replicaset" | "pod";

/** What a forward connects to: one named object, or whichever ready pod matches a selector. */
export type Target = { kind: WorkloadKind; name: string } | { kind: "selector"; selector: string };

/** A target or selector the user wrote cannot be used; `reason` says why and how to fix it. */
export class TargetError extends UsageError {
  override name = "TargetError";
  readonly input: string;
  readonly reason: string;

  constructor(input: string, reason: string) {
    super(`Cannot use "${input}" as a forward target: ${reason}`);
    this.input = input;
    this.reason = reason;
  }
}

/** A label selector cannot be parsed; `reason` says why and how to fix it. */
export class SelectorError extends UsageError {
  override name = "SelectorError";
  readonly input: string;
  readonly reason: string;

  constructor(input: string, reason: string) {
    super(`Cannot use "${input}" as a label selector: ${reason}`);
    this.input = input;
    this.reason = reason;
  }
}

// Every spelling kubectl accepts for the kinds kf can forward to, including the `.apps` group forms
// (`deployment.apps/x`) that `kubectl get -o name` prints, so its output can be pasted as a target.
const KIND_ALIASES: Record<string, WorkloadKind> = {};
const KIND_SPELLINGS: Array<[WorkloadKind, string[], string]> = [
  ["service", ["svc", "service", "services"], ""],
  ["deployment", ["deploy", "deployment", "deployments"], "apps"],
  ["statefulset", ["sts", "statefulset", "statefulsets"], "apps"],
  ["replicaset", ["rs", "replicaset", "replicasets"], "apps"],
  ["pod", ["po", "pod", "pods"], ""],
];
for (const [kind, spellings, group] of KIND_SPELLINGS) {
  for (const spelling of spellings) {
    KIND_ALIASES[spelling] = kind;
    if (group) KIND_ALIASES[`${spelling}.${group}`] = kind;
  }
}

const SHORT_KIND: Record<WorkloadKind, string> = {
  service: "svc",
  deployment: "deploy",
  statefulset: "sts",
  replicaset: "rs",
  pod: "pod",
};

const SUPPORTED_KINDS = "svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a bare pod name";

// DNS-1123 subdomain: what the API server requires of pod, deployment, statefulset and replicaset names
// (services are stricter, but the API server reports that better than a guess here would).
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_SUBDOMAIN_LENGTH = 253;

/**
 * Parses a kubectl-style target.
 *
 * Accepted forms (kind names are case-insensitive):
 * - `svc/api`, `service/api`, `services/api`
 * - `deploy/web`, `deployment/web`, `deployments/web`, `deployment.apps/web`
 * - `sts/db`, `statefulset/db`, `statefulsets/db`
 * - `rs/web-5d8f`, `replicaset/web-5d8f`, `replicasets/web-5d8f`
 * - `pod/web-0`, `po/web-0`, `pods/web-0`, or a bare `web-0` (a pod, as in kubectl)
 */
export function parseTarget(text: string): Target {
  const input = text.trim();
  if (input === "") throw new TargetError(text, `it is empty; write e.g. svc/api or pod/web-0`);
  const parts = input.split("/");
  if (parts.length > 2) {
    throw new TargetError(text, `expected KIND/NAME with a single '/'; write e.g. ${SUPPORTED_KINDS}`);
  }
  const [kindText, name] = parts.length === 2 ? parts : ["pod", parts[0]];
  const kind = KIND_ALIASES[kindText.toLowerCase()];
  if (!kind) {
    throw new TargetError(text, `kind "${kindText}" is not supported; use ${SUPPORTED_KINDS}`);
  }
  if (name === "") throw new TargetError(text, `the name after '/' is missing; write e.g. ${kindText}/api`);
  const problem = subdomainProblem(name);
  if (problem) throw new TargetError(text, `name "${name}" ${problem}`);
  return { kind, name };
}

/** Formats a target the way a user would type it: `svc/api`, `deploy/x`, `pod/p`, `-l app=x`. */
export function formatTarget(target: Target): string {
  if (target.kind === "selector") return `-l ${target.selector}`;
  return `${SHORT_KIND[target.kind]}/${target.name}`;
}

/** Returns why `name` is not a DNS-1123 subdomain, or undefined when it is one. */
function subdomainProblem(name: string): string | undefined {
  if (name.length > MAX_SUBDOMAIN_LENGTH) return `is longer than ${MAX_SUBDOMAIN_LENGTH} characters`;
  if (!DNS_SUBDOMAIN.test(name)) {
    return "is not a valid Kubernetes name; use lowercase letters, digits, '-' and '.', " +
      "starting and ending with a letter or digit";
  }
  return undefined;
}

// Label keys are `[prefix/]name`: the prefix a DNS subdomain, the name 1-63 of [A-Za-z0-9._-] starting and
// ending alphanumeric. Values are empty or match the same name rule.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * Validates a label selector and returns it in a canonical spelling (`==` becomes `=`, spaces are
 * normalized), ready for the API's `labelSelector` parameter.
 *
 * Accepted requirements, comma-separated, all of which must match:
 * - equality `app=web`, `app==web`; inequality `tier!=cache`
 * - set-based `env in (dev,qa)`, `env notin (prod)`
 * - existence `canary`, non-existence `!canary`
 * - numeric `replica>1`, `replica<3` (as the API server supports them)
 */
export function parseSelector(text: string): string {
  const requirements = splitRequirements(text);
  if (requirements.length === 1 && requirements[0].trim() === "") {
    throw new SelectorError(
      text,
      "it is empty and would match every pod; write e.g. app=web or app=web,tier!=cache",
    );
  }
  return requirements.map((requirement) => parseRequirement(text, requirement.trim())).join(",");
}

/** Splits on commas that are not inside `( )`, so `a in (x,y),b` is two requirements. */
function splitRequirements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "(") depth++;
    else if (char === ")") depth--;
    else if (char === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) {
      throw new SelectorError(text, "parentheses are unbalanced; write set values as key in (a,b)");
    }
  }
  if (depth !== 0) throw new SelectorError(text, "a '(' is not closed; write set values as key in (a,b)");
  parts.push(text.slice(start));
  return parts;
}

function parseRequirement(input: string, requirement: string): string {
  if (requirement === "") {
    throw new SelectorError(input, "it has an empty requirement between commas; remove the extra ','");
  }
  if (requirement.startsWith("!")) {
    const key = requirement.slice(1).trim();
    checkKey(input, key);
    return `!${key}`;
  }
  const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(requirement);
  if (setMatch) {
    const [, key, operator, list] = setMatch;
    checkKey(input, key);
    const values = list.split(",").map((value) => value.trim());
    if (values.length === 1 && values[0] === "") {
      throw new SelectorError(
        input,
        `the set for "${key}" is empty; list values like ${key} ${operator} (a,b)`,
      );
    }
    for (const value of values) checkValue(input, key, value, false);
    return `${key} ${operator} (${values.join(",")})`;
  }
  const comparison = /^([^=!<>]*)(==|!=|=|<|>)(.*)$/.exec(requirement);
  if (comparison) {
    const [, rawKey, operator, rawValue] = comparison;
    const key = rawKey.trim();
    const value = rawValue.trim();
    checkKey(input, key);
    checkValue(input, key, value, operator === ">" || operator === "<");
    return `${key}${operator === "==" ? "=" : operator}${value}`;
  }
  if (/\s/.test(requirement)) {
    throw new SelectorError(
      input,
      `cannot understand "${requirement}"; use key=value, key!=value, key in (a,b), key notin (a,b), key or !key`,
    );
  }
  checkKey(input, requirement);
  return requirement;
}

function checkKey(input: string, key: string): void {
  if (key === "") throw new SelectorError(input, "a label key is empty; write requirements like app=web");
  const slash = key.lastIndexOf("/");
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix === "" || subdomainProblem(prefix))) {
    throw new SelectorError(
      input,
      `label key prefix "${prefix}" must be a DNS subdomain like example.com; fix the key "${key}"`,
    );
  }
  if (!LABEL_NAME.test(name)) {
    throw new SelectorError(
      input,
      `label key "${key}" is invalid; use up to 63 letters, digits, '-', '_' or '.', ` +
        "starting and ending with a letter or digit",
    );
  }
}

function checkValue(input: string, key: string, value: string, numeric: boolean): void {
  if (numeric) {
    if (!/^-?\d+$/.test(value)) {
      throw new SelectorError(input, `"${key}" is compared with '<' or '>' so its value must be an integer`);
    }
    return;
  }
  if (value !== "" && !LABEL_NAME.test(value)) {
    throw new SelectorError(
      input,
      `label value "${value}" for "${key}" is invalid; use up to 63 letters, digits, '-', '_' or '.', ` +
        "starting and ending with a letter or digit",
    );
  }
}
