/** Positioned config file errors, reported all at once so one edit can fix them all. */

import { UsageError } from "../errors.ts";

export interface ConfigErrorOptions {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  /** Where in the document, e.g. `forwards[1].ports[0]`; "" for the document itself. */
  path: string;
  cause?: unknown;
}

/** One problem in a config file, formatted `file:line:col: what is wrong and how to fix it`. */
export class ConfigError extends UsageError {
  override name = "ConfigError";
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly path: string;
  /** The message without its `file:line:col: ` prefix. */
  readonly reason: string;

  constructor(reason: string, options: ConfigErrorOptions) {
    super(`${options.file}:${options.line}:${options.column}: ${reason}`, { cause: options.cause });
    this.file = options.file;
    this.line = options.line;
    this.column = options.column;
    this.path = options.path;
    this.reason = reason;
  }

  override toString(): string {
    return this.message;
  }
}

/**
 * Every problem found in the config files, one `file:line:col: ...` line each, in file order.
 * A `UsageError`, so the command exits 2.
 */
export class ConfigErrors extends UsageError {
  override name = "ConfigErrors";
  readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    // No hint: each line already says how to fix its problem.
    super(errors.map((error) => error.message).join("\n"));
    this.errors = errors;
  }

  override toString(): string {
    return this.message;
  }
}
