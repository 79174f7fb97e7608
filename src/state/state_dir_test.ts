import assert from "node:assert/strict";
import { StateDirError } from "./errors.ts";
import { checkStateDir, ensureStateDir, resolveStateDir } from "./state_dir.ts";
import { tempStateDir } from "./testdata/helpers.ts";

Deno.test("resolveStateDir() prefers KF_STATE_DIR, then an absolute XDG_STATE_HOME, then ~/.local/state", () => {
  assert.equal(resolveStateDir({ KF_STATE_DIR: "/x/kf", XDG_STATE_HOME: "/xdg", HOME: "/h" }), "/x/kf");
  assert.equal(resolveStateDir({ XDG_STATE_HOME: "/xdg/", HOME: "/h" }), "/xdg/kf");
  assert.equal(resolveStateDir({ XDG_STATE_HOME: "relative", HOME: "/h" }), "/h/.local/state/kf");
  assert.equal(resolveStateDir({ KF_STATE_DIR: "", HOME: "/h" }), "/h/.local/state/kf");
  assert.throws(() => resolveStateDir({}), StateDirError);
});

Deno.test("ensureStateDir() creates missing parents and the dir with mode 0700", async () => {
  const base = await tempStateDir();
  try {
    const dir = `${base}/a/b/kf`;
    assert.equal(await ensureStateDir(dir), dir);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    assert.equal(await ensureStateDir(dir), dir, "an existing safe dir is fine");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("checkStateDir() is false for a missing dir and does not create it", async () => {
  const base = await tempStateDir();
  try {
    assert.equal(await checkStateDir(`${base}/nope`), false);
    await assert.rejects(Deno.stat(`${base}/nope`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("ensureStateDir() refuses a world-writable (0777) or group-writable dir, with a chmod hint", async () => {
  const dir = await tempStateDir();
  try {
    for (const mode of [0o777, 0o770, 0o702]) {
      await Deno.chmod(dir, mode);
      const error = await ensureStateDir(dir).then(() => undefined, (e) => e);
      assert.ok(error instanceof StateDirError, `mode ${mode.toString(8)} must be refused`);
      assert.match(error.message, /group- or world-writable/);
      assert.equal(error.hint, `run: chmod 700 ${dir}`);
      assert.equal(error.exitCode, 1);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureStateDir() refuses a dir owned by another user", {
  ignore: Deno.build.os === "windows" || Deno.uid() !== 0,
}, async () => {
  // Only root can give a dir away; as root, ownership by uid 65534 (nobody) must be refused.
  const dir = await tempStateDir();
  try {
    await Deno.chown(dir, 65534, null);
    await assert.rejects(
      ensureStateDir(dir),
      (e: unknown) => e instanceof StateDirError && /owned by uid 65534/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureStateDir() refuses a path that is a file", async () => {
  const base = await tempStateDir();
  try {
    await Deno.writeTextFile(`${base}/file`, "");
    await assert.rejects(ensureStateDir(`${base}/file`), /not a directory/);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
