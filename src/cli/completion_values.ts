/**
 * The values behind `kf __complete`: read straight from the files, without the kube client or config
 * validation, so a TAB costs little more than Deno's start. Nothing here may throw at the user: a
 * broken file just completes nothing. Kubeconfig and kf config files are read by completion_files.ts.
 */

import { resolveStateDir } from "../state/state_dir.ts";
import { listSessions } from "../state/sessions.ts";
import type { CommandShape } from "./completion.ts";

export async function completeValues(kind: string, words: string[]): Promise<string[]> {
  switch (kind) {
    // the file readers need the yaml parser: loaded only for them, not for `kf stop <TAB>`
    case "contexts": {
      const { contextNames, kubeconfigFiles } = await import("./completion_files.ts");
      return contextNames(kubeconfigFiles(optionValues(words, ["--kubeconfig"]).at(-1)));
    }
    case "forwards": {
      const { forwardNames } = await import("./completion_files.ts");
      return forwardNames(optionValues(words, ["-f", "--file"]));
    }
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
