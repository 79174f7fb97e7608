/** Parses human durations (`30s`, `500ms`, `1m30s`) for timeouts in config files and flags. */

import { UsageError } from "../errors.ts";

/** A duration cannot be parsed; `reason` says why and how to fix it. */
export class DurationError extends UsageError {
  override name = "DurationError";
  readonly input: string;
  readonly reason: string;

  constructor(input: string, reason: string) {
    super(`Cannot use "${input}" as a duration: ${reason}`);
    this.input = input;
    this.reason = reason;
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
// setTimeout stores delays in an int32 and fires at once above this, so a longer timeout would be a bug.
const MAX_DURATION_MS = 2 ** 31 - 1;
const EXAMPLES = "write e.g. 30s, 500ms, 2m or 1m30s";

/**
 * Parses a duration into milliseconds.
 *
 * Accepted forms:
 * - a number, or a string of digits, is seconds (`30`, `"30"`, `1.5`), as in kubectl's `--request-timeout`
 * - one or more `<number><unit>` terms with units `ms`, `s`, `m`, `h`, summed like Go's durations:
 *   `500ms`, `30s`, `2m`, `1m30s`, `1.5h`
 *
 * The result is rounded to whole milliseconds and lies in 0..2^31-1 (about 24.8 days).
 */
export function parseDuration(text: string | number): number {
  const input = String(text);
  let ms: number;
  if (typeof text === "number") {
    ms = text * 1000;
  } else {
    const trimmed = text.trim();
    if (trimmed === "") throw new DurationError(input, `it is empty; ${EXAMPLES}`);
    if (/^\d+(\.\d+)?$/.test(trimmed)) {
      ms = Number(trimmed) * 1000;
    } else {
      ms = 0;
      const term = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
      let at = 0;
      while (at < trimmed.length) {
        term.lastIndex = at;
        const match = term.exec(trimmed);
        if (!match) {
          throw new DurationError(input, `"${trimmed.slice(at)}" is not a number with a unit; ${EXAMPLES}`);
        }
        ms += Number(match[1]) * UNIT_MS[match[2]];
        at = term.lastIndex;
      }
    }
  }
  if (!Number.isFinite(ms) || ms < 0) throw new DurationError(input, `it must be zero or more; ${EXAMPLES}`);
  ms = Math.round(ms);
  if (ms > MAX_DURATION_MS) {
    throw new DurationError(
      input,
      `it is longer than ${MAX_DURATION_MS} ms (about 24 days); use a shorter one`,
    );
  }
  return ms;
}
