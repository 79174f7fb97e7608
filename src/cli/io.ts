/** Where commands write: stdout/stderr by default, the tests' buffers in tests. */

/** Where a command writes; tests pass their own. */
export interface CommandIO {
  /** Writes text to stdout as is (add the newline yourself). */
  out(text: string): void;
  /** Writes text to stderr as is. */
  err(text: string): void;
  /** Ends `--watch` loops; the default is Ctrl-C (SIGINT). */
  signal?: AbortSignal;
}

export const defaultIO: CommandIO = {
  out: (text) => writeAllSync(Deno.stdout, text),
  err: (text) => writeAllSync(Deno.stderr, text),
};

export function writeAllSync(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}
