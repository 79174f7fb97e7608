/**
 * Builds the shipped form of kf: dist/ with main.js and its chunks (`deno bundle --code-splitting`, so the
 * dynamic imports of rare paths — detach, oidc/azure/gcp auth — stay separate files loaded only when used),
 * stamped with the git commit for `kf version`. Prints the size of what `kf` loads at startup.
 *
 *   deno run -A scripts/bundle.ts [--out dist]
 */

import { join, relative } from "node:path";
import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname;
const STAMP = "@@KF_BUILD_COMMIT@@";

const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string", default: "dist" } } });
const out = join(ROOT, values.out!);

await Deno.remove(out, { recursive: true }).catch(() => {});
const bundle = await new Deno.Command(Deno.execPath(), {
  args: ["bundle", "--quiet", "--platform=deno", "--code-splitting", "--outdir", out, join(ROOT, "main.ts")],
  cwd: ROOT,
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!bundle.success) Deno.exit(bundle.code || 1);

const commit = await gitCommit();
let total = 0;
let stamped = 0;
for (const entry of Deno.readDirSync(out)) {
  if (!entry.isFile || !entry.name.endsWith(".js")) continue;
  const file = join(out, entry.name);
  const text = Deno.readTextFileSync(file);
  if (text.includes(STAMP)) {
    Deno.writeTextFileSync(file, text.replaceAll(STAMP, commit));
    stamped++;
  }
  total += Deno.statSync(file).size;
}
if (stamped === 0) {
  console.error(
    `bundle: the build stamp ${STAMP} was not found in ${relative(ROOT, out)}; kf version would lie`,
  );
  Deno.exit(1);
}
console.log(`${relative(ROOT, out)}/main.js: ${(total / 1e6).toFixed(2)} MB in all chunks, commit ${commit}`);

async function gitCommit(): Promise<string> {
  try {
    const head = await new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    })
      .output();
    if (!head.success) return "unknown";
    const status = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      cwd: ROOT,
      stdout: "piped",
    }).output();
    const dirty = new TextDecoder().decode(status.stdout).trim() !== "";
    return new TextDecoder().decode(head.stdout).trim() + (dirty ? "-dirty" : "");
  } catch {
    return "unknown"; // building from a tarball without git
  }
}
