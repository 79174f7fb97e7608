/** The view from other kf invocations: list sessions with their liveness, and stop sessions or single forwards. */

import { UsageError } from "../errors.ts";
import { sendControl } from "./control.ts";
import { AmbiguousTargetError, SessionNotFoundError } from "./errors.ts";
import { identityMatches, type Liveness } from "./process_identity.ts";
import {
  readSessionRecords,
  type RecordProblem,
  removeSessionRecord,
  type SessionRecord,
} from "./session_file.ts";

export interface SessionView {
  record: SessionRecord;
  /** "dead" and "stale" sessions are returned once; their files are already removed (unless `prune: false`). */
  liveness: Liveness;
}

export interface ListSessionsOptions {
  /** Remove the files of dead and stale sessions. @default true */
  prune?: boolean;
  /** Called for each session file that cannot be read; it is left in place. */
  onProblem?: (problem: RecordProblem) => void;
}

/** Every session in dir with its liveness, oldest first. Only reads `/proc` (Linux): fast for many sessions. */
export async function listSessions(dir: string, options: ListSessionsOptions = {}): Promise<SessionView[]> {
  const { prune = true, onProblem } = options;
  const { records, problems } = await readSessionRecords(dir);
  if (onProblem) problems.forEach(onProblem);
  const views = records.map((record) => ({ record, liveness: identityMatches(record) }));
  if (prune) {
    await Promise.all(
      views.filter((v) => v.liveness !== "live").map((v) =>
        removeSessionRecord(dir, v.record.id).catch(() => {})
      ),
    );
  }
  return views;
}

export type StopAction =
  | "stopped" // the session exited after SIGTERM
  | "killed" // it ignored SIGTERM for the whole timeout; SIGKILL ended it
  | "stopped-forward" // one forward stopped through the control socket; the session keeps running
  | "removed-dead" // the session was already gone; its state file was removed
  | "refused" // the pid now belongs to another process (PID reuse): not signalled
  | "failed"; // could not stop it (no permission, survived SIGKILL, control socket error)

export interface StopOutcome {
  action: StopAction;
  /** False for "refused" and "failed". */
  ok: boolean;
  session: string;
  pid: number;
  forward?: string;
  /** What happened, as one line for a terminal. */
  message: string;
}

export interface StopSessionsOptions {
  /** Stop every session; targets must then be empty. */
  all?: boolean;
  /**
   * How long to wait after SIGTERM before SIGKILL. @default 5000, or the session's grace period plus
   * {@linkcode EXIT_MARGIN_MS} when that is longer (open connections may finish before the process exits).
   */
  timeoutMs?: number;
  /** How often to check whether a signalled process is gone (a kill(0) and a /proc read). @default 50 */
  pollMs?: number;
  /** How long to wait for the process to vanish after SIGKILL. @default 2000 */
  killWaitMs?: number;
  onProblem?: (problem: RecordProblem) => void;
  /** Called as each outcome is known (targets run concurrently), before `stopSessions` resolves. */
  onOutcome?: (outcome: StopOutcome) => void;
}

/** kf's default `--grace` (for session files that do not record theirs). */
const DEFAULT_GRACE_MS = 2_000;
/** Time a session needs beyond its grace period to close up and answer or exit. */
export const EXIT_MARGIN_MS = 3_000;
const DEFAULT_TIMEOUT_MS = 5_000;

/** How long stopping (part of) this session may take: its grace period, then closing up. */
function stopBudgetMs(record: SessionRecord): number {
  return (record.graceMs ?? DEFAULT_GRACE_MS) + EXIT_MARGIN_MS;
}

interface Plan {
  view: SessionView;
  /** Forward names to stop, or undefined for the whole session. */
  forwards?: Set<string>;
}

/**
 * Stops sessions or forwards. A target is a session id (`k3m9qa`), a pid, a forward name (`api`), or
 * `ID/NAME`. Every target is resolved before anything is signalled: an unknown one throws
 * {@linkcode SessionNotFoundError}, a forward name used in several sessions {@linkcode AmbiguousTargetError}.
 * Identity (pid, start time, argv) is checked again right before each signal; a mismatch is refused.
 * Stopping every running forward of a session stops the session. Outcomes come back in target order.
 */
