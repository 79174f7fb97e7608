/** Where session files live, and the checks that make the directory safe to trust. */

import { StateDirError } from "./errors.ts";

/**
 * The state directory, from the first that is set:
 * 1. `$KF_STATE_DIR`
 * 2. `$XDG_STATE_HOME/kf` (only an absolute path counts, as the XDG spec says)
 * 3. `~/.local/state/kf` — on macOS too, on purpose: one path for docs and scripts on both systems,
 *    and no space in it (`~/Library/Application Support` has one). Unix socket paths are limited to
 *    104 bytes on macOS, so a short directory matters for `<dir>/<id>.sock`.
 * 4. Windows: `%LOCALAPPDATA%\kf\state`.
 */
export function resolveStateDir(env: Record<string, string | undefined> = Deno.env.toObject()): string {
  if (env.KF_STATE_DIR) return env.KF_STATE_DIR;
  const xdg = env.XDG_STATE_HOME;
  if (xdg && xdg.startsWith("/")) return `${trimSlash(xdg)}/kf`;
  if (env.HOME) return `${trimSlash(env.HOME)}/.local/state/kf`;
  if (env.LOCALAPPDATA) return `${env.LOCALAPPDATA}\\kf\\state`;
  if (env.USERPROFILE) return `${env.USERPROFILE}\\AppData\\Local\\kf\\state`;
  throw new StateDirError("(unset)", "neither KF_STATE_DIR, XDG_STATE_HOME nor HOME is set", {
    hint: "set KF_STATE_DIR to a directory only you can write",
  });
}

/**
 * Creates the state directory (mode 0700) if it is missing, then checks it as {@linkcode checkStateDir} does.
 * Returns the directory.
 */
export async function ensureStateDir(dir: string): Promise<string> {
  if (!(await checkStateDir(dir))) {
    // mode applies to every directory created on the way; the umask can only remove bits.
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await checkStateDir(dir);
  }
  return dir;
}

/**
 * Checks an existing state directory without creating it: false when it does not exist; throws
 * {@linkcode StateDirError} when it is not a directory, is owned by another user, or is group/world-writable
 * (anyone who can write there could plant a session file that makes `kf stop` signal their choice of pid).
 */
export async function checkStateDir(dir: string): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new StateDirError(dir, (error as Error).message, { cause: error });
  }
  if (!info.isDirectory) {
    throw new StateDirError(dir, "it is not a directory", {
      hint: "remove it, or set KF_STATE_DIR to another directory",
    });
  }
  if (Deno.build.os === "windows") return true;
  const uid = Deno.uid();
  if (info.uid !== null && uid !== null && info.uid !== uid) {
    throw new StateDirError(dir, `it is owned by uid ${info.uid}, not by you (uid ${uid})`, {
      hint: "set KF_STATE_DIR to a directory you own",
    });
  }
  const mode = (info.mode ?? 0) & 0o777;
  if (mode & 0o022) {
    throw new StateDirError(
      dir,
      `it is group- or world-writable (mode ${mode.toString(8).padStart(4, "0")})`,
      {
        hint: `run: chmod 700 ${dir}`,
      },
    );
  }
  return true;
}

function trimSlash(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}
