/** `kf forward --detach`: starts the same session in the background and returns once it listens. */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { KfError } from "../errors.ts";
import { KF_V8_FLAGS } from "../runtime/v8_flags.ts";
import type { ForwardStatus } from "../forward/status.ts";
import { ensureStateDir, resolveStateDir } from "../state/mod.ts";
import type { CommandIO } from "./io.ts";
import { DETACH_REPORT_ENV } from "./forward_session.ts";
import { hostPort } from "./forward_output.ts";

/** How long the background session may take to bind and report before we give up on it. */
const DETACH_START_TIMEOUT_MS = 60_000;

interface DetachReport {
  ok: boolean;
  id?: string;
  error?: string;
  /** The hint of the error, when one forward failed with one. */
  hint?: string;
  forwards?: ForwardStatus[];
}

/** The command line that runs this same kf again: the binary itself, or deno with this entry module. */
export function selfCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  const main = Deno.mainModule.startsWith("file:") ? fileURLToPath(Deno.mainModule) : Deno.mainModule;
  const config = join(dirname(main), "deno.json");
  const configArgs = existsSync(config) ? ["--config", config] : ["--no-config"];
  return [Deno.execPath(), "run", "-A", ...configArgs, KF_V8_FLAGS, main];
}

export async function runDetached(
  options: { io: CommandIO; stateDir?: string; args?: string[] },
): Promise<void> {
  const dir = await ensureStateDir(options.stateDir ?? resolveStateDir());
  const logs = join(dir, "logs");
  await Deno.mkdir(logs, { recursive: true, mode: 0o700 });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const logFile = join(logs, `forward-${stamp}-${Deno.pid}.log`);
  const reportFile = join(dir, `.detach-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.json`);
  const args = (options.args ?? Deno.args).filter((a) => a !== "-d" && a !== "--detach");
  const [command, ...prefix] = selfCommand();
  const child = new Deno.Command(command, {
    args: [...prefix, ...args],
    env: { [DETACH_REPORT_ENV]: reportFile, KF_LOG_FILE: logFile },
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  let exited = false;
  child.status.then(() => (exited = true));
  const deadline = Date.now() + DETACH_START_TIMEOUT_MS;
  let report: DetachReport | undefined;
  while (!report) {
    try {
      report = JSON.parse(await Deno.readTextFile(reportFile)) as DetachReport;
      await Deno.remove(reportFile).catch(() => {});
      break;
    } catch {
      // not written yet
    }
    if (exited) {
      throw new KfError("The background session exited before it was listening", {
        hint: `see its log: ${logFile}`,
      });
    }
    if (Date.now() > deadline) {
      throw new KfError("The background session did not report within 60 s", {
        hint: `see its log: ${logFile}`,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (!report.ok) {
    throw new KfError(`The background session could not start:\n${report.error ?? ""}`, {
      hint: report.hint ? `${report.hint}\n  log: ${logFile}` : `see its log: ${logFile}`,
    });
  }
  child.unref();
  const { io } = options;
  io.out(`session ${report.id ?? "(unrecorded)"} pid ${child.pid} log ${logFile}\n`);
  for (const forward of report.forwards ?? []) {
    for (const l of forward.listeners) {
      io.out(
        `${forward.name} ${hostPort(l.address, l.port)} -> ${forward.target}:${l.remote} ${forward.state}\n`,
      );
    }
  }
  const failed = (report.forwards ?? []).filter((f) => f.state === "failed");
  if (failed.length > 0) {
    // The others run on in the background (as in the foreground): a script that stops at the non-zero exit
    // must learn that a session is still there.
    const running = (report.forwards ?? []).filter((f) => f.state !== "failed").map((f) => f.name);
    throw new KfError(
      `${failed.length} forward(s) failed: ${failed.map((f) => `${f.name}: ${f.lastError}`).join("; ")}`,
      {
        hint: `${running.join(", ")} still run${running.length === 1 ? "s" : ""} in the background: ` +
          `${report.id ? `kf stop ${report.id}` : `kill ${child.pid}`} to stop ` +
          `${running.length === 1 ? "it" : "them"}; log: ${logFile}`,
      },
    );
  }
}
