/**
 * `kf completion bash|zsh|fish`: shell completion scripts. Commands and flags are written into the script
 * (taken from the program's own definition, so they never drift); values that change — forward names of
 * the `-f` files, kubeconfig contexts, running sessions — come from the hidden `kf __complete`, which loads
 * only what it needs.
 */

import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { UsageError } from "../errors.ts";
import type { CommandIO } from "./io.ts";
import { examples, paragraphs } from "./help.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
type Shell = (typeof SHELLS)[number];

/** Fixed values of some options, per option long name. */
const OPTION_VALUES: Record<string, Record<string, string[]>> = {
  output: { ps: ["table", "json"], default: ["text", "json"] },
  transport: { default: ["auto", "websocket", "spdy"] },
};
/** Options whose value is a file path. */
const FILE_OPTIONS = ["file", "kubeconfig", "env-file"];
/** Target kinds offered for the first argument of forward and exec. */
const TARGET_PREFIXES = ["svc/", "deploy/", "sts/", "rs/", "pod/"];

export interface CommandShape {
  name: string;
  aliases: string[];
  summary: string;
  /** Every flag spelling, e.g. "-f", "--file". */
  flags: string[];
  /** Flag spellings that take a value. */
  valueFlags: string[];
  options: { short?: string; long?: string; takesValue: boolean; description: string }[];
}

/** The visible commands of the program with their visible options. */
export function commandShapes(program: CommandUnknownOpts): CommandShape[] {
  return program.commands
    .filter((command) => !(command as unknown as { _hidden?: boolean })._hidden)
    .map((command) => {
      const options = command.options.filter((o) => !o.hidden).map((o) => ({
        short: o.short,
        long: o.long,
        takesValue: o.required || o.optional,
        description: o.description,
      }));
      options.push({
        short: "-h",
        long: "--help",
        takesValue: false,
        description: "display help for command",
      });
      const spell = (o: { short?: string; long?: string }) =>
        [o.short, o.long].filter((f): f is string => !!f);
      return {
        name: command.name(),
        aliases: command.aliases(),
        summary: command.summary() || command.description().split("\n")[0],
        flags: options.flatMap(spell),
        valueFlags: options.filter((o) => o.takesValue).flatMap(spell),
        options,
      };
    });
}

export function completionCommand(io: CommandIO, program: () => CommandUnknownOpts) {
  return new Command("completion")
    .summary("Print a shell completion script (bash, zsh or fish)")
    .description(
      paragraphs(
        "Print a completion script for bash, zsh or fish: commands, flags, forward names from the -f files on the command line, contexts from the kubeconfig, and session ids and forward names for kf stop.",
      ),
    )
    .addHelpText(
      "after",
      examples([
        ["bash, this shell only", "source <(kf completion bash)"],
        ["bash, every new shell", "kf completion bash > ~/.local/share/bash-completion/completions/kf"],
        ["zsh, in ~/.zshrc after compinit", "source <(kf completion zsh)"],
        ["fish", "kf completion fish > ~/.config/fish/completions/kf.fish"],
      ]),
    )
    .argument("<shell>", "bash, zsh or fish")
    .action((shell) => {
      if (!SHELLS.includes(shell as Shell)) {
        throw new UsageError(`Cannot write completions for '${shell}'`, {
          hint: `use one of ${SHELLS.join(", ")}`,
        });
      }
      const shapes = commandShapes(program());
      io.out(shell === "fish" ? fishScript(shapes) : bashScript(shapes, shell === "zsh"));
    });
}

/**
 * `kf __complete KIND [WORDS...]`: one value per line; WORDS is the command line typed so far. KIND
 * `kubectl` answers kubectl's plugin completion (`kubectl kf <TAB>` runs `kubectl_complete-kf WORDS`):
 * candidates for the last word, then cobra's `:DIRECTIVE` line.
 */
export function completeCommand(io: CommandIO, program: () => CommandUnknownOpts) {
  return new Command("__complete")
    .description("values for shell completion (used by the completion scripts)")
    .argument("<kind>", "contexts, forwards, stop or kubectl")
    .argument("[words...]", "the words typed so far")
    .helpOption(false)
    .action(async (kind, words) => {
      const { completeValues, kubectlCompletion } = await import("./completion_values.ts");
      if (kind === "kubectl") {
        io.out(
          await kubectlCompletion(commandShapes(program()), words, {
            targetPrefixes: TARGET_PREFIXES,
            shells: [...SHELLS],
            optionValues: OPTION_VALUES,
            fileOptions: FILE_OPTIONS,
          }),
        );
        return;
      }
      const values = await completeValues(kind, words).catch(() => [] as string[]);
      if (values.length) io.out(values.join("\n") + "\n");
    });
}

function quoteWords(words: string[]): string {
  return words.join(" ");
}