export async function stopSessions(
  dir: string,
  targets: string[],
  options: StopSessionsOptions = {},
): Promise<StopOutcome[]> {
  if (options.all && targets.length > 0) {
    throw new UsageError("Cannot combine --all with targets", {
      hint: "use either kf stop --all or kf stop ID...",
    });
  }
  if (!options.all && targets.length === 0) {
    throw new UsageError("Nothing to stop", {
      hint: "name a session id or forward name (see kf ps), or use --all",
    });
  }
  const views = await listSessions(dir, { onProblem: options.onProblem });
  const plans = options.all ? views.map((view) => ({ view })) : resolveTargets(views, targets);
  return (await Promise.all(plans.map((plan) => execute(dir, plan, options)))).flat();
}

function resolveTargets(views: SessionView[], targets: string[]): Plan[] {
  const plans = new Map<string, Plan>();
  const addSession = (view: SessionView) => plans.set(view.record.id, { view });
  const addForward = (view: SessionView, name: string) => {
    const plan = plans.get(view.record.id) ?? { view, forwards: new Set<string>() };
    plan.forwards?.add(name);
    plans.set(view.record.id, plan);
  };
  for (const target of targets) {
    const byId = views.find((v) => v.record.id === target) ??
      (/^\d+$/.test(target) ? views.find((v) => v.record.pid === Number(target)) : undefined);
    if (byId) {
      addSession(byId);
      continue;
    }
    const slash = target.indexOf("/");
    const inSession = slash > 0 ? views.find((v) => v.record.id === target.slice(0, slash)) : undefined;
    if (inSession) {
      const name = target.slice(slash + 1);
      if (!inSession.record.forwards.some((f) => f.name === name)) {
        throw new SessionNotFoundError(target, running(views));
      }
      addForward(inSession, name);
      continue;
    }
    const having = views.filter((v) => v.record.forwards.some((f) => f.name === target));
    // A live session's forward wins over a dead one of the same name (that one is pruned anyway).
    const live = having.filter((v) => v.liveness === "live");
    const matches = live.length > 0 ? live : having;
    if (matches.length === 0) throw new SessionNotFoundError(target, running(views));
    if (matches.length > 1) {
      throw new AmbiguousTargetError(
        target,
        matches.map((v) => `${v.record.id}/${target}`),
      );
    }
    addForward(matches[0], target);
  }
  return [...plans.values()];
}

function running(views: SessionView[]): string[] {
  return views.filter((v) => v.liveness === "live").map((v) => {
    const names = v.record.forwards.map((f) => f.name);
    return names.length ? `${v.record.id} (${names.join(", ")})` : v.record.id;
  });
}

async function execute(dir: string, plan: Plan, options: StopSessionsOptions): Promise<StopOutcome[]> {
  const { record } = plan.view;
  if (plan.forwards) {
    const remaining = record.forwards.filter((f) => !plan.forwards!.has(f.name) && f.state !== "stopped");
    if (remaining.length > 0 && plan.view.liveness === "live") {
      const outcomes: StopOutcome[] = [];
      for (const name of plan.forwards) {
        const outcome = await stopForward(dir, record, name);
        outcomes.push(outcome);
        options.onOutcome?.(outcome);
      }
      return outcomes;
    }
  }
  const outcome = await stopSession(dir, record, plan.view.liveness, options);
  options.onOutcome?.(outcome);
  return [outcome];
}

