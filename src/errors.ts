/** Typed errors shared by every layer: each says what went wrong and what to do next. */

export interface KfErrorOptions {
  /** The next step for the user, printed after the message. */
  hint?: string;
  cause?: unknown;
}

/** Base of every error kf reports to a user; anything else is a bug and gets a stack trace. */
export class KfError extends Error {
  override name = "KfError";
  readonly hint?: string;
  /** Process exit code when this error ends the command. */
  exitCode = 1;

  constructor(message: string, options: KfErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.hint = options.hint;
  }
}

/** Wrong command-line usage or config; exits 2 like other CLIs' usage errors. */
export class UsageError extends KfError {
  override name = "UsageError";
  override exitCode = 2;
}

/** Formats an error for a terminal: message, then the hint on its own line. */
export function formatError(error: unknown): string {
  if (error instanceof KfError) {
    return error.hint ? `${error.message}\n  hint: ${error.hint}` : error.message;
  }
  // anything else is unexpected: a one-line message, the stack only on request
  const debug = (() => {
    try {
      return Boolean(Deno.env.get("KF_DEBUG"));
    } catch {
      return false;
    }
  })();
  if (error instanceof Error) {
    return debug && error.stack
      ? error.stack
      : `${error.name}: ${error.message} (set KF_DEBUG=1 for details)`;
  }
  return String(error);
}
