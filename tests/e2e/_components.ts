/**
 * Stopping and starting single components of the test cluster by their pid files (as tests/cluster/up.sh
 * writes them), for fault tests: a component is restarted with the binary and arguments it ran with.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cluster, kubectl, until } from "./_harness.ts";

export interface Component {
  name: string;
  exe: string;
  args: string[];
}

/** The running component's binary and arguments, from its pid file and /proc, so it can be restarted as is. */
export function component(name: string): Component {
  const pid = Number(Deno.readTextFileSync(join(cluster.dir, "pids", `${name}.pid`)).trim());
  const exe = Deno.readLinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
  const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a, i, all) =>
    i < all.length - 1 || a !== ""
  );
  return { name, exe, args: argv.slice(1) };
}

export function pidOf(name: string): number {
  return Number(Deno.readTextFileSync(join(cluster.dir, "pids", `${name}.pid`)).trim());
}

export function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs one component by its pid file and waits until it is gone. */
export async function kill(name: string): Promise<void> {
  const pid = pidOf(name);
  Deno.kill(pid, "SIGKILL");
  await until(() => !alive(pid), 10_000, `${name} to exit`);
}

/** Starts a component again as tests/cluster/up.sh does: detached, its pid file and log as before. */
export async function start(c: Component): Promise<void> {
  const pidFile = join(cluster.dir, "pids", `${c.name}.pid`);
  const log = join(cluster.dir, "logs", `${c.name}.log`);
  const script = `pid="$1"; log="$2"; shift 2; ` +
    `setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pid" "$@" </dev/null >>"$log" 2>&1 &`;
  const out = await new Deno.Command("bash", {
    args: ["-c", script, "_", pidFile, log, c.exe, ...c.args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(out.code, 0);
  await until(
    () => {
      try {
        return alive(pidOf(c.name));
      } catch {
        return false;
      }
    },
    10_000,
    `${c.name} to start`,
  );
}

export async function apiServerReady(): Promise<boolean> {
  const out = await kubectl(["get", "--raw", "/readyz"]).catch(() => undefined);
  return out?.code === 0 && out.stdout.trim() === "ok";
}
