/** Help text pieces: commander wraps descriptions at the terminal width, so they are plain paragraphs. */

/** Paragraphs of a description, each one line: commander wraps them at the terminal width. */
export function paragraphs(...texts: string[]): string {
  return texts.join("\n\n");
}

/**
 * An "Examples:" block, kubectl style (a comment line, then the command), printed after the options.
 * Commands stay short enough for an 80-column terminal, so nothing here needs wrapping.
 */
export function examples(items: [what: string, command: string][]): string {
  return "\nExamples:\n" + items.map(([what, command]) => `  # ${what}\n  ${command}\n`).join("\n");
}
