/**
 * Builds the shipped form of kf: dist/ with main.js and its chunks (`deno bundle --code-splitting`, so the
 * dynamic imports of rare paths — detach, oidc/azure/gcp auth — stay separate files loaded only when used),
 * stamped with the git commit for `kf version`. Prints the bundle's size.
 *
 * With --compile, also single binaries of that bundle (`deno compile`): dist/kf for this machine, or
 * dist/kf-<target> for each --target (Deno's target triples, e.g. x86_64-unknown-linux-gnu,
 * aarch64-unknown-linux-gnu, x86_64-apple-darwin, aarch64-apple-darwin; deno compile downloads the
 * runtime of each target once, so this needs network), and dist/SHA256SUMS for them.
 *
 *   deno run -A scripts/bundle.ts [--out dist] [--compile [--target TRIPLE]...]
 */

import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { KF_V8_FLAGS } from "../src/runtime/v8_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const STAMP = "@@KF_BUILD_COMMIT@@";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "dist" },
    compile: { type: "boolean", default: false },
    target: { type: "string", multiple: true, default: [] },
  },
});
const out = join(ROOT, values.out!);

await Deno.remove(out, { recursive: true }).catch(() => {});
const bundle = await new Deno.Command(Deno.execPath(), {
  args: ["bundle", "--quiet", "--platform=deno", "--code-splitting", "--outdir", out, join(ROOT, "main.ts")],
  cwd: ROOT,
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!bundle.success) Deno.exit(bundle.code || 1);

unloadRequireShimAtStart(out);

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

/**
 * The bundler gives the CommonJS packages inside the bundle a `require` made with Node's createRequire, in a
 * helper chunk that imports "node:module", and makes main.js import that chunk up front although main.js
 * uses none of it. Loading "node:module" starts Deno's Node compatibility layer: ~30 ms and ~15 MB for
 * `kf --version` and `kf ps`, which need nothing from Node (main.ts). The chunks that use the helpers import
 * them by name, so the helper chunk still loads, just no earlier than the first of them; only main.js's bare
 * import goes.
 */
function unloadRequireShimAtStart(dir: string): void {
  const shim = [...Deno.readDirSync(dir)].find((entry) =>
    entry.isFile && entry.name.endsWith(".js") &&
    Deno.readTextFileSync(join(dir, entry.name)).includes('from "node:module"')
  );
  if (!shim) return;
  const mainFile = join(dir, "main.js");
  const main = Deno.readTextFileSync(mainFile);
  const bareImport = `import "./${shim.name}";\n`;
  if (!main.includes(bareImport)) return;
  if (main.includes(`from "./${shim.name}"`)) return; // main.js uses it after all
  Deno.writeTextFileSync(mainFile, main.replace(bareImport, ""));
}

if (values.compile) {
  const targets: (string | undefined)[] = values.target!.length ? values.target! : [undefined];
  const sums: string[] = [];
  for (const target of targets) {
    const name = target ? `kf-${target}` : "kf";
    const compile = await new Deno.Command(Deno.execPath(), {
      args: [
        "compile",
        "--quiet",
        "-A",
        "--no-config",
        // the same V8 flag as the bin/kf launcher (see there why)
        KF_V8_FLAGS,
        ...(target ? ["--target", target] : []),
        "--output",
        join(out, name),
        join(out, "main.js"),
      ],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!compile.success) Deno.exit(compile.code || 1);
    const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(join(out, name)));
    const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    sums.push(`${hex}  ${name}\n`);
    console.log(
      `${relative(ROOT, out)}/${name}: ${(Deno.statSync(join(out, name)).size / 1e6).toFixed(1)} MB`,
    );
  }
  // the format of `sha256sum`: check with `sha256sum -c SHA256SUMS`
  await Deno.writeTextFile(join(out, "SHA256SUMS"), sums.join(""));
}

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
