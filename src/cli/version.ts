/** `kf version`: kf's own version, the Deno running it and the commit it was built from. */

import { Command } from "@commander-js/extra-typings";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { UsageError } from "../errors.ts";
import type { CommandIO } from "./io.ts";

import { VERSION } from "./version_number.ts";

export { VERSION };

/**
 * Replaced by scripts/bundle.ts in the shipped bundle (and so in compiled binaries). From a checkout it is
 * left as is, and the commit is read from git instead.
 */
const BUILD_COMMIT_STAMP: string = "@@KF_BUILD_COMMIT@@";

export interface VersionInfo {
  kf: string;
  deno: string;
  v8: string;
  typescript: string;
  /** Git commit of the build, "unknown" outside a checkout without a stamp. */
  commit: string;
  /** "bundle" (stamped at build time), "compiled" (deno compile of the bundle) or "source". */
  build: "bundle" | "compiled" | "source";
}

export async function versionInfo(): Promise<VersionInfo> {
  const stamped = !BUILD_COMMIT_STAMP.startsWith("@@");
  return {
    kf: VERSION,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    commit: stamped ? BUILD_COMMIT_STAMP : await commitFromGit(),
    build: Deno.build.standalone ? "compiled" : stamped ? "bundle" : "source",
  };
}

/** The checkout's HEAD (with "-dirty" for local changes); only `kf version` pays for running git. */
async function commitFromGit(): Promise<string> {
  if (!import.meta.url.startsWith("file:")) return "unknown";
  const cwd = dirname(fileURLToPath(import.meta.url));
  try {
    const head = await new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd,
      stdout: "piped",
      stderr: "null",
    })
      .output();
    if (!head.success) return "unknown";
    const commit = new TextDecoder().decode(head.stdout).trim();
    const status = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      cwd,
      stdout: "piped",
      stderr: "null",
    }).output();
    const dirty = status.success && new TextDecoder().decode(status.stdout).trim() !== "";
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return "unknown"; // no git on PATH
  }
}

export function versionCommand(io: CommandIO) {
  return new Command("version")
    .summary("Show the versions of kf and Deno and the build commit")
    .description("Show the versions of kf and of the Deno running it, and the git commit kf was built from.")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options) => {
      if (options.output !== "text" && options.output !== "json") {
        throw new UsageError(`Cannot use output format '${options.output}'`, {
          hint: "use -o text or -o json",
        });
      }
      const info = await versionInfo();
      if (options.output === "json") {
        io.out(JSON.stringify(info) + "\n");
        return;
      }
      io.out(
        `kf ${info.kf} (${info.build}, commit ${info.commit})\n` +
          `deno ${info.deno} (v8 ${info.v8}, typescript ${info.typescript})\n`,
      );
    });
}
