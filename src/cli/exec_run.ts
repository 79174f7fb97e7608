/** The running `kf exec`: forwards up and ready, then the command; forwards down when it exits. */

import process from "node:process";
import type { ForwardSpec } from "../config/mod.ts";
import { parseDuration } from "../config/mod.ts";
import { systemClock } from "../clock.ts";
import { KfError } from "../errors.ts";
import { KubeClientPool } from "../kube/client_pool.ts";
import { ForwardSession } from "../forward/session.ts";
import type { ForwardStatus } from "../forward/status.ts";
import { SharedWatches } from "../watch/mod.ts";
import { resolveStateDir, SessionRecorder } from "../state/mod.ts";
import { trimCodePages } from "../runtime/code_pages.ts";
import type { CommandIO } from "./io.ts";
import { dotenv, forwardEnv } from "./exec_env.ts";
import { ExitWith } from "./exit.ts";
import { formatForwardLine, formatRequestLine } from "./forward_output.ts";

export interface RunExecOptions {
  io: CommandIO;
  /** Durations as given on the command line, e.g. "30s". */
  readyTimeout: string;
  grace: string;
  envFile?: string;
  configFiles: string[];
  stateDir?: string;
}

/** Signals passed on to the command. SIGINT only without a terminal: there Ctrl-C reaches the command too. */
const PASSED_ON: Deno.Signal[] = ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

/** Exit code of a shell for a command that does not exist. */
const NOT_FOUND_EXIT = 127;

export async function runExec(specs: ForwardSpec[], argv: string[], options: RunExecOptions): Promise<never> {
  const { io } = options;
  const readyTimeoutMs = parseDuration(options.readyTimeout);
  const graceMs = parseDuration(options.grace);
  const watches = new SharedWatches();
  const session = new ForwardSession({ clients: new KubeClientPool(), watches, clock: systemClock });
  let child: Deno.ChildProcess | undefined;
  let recorder: SessionRecorder | undefined;
  // until the command runs, a signal ends kf itself (after stopping the forwards)
  const early = new AbortController();

  session.subscribe((event) => {
    recorder?.changed();
    // before the command runs, failures are summed up by notReady() instead
    if (event.type === "failed" && child) {
      io.err(`kf: ${event.forward} failed: ${event.error.message}\n`);
      if (event.error instanceof KfError && event.error.hint) io.err(`  hint: ${event.error.hint}\n`);
    } else if (event.type === "request") {
      // --log-requests: on stderr with kf's other messages, CMD's output stays untouched
      io.err(`kf: ${formatRequestLine(event.forward, event.request)}\n`);
    } else if (event.type === "connection-error") {
      io.err(
        `kf: ${event.forward} connection error${event.pod ? ` (pod ${event.pod})` : ""}: ${event.message}\n`,
      );
    }
  });

  const onSignal = (signal: Deno.Signal) => () => {
    if (child) {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    } else early.abort(signal);
  };
  const passedOn = Deno.stdin.isTerminal() ? PASSED_ON : [...PASSED_ON, "SIGINT" as const];
  const handlers = passedOn.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  // on a terminal kf ignores Ctrl-C itself and waits for the command, which decides what Ctrl-C means
  const onTerminalInt = () => {
    if (!child) early.abort("SIGINT");
  };
  if (Deno.stdin.isTerminal()) Deno.addSignalListener("SIGINT", onTerminalInt);

  let code: number;
  try {
    await session.start(specs);
    if (session.failed.length > 0) {
      throw notReady(
        session.statuses(),
        "could not start",
        session.failed.map((f) => f.error),
      );
    }
    try {
      recorder = await SessionRecorder.start({
        dir: options.stateDir ?? resolveStateDir(),
        configFiles: options.configFiles,
        snapshot: () => session.statuses(),
        graceMs,
        control: {
          // `kf stop` of this session ends the command the way a SIGTERM to kf would
          stop: async () => {
            onSignal("SIGTERM")();
            await session.done;
          },
          stopForward: (name) => session.stopForward(name, graceMs),
          status: () => session.statuses(),
        },
        onError: (error) => io.err(`kf: warning: session state: ${(error as Error).message}\n`),
      });
    } catch (error) {
      io.err(`kf: warning: session not recorded (kf ps/stop will not see it): ${(error as Error).message}\n`);
    }
    await allReady(session, readyTimeoutMs, early.signal);
    trimCodePages({
      settled: Promise.resolve(),
      done: session.done,
      connections: () => session.connections(),
    });

    const env = forwardEnv(session.statuses());
    if (options.envFile) {
      await Deno.writeTextFile(options.envFile, dotenv(env), { mode: 0o600 });
    }
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        env,
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        io.err(`kf: ${argv[0]}: command not found\n`);
        throw new ExitWith(NOT_FOUND_EXIT);
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        io.err(`kf: ${argv[0]}: permission denied\n`);
        throw new ExitWith(126);
      }
      throw error;
    }
    const status = await child.status;
    code = status.signal ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    if (Deno.stdin.isTerminal()) Deno.removeSignalListener("SIGINT", onTerminalInt);
    await session.stop(graceMs);
    await recorder?.close();
    await watches.close();
  }
  // node:https keep-alive sockets and ws timers must not keep the process alive
  process.exitCode = code;
  throw new ExitWith(code);
}

/** Resolves when every forward is ready; throws (exit 1) when one fails, the time is up or a signal came. */
function allReady(session: ForwardSession, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const statuses = () => session.statuses();
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      const all = statuses();
      if (all.some((s) => s.state === "failed" || s.state === "stopped")) {
        finish(() => reject(notReady(all, "failed")));
      } else if (all.every((s) => s.state === "ready")) finish(resolve);
    };
    const timer = setTimeout(
      () => finish(() => reject(notReady(statuses(), `not ready after ${timeoutMs / 1000}s`))),
      timeoutMs,
    );
    const onAbort = () =>
      finish(() => reject(new ExitWith(128 + signalNumber(signal.reason as Deno.Signal))));
    signal.addEventListener("abort", onAbort);
    const unsubscribe = session.subscribe(check);
    function finish(then: () => void) {
      clearTimeout(timer);
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
      then();
    }
    check();
  });
}

function notReady(statuses: ForwardStatus[], what: string, failures: Error[] = []): KfError {
  const waiting = statuses.filter((s) => s.state !== "ready");
  const lines = waiting.map((s) => `  ${formatForwardLine(s)}`).join("\n");
  const someWaitForPods = waiting.some((s) => s.state === "waiting-for-pod");
  const own = failures.length === 1 && failures[0] instanceof KfError ? failures[0].hint : undefined;
  return new KfError(`Forwards ${what}, the command was not run:\n${lines}`, {
    hint: own ??
      (someWaitForPods
        ? "no ready pod matches: check the target (kubectl get pods) or raise --ready-timeout"
        : "kf forward with the same arguments shows the forwards' states live"),
  });
}

const SIGNAL_NUMBERS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/** Shell convention for a command ended by a signal: 128 + its number (Linux numbering; 15 when unknown). */
function signalNumber(signal: Deno.Signal): number {
  return SIGNAL_NUMBERS[signal] ?? 15;
}
