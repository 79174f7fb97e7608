/** File path helpers shared by the config reader and the kubeconfig loader. */

import os from "node:os";
import { join } from "node:path";

/**
 * Expands a leading `~` (alone or as `~/...`) to the home directory, as a shell would; other paths,
 * including `~user/...`, are returned unchanged.
 *
 * @param homeDir the home directory to use. @default {os.homedir()}
 */
export function expandHome(path: string, homeDir?: string): string {
  if (path !== "~" && !path.startsWith("~/")) return path;
  const home = homeDir ?? os.homedir();
  if (!home) return path;
  return path === "~" ? home : join(home, path.slice(2));
}
