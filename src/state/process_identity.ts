/** Is the pid in a session file still that kf process? Liveness plus start time and argv, to catch PID reuse. */

/** "live": the recorded process runs; "dead": nothing runs at that pid; "stale": another process has the pid. */
export type Liveness = "live" | "dead" | "stale";

/** What a session file records about its process. */
export interface ProcessIdentity {
  pid: number;
  /** From {@linkcode processStartTime}; undefined when the platform cannot tell. */
  startTime?: string;
  /** From {@linkcode processArgv}; empty when unknown. */
  argv: string[];
}

const isLinux = Deno.build.os === "linux";

/**
 * When the process started, as an opaque string only compared for equality.
 * Linux: field 22 of `/proc/<pid>/stat` (clock ticks since boot). Elsewhere: `ps -o lstart= -p <pid>`
 * (to the second; argv then carries more of the identity). Undefined when the process does not exist.
 */
export function processStartTime(pid: number): string | undefined {
  if (isLinux) return procStat(pid)?.startTime;
  return psField(pid, "lstart");
}

/** The process's command line: Linux `/proc/<pid>/cmdline`; elsewhere `ps -ww -o command=` split on spaces
 * (lossy, but the same on both sides of a comparison). */
export function processArgv(pid: number): string[] | undefined {
  if (isLinux) {
    let raw: string;
    try {
      raw = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    } catch {
      return undefined;
    }
    const argv = raw.split("\0");
    if (argv.at(-1) === "") argv.pop();
    return argv;
  }
  return psField(pid, "command")?.split(" ");
}

/**
 * Whether a process with this pid exists and is not a zombie. `kill(pid, 0)`: ok = alive, NotFound = dead,
 * PermissionDenied = alive (another user's process).
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    Deno.kill(pid, 0);
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) return true;
    return false;
  }
  // An exited child its parent has not reaped yet still answers kill(0); it is dead for our purposes.
  if (isLinux && procStat(pid)?.state === "Z") return false;
  return true;
}

/**
 * Compares a recorded identity with the process now running at that pid. A record with neither a start
 * time nor an argv cannot be checked (kf always writes both): its live pid counts as "stale", never
 * signalled, since it cannot be told from PID reuse.
 */
export function identityMatches(record: ProcessIdentity): Liveness {
  if (!isAlive(record.pid)) return "dead";
  if (record.startTime === undefined && record.argv.length === 0) return "stale";
  if (record.startTime !== undefined) {
    const now = processStartTime(record.pid);
    // Undefined here means the process vanished between the two reads.
    if (now === undefined) return isAlive(record.pid) ? "stale" : "dead";
    if (now !== record.startTime) return "stale";
  }
  if (record.argv.length > 0) {
    const now = processArgv(record.pid);
    if (now !== undefined && !argvMatches(record.argv, now)) return "stale";
  }
  return "live";
}

/** Equal, or the recorded argv is the tail of the real one (a caller may record only the script's args). */
function argvMatches(recorded: string[], actual: string[]): boolean {
  if (recorded.length > actual.length) return false;
  const offset = actual.length - recorded.length;
  return recorded.every((arg, i) => arg === actual[offset + i]);
}

interface ProcStat {
  state: string;
  startTime: string;
}

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and ')' itself, so split after the LAST ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  const startTime = fields[19];
  if (!fields[0] || !startTime) return undefined;
  return { state: fields[0], startTime };
}

function psField(pid: number, field: "lstart" | "command"): string | undefined {
  try {
    const out = new Deno.Command("ps", {
      args: ["-ww", "-o", `${field}=`, "-p", String(pid)],
      stderr: "null",
    })
      .outputSync();
    const text = new TextDecoder().decode(out.stdout).trim();
    return out.success && text ? text : undefined;
  } catch {
    return undefined;
  }
}