async function stopForward(dir: string, record: SessionRecord, name: string): Promise<StopOutcome> {
  const base = { session: record.id, pid: record.pid, forward: name };
  const liveness = identityMatches(record);
  if (liveness !== "live") return await notLive(dir, record, liveness);
  try {
    // The session answers once the forward has stopped, which takes up to its grace period.
    const response = await sendControl(record.controlSocket, { op: "stop-forward", name }, {
      timeoutMs: stopBudgetMs(record),
    });
    if (response.pid !== undefined && response.pid !== record.pid) {
      return {
        ...base,
        action: "failed",
        ok: false,
        message: `failed to stop forward ${name} in session ${record.id}: its control socket is served by ` +
          `pid ${response.pid}, not pid ${record.pid}`,
      };
    }
    if (!response.ok) {
      return {
        ...base,
        action: "failed",
        ok: false,
        message: `failed to stop forward ${name} in session ${record.id}: ${response.error}`,
      };
    }
    return {
      ...base,
      action: "stopped-forward",
      ok: true,
      message: `stopped forward ${name} in session ${record.id}`,
    };
  } catch (error) {
    return {
      ...base,
      action: "failed",
      ok: false,
      message: `failed to stop forward ${name} in session ${record.id}: ${(error as Error).message}`,
    };
  }
}

async function stopSession(
  dir: string,
  record: SessionRecord,
  listed: Liveness,
  options: StopSessionsOptions,
): Promise<StopOutcome> {
  const { pollMs = 50, killWaitMs = 2000 } = options;
  const timeoutMs = options.timeoutMs ?? Math.max(DEFAULT_TIMEOUT_MS, stopBudgetMs(record));
  const base = { session: record.id, pid: record.pid };
  const what = `session ${record.id} (pid ${record.pid}, ${plural(record.forwards.length, "forward")})`;
  // Checked again right before signalling: the listing may be milliseconds old.
  const liveness = listed === "live" ? identityMatches(record) : listed;
  if (liveness !== "live") return await notLive(dir, record, liveness);

  const term = signal(record.pid, "SIGTERM");
  if (term) return { ...base, action: "failed", ok: false, message: `failed to stop ${what}: ${term}` };
  if (await waitGone(record, timeoutMs, pollMs)) {
    await removeSessionRecord(dir, record.id).catch(() => {});
    return { ...base, action: "stopped", ok: true, message: `stopped ${what}` };
  }

  const again = identityMatches(record);
  if (again !== "live") {
    await removeSessionRecord(dir, record.id).catch(() => {});
    return { ...base, action: "stopped", ok: true, message: `stopped ${what}` };
  }
  const kill = signal(record.pid, "SIGKILL");
  if (kill) return { ...base, action: "failed", ok: false, message: `failed to kill ${what}: ${kill}` };
  if (await waitGone(record, killWaitMs, pollMs)) {
    await removeSessionRecord(dir, record.id).catch(() => {});
    return {
      ...base,
      action: "killed",
      ok: true,
      message: `killed ${what}: still running ${seconds(timeoutMs)} after SIGTERM, sent SIGKILL`,
    };
  }
  return {
    ...base,
    action: "failed",
    ok: false,
    message: `failed to stop ${what}: still running ${seconds(killWaitMs)} after SIGKILL`,
  };
}

async function notLive(dir: string, record: SessionRecord, liveness: Liveness): Promise<StopOutcome> {
  await removeSessionRecord(dir, record.id).catch(() => {});
  const base = { session: record.id, pid: record.pid };
  if (liveness === "dead") {
    return {
      ...base,
      action: "removed-dead",
      ok: true,
      message: `session ${record.id} was not running (pid ${record.pid} had exited); removed its state file`,
    };
  }
  return {
    ...base,
    action: "refused",
    ok: false,
    message: `refused pid ${record.pid}: it is now another process (PID reuse); ` +
      `removed the stale state file of session ${record.id}`,
  };
}

/** Sends a signal; returns why it failed, or undefined. A process that vanished meanwhile is not a failure. */
function signal(pid: number, name: "SIGTERM" | "SIGKILL"): string | undefined {
  try {
    Deno.kill(pid, name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.PermissionDenied) return `not permitted to send ${name} to pid ${pid}`;
    return `${name}: ${(error as Error).message}`;
  }
  return undefined;
}

/** Polls until the recorded process is gone (dead, or its pid already reused); false on timeout. */
async function waitGone(record: SessionRecord, timeoutMs: number, pollMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (identityMatches(record) !== "live") return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, left)));
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}
