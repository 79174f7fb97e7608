/** Errors of the session-state layer: an unsafe state dir, an unknown or ambiguous stop target, a dead control socket. */

import { KfError, type KfErrorOptions } from "../errors.ts";

/** The state directory cannot be used safely (owned by someone else, group/world-writable, not a directory). */
export class StateDirError extends KfError {
  override name = "StateDirError";
  readonly dir: string;

  constructor(dir: string, detail: string, options: KfErrorOptions = {}) {
    super(`Cannot use ${dir} as the kf state directory: ${detail}`, options);
    this.dir = dir;
  }
}

/** A `kf stop` target names no running session or forward. */
export class SessionNotFoundError extends KfError {
  override name = "SessionNotFoundError";
  readonly target: string;

  constructor(target: string, running: string[]) {
    super(`No kf session or forward named '${target}'`, {
      hint: running.length
        ? `running: ${running.join(", ")} (see kf ps)`
        : "no kf sessions are running (see kf ps)",
    });
    this.target = target;
  }
}

/** A forward name is used by forwards in several sessions; the user must say which one. */
export class AmbiguousTargetError extends KfError {
  override name = "AmbiguousTargetError";
  readonly target: string;
  /** `id/name` choices that would be unambiguous. */
  readonly choices: string[];

  constructor(target: string, choices: string[]) {
    super(`Forward name '${target}' is used in ${choices.length} sessions`, {
      hint: `say which one: ${choices.join(", ")}`,
    });
    this.target = target;
    this.choices = choices;
  }
}

/** The control socket of a session did not answer, or answered with an error. */
export class ControlError extends KfError {
  override name = "ControlError";
  readonly path: string;

  constructor(path: string, detail: string, options: KfErrorOptions = {}) {
    super(`Cannot talk to the kf session at ${path}: ${detail}`, options);
    this.path = path;
  }
}
