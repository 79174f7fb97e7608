/** Resident memory and CPU time of processes, from /proc (Linux). */

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux). */
export async function clkTck(): Promise<number> {
  if (clockTicks !== undefined) return clockTicks;
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" })
      .output();
    clockTicks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  } catch {
    clockTicks = 100;
  }
  return clockTicks;
}

/** VmRSS of the process in bytes; 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * VmRSS split as the kernel counts it (bytes; 0 when the process is gone): `anon` are private pages (the JS
 * heap, malloc, stacks), `file` are pages of mapped files (for kf mostly the Deno executable, shared with
 * every other Deno process and reclaimable), `shmem` shared memory.
 */
export function rssParts(pid: number): { rss: number; anon: number; file: number; shmem: number } {
  let status = "";
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    // gone: all zero
  }
  const kib = (field: string) =>
    Number(status.match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m"))?.[1] ?? 0) * 1024;
  return { rss: kib("VmRSS"), anon: kib("RssAnon"), file: kib("RssFile"), shmem: kib("RssShmem") };
}

/** utime + stime of the process in seconds (fields 14 and 15 of /proc/<pid>/stat); 0 when it is gone. */
export function cpuSeconds(pid: number, ticks: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // the command name (field 2) may contain spaces: count fields after its closing parenthesis
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return 0;
  }
}

export function totalRss(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
}

export function totalCpu(pids: number[], ticks: number): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid, ticks), 0);
}

export const MB = 1024 * 1024;
