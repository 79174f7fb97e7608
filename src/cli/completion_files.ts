/** Completion values read from files: contexts of the kubeconfig, forward names of kf configs. */

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { expandHome } from "../paths.ts";
import { defaultForwardName } from "../config/config.ts";
import { parseSelector, parseTarget, type Target } from "../config/target.ts";

/** The kubeconfig files kf would read: --kubeconfig, else $KUBECONFIG, else ~/.kube/config. */
export function kubeconfigFiles(flag: string | undefined): string[] {
  if (flag) return [expandHome(flag)];
  const env = Deno.env.get("KUBECONFIG");
  if (env) return env.split(path.delimiter).filter(Boolean);
  return [path.join(os.homedir(), ".kube", "config")];
}

function readYaml(file: string): Record<string, unknown> | undefined {
  try {
    const document = parse(fs.readFileSync(file, "utf8"));
    return document && typeof document === "object" ? document as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

function namesOf(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((item) => (item as { name?: unknown })?.name).filter((n): n is string =>
    typeof n === "string" && n !== ""
  );
}

export function contextNames(files: string[]): string[] {
  return [...new Set(files.flatMap((file) => namesOf(readYaml(file)?.contexts)))];
}

/** Forward names of kf config files: `name:` where given, else the name kf derives from target or selector. */
export function forwardNames(files: string[]): string[] {
  const names: string[] = [];
  for (const file of files) {
    const forwards = readYaml(expandHome(file))?.forwards;
    if (!Array.isArray(forwards)) continue;
    for (const forward of forwards as Record<string, unknown>[]) {
      if (typeof forward?.name === "string") names.push(forward.name);
      else {
        const name = derivedName(forward);
        if (name) names.push(name);
      }
    }
  }
  return [...new Set(names)];
}

function derivedName(forward: Record<string, unknown> | undefined): string | undefined {
  try {
    let target: Target | undefined;
    if (typeof forward?.target === "string") target = parseTarget(forward.target);
    else if (typeof forward?.selector === "string") {
      target = { kind: "selector", selector: parseSelector(forward.selector) };
    }
    return target && defaultForwardName(target);
  } catch {
    return undefined; // an invalid target: kf forward would report it
  }
}