function bashScript(shapes: CommandShape[], zsh: boolean): string {
  const names = [...shapes.flatMap((s) => [s.name, ...s.aliases]), "help"];
  const flagCases = shapes.map((s) =>
    `    ${[s.name, ...s.aliases].join("|")}) flags="${quoteWords(s.flags)}"; value_flags=" ${
      quoteWords(s.valueFlags)
    } " ;;`
  ).join("\n");
  const header = zsh
    ? `# kf completion for zsh (bash-style, through bashcompinit): in ~/.zshrc, after compinit:
#   source <(kf completion zsh)
autoload -U +X bashcompinit && bashcompinit
`
    : `# kf completion for bash: source <(kf completion bash)
`;
  return `${header}
_kf_complete() {
  local cur prev cmd i words_before
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev=""
  (( COMP_CWORD > 0 )) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # the first word that is not a flag is the command
  cmd=""
  for (( i = 1; i < COMP_CWORD; i++ )); do
    case "\${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  # the words between "kf" and the cursor (a loop, not \${a[@]:1:n}, which zsh reads differently)
  words_before=()
  for (( i = 1; i < COMP_CWORD; i++ )); do words_before+=("\${COMP_WORDS[i]}"); done
  COMPREPLY=()
  if [[ -z "$cmd" ]]; then
    if [[ "$cur" == -* ]]; then
      COMPREPLY=( $(compgen -W "--help --version" -- "$cur") )
    else
      COMPREPLY=( $(compgen -W "${quoteWords(names)}" -- "$cur") )
    fi
    return 0
  fi
  # after "--" kf exec runs a command: complete commands and files as the shell would
  if [[ "$cmd" == exec ]]; then
    for (( i = 1; i < COMP_CWORD; i++ )); do
      if [[ "\${COMP_WORDS[i]}" == "--" ]]; then
        COMPREPLY=( $(compgen -c -f -- "$cur") )
        return 0
      fi
    done
  fi
  local flags="" value_flags=" "
  case "$cmd" in
${flagCases}
  esac
  if [[ "$value_flags" == *" $prev "* ]]; then
    case "$prev" in
      ${FILE_OPTIONS.flatMap((o) => [`--${o}`]).concat(["-f"]).join("|")})
        type compopt &>/dev/null && compopt -o filenames
        COMPREPLY=( $(compgen -f -- "$cur") ) ;;
      --context)
        COMPREPLY=( $(compgen -W "$("\${COMP_WORDS[0]}" __complete contexts -- "\${words_before[@]}" 2>/dev/null)" -- "$cur") ) ;;
      --only)
        local done_part="" last="$cur"
        if [[ "$cur" == *,* ]]; then done_part="\${cur%,*},"; last="\${cur##*,}"; fi
        local name
        for name in $("\${COMP_WORDS[0]}" __complete forwards -- "\${words_before[@]}" 2>/dev/null); do
          [[ "$name" == "$last"* ]] && COMPREPLY+=("$done_part$name")
        done ;;
      -o|--output)
        if [[ "$cmd" == ps ]]; then
          COMPREPLY=( $(compgen -W "${OPTION_VALUES.output.ps.join(" ")}" -- "$cur") )
        else
          COMPREPLY=( $(compgen -W "${OPTION_VALUES.output.default.join(" ")}" -- "$cur") )
        fi ;;
      --transport)
        COMPREPLY=( $(compgen -W "${OPTION_VALUES.transport.default.join(" ")}" -- "$cur") ) ;;
    esac
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$flags" -- "$cur") )
    return 0
  fi
  case "$cmd" in
    stop)
      COMPREPLY=( $(compgen -W "$("\${COMP_WORDS[0]}" __complete stop 2>/dev/null)" -- "$cur") ) ;;
    completion)
      COMPREPLY=( $(compgen -W "${SHELLS.join(" ")}" -- "$cur") ) ;;
    help)
      COMPREPLY=( $(compgen -W "${quoteWords(names)}" -- "$cur") ) ;;
    forward|fwd|exec)
      type compopt &>/dev/null && compopt -o nospace
      COMPREPLY=( $(compgen -W "${TARGET_PREFIXES.join(" ")}" -- "$cur") ) ;;
  esac
  return 0
}
complete -F _kf_complete kf
complete -F _kf_complete kubectl-kf
`;
}

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function fishScript(shapes: CommandShape[]): string {
  const lines = [
    "# kf completion for fish: kf completion fish > ~/.config/fish/completions/kf.fish",
    "complete -c kf -f",
    "complete -c kf -n __fish_use_subcommand -l help -s h -d 'display help'",
    "complete -c kf -n __fish_use_subcommand -l version -s V -d 'output the version number'",
  ];
  for (const shape of shapes) {
    for (const name of [shape.name, ...shape.aliases]) {
      lines.push(`complete -c kf -n __fish_use_subcommand -a ${name} -d ${fishQuote(shape.summary)}`);
    }
    const seen = `'__fish_seen_subcommand_from ${[shape.name, ...shape.aliases].join(" ")}'`;
    for (const option of shape.options) {
      const long = option.long?.replace(/^--/, "");
      let spec = `complete -c kf -n ${seen}`;
      if (option.short) spec += ` -s ${option.short.replace(/^-/, "")}`;
      if (long) spec += ` -l ${long}`;
      if (option.takesValue) {
        // -r -F: a file name; -x: a value, no file names
        spec += long && FILE_OPTIONS.includes(long) ? " -r -F" : " -x";
        if (long === "context") spec += " -a '(kf __complete contexts (commandline -opc))'";
        else if (long === "only") spec += " -a '(kf __complete forwards (commandline -opc))'";
        else if (long === "output") {
          spec += ` -a ${
            fishQuote((OPTION_VALUES.output[shape.name] ?? OPTION_VALUES.output.default).join(" "))
          }`;
        } else if (long === "transport") {
          spec += ` -a ${fishQuote(OPTION_VALUES.transport.default.join(" "))}`;
        }
      }
      lines.push(`${spec} -d ${fishQuote(option.description)}`);
    }
  }
  lines.push(
    "complete -c kf -n '__fish_seen_subcommand_from stop' -a '(kf __complete stop)'",
    `complete -c kf -n '__fish_seen_subcommand_from completion' -a ${fishQuote(SHELLS.join(" "))}`,
    `complete -c kf -n '__fish_seen_subcommand_from forward fwd exec' -a ${
      fishQuote(TARGET_PREFIXES.join(" "))
    }`,
  );
  return lines.join("\n") + "\n";
}
