import assert from "node:assert/strict";
import { writeSessionRecord } from "../state/session_file.ts";
import { forward, recordFor, tempStateDir } from "../state/testdata/helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function kf(entry: string, args: string[], stateDir: string) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, entry, ...args],
    env: { KF_STATE_DIR: stateDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

Deno.test("main.ts answers kf --version and plain kf ps exactly as the command tree does", async () => {
  const live = await tempStateDir();
  const open = await tempStateDir();
  const missing = `${live}-missing`;
  try {
    // a live session (this test's own process), so the table has rows; started long enough ago that the
    // AGE column reads the same in both runs
    await writeSessionRecord(
      live,
      recordFor(live, "kquick", Deno.pid, {
        startedAt: new Date(Date.now() - 3 * 3600_000).toISOString(),
        forwards: [forward("api"), forward("db", { pod: "db-0" })],
      }),
    );
    await Deno.chmod(open, 0o777); // refused: group- and world-writable
    const cases: [string[], string][] = [
      [["--version"], live],
      [["-V"], live],
      [["ps"], live],
      [["ps", "-o", "json"], live],
      [["ps", "--output", "table"], live],
      [["ps", "--output=json"], live],
      [["ps", "-ojson"], live],
      [["ps"], missing],
      [["ps"], open],
      [["ps", "-o", "json"], open],
      // not a quick path: commander's usage error either way
      [["ps", "-o", "yaml"], live],
    ];
    for (const [args, dir] of cases) {
      const quick = await kf(`${ROOT}main.ts`, args, dir);
      const tree = await kf(`${ROOT}src/cli/testdata/program_entry.ts`, args, dir);
      assert.deepEqual(quick, tree, `kf ${args.join(" ")} (state dir ${dir})`);
    }
    const version = await kf(`${ROOT}main.ts`, ["--version"], live);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const refused = await kf(`${ROOT}main.ts`, ["ps"], open);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /world-writable/);
    const table = await kf(`${ROOT}main.ts`, ["ps"], live);
    assert.match(table.stdout, /kquick .* api /);
  } finally {
    await Deno.chmod(open, 0o700);
    await Deno.remove(live, { recursive: true });
    await Deno.remove(open, { recursive: true });
  }
});
