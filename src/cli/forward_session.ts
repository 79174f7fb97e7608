/** The running `kf forward` process: starts the forwards, reports them, records the session, stops on signals. */

import process from "node:process";
import type { ForwardSpec } from "../config/mod.ts";
import { systemClock } from "../clock.ts";
import { KfError } from "../errors.ts";
import { KubeClientPool } from "../kube/client_pool.ts";
import { ForwardSession } from "../forward/session.ts";
import { SharedWatches } from "../watch/mod.ts";
import { resolveStateDir, SessionRecorder } from "../state/mod.ts";
import { trimCodePages } from "../runtime/code_pages.ts";
import type { CommandIO } from "./io.ts";
import {
  formatEventJson,
  formatForwardLine,
  formatRequestLine,
  hostPort,
  LiveTable,
} from "./forward_output.ts";

export interface RunSessionOptions {
  io: CommandIO;
  output: "text" | "json";
  graceMs: number;
  configFiles: string[];
  stateDir?: string;
  /** After a network change or wake, how long the path must be stable before reconnecting. */
  networkSettleMs?: number;
}

/** Env var through which `--detach` learns that the child is listening (a file path to write the report to). */
export const DETACH_REPORT_ENV = "KF_DETACH_REPORT";
/** How long `--detach` waits for the forwards' first pod lists before it reports what it has. */
const DETACH_SETTLE_TIMEOUT_MS = 10_000;

/** Runs until SIGINT/SIGTERM/SIGHUP, `kf stop`, or every forward stopped; throws when none could start. */
export async function runSession(specs: ForwardSpec[], options: RunSessionOptions): Promise<void> {
  const { io } = options;
  const watches = new SharedWatches();
  const session = new ForwardSession({
    clients: new KubeClientPool(),
    watches,
    clock: systemClock,
    networkSettleMs: options.networkSettleMs,
  });
  const tty = options.output === "text" && Deno.stdout.isTerminal() && !Deno.env.get(DETACH_REPORT_ENV);
  const table = tty ? new LiveTable(io.out) : undefined;
  let recorder: SessionRecorder | undefined;

  const lastLine = new Map<string, string>();
  session.subscribe((event) => {
    // requests change no state worth a state file write; the table shows their rate
    if (event.type !== "request") recorder?.changed();
    if (options.output === "json") return io.out(formatEventJson(event) + "\n");
    if (table) return; // redrawn below
    if (event.type === "request") {
      return io.out(`${new Date().toISOString()} ${formatRequestLine(event.forward, event.request)}\n`);
    }
    if (event.type === "status") {
      // one line per state or pod change, not per byte
      const line = formatForwardLine({ ...event.status, openConnections: 0, totalConnections: 0 });
      if (lastLine.get(event.status.name) === line) return;
      lastLine.set(event.status.name, line);
      io.out(`${new Date().toISOString()} ${line}\n`);
    } else if (event.type === "failed") {
      io.err(`${new Date().toISOString()} ${event.forward} failed: ${event.error.message}\n`);
      if (event.error instanceof KfError && event.error.hint) io.err(`  hint: ${event.error.hint}\n`);
    } else {
      io.err(
        `${new Date().toISOString()} ${event.forward} connection error${
          event.pod ? ` (pod ${event.pod})` : ""
        }: ${event.message}\n`,
      );
    }
  });

  await session.start(specs);
  if (session.forwards.length === 0) {
    await watches.close();
    const reasons = session.failed.map((f) => `  ${f.spec.name}: ${f.error.message}`).join("\n");
    const hint = session.failed.length === 1 && session.failed[0].error instanceof KfError
      ? (session.failed[0].error as KfError).hint
      : undefined;
    await reportDetach({ ok: false, error: reasons, hint });
    throw new KfError(`No forward could start:\n${reasons}`, { hint });
  }

  const stopAll = async () => {
    await session.stop(options.graceMs);
  };
  // From here on a signal stops the session cleanly: without a listener, SIGTERM's default action would
  // end the process between writing the state file and handling signals, and leave the file behind.
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  let signalled = false;
  const onSignal = () => {
    // a second Ctrl-C means "now": open connections do not get the rest of their grace period
    if (signalled) return session.abort();
    signalled = true;
    const { open } = session.connections();
    if (open > 0 && options.output === "text") {
      io.err(
        `stopping: ${open} open connection(s) get ${options.graceMs} ms to finish; Ctrl-C again to cut them\n`,
      );
    }
    void stopAll();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  let redraw: ReturnType<typeof setInterval> | undefined;
  try {
    try {
      recorder = await SessionRecorder.start({
        dir: options.stateDir ?? resolveStateDir(),
        configFiles: options.configFiles,
        snapshot: () => session.statuses(),
        logFile: Deno.env.get("KF_LOG_FILE"),
        graceMs: options.graceMs,
        control: {
          stop: stopAll,
          stopForward: (name) => session.stopForward(name, options.graceMs),
          status: () => session.statuses(),
        },
        onError: (error) => io.err(`warning: session state: ${(error as Error).message}\n`),
      });
    } catch (error) {
      // the forwards still work without a state file; say why kf ps will not show them
      io.err(`warning: session not recorded (kf ps/stop will not see it): ${(error as Error).message}\n`);
    }

    if (options.output === "text" && !table) {
      for (const forward of session.forwards) {
        for (const l of forward.status().listeners) {
          io.out(`Forwarding ${hostPort(l.address, l.port)} -> ${forward.status().target}:${l.remote}\n`);
        }
      }
    }
    if (Deno.env.get(DETACH_REPORT_ENV)) {
      // Every forward listens already; wait for the first pod list too, so the report (and a `kf ps` run
      // right after `--detach` returns) shows ready or why not, instead of "starting".
      await settled(session, DETACH_SETTLE_TIMEOUT_MS);
      await recorder?.flush().catch(() => {});
      await reportDetach({ ok: true, id: recorder?.id, forwards: session.statuses() });
    }

    // once every forward has its first pod list, start-up is over: its code pages can go (an idle forward
    // then holds ~40 MiB instead of ~69)
    trimCodePages({
      settled: settled(session, DETACH_SETTLE_TIMEOUT_MS),
      done: session.done,
      connections: () => session.connections(),
    });
    redraw = table
      ? setInterval(
        () => table.draw(session.statuses(), `session ${recorder?.id ?? "-"}  (Ctrl-C to stop)`),
        500,
      )
      : undefined;
    await session.done;
  } finally {
    clearInterval(redraw);
    if (table) table.draw(session.statuses(), `session ${recorder?.id ?? "-"} stopped`);
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    await recorder?.close();
    await watches.close();
  }
  // node:https keep-alive sockets and ws timers must not keep the process alive after a clean stop
  process.exitCode = 0;
}

/** Resolves once no forward is "starting" (each is ready, waiting for a pod, degraded...), or after timeoutMs. */
function settled(session: ForwardSession, timeoutMs: number): Promise<void> {
  const isSettled = () => session.statuses().every((s) => s.state !== "starting");
  if (isSettled()) return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    const unsubscribe = session.subscribe(() => isSettled() && finish());
    session.done.then(finish);
  });
}

async function reportDetach(report: Record<string, unknown>): Promise<void> {
  const path = Deno.env.get(DETACH_REPORT_ENV);
  if (!path) return;
  await Deno.writeTextFile(path + ".tmp", JSON.stringify(report));
  await Deno.rename(path + ".tmp", path);
}
