/** The machine description for the results header. */

import { hostname } from "node:os";
import type { Kube } from "./cluster.ts";
import { REPO } from "./cluster.ts";
import { run } from "./proc.ts";
import type { Machine } from "./report.ts";

function readOr(path: string, fallback = ""): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

async function kfVersion(): Promise<string> {
  const main = readOr(`${REPO}/src/cli/version_number.ts`);
  const version = main.match(/VERSION = "([^"]+)"/)?.[1] ?? "?";
  const head = await run("git", ["-C", REPO, "rev-parse", "--short", "HEAD"]).catch(() => undefined);
  const dirty = await run("git", ["-C", REPO, "status", "--porcelain", "--", "src", "main.ts"]).catch(() =>
    undefined
  );
  const commit = head?.code === 0 ? head.stdout.trim() : "";
  return `${version}${commit ? ` (git ${commit}${dirty?.stdout.trim() ? ", src modified" : ""})` : ""}`;
}

export async function describeMachine(kube: Kube, kftui: string): Promise<Machine> {
  const cpuinfo = readOr("/proc/cpuinfo");
  const meminfo = readOr("/proc/meminfo");
  const memKb = Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
  const osRelease = readOr("/etc/os-release");
  const versions = await kube.versions();
  return {
    date: new Date().toISOString(),
    host: hostname(),
    nproc: navigator.hardwareConcurrency,
    cpu: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "?",
    memory: `${(memKb / 1024 / 1024).toFixed(1)} GiB`,
    kernel: Deno.osRelease(),
    os: osRelease.match(/^PRETTY_NAME="?([^"\n]+)"?/m)?.[1] ?? Deno.build.os,
    loadAverage: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
    deno: Deno.version.deno,
    kf: await kfVersion(),
    kubectl: versions.kubectl,
    apiserver: versions.apiserver,
    kftui,
  };
}
