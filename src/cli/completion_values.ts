/**
 * The values behind `kf __complete`: read straight from the files, without the kube client or config
 * validation, so a TAB costs little more than Deno's start. Nothing here may throw at the user: a
 * broken file just completes nothing.
 */

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { resolveStateDir } from "../state/state_dir.ts";
import { listSessions } from "../state/sessions.ts";
import { defaultForwardName } from "../config/config.ts";
import { parseSelector, parseTarget, type Target } from "../config/target.ts";
import type { CommandShape } from "./completion.ts";

export async function completeValues(kind: string, words: string[]): Promise<string[]> {
  switch (kind) {
    case "contexts":
      return contextNames(kubeconfigFiles(words));
    case "forwards":
      return forwardNames(optionValues(words, ["-f", "--file"]));
    case "stop":
      return await stopTargets(optionValues(words, ["--state-dir"])[0] ?? resolveStateDir());
    default:
      return [];
  }
}

/** Every value of the given flags in the words typed so far (`-f a.yaml`, `--file=a.yaml`). */
export function optionValues(words: string[], flags: string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (flags.includes(word) && i + 1 < words.length) values.push(words[++i]);
    else {
      const flag = flags.find((f) => f.startsWith("--") && word.startsWith(`${f}=`));
      if (flag) values.push(word.slice(flag.length + 1));
    }
  }
  return values;
}

function expandHome(file: string): string {
  return file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file;
}

function kubeconfigFiles(words: string[]): string[] {
  const flag = optionValues(words, ["--kubeconfig"]).at(-1);
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

/** What `kf stop` takes: ids of live sessions and the names of their forwards. */
async function stopTargets(dir: string): Promise<string[]> {
  // prune: false — pressing TAB must not remove anyone's state files
  const views = await listSessions(dir, { prune: false });
  const live = views.filter((v) => v.liveness === "live");
  return [
    ...new Set([
      ...live.map((v) => v.record.id),
      ...live.flatMap((v) => v.record.forwards.map((f) => f.name)),
    ]),
  ];
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

/** Cobra's completion directives, as kubectl reads them from a plugin's completion helper. */
const NO_SPACE = 2;
const NO_FILE_COMPLETION = 4;
const DEFAULT_DIRECTIVE = 0; // the shell completes file names

/**
 * kubectl's plugin completion protocol: the words after `kubectl kf` (the last one is being typed), answered
 * with one candidate per line and a last line `:DIRECTIVE`. The same rules as the bash script.
 */
export async function kubectlCompletion(
  shapes: CommandShape[],
  words: string[],
  fixed: {
    targetPrefixes: string[];
    shells: string[];
    optionValues: Record<string, Record<string, string[]>>;
    fileOptions: string[];
  },
): Promise<string> {
  const cur = words.at(-1) ?? "";
  const before = words.slice(0, -1);
  const answer = (values: string[], directive = NO_FILE_COMPLETION) =>
    [...values.filter((v) => v.startsWith(cur)), `:${directive}`].join("\n") + "\n";
  const names = [...shapes.flatMap((s) => [s.name, ...s.aliases]), "help"];
  const cmd = before.find((w) => !w.startsWith("-"));
  if (!cmd) return answer(cur.startsWith("-") ? ["--help", "--version"] : names);
  if (cmd === "help") return answer(names);
  const shape = shapes.find((s) => s.name === cmd || s.aliases.includes(cmd));
  if (!shape) return answer([]);
  const prev = before.at(-1) ?? "";
  if (shape.valueFlags.includes(prev)) {
    const option = shape.options.find((o) => o.short === prev || o.long === prev);
    const long = option?.long?.replace(/^--/, "") ?? "";
    if (fixed.fileOptions.includes(long)) return `:${DEFAULT_DIRECTIVE}\n`;
    if (long === "context") return answer(await completeValues("contexts", before));
    if (long === "only") {
      const done = cur.includes(",") ? cur.slice(0, cur.lastIndexOf(",") + 1) : "";
      return answer((await completeValues("forwards", before)).map((name) => done + name));
    }
    const values = fixed.optionValues[long];
    return answer(values ? values[shape.name] ?? values.default : []);
  }
  if (cur.startsWith("-")) return answer(shape.flags);
  if (shape.name === "exec" && before.includes("--")) return `:${DEFAULT_DIRECTIVE}\n`;
  switch (shape.name) {
    case "stop":
      return answer(await completeValues("stop", before).catch(() => []));
    case "completion":
      return answer(fixed.shells);
    case "forward":
    case "exec":
      return answer(fixed.targetPrefixes, NO_SPACE | NO_FILE_COMPLETION);
    default:
      return answer([]);
  }
}
